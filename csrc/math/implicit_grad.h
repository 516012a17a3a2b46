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
// Which integral
//   With t = cos(th), th_w = acos(w): f(t) dt = e^{l(th)} dth, l(th) = kappa cos th + (d-2) log sin th,
//   smooth on [0, pi] for every integer d >= 2 (the t-form has endpoint singularities for d = 2 and even d).
//   * If 1 - A >= 1e-3, one side is integrated: [w, 1] if w >= A, else [-1, w]. Then t - A has one sign on
//     it and dw/dkappa = sin th_w (I_1 + |w - A| I_0), I_0 = int e^{l - l(th_w)} dth, I_1 = int |cos th - w|
//     e^{l - l(th_w)} dth over the side: positive terms only. For a true A the side [-1, w] never holds the
//     mode th* of l, and [w, 1] holds it only with l(th*) - l(th_w) = O(1); an A that contradicts this
//     (inaccurate, or not A_d(kappa) at all) sends the call to (*) instead.
//   * If 1 - A < 1e-3 (kappa >> d), 1 - A = (d-1)/(2 kappa) + ... cannot be carried by A in float64
//     (kappa = 1e12: A = 1 - 5e-13 keeps 3 digits of 1 - A), so (*) is used and A is not used at all (nor
//     when A is NaN or outside [0, 1)). The side without the mode is integrated relative to l(th_w); the one
//     with it relative to l(th*) (shift = l(th*) - l(th_w) from the t-form, no cancellation), around th_w
//     if th_w is within a Laplace width of th*, else around th* itself, as the part between w and t* and the
//     part beyond, with |t - w| = |t* - w| -+ |t - t*| there, so that even a w astronomically far in a tail
//     (kappa = 1e12, w = 0) loses nothing to cancellation.
//
// Quadrature
//   Relative to a point th_0 (th_w, or th*) with delta = th - th_0 (written for th_0 = th_w, t_0 = w):
//     D(delta) = l(th_w + delta) - l(th_w) = kappa (cos th - w) + (d-2) log1p(sin th / sin th_w - 1),
//     cos th - w = w (cos delta - 1) - sin th_w sin delta,  sin th / sin th_w - 1 = (cos delta - 1) + cot th_w sin
//     delta,
//   with sin th_w = sqrt(omw (2 - omw)), so nothing cancels at w -> 1 (kappa = 1e12: 1 - w ~ 1e-12) and
//   nothing overflows. Each piece is one panel of 20-point Gauss-Legendre in delta. Its outer end is where
//   l has dropped by 30 (+-4..6) below its maximum on that side (at th_w, or at the mode
//   t* = cos th* = 2 kappa / ((d-2) + sqrt((d-2)^2 + 4 kappa^2))): found in t, where
//   l = kappa t + ((d-2)/2) log(1 - t^2) is concave, by Newton's method from the quadratic model
//   (ig_t_window), then mapped to delta (clipped exactly at th = 0 or pi). The truncated mass is ~e^{-26}
//   of the integral, and 20 nodes integrate the (Gaussian to exponential shaped) integrand on such a
//   window to ~1e-12; 16 nodes would give ~2e-10 (the |t - w| e^D integrand at w -> 1 is the hardest).
//   Panels in u = sqrt(1 - t) or v = sqrt(1 + t) instead of th were tried: cheaper (no sin/cos), but they
//   stretch exponential tails (e^{-kappa (t - w)} becomes e^{-2 kappa x_w (x - x_w) - ...}) and lost up to
//   1e-8 at 20 nodes.
//   Accuracy, measured: <= 5.5e-12 relative against 40-digit mpmath (tests/reference/implicit_grad_reference.py: 780
//   points, d = 2 .. 1e6, kappa = 1e-12 .. 1e12, quantiles 1e-6 .. 1 - 1e-6 of w), with the exact A and with
//   the library's vmf_mean_resultant; <= 6e-11 against a brute-force (400-panel) float64 quadrature on
//   41 quantiles x 14 d x 17 kappa (d <= 1000, kappa <= 1000). Finite and >= 0 for all inputs.
//
// Speed (host)
//   The 20 nodes are evaluated step by step over arrays (each step one loop over the nodes, which gcc
//   vectorizes; one loop body per node would be a ~250-cycle dependency chain and run latency-bound), with
//   inline polynomial exp/log1p and sin/cos of half angles (one sincos of the panel middle, polynomials of
//   the node offsets, shorter ones for short panels) instead of libm calls, and (sin th / sin th_w)^{d-2}
//   by repeated squaring when d <= 66 and neither factor can overflow. On x86 with gcc/clang the node
//   evaluation is also compiled for AVX2+FMA and picked at run time (__builtin_cpu_supports). Measured on
//   this 2-core AMD EPYC (Zen 3, shared) at plausible samples: d = 16, kappa = 10: ~200 ns per call (SSE2
//   only: ~280 ns); d = 1000, kappa = 1e4: ~215 ns (~400 ns); d = 3 (closed form): ~35 ns.
//   On the device the nodes are a plain loop over the CUDA math functions. For float32 results the CPU sampler
//   uses implicit_grad_lanes.h instead: a 14-node rule vectorized across the samples of a tile (~61 ns per
//   sample at d = 16 with AVX-512).
#pragma once

#include <cstdlib>
#include <cstring>

#include "common.h"
#include "fastmath.h"

#if !defined(__CUDA_ARCH__) && (defined(__GNUC__) || defined(__clang__))
#define HVAE_IG_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define HVAE_IG_ALWAYS_INLINE inline
#endif
#ifndef HVAE_IG_X86_DISPATCH  // may be predefined to 0 to test the baseline path on an AVX2 machine
#if !defined(__CUDA_ARCH__) && (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define HVAE_IG_X86_DISPATCH 1
#else
#define HVAE_IG_X86_DISPATCH 0
#endif
#endif

namespace hvae {
namespace math {

namespace detail {

constexpr double kImplicitGradMinOneMinusA = 1e-3;  // below: the A-free form (*)
constexpr double kImplicitGradDrop = 30.0;          // window: l within ~30 of its maximum on the side
constexpr int kIgNodes = 20;                        // Gauss-Legendre nodes per panel
static_assert(kIgNodes == 20, "the node pairs, tables and the summation tree below are written for 20 nodes");

#define HVAE_IG_GL20_NODES                                                                                \
  -9.9312859918509492e-01, -9.6397192727791379e-01, -9.1223442825132591e-01, -8.3911697182221882e-01,     \
      -7.4633190646015079e-01, -6.3605368072651503e-01, -5.1086700195082710e-01, -3.7370608871541956e-01, \
      -2.2778585114164508e-01, -7.6526521133497334e-02, 7.6526521133497334e-02, 2.2778585114164508e-01,   \
      3.7370608871541956e-01, 5.1086700195082710e-01, 6.3605368072651503e-01, 7.4633190646015079e-01,     \
      8.3911697182221882e-01, 9.1223442825132591e-01, 9.6397192727791379e-01, 9.9312859918509492e-01
#define HVAE_IG_GL20_WEIGHTS                                                                          \
  1.7614007139152118e-02, 4.0601429800386941e-02, 6.2672048334109064e-02, 8.3276741576704749e-02,     \
      1.0193011981724044e-01, 1.1819453196151842e-01, 1.3168863844917663e-01, 1.4209610931838205e-01, \
      1.4917298647260375e-01, 1.5275338713072585e-01, 1.5275338713072585e-01, 1.4917298647260375e-01, \
      1.4209610931838205e-01, 1.3168863844917663e-01, 1.1819453196151842e-01, 1.0193011981724044e-01, \
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
// The sample point and the parameters: everything D(delta) needs.
struct ImplicitGradPoint {
  double omw, w, sin_w, cot_w, kappa, dm2;
  int npow;  // d - 2 when sin^{d-2} may be formed by repeated squaring, else -1
};

// D(delta) = l(th_w + delta) - l(th_w) and *dt = cos(th_w + delta) - w, |delta| <= pi (scalar version).
HVAE_HD double ig_log_ratio(const ImplicitGradPoint& p, double delta, double* dt) {
  double sh, ch;
  fast_sincos_half_pi(0.5 * delta, &sh, &ch);
  const double sd = 2.0 * sh * ch, cdm1 = -2.0 * sh * sh;
  const double diff = p.w * cdm1 - p.sin_w * sd;
  *dt = diff;
  double out = p.kappa * diff;
  if (p.dm2 != 0.0) out += p.dm2 * fast_log1p(cdm1 + p.cot_w * sd);
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
HVAE_IG_ALWAYS_INLINE void ig_eval_nodes_impl(const ImplicitGradPoint& p, double m, double h, double shift, double* e,
                                              double* adt) {
  constexpr int H = kIgNodes / 2;
  const double* x = kIgNodesHost + H;  // the positive nodes
  double sm, cm;
  fast_sincos_half_pi(0.5 * m, &sm, &cm);
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
    HVAE_IG_FOR_HALF su[j] = u[j] + u[j] * (u2[j] * su[j]);  // sin u
    HVAE_IG_FOR_HALF cu[j] = 1.0 + u2[j] * cu[j];            // cos u
  } else {
    HVAE_IG_FOR_HALF fast_sincos_quarter_pi(u[j], &su[j], &cu[j]);
  }
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
    HVAE_IG_FOR t[i] = p.kappa * diff[i] + p.dm2 * fast_log1p_core(y[i]) - shift;
  }
  // t <= 709 here: exponents are relative to the maximum (log path) or <= 650 (power path, see pow_up)
  HVAE_IG_FOR e[i] = fast_exp_core(t[i]);
  if (kPow) HVAE_IG_FOR e[i] *= c[i];
  HVAE_IG_FOR adt[i] = ::fabs(diff[i]);
}
#undef HVAE_IG_FOR
#undef HVAE_IG_FOR_HALF

// The same, compiled for the baseline ISA and (on x86 with gcc/clang) for AVX2 + FMA, picked at run time:
// 4-wide vectors and fused multiply-adds take ~1/3 off a call.
template <bool kShort, bool kPow>
inline void ig_eval_nodes_base(const ImplicitGradPoint& p, double m, double h, double shift, double* e, double* adt) {
  ig_eval_nodes_impl<kShort, kPow>(p, m, h, shift, e, adt);
}
#if HVAE_IG_X86_DISPATCH
template <bool kShort, bool kPow>
__attribute__((target("avx2,fma"))) inline void ig_eval_nodes_avx2(const ImplicitGradPoint& p, double m, double h,
                                                                   double shift, double* e, double* adt) {
  ig_eval_nodes_impl<kShort, kPow>(p, m, h, shift, e, adt);
}
// Whether the CPU kernels take their hand-written AVX2 (+ FMA) paths: the CPU has both, and the environment variable
// HVAE_DISABLE_AVX2 is unset, empty or "0" when the library first asks (set to 1 it selects the baseline paths, so
// that they can be tested on an AVX2 machine; tests/unit/test_cpu_dispatch.py compares the two).
inline bool ig_cpu_has_avx2_fma() {
  static const bool has = [] {
    const char* off = std::getenv("HVAE_DISABLE_AVX2");
    if (off != nullptr && off[0] != '\0' && std::strcmp(off, "0") != 0) return false;
    __builtin_cpu_init();  // idempotent; needed if this runs before libgcc's own initializer
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
}
#endif
template <bool kShort, bool kPow>
inline void ig_eval_nodes_host(const ImplicitGradPoint& p, double m, double h, double shift, double* e, double* adt) {
#if HVAE_IG_X86_DISPATCH
  if (ig_cpu_has_avx2_fma()) {
    ig_eval_nodes_avx2<kShort, kPow>(p, m, h, shift, e, adt);
    return;
  }
#endif
  ig_eval_nodes_base<kShort, kPow>(p, m, h, shift, e, adt);
}
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
  // weighted sums as a fixed pairwise tree, each level a vectorizable loop (no long add chain)
  const double* wt = ig_weights();
  double a0[kIgNodes], a1[kIgNodes];
  for (int i = 0; i < kIgNodes; ++i) {
    a0[i] = wt[i] * e[i];
    a1[i] = a0[i] * adt[i];
  }
  for (int i = 0; i < kIgNodes / 2; ++i) {
    a0[i] += a0[i + kIgNodes / 2];
    a1[i] += a1[i + kIgNodes / 2];
  }
  for (int i = 0; i < kIgNodes / 4; ++i) {
    a0[i] += a0[i + kIgNodes / 4];
    a1[i] += a1[i + kIgNodes / 4];
  }
  *i0 = h * ((a0[0] + a0[1]) + (a0[2] + a0[3]) + a0[4]);
  *i1 = h * ((a1[0] + a1[1]) + (a1[2] + a1[3]) + a1[4]);
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
  double e, m;
  fast_log_split(z, &e, &m);
  const double f = e == 0.0 ? y : m - 1.0;
  const double s = f / (2.0 + f), s2 = s * s;
  return e * 6.93147180559945309e-01 + 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0))));
#endif
}

// The window end. l(t) = kappa t + (m/2) log(1 - t^2) (m = d - 2, the log-density of th = acos t) is
// concave. From t_b (w or the mode t*) in direction dir (+1: towards t = 1, -1: towards -1), on the far
// side of the maximum, returns the distance x at which drop(x) = l(t_b) - l(t_b + dir x) is `target`
// (+-2, or after a last Newton step whose own quadratic error is < 1): Newton's method on the convex
// increasing drop from the quadratic model at t_b; a step past t = +-1 is replaced by the root of the
// log-singularity model there.
// Returns the distance to t = +-1 if the drop never gets there (m = 0 only).
//   drop(x) = -dir kappa x - (m/2) log1p(-dir x (2 t_b + dir x) / (1 - t_b^2)),
//   drop'(x) = dir (m t / (1 - t^2) - kappa),  drop''(0) = m (1 + t_b^2) / (1 - t_b^2)^2.
HVAE_HD double ig_t_window(double kappa, double m, double t_b, double omt_b, double opt_b, double dir, double target) {
  const double x_max = dir > 0.0 ? omt_b : opt_b;
  if (m == 0.0) {
    const double x = target / kappa;
    return x < x_max ? x : x_max;
  }
  const double inv = 1.0 / (omt_b * opt_b);  // 1 / (1 - t_b^2)
  const double a = dir * (m * t_b * inv - kappa);
  const double c = m * (1.0 + t_b * t_b) * inv * inv;
  const double a_pos = a > 0.0 ? a : 0.0;
  double x = 2.0 * target / (a_pos + ::sqrt(a_pos * a_pos + 2.0 * c * target));
  if (!(x < x_max)) x = 0.5 * x_max;
  for (int it = 0; it < 12; ++it) {
    const double drop = -dir * kappa * x - 0.5 * m * ig_log1p_rough(-dir * x * (2.0 * t_b + dir * x) * inv);
    const double err = drop - target;
    if (err >= -4.0 && err <= 6.0) break;  // drop in [26, 36] for target 30
    const double one_m_t = omt_b - dir * x, one_p_t = opt_b + dir * x, t = t_b + dir * x;
    const double omt2_x = one_m_t * one_p_t;
    const double slope = dir * (m * t - kappa * omt2_x) / omt2_x;
    double x_new = x - err / slope;
    if (!(x_new < x_max)) x_new = x_max - (x_max - x) * ::exp(2.0 * err / m);
    if (!(x_new > 0.0)) x_new = 0.5 * x;
    // accept the step unevaluated when its own quadratic error, drop'' dx^2 / 2, is below 1
    const double dx = x_new - x, curv = m * (1.0 + t * t) / (omt2_x * omt2_x);
    x = x_new;
    if (::fabs(err) <= 10.0 && 0.5 * curv * dx * dx <= 2.0) break;
  }
  return x;
}

// atan2(y, x) to 2e-6 (odd polynomial for atan on [0, 1] and octant reflections), for window ends only.
HVAE_HD double ig_atan2_rough(double y, double x) {
  const double ax = ::fabs(x), ay = ::fabs(y);
  const double mx = ax > ay ? ax : ay, mn = ax > ay ? ay : ax;
  const double a = mx > 0.0 ? mn / mx : 0.0, s = a * a;
  double r =
      a * (0.99997726 + s * (-0.33262347 + s * (0.19354346 + s * (-0.11643287 + s * (0.05265332 + s * -0.01172120)))));
  if (ay > ax) r = 0.5 * kPi - r;
  if (x < 0.0) r = kPi - r;
  return y < 0.0 ? -r : r;
}

// delta = th_end - th_w for the window end t_end, given as dt = t_end - w, 1 - t_end and 1 + t_end (dt
// exact even where 1 -+ t_end cannot resolve it), from sin delta and cos delta:
//   sin delta = sin th_end w - t_end sin th_w = -dt (w (2w + dt) / (sin th_end + sin th_w) + sin th_w),
// by a short asin series when |delta| < 0.5, else ig_atan2_rough (the window end needs no precision: the
// integrand there is e^{-30} of its peak). At t_end = +-1 (the window clipped): exactly -th_w or pi - th_w.
HVAE_HD double ig_window_delta(const ImplicitGradPoint& p, double dt, double omt, double opt) {
  if (omt <= 0.0) return -ig_angle(p.omw, 2.0 - p.omw).th;
  if (opt <= 0.0) return ig_angle(p.omw, 2.0 - p.omw).pi_m_th;
  const double st = ::sqrt(omt * opt);
  const double sd = -dt * (p.w * (2.0 * p.w + dt) / (st + p.sin_w) + p.sin_w);
  const double cd = (p.w + dt) * p.w + st * p.sin_w;
  if (cd > 0.0 && ::fabs(sd) < 0.5) {
    const double x2 = sd * sd;
    return sd * (1.0 + x2 * (1.0 / 6.0 + x2 * (3.0 / 40.0 + x2 * (5.0 / 112.0 + x2 * (35.0 / 1152.0)))));
  }
  return ig_atan2_rough(sd, cd);
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

// What both forms of vmf_w_dkappa need: the point (sin th_w, ...), the mode t* of l, the window target and which
// panels may use the repeated-squaring power.
struct IgSetup {
  ImplicitGradPoint p;
  double m, c_star, omc_star, star_dt, target;
  bool mode_above, small_d, pow_up, pow_down;
};
HVAE_HD IgSetup ig_setup(double omw, double kappa, double d) {
  ImplicitGradPoint p;
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
  const bool mode_above = omw > omc_star;  // t* > w, th* < th_w: the mode is on the side [w, 1]
  const double star_dt = omw - omc_star;   // t* - w
  const double target = kImplicitGradDrop;
  // on the side [w, 1] the factor e^{kappa (cos th - w)} <= e^{kappa omw} must not overflow when squaring
  const bool pow_up = p.npow >= 0 && kappa * omw <= 650.0;
  const bool pow_down = p.npow >= 0;

  IgSetup s;
  s.p = p;
  s.m = m;
  s.c_star = c_star;
  s.omc_star = omc_star;
  s.star_dt = star_dt;
  s.target = target;
  s.mode_above = mode_above;
  s.small_d = small_d;
  s.pow_up = pow_up;
  s.pow_down = pow_down;
  return s;
}

// The one-sided form with A (see the top): returns false where it does not apply (1 - A < 1e-3, A NaN or
// inconsistent with the mode), else true with dw/dkappa in *out.
HVAE_HD bool ig_one_sided(const IgSetup& s, double A, double* out) {
  const ImplicitGradPoint& p = s.p;
  const double omw = p.omw, kappa = p.kappa, m = s.m, c_star = s.c_star, omc_star = s.omc_star;
  const double star_dt = s.star_dt, target = s.target;
  const bool mode_above = s.mode_above, pow_up = s.pow_up, pow_down = s.pow_down;
  // One side, with A, where that is exact and consistent (a true A_d(kappa) puts w >= A below the mode by
  // at most O(1) in l, and w < A above... below the mode); otherwise (*).
  const double one_minus_a = 1.0 - A;
  if (one_minus_a >= kImplicitGradMinOneMinusA && A >= 0.0) {
    const double w_minus_a = one_minus_a - omw;
    bool consistent;
    if (w_minus_a >= 0.0) {
      consistent = !mode_above;
      if (mode_above) {
        // l(t*) - l(w) = kappa (t* - w) + (m/2) log((1 - t*^2) / (1 - w^2)), the ratio as 1 + y. Where
        // (1 - t*^2) / (1 - w^2) is below 1/2 (t* much nearer 1 than w: an A far below A_d(kappa), e.g.
        // kappa = 1e20 with A = 0.3), y would round to -1 and log1p(y) to -inf, which would pass any A as
        // consistent and integrate e^{l - l(w)} ~ e^{kappa (t* - w)} (inf on the device, clamped on the
        // host); the log of the ratio is then formed from its factors instead, as in ig_a_free's shift.
        const double y = -star_dt * (2.0 * p.w + star_dt) / (omw * (2.0 - omw));
        const double log_ratio =
            y >= -0.5 ? ::log1p(y) : (::log(omc_star) + ::log1p(c_star)) - (::log(omw) + ::log(2.0 - omw));
        consistent = kappa * star_dt + (m == 0.0 ? 0.0 : 0.5 * m * log_ratio) <= 25.0;
      }
    } else {
      consistent = mode_above;
    }
    if (consistent) {
      double i0, i1;
      if (w_minus_a >= 0.0) {
        // side [w, 1] (delta < 0), from w out past the mode if it lies there
        double lo;
        if (mode_above) {
          const double x = ig_t_window(kappa, m, c_star, omc_star, 1.0 + c_star, 1.0, target);
          lo = ig_window_delta(p, star_dt + x, omc_star - x, 1.0 + c_star + x);
        } else {
          const double x = ig_t_window(kappa, m, p.w, omw, 2.0 - omw, 1.0, target);
          lo = ig_window_delta(p, x, omw - x, 2.0 - omw + x);
        }
        ig_panel(p, lo, 0.0, 0.0, pow_up, &i0, &i1);
      } else {
        // side [-1, w] (delta > 0), beyond the mode
        const double x = ig_t_window(kappa, m, p.w, omw, 2.0 - omw, -1.0, target);
        const double hi = ig_window_delta(p, -x, omw + x, 2.0 - omw - x);
        ig_panel(p, 0.0, hi, 0.0, pow_down, &i0, &i1);
      }
      *out = p.sin_w * (i1 + ::fabs(w_minus_a) * i0);
      return true;
    }
  }

  return false;
}

// The A-free form (*) of the top.
HVAE_HD double ig_a_free(const IgSetup& s) {
  const ImplicitGradPoint& p = s.p;
  const double omw = p.omw, kappa = p.kappa, m = s.m, c_star = s.c_star, omc_star = s.omc_star;
  const double star_dt = s.star_dt, target = s.target;
  const bool mode_above = s.mode_above, small_d = s.small_d, pow_up = s.pow_up, pow_down = s.pow_down;
  // A-free form (*). The side without the mode ("tail") relative to l(th_w); the side with it ("bulk")
  // relative to l(th*) = l(th_w) + shift. If th_w is within a Laplace width of th*, the bulk is one panel
  // in delta = th - th_w; otherwise it is computed around the mode (point q: th* in place of th_w, delta' =
  // th - th*) as the part between w and t* and the part beyond t*, |t - w| = |t* - w| -+ |t - t*| on them,
  // so that a w astronomically far in the tail (kappa = 1e12, w = 0) loses nothing to cancellation.
  const double sgn = mode_above ? 1.0 : -1.0;  // sign of t - w on the bulk side
  double t0, tw;
  {
    const double x = ig_t_window(kappa, m, p.w, omw, 2.0 - omw, -sgn, target);
    const double end = ig_window_delta(p, -sgn * x, omw + sgn * x, 2.0 - omw - sgn * x);
    if (mode_above)
      ig_panel(p, 0.0, end, 0.0, pow_down, &t0, &tw);
    else
      ig_panel(p, end, 0.0, 0.0, pow_up, &t0, &tw);
  }
  // shift = l(t*) - l(w), in t (no cancellation): kappa (t* - w) + (m/2) log((1 - t*^2) / (1 - w^2))
  const double omc2 = omc_star * (1.0 + c_star);
  const double shift = kappa * star_dt +
                       (m == 0.0 ? 0.0 : 0.5 * m * (::log(omc_star) + ::log1p(c_star) - ::log(omw) - ::log(2.0 - omw)));
  const double curv_star = kappa * c_star + (m == 0.0 ? 0.0 : m / omc2);
  const IgAngle th_w = ig_angle(omw, 2.0 - omw);
  const IgAngle th_s = ig_angle(omc_star, 1.0 + c_star);
  const double delta_star = ig_angle_diff(th_s, th_w);  // th* - th_w
  double b0, bw;
  if (::fabs(delta_star) * ::sqrt(curv_star) <= 1.0) {
    const double x = ig_t_window(kappa, m, c_star, omc_star, 1.0 + c_star, sgn, target);
    const double end = ig_window_delta(p, star_dt + sgn * x, omc_star - sgn * x, 1.0 + c_star + sgn * x);
    const bool pw = p.npow >= 0 && kappa * omw - shift <= 650.0;
    if (mode_above)
      ig_panel(p, end, 0.0, shift, pw, &b0, &bw);
    else
      ig_panel(p, 0.0, end, shift, pw, &b0, &bw);
  } else {
    ImplicitGradPoint q = p;
    q.omw = omc_star;
    q.w = c_star;
    q.sin_w = ::sqrt(omc2);
    q.cot_w = m == 0.0 ? 0.0 : c_star / q.sin_w;  // d = 2: th* = 0, and the log term is absent
    q.npow = (small_d && (q.sin_w >= 1e-4 || (m <= 31.0 && q.sin_w >= 1e-9))) ? static_cast<int>(m) : -1;
    // the part from t* towards w, cut where it has dropped by the target (w may lie far beyond that)
    double dw = -delta_star;  // th_w - th* in q's delta'
    {
      const double x = ig_t_window(kappa, m, c_star, omc_star, 1.0 + c_star, -sgn, target);
      if (x < ::fabs(star_dt)) dw = ig_window_delta(q, -sgn * x, omc_star + sgn * x, 1.0 + c_star - sgn * x);
    }
    double n0, n1, o0 = 0.0, o1 = 0.0;
    if (mode_above)
      ig_panel(q, 0.0, dw, 0.0, q.npow >= 0, &n0, &n1);
    else
      ig_panel(q, dw, 0.0, 0.0, q.npow >= 0, &n0, &n1);
    if (omc_star > 0.0) {  // the part beyond the mode (none for d = 2, where th* = 0)
      const double x = ig_t_window(kappa, m, c_star, omc_star, 1.0 + c_star, sgn, target);
      const double end = ig_window_delta(q, sgn * x, omc_star - sgn * x, 1.0 + c_star + sgn * x);
      const bool pw = q.npow >= 0 && (!mode_above || kappa * omc_star <= 650.0);
      if (mode_above)
        ig_panel(q, end, 0.0, 0.0, pw, &o0, &o1);
      else
        ig_panel(q, 0.0, end, 0.0, pw, &o0, &o1);
    }
    const double gap = ::fabs(star_dt);
    b0 = n0 + o0;
    bw = gap * b0 - n1 + o1;
    // q's panels carry sin th* / sin th_w less than p's would: the bulk is e^{l - l(th*)} d th either way
  }
  // (U_w L_0 + L_w U_0) / ((L_0 + U_0) f(w)) with the bulk integrals scaled by e^{-shift}
  const double r_out = p.sin_w * (tw + t0 * (bw / b0)) / (1.0 + t0 * fast_exp(-shift) / b0);
  // Only for kappa far beyond 1e12 with w astronomically far in a tail can everything underflow; return the
  // kappa -> infinity limit at fixed w then.
  return (r_out >= 0.0 && !is_inf(r_out)) ? r_out : omw / kappa;
}
}  // namespace detail

// dw/dkappa for w = 1 - omw ~ p(w; kappa, d). omw = 1 - w is passed instead of w because near w = 1 (large
// kappa) it carries all the precision (float32 callers would otherwise round w to 1). A = A_d(kappa) is
// passed in (computed by the caller); it is used only where 1 - A >= 1e-3: below that a float64 A cannot
// carry 1 - A and the A-free form (*) is used (as it is for a NaN A). An A that contradicts kappa, i.e. puts
// w at or above A while l(t*) - l(w) > 25 (w far below the mode: e.g. A = 0.3 at kappa = 1e20), is not used
// either: such calls take the A-free form, so that their result does not depend on A and is the same on the
// host and the device (the one-sided integral would hold e^{kappa (t* - w)}: inf with the device's exp, a
// clamped finite value with the host's). Any other A is used as given, with a finite result on both.
// d >= 2 (integer-valued), kappa >= 0. Returns the limits (1 - w^2)/(d - 1) at kappa = 0, 0 at w = +-1
// (omw <= 0 or >= 2) and at kappa = inf; NaN for a NaN omw, kappa or d, for kappa < 0 and for d < 2.
HVAE_HD double vmf_w_dkappa(double omw, double kappa, double d, double A) {
  if (is_nan(omw) || is_nan(kappa) || is_nan(d)) return quiet_nan();
  if (!(kappa >= 0.0) || !(d >= 2.0)) return quiet_nan();
  if (!(omw > 0.0) || !(omw < 2.0)) return 0.0;  // w = +-1: the limit is 0 for every d >= 2
  if (kappa == 0.0) return omw * (2.0 - omw) / (d - 1.0);
  if (is_inf(kappa)) return 0.0;
  if (d == 3.0) return detail::ig_d3(omw, kappa);

  const detail::IgSetup s = detail::ig_setup(omw, kappa, d);
  double out;
  if (detail::ig_one_sided(s, A, &out)) return out;
  return detail::ig_a_free(s);
}

}  // namespace math
}  // namespace hvae
