// Host-side preparation shared by the CPU and CUDA elementwise kernels: broadcasting, dtype and device
// checks. An operand with one element is read with stride 0 (no copy); others are expanded to the
// broadcast shape and made contiguous.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <array>
#include <vector>

namespace hvae {

template <int N>
struct ElementwiseArgs {
  std::array<at::Tensor, N> inputs;  // all of the output dtype, contiguous, numel 1 or numel(out)
  std::array<int64_t, N> strides;    // 0 for a single-element operand, else 1
  at::Tensor out;
};

// `promote[i]` says whether operand i takes part in choosing the output dtype (integer `dim` operands
// do not). The output dtype must be float32 or float64.
template <int N>
ElementwiseArgs<N> prepare_elementwise(const char* op, std::array<at::Tensor, N> inputs, std::array<bool, N> promote) {
  ElementwiseArgs<N> args;
  c10::optional<at::ScalarType> dtype;
  std::vector<int64_t> shape;
  const c10::Device device = inputs[0].device();
  for (int i = 0; i < N; ++i) {
    TORCH_CHECK(inputs[i].defined(), op, ": operand ", i, " is undefined");
    TORCH_CHECK(inputs[i].device() == device, op, ": all operands must be on one device, got ", device, " and ",
                inputs[i].device());
    if (promote[i]) {
      const at::ScalarType t = inputs[i].scalar_type();
      TORCH_CHECK(t == at::kFloat || t == at::kDouble, op, ": operand ", i, " must be float32 or float64, got ", t);
      dtype = dtype ? at::promote_types(*dtype, t) : t;
    }
    shape = i == 0 ? inputs[i].sizes().vec() : at::infer_size(shape, inputs[i].sizes());
  }
  TORCH_CHECK(dtype.has_value(), op, ": no floating operand");
  args.out = at::empty(shape, inputs[0].options().dtype(*dtype));
  for (int i = 0; i < N; ++i) {
    at::Tensor t = inputs[i].to(*dtype);
    if (t.numel() == 1) {
      args.inputs[i] = t.reshape({1}).contiguous();
      args.strides[i] = 0;
    } else {
      args.inputs[i] = t.expand(shape).contiguous();
      args.strides[i] = 1;
    }
  }
  return args;
}

}  // namespace hvae
