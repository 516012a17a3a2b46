// dw/dkappa for the vMF sampler by implicit reparameterization.
//
// Formula
//   w = mu^T z has density p(w; kappa) = f(w) / Z(kappa), f(w) = e^{kappa w} (1 - w^2)^{(d-3)/2}, on [-1, 1].
//   Implicit reparameterization (M. Figurnov, S. Mohamed, A. Mnih, "Implicit Reparameterization Gradients",
//   NeurIPS 2018) differentiates a sample through its CDF F held fixed:
//     dw/dkappa = -(dF/dkappa)(w; kappa) / p(w; kappa),   dF/dkappa(w) = (1/Z) int_{-1}^{w} (t - A) f(t) dt,
//   with A = A_d(kappa) = E[w] = I_{d/2}(kappa) / I_{d/2-1}(kappa) (d/dkappa log Z = A). Z cancels:
//     dw/dkappa = + int_w^1 (t - A) f(t) dt / f(w) = - int_{-1}^w (t - A) f(t) dt / f(w) >= 0,
//   the two sides agreeing because int_{-1}^{1} (t - A) f = 0. Eliminating A = int t f / int f instead gives
//     dw/dkappa = (U_w L_0 + L_w U_0) / ((L_0 + U_0) f(w)),                                           (*)
//     U_0 = int_w^1 f,  U_w = int_w^1 (t - w) f,  L_0 = int_{-1}^w f,  L_w = int_{-1}^w (w - t) f,
//   where every integrand is positive. Limits: kappa -> 0: (1 - w^2)/(d - 1); kappa -> inf: ~(1 - w)/kappa;
//   w -> +-1: 0 (for every d >= 2); d = 3 has the closed form used below.
//
//   Why not Naesseth et al. ("Reparameterization gradients through acceptance-rejection sampling
//   algorithms", AISTATS 2017; used by Davidson et al. 2018): their estimator g_rep + g_cor differentiates
//   through the accepted Wood proposal and adds the score-function correction g_cor, which needs the loss
//   value f(z) itself. A backward pass sees only dL/dz, so g_cor cannot be formed there; dropping it (as
//   the reference code does) biases the kappa-gradient for d != 3. The implicit gradient is the exact
//   pathwise derivative of the marginal law of w, so it is unbiased for every d: E[dw/dkappa] = dA/dkappa.
//
// Quadrature
//   With t = cos(th), theta_w = acos(w) and delta = th - theta_w, f(t) dt = e^{l(th)} dth with
//   l(th) = kappa cos th + (d-2) log sin th, which is smooth on [0, pi] for every integer d >= 2 (the t-form
//   has endpoint singularities for d = 2 and for even d). Everything is computed relative to th_w:
//     D(delta) = l(th_w + delta) - l(th_w) = kappa (cos th - w) + (d-2) log1p(sin th / sin th_w - 1),
//     cos th - w = w (cos delta - 1) - sin th_w sin delta,   sin th / sin th_w - 1 = (cos delta - 1) + cot th_w sin delta,
//   with sin/cos of delta/2 from their Taylor polynomials (|delta/2| <= pi/2) and sin th_w = sqrt(omw (2-omw)),
//   so nothing cancels at w -> 1 (kappa = 1e12: 1 - w ~ 1e-12) and nothing overflows. f(w) = e^{l(th_w)}/sin th_w.
//   * If 1 - A is not small (>= kMinOneMinusA), one side is integrated: the side [w, 1] if w >= A, the side
//     [-1, w] if w < A. Then t - A has one sign on it, so
//       dw/dkappa = sin th_w (I_1 + |w - A| I_0),   I_0 = int e^{D} d delta,   I_1 = int |cos th - w| e^{D} d delta,
//     is a sum of positive terms. The side [-1, w] (w < A) never contains the mode th* of l; the side [w, 1]
//     contains it when A <= w < cos th*, which keeps e^{D} <= e^{O(1)} there.
//   * If 1 - A < kMinOneMinusA (kappa >> d), 1 - A = (d-1)/(2 kappa) + ... cannot be formed from A in
//     float64 (kappa = 1e12: A = 1 - 5e-13 carries 3 significant digits of 1 - A), so (*) is used: both sides
//     are integrated, the one with the mode scaled by e^{-D(delta*)}, and A is not used at all.
//   Each side is one panel of kNodes-point Gauss-Legendre in delta, on the window where e^{l} is within
//   e^{-kDrop} of its maximum on that side: the window end is found from the local quadratic model of l
//   (at th_w, or at the mode th*: cos th* = 2 kappa / ((d-2) + sqrt((d-2)^2 + 4 kappa^2)), curvature
//   kappa cos th* + (d-2)/sin^2 th*), refitted on the evaluated drop until the drop is in [kDropLo, kDropHi],
//   and clipped to [0, pi]. The truncated tail is below e^{-kDropLo} ~ 2e-12 of the integral, and 20 nodes
//   integrate a Gaussian or exponential on such a window to ~1e-13 (the worst case is a window 1.6x longer
//   than needed). Measured against 40-digit mpmath (tests/implicit_grad_reference.py, 780 points, d from 2
//   to 1e6, kappa from 1e-12 to 1e12, quantiles 1e-6 .. 1 - 1e-6 of w): see tests/test_implicit_grad.py.
//
// On the host exp and log1p are inline polynomial versions (a few ulps; the glibc calls cost ~10 ns each
// and the node loop is most of the cost of a backward pass); on the device the CUDA library functions.
#pragma once

#include <cstring>

#include "common.h"

namespace hvae {
namespace math {

namespace detail {

constexpr double kImplicitGradMinOneMinusA = 1e-3;  // below: the A-free formula (*)
constexpr double kImplicitGradDrop = 30.0;           // window: e^{l} within e^{-kDrop} of its peak
constexpr double kImplicitGradDropLo = 27.0;
constexpr double kImplicitGradDropHi = 48.0;
constexpr int kImplicitGradNodes = 20;  // Gauss-Legendre nodes per panel (pairs +-x)

#define HVAE_GL20_NODES                                                                                  \
  7.6526521133497334e-2, 2.2778585114164508e-1, 3.7370608871541956e-1, 5.108670019508271e-1,            \
      6.3605368072651503e-1, 7.4633190646015079e-1, 8.3911697182221882e-1, 9.1223442825132591e-1,       \
      9.6397192727791379e-1, 9.9312859918509492e-1
#define HVAE_GL20_WEIGHTS                                                                                \
  1.5275338713072585e-1, 1.4917298647260375e-1, 1.4209610931838205e-1, 1.3168863844917663e-1,           \
      1.1819453196151842e-1, 1.0193011981724044e-1, 8.3276741576704749e-2, 6.2672048334109064e-2,       \
      4.0601429800386941e-2, 1.7614007139152118e-2

#if defined(__CUDACC__)
static __constant__ double kGL20NodesDevice[10] = {HVAE_GL20_NODES};
static __constant__ double kGL20WeightsDevice[10] = {HVAE_GL20_WEIGHTS};
#endif
static constexpr double kGL20NodesHost[10] = {HVAE_GL20_NODES};
static constexpr double kGL20WeightsHost[10] = {HVAE_GL20_WEIGHTS};

HVAE_HD const double* gl20_nodes() {
#if defined(__CUDA_ARCH__)
  return kGL20NodesDevice;
#else
  return kGL20NodesHost;
#endif
}
HVAE_HD const double* gl20_weights() {
#if defined(__CUDA_ARCH__)
  return kGL20WeightsDevice;
#else
  return kGL20WeightsHost;
#endif
}

#if !defined(__CUDA_ARCH__)
inline double ig_from_bits(long long b) {
  double x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}
inline long long ig_to_bits(double x) {
  long long b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}
#endif

// e^x, relative error ~2 ulp; 0 for x < -708 (and -inf); x <= 709 expected.
HVAE_HD double ig_exp(double x) {
#if defined(__CUDA_ARCH__)
  return ::exp(x);
#else
  const double xc = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
  const double shift = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer in the low bits
  const double kd = xc * 1.4426950408889634 + shift;
  const double k = kd - shift;
  const double r = (xc - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;  // |r| <= 0.347
  double p = 1.6059043836821613e-10;  // 1/13!
  p = p * r + 2.08767569878680990e-09;
  p = p * r + 2.50521083854417188e-08;
  p = p * r + 2.75573192239858907e-07;
  p = p * r + 2.75573192239858907e-06;
  p = p * r + 2.48015873015873016e-05;
  p = p * r + 1.98412698412698413e-04;
  p = p * r + 1.38888888888888889e-03;
  p = p * r + 8.33333333333333333e-03;
  p = p * r + 4.16666666666666667e-02;
  p = p * r + 1.66666666666666667e-01;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const long long kb = ig_to_bits(kd) - 0x4338000000000000LL;  // k
  const double scale = ig_from_bits((kb + 1023) << 52);
  const double res = p * scale;
  return x < -708.0 ? 0.0 : res;
#endif
}

// log(1 + y) for y >= -1, relative error ~2 ulp.
HVAE_HD double ig_log1p(double y) {
#if defined(__CUDA_ARCH__)
  return ::log1p(y);
#else
  const double z = 1.0 + y;
  if (!(z >= 2.2250738585072014e-308 && z <= 1.7976931348623157e308)) return ::log1p(y);  // 0, subnormal, inf, NaN
  const long long b = ig_to_bits(z);
  long long e = (b >> 52) - 1023;
  double m = ig_from_bits((b & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);  // [1, 2)
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e += 1;
  }
  const double f = m - 1.0;  // exact
  const double s = f / (2.0 + f), s2 = s * s;
  // log m = 2 atanh(s) = 2 s (1 + s^2/3 + s^4/5 + ...), |s| <= 0.1716
  double q = 1.0 / 21.0;
  q = q * s2 + 1.0 / 19.0;
  q = q * s2 + 1.0 / 17.0;
  q = q * s2 + 1.0 / 15.0;
  q = q * s2 + 1.0 / 13.0;
  q = q * s2 + 1.0 / 11.0;
  q = q * s2 + 1.0 / 9.0;
  q = q * s2 + 1.0 / 7.0;
  q = q * s2 + 1.0 / 5.0;
  q = q * s2 + 1.0 / 3.0;
  const double log_m = 2.0 * s + 2.0 * s * (s2 * q);
  const double ed = static_cast<double>(e);
  // the rounding of z = 1 + y: log1p(y) = log z + (y - (z - 1)) / z to first order (z - 1 is exact here)
  const double corr = (y - (z - 1.0)) / z;
  return ed * 6.93147180369123816490e-01 + (log_m + (ed * 1.90821492927058770002e-10 + corr));
#endif
}

// sin h and cos h for |h| <= pi/2 (Taylor polynomials, truncation < 2e-17).
HVAE_HD void ig_sincos(double h, double* s, double* c) {
  const double h2 = h * h;
  double ps = -1.9572941063391263e-20;  // -1/21!... odd series of sin: h - h^3/3! + ... + h^21/21!
  ps = 1.9572941063391263e-20;
  ps = ps * h2 - 8.2206352466243297e-18;
  ps = ps * h2 + 2.8114572543455208e-15;
  ps = ps * h2 - 7.6471637318198164e-13;
  ps = ps * h2 + 1.6059043836821613e-10;
  ps = ps * h2 - 2.5052108385441719e-08;
  ps = ps * h2 + 2.7557319223985891e-06;
  ps = ps * h2 - 1.9841269841269841e-04;
  ps = ps * h2 + 8.3333333333333333e-03;
  ps = ps * h2 - 1.6666666666666667e-01;
  *s = h + h * (h2 * ps);
  double pc = 4.1103176233121648e-19;  // 1/20!
  pc = pc * h2 - 1.5619206968586226e-16;
  pc = pc * h2 + 4.7794773323873853e-14;
  pc = pc * h2 - 1.1470745597729725e-11;
  pc = pc * h2 + 2.0876756987868099e-09;
  pc = pc * h2 - 2.7557319223985891e-07;
  pc = pc * h2 + 2.4801587301587302e-05;
  pc = pc * h2 - 1.3888888888888889e-03;
  pc = pc * h2 + 4.1666666666666667e-02;
  pc = pc * h2 - 0.5;
  *c = 1.0 + h2 * pc;
}

// The sample point and the parameters, everything the log-density ratio D(delta) needs.
struct ImplicitGradPoint {
  double omw, w, sin_w, cot_w, kappa, dm2;
};

// D(delta) = l(th_w + delta) - l(th_w); *dt = cos(th_w + delta) - w. |delta| <= pi.
HVAE_HD double ig_log_ratio(const ImplicitGradPoint& p, double delta, double* dt) {
  double sh, ch;
  ig_sincos(0.5 * delta, &sh, &ch);
  const double sd = 2.0 * sh * ch, cdm1 = -2.0 * sh * sh;
  const double diff = p.w * cdm1 - p.sin_w * sd;
  *dt = diff;
  double out = p.kappa * diff;
  if (p.dm2 != 0.0) out += p.dm2 * ig_log1p(cdm1 + p.cot_w * sd);
  return out;
}

// Gauss-Legendre on [a, b] (a window on one side of th_w, so cos th - w has one sign there):
// *i0 = int e^{D - shift} d delta, *i1 = int |cos th - w| e^{D - shift} d delta.
HVAE_HD void ig_panel(const ImplicitGradPoint& p, double a, double b, double shift, double* i0, double* i1) {
  const double* x = gl20_nodes();
  const double* wt = gl20_weights();
  const double h = 0.5 * (b - a), m = 0.5 * (b + a);
  double s0 = 0.0, s1 = 0.0;
  for (int i = 0; i < kImplicitGradNodes / 2; ++i) {
    for (int sgn = -1; sgn <= 1; sgn += 2) {
      double dt;
      const double e = ig_exp(ig_log_ratio(p, m + sgn * h * x[i], &dt) - shift);
      s0 += wt[i] * e;
      s1 += wt[i] * ::fabs(dt) * e;
    }
  }
  *i0 = h * s0;
  *i1 = h * s1;
}

// Distance s >= 0 along direction dir (+1: towards th = pi, -1: towards 0) from delta0, where
// D(delta0) = d0, at which D has dropped by ~kDrop, given the rate of decrease `slope` >= 0 and the
// curvature `curv` of the drop at delta0 (drop(s) ~ slope s + curv s^2 / 2), capped at max_ext (the
// distance to the end of [0, pi]).
HVAE_HD double ig_window(const ImplicitGradPoint& p, double delta0, double d0, double dir, double slope,
                         double curv, double max_ext) {
  const double drop = kImplicitGradDrop;
  double s;
  if (curv > 0.0)
    s = 2.0 * drop / (slope + ::sqrt(slope * slope + 2.0 * curv * drop));
  else if (slope > 0.0)
    s = drop / slope;
  else
    return max_ext;
  for (int it = 0; it < 6; ++it) {
    if (!(s < max_ext)) return max_ext;
    double dt;
    const double got = d0 - ig_log_ratio(p, delta0 + dir * s, &dt);
    if (got >= kImplicitGradDropLo && got <= kImplicitGradDropHi) return s;
    // refit drop(s) = slope s + c s^2 / 2 through the evaluated point
    const double c = 2.0 * (got - slope * s) / (s * s);
    const double disc = slope * slope + 2.0 * c * drop;
    double s_new;
    if (disc > 0.0 && slope + ::sqrt(disc) > 0.0)
      s_new = 2.0 * drop / (slope + ::sqrt(disc));
    else
      s_new = 2.0 * s;
    if (got < kImplicitGradDropLo && s_new < 1.1 * s) s_new = 1.1 * s;
    if (got > kImplicitGradDropHi && s_new > 0.9 * s) s_new = 0.9 * s;
    s = s_new;
  }
  return s < max_ext ? s : max_ext;
}

// d = 3: w = 1 + log(u + (1 - u) e^{-2 kappa}) / kappa by inversion; at fixed u, with s = 1 - w, r = 1 + w:
//   kappa dw/dkappa = s - 2 expm1(kappa s) / expm1(2 kappa)
//                   = s - 2 e^{-kappa r} (-expm1(-kappa s)) / (-expm1(-2 kappa))     (used for s <= 1)
//                   = 2 (-expm1(-kappa r)) / (-expm1(-2 kappa)) - r                  (used for s > 1)
// and for kappa <= 1, where both forms cancel, the series
//   dw/dkappa = kappa / expm1(2 kappa) * sum_{n>=2} kappa^{n-2} (2^n s - 2 s^n) / n!,
//   2^n s - 2 s^n = 2 s P_{n-1},  P_1 = r,  P_{m+1} = 2 P_m + s^m r   (all terms >= 0).
HVAE_HD double ig_d3(double s, double kappa) {
  const double r = 2.0 - s;
  if (kappa <= 1.0) {
    double sum = 0.0, kpow_fact = 0.5;  // kappa^{n-2} / n! at n = 2
    double P = r, s_pow = s;            // P_{n-1}, s^{n-1}
    for (int n = 2; n <= 40; ++n) {
      const double term = kpow_fact * 2.0 * s * P;
      sum += term;
      if (term <= 1e-17 * sum) break;
      P = 2.0 * P + s_pow * r;
      s_pow *= s;
      kpow_fact *= kappa / (n + 1);
    }
    return sum * (kappa / ::expm1(2.0 * kappa));
  }
  const double den = -::expm1(-2.0 * kappa);
  if (s <= 1.0) return (s - 2.0 * ::exp(-kappa * r) * (-::expm1(-kappa * s)) / den) / kappa;
  return (2.0 * (-::expm1(-kappa * r)) / den - r) / kappa;
}

}  // namespace detail

// dw/dkappa for w = 1 - omw ~ p(w; kappa, d). omw = 1 - w is passed instead of w because near w = 1 (large
// kappa) it carries all the precision (float32 callers would otherwise round w to 1). A = A_d(kappa) is
// passed in (computed by the caller); it is used only where 1 - A >= 1e-3, below that it cannot carry
// 1 - A and the A-free form (*) is used (a NaN A also selects it).
// d >= 2, kappa >= 0; returns the limits (1 - w^2)/(d - 1) at kappa = 0, 0 at w = +-1 (omw <= 0 or >= 2)
// and at kappa = inf, NaN for NaN input or kappa < 0 or d < 2.
HVAE_HD double vmf_w_dkappa(double omw, double kappa, double d, double A) {
  if (is_nan(omw) || is_nan(kappa) || is_nan(d)) return quiet_nan();
  if (!(kappa >= 0.0) || !(d >= 2.0)) return quiet_nan();
  if (!(omw > 0.0) || !(omw < 2.0)) return 0.0;  // w = +-1: the density vanishes or the limit is 0
  if (kappa == 0.0) return omw * (2.0 - omw) / (d - 1.0);
  if (is_inf(kappa)) return 0.0;
  if (d == 3.0) return detail::ig_d3(omw, kappa);

  detail::ImplicitGradPoint p;
  p.omw = omw;
  p.w = 1.0 - omw;
  p.sin_w = ::sqrt(omw * (2.0 - omw));
  p.cot_w = p.w / p.sin_w;
  p.kappa = kappa;
  p.dm2 = d - 2.0;
  // th_w and pi - th_w, both to full relative precision
  double th_w, pi_m_th_w;
  if (omw <= 1.0) {
    th_w = 2.0 * ::asin(::sqrt(0.5 * omw));
    pi_m_th_w = kPi - th_w;
  } else {
    pi_m_th_w = 2.0 * ::asin(::sqrt(0.5 * (2.0 - omw)));
    th_w = kPi - pi_m_th_w;
  }
  // l'(th_w), -l''(th_w)
  const double dl = -kappa * p.sin_w + p.dm2 * p.cot_w;
  const double curv_w = kappa * p.w + p.dm2 / (p.sin_w * p.sin_w);
  // the mode th*: cos th* = c_star, sin th* = s_star, -l''(th*) = curv_star
  const double sq = ::sqrt(p.dm2 * p.dm2 + 4.0 * kappa * kappa);
  const double c_star = 2.0 * kappa / (p.dm2 + sq);
  const double omc_star = p.dm2 == 0.0 ? 0.0 : (p.dm2 + p.dm2 * p.dm2 / (sq + 2.0 * kappa)) / (p.dm2 + sq);
  const double s_star = ::sqrt(omc_star * (1.0 + c_star));
  const double curv_star = kappa * c_star + (p.dm2 == 0.0 ? 0.0 : p.dm2 / (s_star * s_star));
  const bool mode_above = p.w < c_star;  // th* < th_w: the mode is on the side [w, 1]

  const double one_minus_a = 1.0 - A;
  if (one_minus_a >= detail::kImplicitGradMinOneMinusA && A >= 0.0) {
    const double w_minus_a = one_minus_a - omw;
    double i0, i1;
    if (w_minus_a >= 0.0) {
      // side [w, 1]: delta in [-ext, 0]
      double ext;
      if (mode_above) {
        // th* - th_w in (-pi/2, 0): sin(th* - th_w) = s* w - c* sin_w
        const double delta_star = ::asin(s_star * p.w - c_star * p.sin_w);
        double dt;
        const double d_star = detail::ig_log_ratio(p, delta_star, &dt);
        ext = -delta_star + detail::ig_window(p, delta_star, d_star, -1.0, 0.0, curv_star, th_w + delta_star);
      } else {
        ext = detail::ig_window(p, 0.0, 0.0, -1.0, dl, curv_w, th_w);
      }
      detail::ig_panel(p, -ext, 0.0, 0.0, &i0, &i1);
    } else {
      // side [-1, w]: delta in [0, ext], past the mode
      const double ext = detail::ig_window(p, 0.0, 0.0, 1.0, -dl, curv_w, pi_m_th_w);
      detail::ig_panel(p, 0.0, ext, 0.0, &i0, &i1);
    }
    return p.sin_w * (i1 + ::fabs(w_minus_a) * i0);
  }

  // A-free form (*): the side without the mode ("tail", scaled by f(w)) and the side with it ("bulk",
  // scaled by e^{l(th*)}).
  const double sin_d = s_star * p.w - c_star * p.sin_w;  // sin(th* - th_w)
  const double cos_d = c_star * p.w + s_star * p.sin_w;  // cos(th* - th_w)
  const double delta_star = ::atan2(sin_d, cos_d);
  double dt;
  const double d_star = detail::ig_log_ratio(p, delta_star, &dt);
  double t0, tw, b0, bw;
  if (mode_above) {
    // tail: [w, -1] side (delta >= 0); bulk: delta in [delta_star - ext, 0]
    const double ext_t = detail::ig_window(p, 0.0, 0.0, 1.0, -dl, curv_w, pi_m_th_w);
    detail::ig_panel(p, 0.0, ext_t, 0.0, &t0, &tw);
    const double ext_b =
        -delta_star + detail::ig_window(p, delta_star, d_star, -1.0, 0.0, curv_star, th_w + delta_star);
    detail::ig_panel(p, -ext_b, 0.0, d_star, &b0, &bw);
  } else {
    // tail: delta <= 0 (towards w = 1); bulk: delta in [0, delta_star + ext]
    const double ext_t = detail::ig_window(p, 0.0, 0.0, -1.0, dl, curv_w, th_w);
    detail::ig_panel(p, -ext_t, 0.0, 0.0, &t0, &tw);
    const double ext_b =
        delta_star + detail::ig_window(p, delta_star, d_star, 1.0, 0.0, curv_star, pi_m_th_w - delta_star);
    detail::ig_panel(p, 0.0, ext_b, d_star, &b0, &bw);
  }
  // (U_w L_0 + L_w U_0) / (L_0 + U_0) / f(w) with the bulk integrals scaled by e^{-d_star}
  return p.sin_w * (tw + t0 * (bw / b0)) / (1.0 + t0 * detail::ig_exp(-d_star) / b0);
}

}  // namespace math
}  // namespace hvae
