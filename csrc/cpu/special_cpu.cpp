// CPU kernels of the elementwise special-function ops: a parallel loop over elements calling the
// functors of special_functors.h.
#include <ATen/Parallel.h>
#include <ATen/Dispatch.h>

#include <type_traits>

#include "../elementwise.h"
#include "../ops_table.h"

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

// The device's loop for the op table (ops_table.h).
struct CpuLoop {
  template <class Op, bool kGrad>
  static std::tuple<at::Tensor, at::Tensor> run(const char* name, std::array<at::Tensor, Op::kArity> inputs,
                                                std::array<bool, Op::kArity> promote) {
    return run_cpu_impl<Op, kGrad>(name, inputs, promote);
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(hvae_ext, CPU, m) { register_elementwise<CpuLoop>(m); }

}  // namespace hvae
