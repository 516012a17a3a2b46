// The elementwise special-function ops as functors over float64 operands, shared by the CPU and CUDA
// kernels. Each op of csrc/ops.cpp maps to one functor here; the formulas live in csrc/math/bessel.h.
#pragma once

#include "vmf_math.h"

namespace hvae {

using math::infinity;

// log I_v(x)
struct LogBesselIvOp {
  bool single = false;  // float32 output: the Bessel functions may take their cheaper float32-accurate path
  static constexpr int kArity = 2;
  HVAE_HD double operator()(const double* a) const { return math::log_bessel_iv(a[0], a[1], single); }
};

// grad * d/dx log I_v(x) = grad * (I_{v+1}(x) / I_v(x) + v / x)   (DLMF 10.29.2)
struct LogBesselIvBackwardOp {
  bool single = false;  // float32 output: the Bessel functions may take their cheaper float32-accurate path
  static constexpr int kArity = 3;
  HVAE_HD double operator()(const double* a) const {
    const double grad = a[0], v = a[1], x = a[2];
    if (x == 0.0) return v == 0.0 ? 0.0 * grad : grad * infinity();
    return grad * (math::bessel_iv_ratio(v + 1.0, x, single) + v / x);
  }
};

// I_v(x) / I_{v-1}(x)
struct BesselIvRatioOp {
  bool single = false;  // float32 output: the Bessel functions may take their cheaper float32-accurate path
  static constexpr int kArity = 2;
  HVAE_HD double operator()(const double* a) const { return math::bessel_iv_ratio(a[0], a[1], single); }
};

// grad * d/dx R_v(x) = grad * (1 - R^2 - (2v - 1) R / x),  R_v = I_v / I_{v-1};  at x = 0: 1 / (2v)
// (accurate also at large x, where the difference cancels: math::bessel_iv_ratio_derivative).
struct BesselIvRatioBackwardOp {
  bool single = false;  // float32 output: the Bessel functions may take their cheaper float32-accurate path
  static constexpr int kArity = 3;
  HVAE_HD double operator()(const double* a) const {
    return a[0] * math::bessel_iv_ratio_derivative(a[1], a[2], single);
  }
};

// log C_d(kappa)
struct VmfLogNormalizerOp {
  bool single = false;  // float32 output: the Bessel functions may take their cheaper float32-accurate path
  static constexpr int kArity = 2;
  HVAE_HD double operator()(const double* a) const { return math::vmf_log_normalizer(a[0], a[1], single); }
};

// grad * d/dkappa log C_d(kappa) = -grad * A_d(kappa)
struct VmfLogNormalizerBackwardOp {
  bool single = false;  // float32 output: the Bessel functions may take their cheaper float32-accurate path
  static constexpr int kArity = 3;
  HVAE_HD double operator()(const double* a) const { return -a[0] * math::vmf_mean_resultant(a[1], a[2], single); }
};

// A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa)
struct VmfMeanResultantOp {
  bool single = false;  // float32 output: the Bessel functions may take their cheaper float32-accurate path
  static constexpr int kArity = 2;
  HVAE_HD double operator()(const double* a) const { return math::vmf_mean_resultant(a[0], a[1], single); }
};

// grad * dA_d/dkappa = grad * (1 - A^2 - (d - 1) A / kappa);  at kappa = 0: 1 / d.
struct VmfMeanResultantBackwardOp {
  bool single = false;  // float32 output: the Bessel functions may take their cheaper float32-accurate path
  static constexpr int kArity = 3;
  HVAE_HD double operator()(const double* a) const {
    // accurate also at large kappa, where 1 - A^2 - (d - 1) A / kappa cancels (csrc/math/vmf.h)
    return a[0] * math::vmf_mean_resultant_derivative(a[1], a[2]);
  }
};

// kappa = A_d^{-1}(r), the inverse of the mean resultant length (math/vmf_fit.h)
struct VmfMeanResultantInverseOp {
  bool single = false;  // float32 output: the Bessel functions may take their cheaper float32-accurate path
  static constexpr int kArity = 2;
  HVAE_HD double operator()(const double* a) const { return math::vmf_mean_resultant_inverse(a[0], a[1], single); }
};

// grad * dkappa/dr = grad / A_d'(kappa) at kappa = A_d^{-1}(r) (operands: grad, kappa, r, dim)
struct VmfMeanResultantInverseBackwardOp {
  bool single = false;  // float32 output: the Bessel functions may take their cheaper float32-accurate path
  static constexpr int kArity = 4;
  HVAE_HD double operator()(const double* a) const {
    return a[0] * math::vmf_mean_resultant_inverse_dr(a[1], a[2], a[3], single);
  }
};

// dw/dkappa by implicit reparameterization, w = 1 - one_minus_w
struct VmfWDkappaOp {
  bool single = false;  // float32 output: the Bessel functions may take their cheaper float32-accurate path
  static constexpr int kArity = 4;
  HVAE_HD double operator()(const double* a) const { return math::vmf_w_dkappa(a[0], a[1], a[2], a[3]); }
};

// dw/dkappa by the float32 rule of the samplers' float32 backward (math/implicit_grad_single.h), one sample at
// a time as the CUDA backward runs it; computed and returned in the input dtype's float64 path like every op.
struct VmfWDkappaFloat32RuleOp {
  bool single = false;  // unused: the rule is the float32 one whatever the output dtype
  static constexpr int kArity = 4;
  HVAE_HD double operator()(const double* a) const { return math::vmf_w_dkappa_float32_rule(a[0], a[1], a[2], a[3]); }
};

// KL(vMF(mu, kappa) || uniform on S^{d-1})
struct VmfKlUniformOp {
  bool single = false;  // float32 output: the Bessel functions may take their cheaper float32-accurate path
  static constexpr int kArity = 2;
  HVAE_HD double operator()(const double* a) const { return math::vmf_kl_uniform(a[0], a[1]); }
};

// A_d''(kappa) (the double backward of vmf_mean_resultant, csrc/math/vmf.h)
struct VmfMeanResultantSecondDerivativeOp {
  bool single = false;  // unused: computed in float64
  static constexpr int kArity = 2;
  HVAE_HD double operator()(const double* a) const { return math::vmf_mean_resultant_second_derivative(a[0], a[1]); }
};

// D'(kappa), D = kappa A_d'(kappa) (the double backward of vmf_kl_uniform, csrc/math/vmf.h)
struct VmfKlUniformSecondDerivativeOp {
  bool single = false;  // unused: computed in float64
  static constexpr int kArity = 2;
  HVAE_HD double operator()(const double* a) const { return math::vmf_kl_uniform_second_derivative(a[0], a[1]); }
};

// grad * d/dkappa KL(vMF || uniform) = grad * kappa A_d'(kappa)
struct VmfKlUniformBackwardOp {
  bool single = false;  // float32 output: the Bessel functions may take their cheaper float32-accurate path
  static constexpr int kArity = 3;
  HVAE_HD double operator()(const double* a) const { return a[0] * math::vmf_kl_uniform_dkappa(a[1], a[2]); }
};

// H(kappa) = -log C_d(kappa) - kappa A_d(kappa), without cancellation at large kappa (csrc/math/vmf.h)
struct VmfEntropyOp {
  bool single = false;  // unused: computed in float64 (a float32 path would save little here)
  static constexpr int kArity = 2;
  HVAE_HD double operator()(const double* a) const { return math::vmf_entropy(a[0], a[1]); }
};

// KL(vMF(mu_p, kappa_p) || vMF(mu_q, kappa_q)) from (kappa_p, kappa_q, 1 - mu_q^T mu_p, d)
struct VmfKlVmfOp {
  bool single = false;  // unused: computed in float64
  static constexpr int kArity = 4;
  HVAE_HD double operator()(const double* a) const { return math::vmf_kl_vmf(a[0], a[1], a[2], a[3]); }
};

// Value and derivative in one pass: the forward ops of the autograd formulas, whose backward then only
// multiplies by the saved derivative (kOutputs = 2: operator() returns the value, writes the derivative).
struct VmfLogNormalizerAndGradOp {
  static constexpr int kArity = 2;
  bool single = false;
  HVAE_HD double operator()(const double* a, double* grad) const {
    double mean_resultant;
    const double value = math::vmf_log_normalizer_and_mean_resultant(a[0], a[1], &mean_resultant, single);
    *grad = -mean_resultant;
    return value;
  }
};

struct VmfKlUniformAndGradOp {
  static constexpr int kArity = 2;
  bool single = false;
  HVAE_HD double operator()(const double* a, double* grad) const {
    return math::vmf_kl_uniform_and_dkappa(a[0], a[1], grad);
  }
};

// One element of an elementwise run, shared by the CPU loop and the CUDA kernel: the functor on the
// float64 operands a, its value stored to out[i] and, with kGrad, its derivative to out_grad[i].
template <bool kGrad, class Op, typename scalar_t>
HVAE_HD void eval_and_store(const Op& op, const double* a, scalar_t* out, scalar_t* out_grad, int64_t i) {
  if constexpr (kGrad) {
    double g;
    out[i] = static_cast<scalar_t>(op(a, &g));
    out_grad[i] = static_cast<scalar_t>(g);
  } else {
    out[i] = static_cast<scalar_t>(op(a));
  }
}

}  // namespace hvae
