// CUDA kernels of the elementwise special-function ops: a grid-stride loop calling the functors of
// special_functors.h (the same code the CPU kernels run).
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include "../elementwise.h"
#include "../ops_table.h"

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

// The device's loop for the op table (ops_table.h).
struct CudaLoop {
  template <class Op, bool kGrad>
  static std::tuple<at::Tensor, at::Tensor> run(const char* name, std::array<at::Tensor, Op::kArity> inputs,
                                                std::array<bool, Op::kArity> promote) {
    return run_cuda_impl<Op, kGrad>(name, inputs, promote);
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(hvae_ext, CUDA, m) { register_elementwise<CudaLoop>(m); }

}  // namespace hvae
