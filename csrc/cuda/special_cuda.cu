// CUDA kernels of the elementwise special-function ops: a grid-stride loop calling the functors of
// special_functors.h (the same code the CPU kernels run).
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include "../elementwise.h"
#include "../special_functors.h"

namespace hvae {
namespace {

template <typename scalar_t, int N>
struct Operands {
  const scalar_t* ptr[N];
  int64_t stride[N];
};

// A grid-stride loop over elements; with kGrad the functor also writes the derivative
// (operator()(a, &grad)) into out_grad.
template <class Op, bool kGrad, typename scalar_t>
__global__ void elementwise_kernel(Operands<scalar_t, Op::kArity> in, scalar_t* __restrict__ out,
                                   scalar_t* __restrict__ out_grad, int64_t numel) {
  Op op;
  op.single = sizeof(scalar_t) == 4;
  double a[Op::kArity];
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
#pragma unroll
    for (int k = 0; k < Op::kArity; ++k) a[k] = static_cast<double>(in.ptr[k][i * in.stride[k]]);
    eval_and_store<kGrad>(op, a, out, out_grad, i);
  }
}

template <class Op, bool kGrad>
std::tuple<at::Tensor, at::Tensor> run_cuda_impl(const char* name, std::array<at::Tensor, Op::kArity> inputs,
                                                 std::array<bool, Op::kArity> promote) {
  constexpr int N = Op::kArity;
  // Checks first: with a CPU first operand and a CUDA second one the dispatcher still picks this kernel,
  // and the op's own device message beats CUDAGuard's "non-CUDA DeviceType".
  auto args = prepare_elementwise<N>(name, inputs, promote);
  const c10::cuda::CUDAGuard guard(args.out.device());
  at::Tensor grad = kGrad ? at::empty_like(args.out) : at::Tensor();
  const int64_t numel = args.out.numel();
  if (numel == 0) return {args.out, grad};
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((numel + kThreads - 1) / kThreads, 65535 * 8);
  AT_DISPATCH_FLOATING_TYPES(args.out.scalar_type(), "hvae_ext_special_cuda", [&] {
    Operands<scalar_t, N> in;
    for (int k = 0; k < N; ++k) {
      in.ptr[k] = args.inputs[k].template data_ptr<scalar_t>();
      in.stride[k] = args.strides[k];
    }
    elementwise_kernel<Op, kGrad, scalar_t><<<blocks, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        in, args.out.template data_ptr<scalar_t>(), kGrad ? grad.template data_ptr<scalar_t>() : nullptr, numel);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {args.out, grad};
}

template <class Op>
at::Tensor run_cuda(const char* name, std::array<at::Tensor, Op::kArity> inputs,
                    std::array<bool, Op::kArity> promote) {
  return std::get<0>(run_cuda_impl<Op, false>(name, inputs, promote));
}
template <class Op>
std::tuple<at::Tensor, at::Tensor> run_cuda_with_grad(const char* name, std::array<at::Tensor, Op::kArity> inputs,
                                                      std::array<bool, Op::kArity> promote) {
  return run_cuda_impl<Op, true>(name, inputs, promote);
}

at::Tensor log_bessel_iv_cuda(const at::Tensor& v, const at::Tensor& x) {
  return run_cuda<LogBesselIvOp>("log_bessel_iv", {v, x}, {true, true});
}
at::Tensor log_bessel_iv_backward_cuda(const at::Tensor& g, const at::Tensor& v, const at::Tensor& x) {
  return run_cuda<LogBesselIvBackwardOp>("log_bessel_iv_backward", {g, v, x}, {true, true, true});
}
at::Tensor bessel_iv_ratio_cuda(const at::Tensor& v, const at::Tensor& x) {
  return run_cuda<BesselIvRatioOp>("bessel_iv_ratio", {v, x}, {true, true});
}
at::Tensor bessel_iv_ratio_backward_cuda(const at::Tensor& g, const at::Tensor& v, const at::Tensor& x) {
  return run_cuda<BesselIvRatioBackwardOp>("bessel_iv_ratio_backward", {g, v, x}, {true, true, true});
}
at::Tensor vmf_log_normalizer_cuda(const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cuda<VmfLogNormalizerOp>("vmf_log_normalizer", {kappa, dim}, {true, false});
}
at::Tensor vmf_log_normalizer_backward_cuda(const at::Tensor& g, const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cuda<VmfLogNormalizerBackwardOp>("vmf_log_normalizer_backward", {g, kappa, dim}, {true, true, false});
}
at::Tensor vmf_mean_resultant_cuda(const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cuda<VmfMeanResultantOp>("vmf_mean_resultant", {kappa, dim}, {true, false});
}
at::Tensor vmf_mean_resultant_backward_cuda(const at::Tensor& g, const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cuda<VmfMeanResultantBackwardOp>("vmf_mean_resultant_backward", {g, kappa, dim}, {true, true, false});
}
at::Tensor vmf_mean_resultant_inverse_cuda(const at::Tensor& r, const at::Tensor& dim) {
  return run_cuda<VmfMeanResultantInverseOp>("vmf_mean_resultant_inverse", {r, dim}, {true, false});
}
at::Tensor vmf_mean_resultant_inverse_backward_cuda(const at::Tensor& g, const at::Tensor& kappa, const at::Tensor& r,
                                                 const at::Tensor& dim) {
  return run_cuda<VmfMeanResultantInverseBackwardOp>("vmf_mean_resultant_inverse_backward", {g, kappa, r, dim},
                                                  {true, true, true, false});
}
at::Tensor vmf_kl_uniform_cuda(const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cuda<VmfKlUniformOp>("vmf_kl_uniform", {kappa, dim}, {true, false});
}
at::Tensor vmf_kl_uniform_backward_cuda(const at::Tensor& g, const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cuda<VmfKlUniformBackwardOp>("vmf_kl_uniform_backward", {g, kappa, dim}, {true, true, false});
}
at::Tensor vmf_entropy_cuda(const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cuda<VmfEntropyOp>("vmf_entropy", {kappa, dim}, {true, false});
}
at::Tensor vmf_kl_vmf_cuda(const at::Tensor& kp, const at::Tensor& kq, const at::Tensor& omc, const at::Tensor& dim) {
  return run_cuda<VmfKlVmfOp>("vmf_kl_vmf", {kp, kq, omc, dim}, {true, true, true, false});
}
std::tuple<at::Tensor, at::Tensor> vmf_log_normalizer_and_grad_cuda(const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cuda_with_grad<VmfLogNormalizerAndGradOp>("vmf_log_normalizer_and_grad", {kappa, dim}, {true, false});
}
std::tuple<at::Tensor, at::Tensor> vmf_kl_uniform_and_grad_cuda(const at::Tensor& kappa, const at::Tensor& dim) {
  return run_cuda_with_grad<VmfKlUniformAndGradOp>("vmf_kl_uniform_and_grad", {kappa, dim}, {true, false});
}
at::Tensor vmf_w_dkappa_cuda(const at::Tensor& omw, const at::Tensor& kappa, const at::Tensor& dim,
                             const at::Tensor& mean_resultant) {
  return run_cuda<VmfWDkappaOp>("vmf_w_dkappa", {omw, kappa, dim, mean_resultant}, {true, true, false, true});
}

}  // namespace

TORCH_LIBRARY_IMPL(hvae_ext, CUDA, m) {
  m.impl("log_bessel_iv", &log_bessel_iv_cuda);
  m.impl("log_bessel_iv_backward", &log_bessel_iv_backward_cuda);
  m.impl("bessel_iv_ratio", &bessel_iv_ratio_cuda);
  m.impl("bessel_iv_ratio_backward", &bessel_iv_ratio_backward_cuda);
  m.impl("vmf_log_normalizer", &vmf_log_normalizer_cuda);
  m.impl("vmf_log_normalizer_backward", &vmf_log_normalizer_backward_cuda);
  m.impl("vmf_mean_resultant", &vmf_mean_resultant_cuda);
  m.impl("vmf_mean_resultant_backward", &vmf_mean_resultant_backward_cuda);
  m.impl("vmf_mean_resultant_inverse", &vmf_mean_resultant_inverse_cuda);
  m.impl("vmf_mean_resultant_inverse_backward", &vmf_mean_resultant_inverse_backward_cuda);
  m.impl("vmf_kl_uniform", &vmf_kl_uniform_cuda);
  m.impl("vmf_kl_uniform_backward", &vmf_kl_uniform_backward_cuda);
  m.impl("vmf_entropy", &vmf_entropy_cuda);
  m.impl("vmf_kl_vmf", &vmf_kl_vmf_cuda);
  m.impl("vmf_log_normalizer_and_grad", &vmf_log_normalizer_and_grad_cuda);
  m.impl("vmf_kl_uniform_and_grad", &vmf_kl_uniform_and_grad_cuda);
  m.impl("vmf_w_dkappa", &vmf_w_dkappa_cuda);
}

}  // namespace hvae
