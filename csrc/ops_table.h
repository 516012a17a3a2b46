// The table of the elementwise ops: one line per op, from which csrc/ops.cpp makes the schemas and
// csrc/cpu/special_cpu.cpp and csrc/cuda/special_cuda.cu make and register the kernels (register_elementwise).
// hvae_ext/_ops.py makes the fake kernels of these ops from their registered schemas. Adding an elementwise
// op: its functor in special_functors.h (the formula itself in csrc/math/), one line here, and its autograd
// in hvae_ext/_ops.py if it is differentiable.
//
// Names: a leading underscore marks an internal op (not for users: a piece of another op's gradient, a fast path
// or an instrument for the tests), as in aten; `<op>_backward` is the backward kernel of `<op>`. The rule is
// stated in hvae_ext/_ops.py.
//
//   X(name, functor, "returns", "arguments", promote...)
//     returns: "Tensor", or "(Tensor, Tensor)" for the value and its kappa-derivative in one pass (the
//       functor's operator()(a, &grad));
//     promote: one flag per operand, whether it takes part in choosing the output dtype: false exactly for the
//       integer operand named `dim` (the Python fake kernels read it from the argument names).
// All operands broadcast; the values are computed in float64 (float32 outputs may take the float32 paths).
#pragma once

#include <torch/library.h>

#include <array>
#include <tuple>
#include <utility>

#include "special_functors.h"

#define HVAE_ELEMENTWISE_OPS(X)                                                                                       \
  X(log_bessel_iv, LogBesselIvOp, "Tensor", "Tensor v, Tensor x", true, true)                                         \
  X(log_bessel_iv_backward, LogBesselIvBackwardOp, "Tensor", "Tensor grad, Tensor v, Tensor x", true, true, true)     \
  X(bessel_iv_ratio, BesselIvRatioOp, "Tensor", "Tensor v, Tensor x", true, true)                                     \
  X(bessel_iv_ratio_backward, BesselIvRatioBackwardOp, "Tensor", "Tensor grad, Tensor v, Tensor x", true, true, true) \
  X(vmf_log_normalizer, VmfLogNormalizerOp, "Tensor", "Tensor kappa, Tensor dim", true, false)                        \
  X(vmf_log_normalizer_backward, VmfLogNormalizerBackwardOp, "Tensor", "Tensor grad, Tensor kappa, Tensor dim", true, \
    true, false)                                                                                                      \
  X(vmf_mean_resultant, VmfMeanResultantOp, "Tensor", "Tensor kappa, Tensor dim", true, false)                        \
  X(vmf_mean_resultant_backward, VmfMeanResultantBackwardOp, "Tensor", "Tensor grad, Tensor kappa, Tensor dim", true, \
    true, false)                                                                                                      \
  X(vmf_mean_resultant_inverse, VmfMeanResultantInverseOp, "Tensor", "Tensor r, Tensor dim", true, false)             \
  X(vmf_mean_resultant_inverse_backward, VmfMeanResultantInverseBackwardOp, "Tensor",                                 \
    "Tensor grad, Tensor kappa, Tensor r, Tensor dim", true, true, true, false)                                       \
  X(vmf_kl_uniform, VmfKlUniformOp, "Tensor", "Tensor kappa, Tensor dim", true, false)                                \
  X(vmf_kl_uniform_backward, VmfKlUniformBackwardOp, "Tensor", "Tensor grad, Tensor kappa, Tensor dim", true, true,   \
    false)                                                                                                            \
  X(_vmf_mean_resultant_second_derivative, VmfMeanResultantSecondDerivativeOp, "Tensor", "Tensor kappa, Tensor dim",  \
    true, false)                                                                                                      \
  X(_vmf_kl_uniform_second_derivative, VmfKlUniformSecondDerivativeOp, "Tensor", "Tensor kappa, Tensor dim", true,    \
    false)                                                                                                            \
  X(vmf_entropy, VmfEntropyOp, "Tensor", "Tensor kappa, Tensor dim", true, false)                                     \
  X(vmf_kl_vmf, VmfKlVmfOp, "Tensor", "Tensor kappa_p, Tensor kappa_q, Tensor one_minus_cos, Tensor dim", true, true, \
    true, false)                                                                                                      \
  X(_vmf_log_normalizer_and_grad, VmfLogNormalizerAndGradOp, "(Tensor, Tensor)", "Tensor kappa, Tensor dim", true,    \
    false)                                                                                                            \
  X(_vmf_kl_uniform_and_grad, VmfKlUniformAndGradOp, "(Tensor, Tensor)", "Tensor kappa, Tensor dim", true, false)     \
  X(_vmf_w_dkappa, VmfWDkappaOp, "Tensor", "Tensor one_minus_w, Tensor kappa, Tensor dim, Tensor mean_resultant",     \
    true, true, false, true)                                                                                          \
  X(_vmf_w_dkappa_float32_rule, VmfWDkappaFloat32RuleOp, "Tensor",                                                    \
    "Tensor one_minus_w, Tensor kappa, Tensor dim, Tensor mean_resultant", true, true, false, true)

namespace hvae {

// One struct per table line: the functor, the name, the number of outputs and the promote flags.
namespace op_traits {
#define HVAE_OP_TRAITS_(NAME, OP, RET, ARGS, ...)                           \
  struct NAME {                                                             \
    using Functor = OP;                                                     \
    static constexpr const char* kName = #NAME;                             \
    static constexpr bool kWithGrad = RET[0] == '(';                        \
    static std::array<bool, OP::kArity> promote() { return {__VA_ARGS__}; } \
  };
HVAE_ELEMENTWISE_OPS(HVAE_OP_TRAITS_)
#undef HVAE_OP_TRAITS_
}  // namespace op_traits

// The kernel of one table line on one device: Device::run<Op, kGrad>(name, inputs, promote) is the device's
// loop over elements (returning the value and, with kGrad, the derivative), wrapped as the fixed-arity
// function that m.impl takes.
template <class Traits, class Device, class Seq = std::make_index_sequence<Traits::Functor::kArity>>
struct ElementwiseKernel;
template <class Traits, class Device, size_t... I>
struct ElementwiseKernel<Traits, Device, std::index_sequence<I...>> {
  template <size_t>
  using Arg = const at::Tensor&;
  static std::tuple<at::Tensor, at::Tensor> run(std::array<at::Tensor, sizeof...(I)> in) {
    return Device::template run<typename Traits::Functor, Traits::kWithGrad>(Traits::kName, in, Traits::promote());
  }
  static at::Tensor value(Arg<I>... t) { return std::get<0>(run({t...})); }
  static std::tuple<at::Tensor, at::Tensor> value_and_grad(Arg<I>... t) { return run({t...}); }
};

template <class Traits, class Device>
void register_one_elementwise(torch::Library& m) {
  if constexpr (Traits::kWithGrad) {
    m.impl(Traits::kName, &ElementwiseKernel<Traits, Device>::value_and_grad);
  } else {
    m.impl(Traits::kName, &ElementwiseKernel<Traits, Device>::value);
  }
}

// Registers every op of the table with the device's loop (inside TORCH_LIBRARY_IMPL).
template <class Device>
void register_elementwise(torch::Library& m) {
#define HVAE_REGISTER_(NAME, ...) register_one_elementwise<op_traits::NAME, Device>(m);
  HVAE_ELEMENTWISE_OPS(HVAE_REGISTER_)
#undef HVAE_REGISTER_
}

// The schemas (csrc/ops.cpp, inside TORCH_LIBRARY).
inline void define_elementwise(torch::Library& m) {
#define HVAE_DEFINE_(NAME, OP, RET, ARGS, ...) m.def(#NAME "(" ARGS ") -> " RET);
  HVAE_ELEMENTWISE_OPS(HVAE_DEFINE_)
#undef HVAE_DEFINE_
}

}  // namespace hvae
