// dw/dkappa for the vMF sampler by implicit reparameterization.
//
// w = mu^T z has density p(w; kappa) = e^{kappa w} (1 - w^2)^{(d-3)/2} / Z(kappa) on [-1, 1]. Implicit
// reparameterization (M. Figurnov, S. Mohamed, A. Mnih, "Implicit Reparameterization Gradients",
// NeurIPS 2018) differentiates a sample through its CDF F held fixed:
//   dw/dkappa = -(dF/dkappa)(w; kappa) / p(w; kappa),   dF/dkappa(w) = int_{-1}^{w} (t - A) p(t) dt,
// with A = A_d(kappa) = E[w] (d/dkappa log Z = A). Z cancels. With t = cos(theta), theta_w = acos(w):
//   dw/dkappa = + int_0^{theta_w} (cos th - A) e^{L(th)} dth      ("upper side", t in [w, 1])
//             = - int_{theta_w}^{pi} (cos th - A) e^{L(th)} dth   ("lower side", t in [-1, w])
//   L(th) = kappa (cos th - cos theta_w) + (d - 2) log sin th - (d - 3) log sin theta_w,
// which is smooth for every d >= 2 (the t-form has endpoint singularities for d = 2 and even d).
// The two sides agree because int_0^pi (cos th - A) e^{L} dth = 0; we integrate the side that lies in the
// tail (away from the mode theta*), where the integrand decays monotonically from theta_w and nothing
// cancels, over a window of ~12 Laplace widths (or 40 e-folds of the local slope, if shorter), by
// 32-point Gauss-Legendre quadrature. cos th - cos theta_w = -2 sin((th + theta_w)/2) sin((th - theta_w)/2)
// and theta_w = 2 asin(sqrt((1 - w)/2)) keep full precision near w = 1 (large kappa).
//
// This is the exact pathwise gradient of the marginal of w, hence unbiased for every d. The alternative of
// Naesseth et al. ("Reparameterization gradients through acceptance-rejection sampling algorithms",
// AISTATS 2017), used in Davidson et al. 2018, adds a score-function term g_cor that needs the loss value
// f(z) itself, which a backward pass that sees only dL/dz cannot form; dropping it (as the reference
// code does) biases the kappa-gradient for d != 3.
#pragma once

#include "common.h"

namespace hvae {
namespace math {

namespace detail {

#define HVAE_GL32_NODES \
    0.048307665687738324, 0.1444719615827965, 0.23928736225213706, 0.33186860228212767,  \
    0.42135127613063533, 0.5068999089322294, 0.5877157572407623, 0.6630442669302152,  \
    0.7321821187402897, 0.7944837959679424, 0.84936761373257, 0.8963211557660521,  \
    0.9349060759377397, 0.9647622555875064, 0.9856115115452684, 0.9972638618494816 \

#define HVAE_GL32_WEIGHTS \
    0.09654008851472766, 0.09563872007927471, 0.09384439908080451, 0.09117387869576378,  \
    0.08765209300440378, 0.08331192422694671, 0.07819389578707023, 0.07234579410884834,  \
    0.06582222277636168, 0.058684093478535565, 0.05099805926237609, 0.042835898022226836,  \
    0.034273862913021765, 0.025392065309262024, 0.016274394730905743, 0.007018610009470506 \

#if defined(__CUDACC__)
static __constant__ double kGL32NodesDevice[16] = {HVAE_GL32_NODES};
static __constant__ double kGL32WeightsDevice[16] = {HVAE_GL32_WEIGHTS};
#endif
static constexpr double kGL32NodesHost[16] = {HVAE_GL32_NODES};
static constexpr double kGL32WeightsHost[16] = {HVAE_GL32_WEIGHTS};

HVAE_HD const double* gl32_nodes() {
#if defined(__CUDA_ARCH__)
  return kGL32NodesDevice;
#else
  return kGL32NodesHost;
#endif
}
HVAE_HD const double* gl32_weights() {
#if defined(__CUDA_ARCH__)
  return kGL32WeightsDevice;
#else
  return kGL32WeightsHost;
#endif
}

// (cos th - A) e^{L(th)}, see above; one_minus_a = 1 - A.
HVAE_HD double implicit_grad_integrand(double th, double theta_w, double log_sin_w, double kappa, double d,
                                       double one_minus_a) {
  const double half_sin = ::sin(0.5 * th);
  const double cos_minus_a = one_minus_a - 2.0 * half_sin * half_sin;
  const double cos_diff = -2.0 * ::sin(0.5 * (th + theta_w)) * ::sin(0.5 * (th - theta_w));
  const double log_sin = (d == 2.0) ? 0.0 : (d - 2.0) * ::log(::sin(th));
  return cos_minus_a * ::exp(kappa * cos_diff + log_sin - (d - 3.0) * log_sin_w);
}

}  // namespace detail

// dw/dkappa at w = 1 - omw (omw = 1 - w carries the precision near w = 1), d >= 2, kappa >= 0,
// A = A_d(kappa). Returns 0 at w = +-1 exactly (where the density of a d >= 4 sample vanishes and a sample
// never lands) and NaN for NaN input.
HVAE_HD double vmf_w_dkappa(double omw, double kappa, double d, double A) {
  if (is_nan(omw) || is_nan(kappa) || is_nan(d) || is_nan(A)) return quiet_nan();
  if (!(omw > 0.0) || !(omw < 2.0)) return 0.0;
  const double w = 1.0 - omw;
  if (kappa == 0.0) return (1.0 - w * w) / (d - 1.0);  // the limit: w is then Beta-distributed
  const double theta_w = 2.0 * ::asin(::sqrt(0.5 * omw));
  const double log_sin_w = ::log(::sin(theta_w));
  // Mode and Laplace width of L: cos th* = 2 kappa / ((d-2) + sqrt((d-2)^2 + 4 kappa^2)).
  const double dm2 = d - 2.0;
  const double t = dm2 / kappa;  // no 4 kappa^2: it would overflow for kappa > 1e154
  const double c_star = 2.0 / (t + ::sqrt(t * t + 4.0));
  const double theta_star = ::acos(c_star);
  const double curvature = kappa * c_star + (c_star < 1.0 ? dm2 / (1.0 - c_star * c_star) : 0.0);
  const double sigma = 1.0 / ::sqrt(curvature);
  // Local slope of L at theta_w: -kappa sin th + (d-2) cot th.
  const double slope = -kappa * ::sin(theta_w) + dm2 * ::cos(theta_w) / ::sin(theta_w);
  double window = 12.0 * sigma;
  if (::fabs(slope) * window > 40.0) window = 40.0 / ::fabs(slope);
  const bool upper = theta_w <= theta_star;  // w above the mode: integrate t in [w, 1]
  double lo, hi;
  if (upper) {
    lo = theta_w - window > 0.0 ? theta_w - window : 0.0;
    hi = theta_w;
  } else {
    lo = theta_w;
    hi = theta_w + window < kPi ? theta_w + window : kPi;
  }
  const double half = 0.5 * (hi - lo), mid = 0.5 * (hi + lo);
  const double* nodes = detail::gl32_nodes();
  const double* weights = detail::gl32_weights();
  const double one_minus_a = 1.0 - A;
  double sum = 0.0;
  for (int i = 0; i < 16; ++i) {
    const double dx = half * nodes[i];
    sum += weights[i] * (detail::implicit_grad_integrand(mid - dx, theta_w, log_sin_w, kappa, d, one_minus_a) +
                         detail::implicit_grad_integrand(mid + dx, theta_w, log_sin_w, kappa, d, one_minus_a));
  }
  sum *= half;
  return upper ? sum : -sum;
}

}  // namespace math
}  // namespace hvae
