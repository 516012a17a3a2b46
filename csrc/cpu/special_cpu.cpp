// CPU kernels of the elementwise special-function ops: a parallel loop over elements calling the
// functors of special_functors.h.
#include <ATen/Parallel.h>
#include <ATen/Dispatch.h>

#include <type_traits>

#include "../elementwise.h"
#include "../special_functors.h"

namespace hvae {
namespace {

// A parallel loop over elements; with kGrad the functor also writes the derivative (operator()(a, &grad)),
// into a second output.
template <class Op, bool kGrad>
std::tuple<at::Tensor, at::Tensor> run_cpu_impl(const char* name, std::array<at::Tensor, Op::kArity> inputs,
                                                std::array<bool, Op::kArity> promote) {
  constexpr int N = Op::kArity;
  auto args = prepare_elementwise<N>(name, inputs, promote);
  at::Tensor grad = kGrad ? at::empty_like(args.out) : at::Tensor();
  const int64_t numel = args.out.numel();
  AT_DISPATCH_FLOATING_TYPES(args.out.scalar_type(), "hvae_ext_special_cpu", [&] {
    std::array<const scalar_t*, N> ptr;
    for (int i = 0; i < N; ++i) ptr[i] = args.inputs[i].template data_ptr<scalar_t>();
    const auto strides = args.strides;
    scalar_t* out = args.out.template data_ptr<scalar_t>();
    scalar_t* out_grad = kGrad ? grad.template data_ptr<scalar_t>() : nullptr;
    // Each element costs ~100 ns, so small grains already pay for a thread.
    at::parallel_for(0, numel, 512, [&](int64_t begin, int64_t end) {
      Op op;
      op.single = std::is_same<scalar_t, float>::value;
      double a[N];
      for (int64_t i = begin; i < end; ++i) {
        for (int k = 0; k < N; ++k) a[k] = static_cast<double>(ptr[k][i * strides[k]]);
        eval_and_store<kGrad>(op, a, out, out_grad, i);
      }
    });
  });
  return {args.out, grad};
}

template <class Op>
at::Tensor run_cpu(const char* name, std::array<at::Tensor, Op::kArity> inputs, std::array<bool, Op::kArity> promote) {
  return std::get<0>(run_cpu_impl<Op, false>(name, inputs, promote));
}
template <class Op>
std::tuple<at::Tensor, at::Tensor> run_cpu_with_grad(const char* name, std::array<at::Tensor, Op::kArity> inputs,
                                                     std::array<bool, Op::kArity> promote) {
  return run_cpu_impl<Op, true>(name, inputs, promote);
}

at::Tensor log_bessel_iv_cpu(const at::Tensor& v, const at::Tensor& x) {
  return run_cpu<LogBesselIvOp>("log_bessel_iv", {v, x}, {true, true});
}
at::Tensor log_bessel_iv_backward_cpu(const at::Tensor& g, const at::Tensor& v, const at::Tensor& x) {
  return run_cpu<LogBesselIvBackwardOp>("log_bessel_iv_backward", {g, v, x}, {true, true, true});
}
at::Tensor bessel_iv_ratio_cpu(const at::Tensor& v, const at::Tensor& x) {
  return run_cpu<BesselIvRatioOp>("bessel_iv_ratio", {v, x}, {true, true});
}
at::Tensor bessel_iv_ratio_backward_cpu(const at::Tensor& g, const at::Tensor& v, const at::Tensor& x) {
  return run_cpu<BesselIvRatioBackwardOp>("bessel_iv_ratio_backward", {g, v, x}, {true, true, true});
}
at::Tensor vmf_log_normalizer_cpu(const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cpu<VmfLogNormalizerOp>("vmf_log_normalizer", {kappa, dim}, {true, false});
}
at::Tensor vmf_log_normalizer_backward_cpu(const at::Tensor& g, const at::Tensor& kappa,
                                           const at::Tensor& dim) {
  return run_cpu<VmfLogNormalizerBackwardOp>("vmf_log_normalizer_backward", {g, kappa, dim},
                                             {true, true, false});
}
at::Tensor vmf_mean_resultant_cpu(const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cpu<VmfMeanResultantOp>("vmf_mean_resultant", {kappa, dim}, {true, false});
}
at::Tensor vmf_mean_resultant_backward_cpu(const at::Tensor& g, const at::Tensor& kappa,
                                           const at::Tensor& dim) {
  return run_cpu<VmfMeanResultantBackwardOp>("vmf_mean_resultant_backward", {g, kappa, dim},
                                             {true, true, false});
}
at::Tensor vmf_mean_resultant_inverse_cpu(const at::Tensor& r, const at::Tensor& dim) {
  return run_cpu<VmfMeanResultantInverseOp>("vmf_mean_resultant_inverse", {r, dim}, {true, false});
}
at::Tensor vmf_mean_resultant_inverse_backward_cpu(const at::Tensor& g, const at::Tensor& kappa, const at::Tensor& r,
                                                 const at::Tensor& dim) {
  return run_cpu<VmfMeanResultantInverseBackwardOp>("vmf_mean_resultant_inverse_backward", {g, kappa, r, dim},
                                                  {true, true, true, false});
}
at::Tensor vmf_kl_uniform_cpu(const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cpu<VmfKlUniformOp>("vmf_kl_uniform", {kappa, dim}, {true, false});
}
at::Tensor vmf_kl_uniform_backward_cpu(const at::Tensor& g, const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cpu<VmfKlUniformBackwardOp>("vmf_kl_uniform_backward", {g, kappa, dim}, {true, true, false});
}
at::Tensor vmf_entropy_cpu(const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cpu<VmfEntropyOp>("vmf_entropy", {kappa, dim}, {true, false});
}
at::Tensor vmf_kl_vmf_cpu(const at::Tensor& kp, const at::Tensor& kq, const at::Tensor& omc, const at::Tensor& dim) {
  return run_cpu<VmfKlVmfOp>("vmf_kl_vmf", {kp, kq, omc, dim}, {true, true, true, false});
}
std::tuple<at::Tensor, at::Tensor> vmf_log_normalizer_and_grad_cpu(const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cpu_with_grad<VmfLogNormalizerAndGradOp>("vmf_log_normalizer_and_grad", {kappa, dim}, {true, false});
}
std::tuple<at::Tensor, at::Tensor> vmf_kl_uniform_and_grad_cpu(const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cpu_with_grad<VmfKlUniformAndGradOp>("vmf_kl_uniform_and_grad", {kappa, dim}, {true, false});
}
at::Tensor vmf_w_dkappa_cpu(const at::Tensor& omw, const at::Tensor& kappa, const at::Tensor& dim,
                            const at::Tensor& mean_resultant) {
  return run_cpu<VmfWDkappaOp>("vmf_w_dkappa", {omw, kappa, dim, mean_resultant},
                               {true, true, false, true});
}

}  // namespace

TORCH_LIBRARY_IMPL(hvae_ext, CPU, m) {
  m.impl("log_bessel_iv", &log_bessel_iv_cpu);
  m.impl("log_bessel_iv_backward", &log_bessel_iv_backward_cpu);
  m.impl("bessel_iv_ratio", &bessel_iv_ratio_cpu);
  m.impl("bessel_iv_ratio_backward", &bessel_iv_ratio_backward_cpu);
  m.impl("vmf_log_normalizer", &vmf_log_normalizer_cpu);
  m.impl("vmf_log_normalizer_backward", &vmf_log_normalizer_backward_cpu);
  m.impl("vmf_mean_resultant", &vmf_mean_resultant_cpu);
  m.impl("vmf_mean_resultant_backward", &vmf_mean_resultant_backward_cpu);
  m.impl("vmf_mean_resultant_inverse", &vmf_mean_resultant_inverse_cpu);
  m.impl("vmf_mean_resultant_inverse_backward", &vmf_mean_resultant_inverse_backward_cpu);
  m.impl("vmf_kl_uniform", &vmf_kl_uniform_cpu);
  m.impl("vmf_kl_uniform_backward", &vmf_kl_uniform_backward_cpu);
  m.impl("vmf_entropy", &vmf_entropy_cpu);
  m.impl("vmf_kl_vmf", &vmf_kl_vmf_cpu);
  m.impl("vmf_log_normalizer_and_grad", &vmf_log_normalizer_and_grad_cpu);
  m.impl("vmf_kl_uniform_and_grad", &vmf_kl_uniform_and_grad_cpu);
  m.impl("vmf_w_dkappa", &vmf_w_dkappa_cpu);
}

}  // namespace hvae
