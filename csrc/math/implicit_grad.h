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
//   w -> +-1: 0 (for every d >= 2). d = 3 has a closed form (below).
//
//   Why not Naesseth et al. ("Reparameterization gradients through acceptance-rejection sampling
//   algorithms", AISTATS 2017; used by Davidson et al. 2018): their estimator g_rep + g_cor differentiates
//   through the accepted Wood proposal and adds the score-function correction g_cor, which needs the loss
//   value f(z) itself. A backward pass sees only dL/dz, so g_cor cannot be formed there; dropping it (as the
//   reference code does) biases the kappa-gradient for d != 3. The implicit gradient is the exact pathwise
//   derivative of the marginal law of w, hence unbiased for every d: E[dw/dkappa] = dA/dkappa.
//
// Quadrature
//   With t = cos(th), th_w = acos(w) and delta = th - th_w, f(t) dt = e^{l(th)} dth, l(th) = kappa cos th +
//   (d-2) log sin th, which is smooth on [0, pi] for every integer d >= 2 (the t-form has endpoint
//   singularities for d = 2 and for even d). Everything is taken relative to th_w, so nothing cancels at
//   w -> 1 (kappa = 1e12: 1 - w ~ 1e-12) and nothing overflows:
//     D(delta) = l(th_w + delta) - l(th_w) = kappa (cos th - w) + (d-2) log1p(sin th / sin th_w - 1),
//     cos th - w = w (cos delta - 1) - sin th_w sin delta,  sin th / sin th_w - 1 = (cos delta - 1) + cot th_w sin delta,
//   sin and cos of delta/2 from Taylor polynomials, sin th_w = sqrt(omw (2 - omw)); f(w) = e^{l(th_w)} / sin th_w.
//   * If 1 - A >= kMinOneMinusA (1e-3), one side is integrated: [w, 1] if w >= A, else [-1, w]. Then t - A has
//     one sign there and dw/dkappa = sin th_w (I_1 + |w - A| I_0), I_0 = int e^D d delta,
//     I_1 = int |cos th - w| e^D d delta, a sum of positive terms. The side [-1, w] (w < A) never holds the
//     mode th* of l; the side [w, 1] holds it when A <= w < cos th*, where e^D <= e^{O(1)}.
//   * If 1 - A < 1e-3 (kappa >> d), 1 - A = (d-1)/(2 kappa) + ... cannot be carried by A in float64
//     (kappa = 1e12: A = 1 - 5e-13 keeps 3 digits of 1 - A), so (*) is used, both sides are integrated (the
//     one with the mode scaled by e^{-D(delta*)}, and split at th* when th_w is more than one Laplace width
//     from it), and A is not used at all. A NaN or out-of-range A also selects this path.
//   Each side is a panel of 20-point Gauss-Legendre in delta over the window where e^l is within
//   e^{-[27, 40]} of its maximum on that side. The window starts from the local quadratic model of l (at th_w,
//   or at the mode: cos th* = 2 kappa / ((d-2) + sqrt((d-2)^2 + 4 kappa^2)), curvature kappa cos th* +
//   (d-2) / sin^2 th*), is clipped to [0, pi], and is refitted from the drop seen at the panel's outermost
//   node when that drop is outside [27, 40] (at most 3 panel evaluations). The truncated mass is < e^{-27}
//   ~ 2e-12 of the integral; 20 nodes integrate the (Gaussian to exponential) integrand on such a window to
//   ~1e-12 (16 nodes: ~2e-10, from the |t - w| e^D integrand at w -> 1). Measured against 40-digit mpmath
//   (tests/implicit_grad_reference.py: 780 points, d = 2 .. 1e6, kappa = 1e-12 .. 1e12, quantiles 1e-6 ..
//   1 - 1e-6 of w): max relative error ~5e-12 (tests/test_implicit_grad.py asserts 1e-9).
//
// Speed (host): the nodes are evaluated array by array (each step a loop over the 20 nodes, which gcc
// vectorizes) with inline polynomial exp/log1p/sin/cos instead of libm calls (~10 ns each here), a short
// sin/cos polynomial when |delta| <= 0.5, and sin^{d-2} by repeated squaring instead of exp(log) when d <= 66
// and the factors cannot overflow. On the device the nodes are a plain loop over the CUDA math functions.
#pragma once

#include <cstring>

#include "common.h"

namespace hvae {
namespace math {

namespace detail {

constexpr double kImplicitGradMinOneMinusA = 1e-3;  // below: the A-free form (*)
constexpr double kImplicitGradDrop = 30.0;           // window: e^l within e^{-30} of its peak on the side
constexpr int kIgNodes = 20;  // Gauss-Legendre nodes per panel

#define HVAE_IG_GL20_NODES                                                                                      \
  -9.9312859918509492e-01, -9.6397192727791379e-01, -9.1223442825132591e-01, -8.3911697182221882e-01,          \
      -7.4633190646015079e-01, -6.3605368072651503e-01, -5.1086700195082710e-01, -3.7370608871541956e-01,      \
      -2.2778585114164508e-01, -7.6526521133497334e-02, 7.6526521133497334e-02, 2.2778585114164508e-01,        \
      3.7370608871541956e-01, 5.1086700195082710e-01, 6.3605368072651503e-01, 7.4633190646015079e-01,          \
      8.3911697182221882e-01, 9.1223442825132591e-01, 9.6397192727791379e-01, 9.9312859918509492e-01
#define HVAE_IG_GL20_WEIGHTS                                                                                    \
  1.7614007139152118e-02, 4.0601429800386941e-02, 6.2672048334109064e-02, 8.3276741576704749e-02,              \
      1.0193011981724044e-01, 1.1819453196151842e-01, 1.3168863844917663e-01, 1.4209610931838205e-01,          \
      1.4917298647260375e-01, 1.5275338713072585e-01, 1.5275338713072585e-01, 1.4917298647260375e-01,          \
      1.4209610931838205e-01, 1.3168863844917663e-01, 1.1819453196151842e-01, 1.0193011981724044e-01,          \
      8.3276741576704749e-02, 6.2672048334109064e-02, 4.0601429800386941e-02, 1.7614007139152118e-02

#if defined(__CUDACC__)
static __constant__ double kIgNodesDevice[kIgNodes] = {HVAE_IG_GL20_NODES};
static __constant__ double kIgWeightsDevice[kIgNodes] = {HVAE_IG_GL20_WEIGHTS};
#endif
static constexpr double kIgNodesHost[kIgNodes] = {HVAE_IG_GL20_NODES};
static constexpr double kIgWeightsHost[kIgNodes] = {HVAE_IG_GL20_WEIGHTS};

HVAE_HD const double* ig_nodes() {
#if defined(__CUDA_ARCH__)
  return kIgNodesDevice;
#else
  return kIgNodesHost;
#endif
}
HVAE_HD const double* ig_weights() {
#if defined(__CUDA_ARCH__)
  return kIgWeightsDevice;
#else
  return kIgWeightsHost;
#endif
}

// ---------------------------------------------------------------------------------------------------
// Elementary functions. On the host: inline polynomials that gcc can vectorize (no libm calls, no branches
// in the hot versions); errors measured against mpmath: exp 0.7 ulp, log1p 1.5 ulp, sin/cos 1 ulp.

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

// e^x for x in [-708, 709] (clamped; the caller zeroes x < -708): k = round(x / log 2),
// r = x - k log 2 in [-0.347, 0.347] (log 2 split in two), Taylor polynomial of degree 13, times 2^k.
inline double ig_exp_core(double x) {
  const double xc = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
  const double shift = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer in the low bits
  const double kd = xc * 1.4426950408889634 + shift;
  const double k = kd - shift;
  const double r = (xc - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
  double q = 1.6059043836821615e-10;
  q = q * r + 2.0876756987868099e-09;
  q = q * r + 2.5052108385441719e-08;
  q = q * r + 2.7557319223985891e-07;
  q = q * r + 2.7557319223985891e-06;
  q = q * r + 2.4801587301587302e-05;
  q = q * r + 1.9841269841269841e-04;
  q = q * r + 1.3888888888888889e-03;
  q = q * r + 8.3333333333333333e-03;
  q = q * r + 4.1666666666666667e-02;
  q = q * r + 1.6666666666666667e-01;
  q = q * r + 0.5;
  q = q * r + 1.0;
  q = q * r + 1.0;
  return q * ig_from_bits((ig_to_bits(kd) - 0x4338000000000000LL + 1023) << 52);
}

// log(1 + y) for y > -1 with 1 + y a normal number: 1 + y = 2^e m, m in [sqrt(1/2), sqrt(2)),
// log m = 2 atanh(s), s = (m-1)/(m+1) (|s| <= 0.1716), series to s^21; for e = 0 the exact y is used as
// m - 1, so the rounding of 1 + y does not matter (and for e != 0, |log1p(y)| > 0.34 absorbs it).
inline double ig_log1p_core(double y) {
  double z = 1.0 + y;
  z = z < 2.2250738585072014e-308 ? 2.2250738585072014e-308 : z;
  const long long b = ig_to_bits(z);
  double m = ig_from_bits((b & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);  // [1, 2)
  double e = ig_from_bits(0x4330000000000000LL | (b >> 52)) - (4503599627370496.0 + 1023.0);
  const bool big = m > 1.4142135623730951;
  m = big ? 0.5 * m : m;
  e = big ? e + 1.0 : e;
  const double f = e == 0.0 ? y : m - 1.0;
  const double s = f / (2.0 + f), s2 = s * s;
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
  return e * 6.93147180369123816490e-01 + ((2.0 * s + 2.0 * s * (s2 * q)) + e * 1.90821492927058770002e-10);
}
#endif

HVAE_HD double ig_exp(double x) {
#if defined(__CUDA_ARCH__)
  return ::exp(x);
#else
  return x < -708.0 ? 0.0 : ig_exp_core(x);
#endif
}

HVAE_HD double ig_log1p(double y) {
#if defined(__CUDA_ARCH__)
  return ::log1p(y);
#else
  const double z = 1.0 + y;
  if (!(z >= 2.2250738585072014e-308 && z <= 1.7976931348623157e308)) return ::log1p(y);
  return ig_log1p_core(y);
#endif
}

// sin h and cos h for |h| <= pi/2: Taylor polynomials to h^21 and h^20 (truncation < 3e-17).
HVAE_HD void ig_sincos(double h, double* s, double* c) {
  const double h2 = h * h;
  double ps = 1.9572941063391261e-20;
  ps = ps * h2 - 8.2206352466243297e-18;
  ps = ps * h2 + 2.8114572543455208e-15;
  ps = ps * h2 - 7.6471637318198165e-13;
  ps = ps * h2 + 1.6059043836821615e-10;
  ps = ps * h2 - 2.5052108385441719e-08;
  ps = ps * h2 + 2.7557319223985891e-06;
  ps = ps * h2 - 1.9841269841269841e-04;
  ps = ps * h2 + 8.3333333333333333e-03;
  ps = ps * h2 - 1.6666666666666667e-01;
  *s = h + h * (h2 * ps);
  double pc = 4.1103176233121649e-19;
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

// ---------------------------------------------------------------------------------------------------
// The sample point and the parameters: everything D(delta) needs.
struct ImplicitGradPoint {
  double omw, w, sin_w, cot_w, kappa, dm2;
  int npow;  // d - 2 when sin^{d-2} may be formed by repeated squaring, else -1
};

// D(delta) = l(th_w + delta) - l(th_w) and *dt = cos(th_w + delta) - w, |delta| <= pi (scalar version).
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

#if !defined(__CUDA_ARCH__)
// Host node evaluation: e[i] = e^{D(delta_i) - shift} and adt[i] = |cos th_i - w| at delta_i = m -+ h x_j,
// written step by step over arrays of nodes so that every step is one vectorized loop (a per-node loop body
// is a ~250-cycle dependency chain and runs latency-bound). The half angles delta_i / 2 = m/2 -+ h x_j / 2
// use sin/cos of m/2 once and polynomials in u_j = h x_j / 2, |u_j| <= pi/4 (Taylor to u^15 / u^16, or to
// u^9 / u^10 when kShort: |h| <= 1/4; truncation < 1e-16). kPow: (sin th / sin th_w)^{d-2} by repeated
// squaring (p.npow >= 0) instead of exp((d-2) log1p(.)).
#define HVAE_IG_FOR for (int i = 0; i < kIgNodes; ++i)
#define HVAE_IG_FOR_HALF for (int j = 0; j < kIgNodes / 2; ++j)
template <bool kShort, bool kPow>
inline void ig_eval_nodes_host(const ImplicitGradPoint& p, double m, double h, double shift, double* e, double* adt) {
  constexpr int H = kIgNodes / 2;
  const double* x = kIgNodesHost + H;  // the positive nodes
  double sm, cm;
  ig_sincos(0.5 * m, &sm, &cm);
  double u[H], u2[H], su[H], cu[H];
  HVAE_IG_FOR_HALF u[j] = 0.5 * h * x[j];
  HVAE_IG_FOR_HALF u2[j] = u[j] * u[j];
  if (kShort) {
    HVAE_IG_FOR_HALF su[j] = 2.7557319223985891e-06 * u2[j] - 1.9841269841269841e-04;
    HVAE_IG_FOR_HALF su[j] = su[j] * u2[j] + 8.3333333333333333e-03;
    HVAE_IG_FOR_HALF su[j] = su[j] * u2[j] - 1.6666666666666667e-01;
    HVAE_IG_FOR_HALF cu[j] = -2.7557319223985891e-07 * u2[j] + 2.4801587301587302e-05;
    HVAE_IG_FOR_HALF cu[j] = cu[j] * u2[j] - 1.3888888888888889e-03;
    HVAE_IG_FOR_HALF cu[j] = cu[j] * u2[j] + 4.1666666666666667e-02;
    HVAE_IG_FOR_HALF cu[j] = cu[j] * u2[j] - 0.5;
  } else {
    HVAE_IG_FOR_HALF su[j] = 7.6471637318198165e-13 * u2[j] - 1.6059043836821615e-10;
    HVAE_IG_FOR_HALF su[j] = su[j] * u2[j] + 2.5052108385441719e-08;
    HVAE_IG_FOR_HALF su[j] = su[j] * u2[j] - 2.7557319223985891e-06;
    HVAE_IG_FOR_HALF su[j] = su[j] * u2[j] + 1.9841269841269841e-04;
    HVAE_IG_FOR_HALF su[j] = su[j] * u2[j] - 8.3333333333333333e-03;
    HVAE_IG_FOR_HALF su[j] = su[j] * u2[j] + 1.6666666666666667e-01;
    HVAE_IG_FOR_HALF su[j] = -su[j];
    HVAE_IG_FOR_HALF cu[j] = 4.7794773323873853e-14 * u2[j] - 1.1470745597729725e-11;
    HVAE_IG_FOR_HALF cu[j] = cu[j] * u2[j] + 2.0876756987868099e-09;
    HVAE_IG_FOR_HALF cu[j] = cu[j] * u2[j] - 2.7557319223985891e-07;
    HVAE_IG_FOR_HALF cu[j] = cu[j] * u2[j] + 2.4801587301587302e-05;
    HVAE_IG_FOR_HALF cu[j] = cu[j] * u2[j] - 1.3888888888888889e-03;
    HVAE_IG_FOR_HALF cu[j] = cu[j] * u2[j] + 4.1666666666666667e-02;
    HVAE_IG_FOR_HALF cu[j] = cu[j] * u2[j] - 0.5;
  }
  HVAE_IG_FOR_HALF su[j] = u[j] + u[j] * (u2[j] * su[j]);  // sin u
  HVAE_IG_FOR_HALF cu[j] = 1.0 + u2[j] * cu[j];           // cos u
  // node i < H: delta/2 = m/2 - u_{H-1-i}; node H + j: m/2 + u_j
  double s[kIgNodes], c[kIgNodes], diff[kIgNodes], y[kIgNodes], t[kIgNodes];
  HVAE_IG_FOR_HALF {
    const double a = sm * cu[j], b = cm * su[j];
    s[H + j] = a + b;
    s[H - 1 - j] = a - b;
    const double a2 = cm * cu[j], b2 = sm * su[j];
    c[H + j] = a2 - b2;
    c[H - 1 - j] = a2 + b2;
  }
  HVAE_IG_FOR {
    const double sd = 2.0 * s[i] * c[i], cdm1 = -2.0 * s[i] * s[i];
    diff[i] = p.w * cdm1 - p.sin_w * sd;  // cos th - w
    y[i] = cdm1 + p.cot_w * sd;           // sin th / sin th_w - 1
  }
  if (kPow) {
    HVAE_IG_FOR {
      s[i] = 1.0 + y[i];
      c[i] = 1.0;
    }
    for (int n = p.npow; n > 0; n >>= 1) {
      if (n & 1) HVAE_IG_FOR c[i] *= s[i];
      if (n > 1) HVAE_IG_FOR s[i] *= s[i];
    }
    HVAE_IG_FOR t[i] = p.kappa * diff[i] - shift;
  } else {
    HVAE_IG_FOR t[i] = p.kappa * diff[i] + p.dm2 * ig_log1p_core(y[i]) - shift;
  }
  HVAE_IG_FOR e[i] = t[i] < -708.0 ? 0.0 : ig_exp_core(t[i]);
  if (kPow) HVAE_IG_FOR e[i] *= c[i];
  HVAE_IG_FOR adt[i] = diff[i] < 0.0 ? -diff[i] : diff[i];
}
#undef HVAE_IG_FOR
#undef HVAE_IG_FOR_HALF
#endif

// e[i] = e^{D(delta_i) - shift}, adt[i] = |cos th_i - w| at the 20 nodes delta_i = m + h x_i.
HVAE_HD void ig_eval_nodes(const ImplicitGradPoint& p, double m, double h, double shift, bool use_pow, double* e,
                           double* adt) {
#if defined(__CUDA_ARCH__)
  (void)use_pow;
  const double* x = ig_nodes();
  for (int i = 0; i < kIgNodes; ++i) {
    double dt;
    e[i] = ::exp(ig_log_ratio(p, m + h * x[i], &dt) - shift);
    adt[i] = ::fabs(dt);
  }
#else
  const bool short_trig = ::fabs(h) <= 0.25;
  if (use_pow) {
    if (short_trig)
      ig_eval_nodes_host<true, true>(p, m, h, shift, e, adt);
    else
      ig_eval_nodes_host<false, true>(p, m, h, shift, e, adt);
  } else {
    if (short_trig)
      ig_eval_nodes_host<true, false>(p, m, h, shift, e, adt);
    else
      ig_eval_nodes_host<false, false>(p, m, h, shift, e, adt);
  }
#endif
}

// One panel [a, b] (in delta) on one side of th_w, so cos th - w has one sign on it:
// *i0 = int_a^b e^{D - shift} d delta, *i1 = int_a^b |cos th - w| e^{D - shift} d delta.
HVAE_HD void ig_panel(const ImplicitGradPoint& p, double a, double b, double shift, bool use_pow, double* i0,
                      double* i1) {
  const double h = 0.5 * (b - a), m = 0.5 * (b + a);
  double e[kIgNodes], adt[kIgNodes];
  ig_eval_nodes(p, m, h, shift, use_pow, e, adt);
  const double* wt = ig_weights();
  double s0[4] = {0.0, 0.0, 0.0, 0.0}, s1[4] = {0.0, 0.0, 0.0, 0.0};  // 4 chains: no long add latency chain
  for (int i = 0; i < kIgNodes; i += 4) {
    for (int k = 0; k < 4; ++k) {
      const double we = wt[i + k] * e[i + k];
      s0[k] += we;
      s1[k] += we * adt[i + k];
    }
  }
  *i0 = h * ((s0[0] + s0[1]) + (s0[2] + s0[3]));
  *i1 = h * ((s1[0] + s1[1]) + (s1[2] + s1[3]));
}

// An angle th = acos(t) held as th and pi - th, both to full relative precision (from 1 - t and 1 + t).
struct IgAngle {
  double th, pi_m_th;
};
HVAE_HD IgAngle ig_angle(double one_minus_t, double one_plus_t) {
  IgAngle a;
  if (one_minus_t <= 1.0) {
    a.th = 2.0 * ::asin(::sqrt(0.5 * one_minus_t));
    a.pi_m_th = kPi - a.th;
  } else {
    a.pi_m_th = 2.0 * ::asin(::sqrt(0.5 * one_plus_t));
    a.th = kPi - a.pi_m_th;
  }
  return a;
}
// a - b without cancellation when both are near 0 or both near pi.
HVAE_HD double ig_angle_diff(const IgAngle& a, const IgAngle& b) {
  return (a.th <= 0.5 * kPi || b.th <= 0.5 * kPi) ? a.th - b.th : b.pi_m_th - a.pi_m_th;
}

// log1p(y) to ~1e-5 relative, for the window search only (host: 2^e m split and atanh series to s^5).
HVAE_HD double ig_log1p_rough(double y) {
#if defined(__CUDA_ARCH__)
  return ::log1p(y);
#else
  const double z = 1.0 + y;
  if (!(z >= 2.2250738585072014e-308 && z <= 1.7976931348623157e308)) return ::log1p(y);
  const long long b = ig_to_bits(z);
  double m = ig_from_bits((b & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);
  double e = static_cast<double>((b >> 52) - 1023);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e += 1.0;
  }
  const double f = e == 0.0 ? y : m - 1.0;
  const double s = f / (2.0 + f), s2 = s * s;
  return e * 6.93147180559945309e-01 + 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0))));
#endif
}

// The window end in t. In t = cos th the log-integrand is l(t) = kappa t + (m/2) log(1 - t^2) (m = d - 2),
// concave. From t_b (w, or the mode t* = cos th*) in direction dir (+1: towards t = 1, -1: towards -1), on
// the far side of the peak, returns the distance x at which drop(x) = l(t_b) - l(t_b + dir x) is `target`
// (+-2, or within a last Newton step of 5%): Newton's method on the convex increasing drop from the
// quadratic model at t_b; a step past t = +-1 is replaced by the root of the log-singularity model there.
// Returns the distance to t = +-1 if the drop never gets there (m = 0 only).
//   drop(x) = -dir kappa x - (m/2) log1p(-dir x (2 t_b + dir x) / (1 - t_b^2)),
//   drop'(x) = dir (m t / (1 - t^2) - kappa),  drop''(0) = m (1 + t_b^2) / (1 - t_b^2)^2.
HVAE_HD double ig_t_window(double kappa, double m, double t_b, double omt_b, double opt_b, double dir,
                           double target) {
  const double x_max = dir > 0.0 ? omt_b : opt_b;
  if (m == 0.0) {
    const double x = target / kappa;
    return x < x_max ? x : x_max;
  }
  const double omt2 = omt_b * opt_b;  // 1 - t_b^2
  const double a = dir * (m * t_b / omt2 - kappa);
  const double c = m * (1.0 + t_b * t_b) / (omt2 * omt2);
  const double a_pos = a > 0.0 ? a : 0.0;
  double x = 2.0 * target / (a_pos + ::sqrt(a_pos * a_pos + 2.0 * c * target));
  if (!(x < x_max)) x = 0.5 * x_max;
  for (int it = 0; it < 10; ++it) {
    const double u = -dir * x * (2.0 * t_b + dir * x) / omt2;
    const double drop = -dir * kappa * x - 0.5 * m * ig_log1p_rough(u);
    if (::fabs(drop - target) <= 2.0) break;
    const double one_m_t = omt_b - dir * x, one_p_t = opt_b + dir * x;
    const double slope = dir * (m * (t_b + dir * x) / (one_m_t * one_p_t) - kappa);
    double x_new = x - (drop - target) / slope;
    if (!(x_new < x_max)) x_new = x_max - (x_max - x) * ::exp(-2.0 * (target - drop) / m);
    if (!(x_new > 0.0)) x_new = 0.5 * x;
    const bool small_step = ::fabs(x_new - x) <= 0.05 * x;
    x = x_new;
    if (small_step) break;
  }
  return x;
}

// delta = th_end - th_w for the window end t_end (from 1 - t_end, 1 + t_end): sin delta and cos delta
// exactly, delta from a short asin series when |delta| < 0.5 (the window end needs no precision: the
// integrand there is e^{-30} of its peak), else atan2. At t_end = +-1 exactly: -th_w or pi - th_w.
HVAE_HD double ig_window_delta(const ImplicitGradPoint& p, double omt, double opt, const IgAngle& th_w) {
  if (omt <= 0.0) return -th_w.th;
  if (opt <= 0.0) return th_w.pi_m_th;
  const double t = 1.0 - omt < 0.0 ? opt - 1.0 : 1.0 - omt;
  const double st = ::sqrt(omt * opt);
  const double sd = st * p.w - t * p.sin_w, cd = t * p.w + st * p.sin_w;
  if (cd > 0.0 && ::fabs(sd) < 0.5) {
    const double x2 = sd * sd;
    return sd * (1.0 + x2 * (1.0 / 6.0 + x2 * (3.0 / 40.0 + x2 * (5.0 / 112.0 + x2 * (35.0 / 1152.0)))));
  }
  return ::atan2(sd, cd);
}

// d = 3: w = 1 + log(u + (1 - u) e^{-2 kappa}) / kappa by inversion; at fixed u, with s = 1 - w, r = 1 + w:
//   kappa dw/dkappa = s - 2 expm1(kappa s) / expm1(2 kappa)
//                   = s - 2 e^{-kappa r} (-expm1(-kappa s)) / (-expm1(-2 kappa))     (used for s <= 1)
//                   = 2 (-expm1(-kappa r)) / (-expm1(-2 kappa)) - r                  (used for s > 1)
// and for kappa <= 1, where these cancel, the series
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
// passed in (computed by the caller); it is used only where 1 - A >= 1e-3: below that a float64 A cannot
// carry 1 - A and the A-free form (*) is used (as it is for a NaN A).
// d >= 2 (integer-valued), kappa >= 0. Returns the limits (1 - w^2)/(d - 1) at kappa = 0, 0 at w = +-1
// (omw <= 0 or >= 2) and at kappa = inf; NaN for a NaN omw, kappa or d, for kappa < 0 and for d < 2.
HVAE_HD double vmf_w_dkappa(double omw, double kappa, double d, double A) {
  if (is_nan(omw) || is_nan(kappa) || is_nan(d)) return quiet_nan();
  if (!(kappa >= 0.0) || !(d >= 2.0)) return quiet_nan();
  if (!(omw > 0.0) || !(omw < 2.0)) return 0.0;  // w = +-1: the limit is 0 for every d >= 2
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
  const double m = p.dm2;
  // (sin th / sin th_w)^{d-2} <= sin_w^{-(d-2)} <= e^{590} by squaring (no overflow), else exp(log)
  const bool small_d = m <= 64.0 && m == static_cast<double>(static_cast<int>(m));
  p.npow = (small_d && (p.sin_w >= 1e-4 || (m <= 31.0 && p.sin_w >= 1e-9))) ? static_cast<int>(m) : -1;
  const detail::IgAngle th_w = detail::ig_angle(omw, 2.0 - omw);
  // The mode t* = cos th* = c_star of l(t) = kappa t + (m/2) log(1 - t^2), 1 - t* = omc_star:
  // c* = 2 kappa / (m + sqrt(m^2 + 4 kappa^2)) = 2 / (r + sqrt(r^2 + 4)), r = m / kappa (no 4 kappa^2 overflow).
  const double r = m / kappa;
  double c_star, omc_star;
  if (r < 1e100) {
    const double sr = ::sqrt(r * r + 4.0);
    c_star = 2.0 / (r + sr);
    omc_star = (r + r * r / (sr + 2.0)) / (r + sr);
  } else {
    c_star = 1.0 / r;
    omc_star = 1.0 - c_star;
  }
  const bool mode_above = p.w < c_star;  // th* < th_w: the mode is on the side [w, 1]
  const double target = detail::kImplicitGradDrop;
  // on the side [w, 1] the factor e^{kappa (cos th - w)} <= e^{kappa omw} must not overflow when squaring
  const bool pow_up = p.npow >= 0 && kappa * omw <= 650.0;
  const bool pow_down = p.npow >= 0;

  const double one_minus_a = 1.0 - A;
  if (one_minus_a >= detail::kImplicitGradMinOneMinusA && A >= 0.0) {
    const double w_minus_a = one_minus_a - omw;
    double i0, i1;
    if (w_minus_a >= 0.0) {
      // side [w, 1] (delta < 0), from w out past the mode if it lies there
      double lo;
      if (mode_above) {
        const double x = detail::ig_t_window(kappa, m, c_star, omc_star, 1.0 + c_star, 1.0, target);
        lo = detail::ig_window_delta(p, omc_star - x, 1.0 + c_star + x, th_w);
      } else {
        const double x = detail::ig_t_window(kappa, m, p.w, omw, 2.0 - omw, 1.0, target);
        lo = detail::ig_window_delta(p, omw - x, 2.0 - omw + x, th_w);
      }
      detail::ig_panel(p, lo, 0.0, 0.0, pow_up, &i0, &i1);
    } else {
      // side [-1, w] (delta > 0), beyond the mode
      const double x = detail::ig_t_window(kappa, m, p.w, omw, 2.0 - omw, -1.0, target);
      const double hi = detail::ig_window_delta(p, omw + x, 2.0 - omw - x, th_w);
      detail::ig_panel(p, 0.0, hi, 0.0, pow_down, &i0, &i1);
    }
    return p.sin_w * (i1 + ::fabs(w_minus_a) * i0);
  }

  // A-free form (*): the side without the mode ("tail", scaled by f(w)) and the side with it ("bulk",
  // scaled by e^{l(th*)}, split at th* when th_w is more than one Laplace width away from it).
  const double delta_star = detail::ig_angle_diff(detail::ig_angle(omc_star, 1.0 + c_star), th_w);
  const double curv_star = kappa * c_star + (m == 0.0 ? 0.0 : m / (omc_star * (1.0 + c_star)));
  double dt;
  const double d_star = detail::ig_log_ratio(p, delta_star, &dt);
  const bool split = ::fabs(delta_star) * ::sqrt(curv_star) > 1.0;
  double t0, tw, b0, bw, n0 = 0.0, nw = 0.0;
  if (mode_above) {
    const double xt = detail::ig_t_window(kappa, m, p.w, omw, 2.0 - omw, -1.0, target);
    detail::ig_panel(p, 0.0, detail::ig_angle_diff(detail::ig_angle(omw + xt, 2.0 - omw - xt), th_w), 0.0, pow_down, &t0, &tw);
    const bool pw = p.npow >= 0 && kappa * omw - d_star <= 650.0;
    const double xb = detail::ig_t_window(kappa, m, c_star, omc_star, 1.0 + c_star, 1.0, target);
    const double lo = detail::ig_angle_diff(detail::ig_angle(omc_star - xb, 1.0 + c_star + xb), th_w);
    detail::ig_panel(p, lo, split ? delta_star : 0.0, d_star, pw, &b0, &bw);
    if (split) detail::ig_panel(p, delta_star, 0.0, d_star, pw, &n0, &nw);
  } else {
    const double xt = detail::ig_t_window(kappa, m, p.w, omw, 2.0 - omw, 1.0, target);
    detail::ig_panel(p, detail::ig_angle_diff(detail::ig_angle(omw - xt, 2.0 - omw + xt), th_w), 0.0, 0.0, pow_up, &t0, &tw);
    const double xb = detail::ig_t_window(kappa, m, c_star, omc_star, 1.0 + c_star, -1.0, target);
    const double hi = detail::ig_angle_diff(detail::ig_angle(omc_star + xb, 1.0 + c_star - xb), th_w);
    detail::ig_panel(p, split ? delta_star : 0.0, hi, d_star, pow_down, &b0, &bw);
    if (split) detail::ig_panel(p, 0.0, delta_star, d_star, pow_down, &n0, &nw);
  }
  b0 += n0;
  bw += nw;
  // (U_w L_0 + L_w U_0) / ((L_0 + U_0) f(w)) with the bulk integrals scaled by e^{-d_star}
  return p.sin_w * (tw + t0 * (bw / b0)) / (1.0 + t0 * detail::ig_exp(-d_star) / b0);
}

}  // namespace math
}  // namespace hvae
