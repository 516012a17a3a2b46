// dw/dkappa for many samples at once, to float32 accuracy, vectorized across samples (host only).
//
// The same integral as vmf_w_dkappa (implicit_grad.h: formulas, windows, the one-sided form with A), with
// the samples of a tile as the vector lanes instead of the quadrature nodes: each step (the window
// search, the window ends, every quadrature node) is one loop over the lanes that gcc vectorizes, so the
// per-sample setup that a scalar call pays alone (Newton steps, one sincos, the node bookkeeping) is spread
// over 4 or 8 lanes. Only the common case runs here: d >= 4, the one-sided form (1 - A >= 1e-3, A
// consistent), windows that end inside (-1, 1), and, for d <= 66, the repeated-squaring power of
// implicit_grad.h; every other sample (and every input a scalar call treats specially: kappa = 0 or inf,
// w = +-1, NaN) is passed to the scalar vmf_w_dkappa, which is also the float64 path.
//
// Rule for a float32 result: kIgLanesNodes-point Gauss-Legendre on the window where l has dropped by
// kIgLanesDrop (+-4..6, as ig_t_window). Measured against the float64 vmf_w_dkappa (itself within 5.5e-12 of
// 40-digit mpmath): tests/test_implicit_grad.py (the mpmath points, and a dense grid of d, kappa and w).
#pragma once

#if !defined(__CUDA_ARCH__)

#include "implicit_grad.h"


namespace hvae {
namespace math {
namespace detail {

constexpr int kIgLanes = 64;          // lanes per batch (arrays on the stack)
#ifndef HVAE_IG_LANES_NODES
#define HVAE_IG_LANES_NODES 14
#endif
#ifndef HVAE_IG_LANES_DROP
#define HVAE_IG_LANES_DROP 22.0
#endif
constexpr int kIgLanesNodes = HVAE_IG_LANES_NODES;     // Gauss-Legendre nodes per panel for a float32 result
constexpr double kIgLanesDrop = HVAE_IG_LANES_DROP;    // window: l within ~22 of its maximum on the side
constexpr double kIgLanesTolLo = -6.0, kIgLanesTolHi = 10.0;  // accepted drop: target + [lo, hi]
// the positive half of the rule (the rule is symmetric)
#if HVAE_IG_LANES_NODES == 14
static constexpr double kIgLanesX[7] = {
    1.08054948707343668e-01, 3.19112368927889745e-01, 5.15248636358154100e-01, 6.87292904811685479e-01,
    8.27201315069765020e-01, 9.28434883663573518e-01, 9.86283808696812425e-01};
static constexpr double kIgLanesW[7] = {
    2.15263853463157934e-01, 2.05198463721295715e-01, 1.85538397477937878e-01, 1.57203167158193630e-01,
    1.21518570687903310e-01, 8.01580871597599859e-02, 3.51194603317517492e-02};
#elif HVAE_IG_LANES_NODES == 12
static constexpr double kIgLanesX[6] = {1.25233408511468913e-01, 3.67831498998180184e-01, 5.87317954286617483e-01,
                                        7.69902674194304693e-01, 9.04117256370474798e-01, 9.81560634246719244e-01};
static constexpr double kIgLanesW[6] = {2.49147045813402690e-01, 2.33492536538354611e-01, 2.03167426723065730e-01,
                                        1.60078328543346415e-01, 1.06939325995319065e-01, 4.71753363865114114e-02};
#elif HVAE_IG_LANES_NODES == 10
static constexpr double kIgLanesX[5] = {1.48874338981631216e-01, 4.33395394129247213e-01, 6.79409568299024436e-01,
                                        8.65063366688984536e-01, 9.73906528517171743e-01};
static constexpr double kIgLanesW[5] = {2.95524224714752815e-01, 2.69266719309996516e-01, 2.19086362515982014e-01,
                                        1.49451349150580393e-01, 6.66713443086881380e-02};
#endif

// The lanes of one batch, structure of arrays: the point (as ImplicitGradPoint), the window base
// (t_b = w or the mode t*, 1 -+ t_b, t_b - w, dir = +1 towards t = 1, -1 towards -1) and the results.
struct IgLanes {
  double w[kIgLanes], omw[kIgLanes], sin_w[kIgLanes], cot_w[kIgLanes], kappa[kIgLanes], wma[kIgLanes];
  double tb[kIgLanes], omtb[kIgLanes], optb[kIgLanes], dtoff[kIgLanes], dir[kIgLanes];
  double x[kIgLanes], end[kIgLanes];
  int32_t src[kIgLanes];  // the sample index
  int n = 0;
};

// Classifies a sample: fills lane `k` of L (always) and returns whether it may run in the lanes (see the
// header). Branch-free (selects only), so that a loop over the samples of a batch vectorizes: the branches of a
// scalar setup depend on where w falls against the mode and mispredict about half the time.
HVAE_ALWAYS_INLINE bool ig_lanes_setup(double omw, double kappa, double m, double A, bool kpow, IgLanes& L, int k) {
  const double one_minus_a = 1.0 - A;
  const double w = 1.0 - omw, sin2_w = omw * (2.0 - omw), sin_w = __builtin_sqrt(sin2_w);
  const double r = m / kappa;
  const double sr = __builtin_sqrt(r * r + 4.0);
  const double c_star = 2.0 / (r + sr), omc_star = (r + r * r / (sr + 2.0)) / (r + sr);
  const bool mode_above = omw > omc_star;
  const double star_dt = omw - omc_star, w_minus_a = one_minus_a - omw;
  const bool upper = w_minus_a >= 0.0;  // side [w, 1]; else [-1, w]
  const bool use_mode = upper & mode_above;
  // the drop of l from the mode to w (upper side, mode above w), fast_log1p_core where 1 + y is normal
  const double y = -star_dt * (2.0 * w + star_dt) / sin2_w, z = 1.0 + y;
  const bool y_ok = (z >= 2.2250738585072014e-308) & (z <= 1.7976931348623157e308);
  const double mode_drop = kappa * star_dt + 0.5 * m * fast_log1p_core(y_ok ? y : 0.0);
  // non-short-circuit &: no branches
  bool ok = (omw > 0.0) & (omw < 2.0) & (kappa > 0.0) & (kappa < 1e300);
  ok = ok & (one_minus_a >= kImplicitGradMinOneMinusA) & (A >= 0.0);
  ok = ok & (!kpow | (sin_w >= 1e-4)) & (r < 1e100);
  ok = ok & (!upper | !kpow | (kappa * omw <= 650.0));
  ok = ok & (!use_mode | (y_ok & (mode_drop <= 25.0)));  // else inconsistent A: (*)
  ok = ok & (upper | mode_above);                        // else inconsistent A: (*)
  L.tb[k] = use_mode ? c_star : w;
  L.omtb[k] = use_mode ? omc_star : omw;
  L.optb[k] = use_mode ? 1.0 + c_star : 2.0 - omw;
  L.dtoff[k] = use_mode ? star_dt : 0.0;
  L.w[k] = w; L.omw[k] = omw; L.sin_w[k] = sin_w; L.cot_w[k] = w / sin_w; L.kappa[k] = kappa;
  L.wma[k] = ::fabs(w_minus_a); L.dir[k] = upper ? 1.0 : -1.0;
  return ok;
}

// ig_lanes_setup of samples 0 .. n-1 into lanes 0 .. n-1 of L; ok[k] = 1 or 0 (a double: the loop vectorizes).
HVAE_ALWAYS_INLINE void ig_lanes_setup_all(const double* omw, const double* kappa, const double* A, int n, double m,
                                           bool kpow, IgLanes& L, double* ok) {
  for (int k = 0; k < n; ++k) ok[k] = ig_lanes_setup(omw[k], kappa[k], m, A[k], kpow, L, k) ? 1.0 : 0.0;
}

// ig_t_window over the lanes (m > 0): the distance x from t_b in direction dir at which l has dropped by
// kIgLanesDrop (within -4..+6), by the same Newton steps, every lane stepping until all have converged.
HVAE_ALWAYS_INLINE void ig_lanes_window(IgLanes& L, double m) {
  const int n = L.n;
  const double target = kIgLanesDrop;
  double done[kIgLanes];  // 0 or 1 (a double, so that the loops vectorize)
  for (int k = 0; k < n; ++k) {
    const double tb = L.tb[k], omt = L.omtb[k], opt = L.optb[k], dir = L.dir[k], kappa = L.kappa[k];
    const double x_max = dir > 0.0 ? omt : opt;
    const double inv = 1.0 / (omt * opt);
    const double a = dir * (m * tb * inv - kappa), c = m * (1.0 + tb * tb) * inv * inv;
    const double a_pos = a > 0.0 ? a : 0.0;
    double x = 2.0 * target / (a_pos + __builtin_sqrt(a_pos * a_pos + 2.0 * c * target));
    L.x[k] = x < x_max ? x : 0.5 * x_max;
    done[k] = 0.0;
  }
  for (int it = 0; it < 12; ++it) {
    double active = 0.0;
    for (int k = 0; k < n; ++k) {
      const double tb = L.tb[k], omt_b = L.omtb[k], opt_b = L.optb[k], dir = L.dir[k], kappa = L.kappa[k];
      const double x = L.x[k], x_max = dir > 0.0 ? omt_b : opt_b, inv = 1.0 / (omt_b * opt_b);
      const double drop = -dir * kappa * x - 0.5 * m * fast_log1p_core(-dir * x * (2.0 * tb + dir * x) * inv);
      const double err = drop - target;
      const bool ok = err >= kIgLanesTolLo && err <= kIgLanesTolHi;
      const double one_m_t = omt_b - dir * x, one_p_t = opt_b + dir * x, t = tb + dir * x;
      const double omt2 = one_m_t * one_p_t;
      const double slope = dir * (m * t - kappa * omt2) / omt2;
      double x_new = x - err / slope;
      x_new = x_new < x_max ? x_new : x_max - (x_max - x) * fast_exp_core(2.0 * err / m);
      x_new = x_new > 0.0 ? x_new : 0.5 * x;
      const double dx = x_new - x, curv = m * (1.0 + t * t) / (omt2 * omt2);
      const bool last = ::fabs(err) <= 12.0 && 0.5 * curv * dx * dx <= 3.0;
      const bool stop = done[k] != 0.0 || ok;
      L.x[k] = stop ? x : x_new;
      done[k] = (stop || last) ? 1.0 : 0.0;
      active += 1.0 - done[k];
    }
    if (active == 0.0) break;
  }
}

// ig_window_delta over the lanes: delta = th_end - th_w of the window end t_b + dir x (inside (-1, 1)).
HVAE_ALWAYS_INLINE void ig_lanes_window_delta(IgLanes& L) {
  for (int k = 0; k < L.n; ++k) {
    const double w = L.w[k], sin_w = L.sin_w[k], dir = L.dir[k], x = L.x[k];
    const double dt = L.dtoff[k] + dir * x, omt = L.omtb[k] - dir * x, opt = L.optb[k] + dir * x;
    const double st = __builtin_sqrt(omt * opt);
    const double sd = -dt * (w * (2.0 * w + dt) / (st + sin_w) + sin_w);
    const double cd = (w + dt) * w + st * sin_w;
    const double x2 = sd * sd;
    const double series =
        sd * (1.0 + x2 * (1.0 / 6.0 + x2 * (3.0 / 40.0 + x2 * (5.0 / 112.0 + x2 * (35.0 / 1152.0)))));
    // else ig_atan2_rough(sd, cd), branch-free
    const double ax = ::fabs(cd), ay = ::fabs(sd);
    const double mx = ax > ay ? ax : ay, mn = ax > ay ? ay : ax;
    const double q = mx > 0.0 ? mn / mx : 0.0, q2 = q * q;
    double at = q * (0.99997726 + q2 * (-0.33262347 + q2 * (0.19354346 + q2 * (-0.11643287 + q2 * (0.05265332 + q2 * -0.01172120)))));
    at = ay > ax ? 0.5 * kPi - at : at;
    at = cd < 0.0 ? kPi - at : at;
    at = sd < 0.0 ? -at : at;
    L.end[k] = (cd > 0.0 && ay < 0.5) ? series : at;
  }
}

// The panel of every lane ([end, 0] for dir > 0, [0, end] for dir < 0) with the 14-point rule, and the
// result sin th_w (I_1 + |w - A| I_0). kPow: e^{(d-2) log(sin th / sin th_w)} by repeated squaring.
template <bool kPow>
HVAE_ALWAYS_INLINE void ig_lanes_quadrature_impl(const IgLanes& L, double m, double* out) {
  const int n = L.n;
  const int npow = static_cast<int>(m);
  double hh[kIgLanes], sm[kIgLanes], cm[kIgLanes], i0[kIgLanes], i1[kIgLanes];
  for (int k = 0; k < n; ++k) {
    const double e = L.end[k], h = 0.5 * ::fabs(e), mid = 0.5 * e;  // [end, 0] or [0, end]: |b - a| = |end|
    hh[k] = h;
    double s, c;
    fast_sincos_half_pi(0.5 * mid, &s, &c);
    sm[k] = s;
    cm[k] = c;
    i0[k] = 0.0;
    i1[k] = 0.0;
  }
  for (int j = 0; j < kIgLanesNodes / 2; ++j) {
    const double xj = kIgLanesX[j], wj = kIgLanesW[j];
    double base[2][kIgLanes], acc[2][kIgLanes], t[2][kIgLanes], adt[2][kIgLanes];
    for (int k = 0; k < n; ++k) {
      double su, cu;
      fast_sincos_quarter_pi(0.5 * hh[k] * xj, &su, &cu);  // |u| <= pi/4
      const double a = sm[k] * cu, b = cm[k] * su, a2 = cm[k] * cu, b2 = sm[k] * su;
      const double w = L.w[k], sin_w = L.sin_w[k], cot_w = L.cot_w[k], kappa = L.kappa[k];
      for (int q = 0; q < 2; ++q) {  // the nodes mid -+ h x_j: half angles mid/2 -+ u
        const double s = q == 0 ? a - b : a + b, c = q == 0 ? a2 + b2 : a2 - b2;
        const double sd = 2.0 * s * c, cdm1 = -2.0 * s * s;
        const double diff = w * cdm1 - sin_w * sd;  // cos th - w
        const double y = cdm1 + cot_w * sd;         // sin th / sin th_w - 1
        adt[q][k] = ::fabs(diff);
        if (kPow) {
          base[q][k] = 1.0 + y;
          acc[q][k] = 1.0;
          t[q][k] = kappa * diff;
        } else {
          t[q][k] = kappa * diff + m * fast_log1p_core(y);
        }
      }
    }
    if (kPow) {
      for (int p = npow; p > 0; p >>= 1) {
        if (p & 1)
          for (int k = 0; k < n; ++k) {
            acc[0][k] *= base[0][k];
            acc[1][k] *= base[1][k];
          }
        if (p > 1)
          for (int k = 0; k < n; ++k) {
            base[0][k] *= base[0][k];
            base[1][k] *= base[1][k];
          }
      }
    }
    for (int k = 0; k < n; ++k) {
      double e0 = fast_exp_core(t[0][k]), e1 = fast_exp_core(t[1][k]);
      if (kPow) {
        e0 *= acc[0][k];
        e1 *= acc[1][k];
      }
      i0[k] += wj * (e0 + e1);
      i1[k] += wj * (e0 * adt[0][k] + e1 * adt[1][k]);
    }
  }
  for (int k = 0; k < n; ++k) out[k] = L.sin_w[k] * hh[k] * (i1[k] + L.wma[k] * i0[k]);
}
// One batch of cnt <= kIgLanes samples: the setup of every sample, the samples that may run in the lanes moved
// to the front (none moves in the usual batch, where all may), then the three steps. Returns the number of
// lanes run: res[k] is the result of sample L.src[k]; the other samples are the caller's (scalar path).
HVAE_ALWAYS_INLINE int ig_lanes_batch_impl(const double* omw, const double* kappa, const double* A, int cnt,
                                           double m, bool pow, IgLanes& L, double* res) {
  double ok[kIgLanes];
  ig_lanes_setup_all(omw, kappa, A, cnt, m, pow, L, ok);
  int n = 0;
  for (int k = 0; k < cnt; ++k) {
    if (ok[k] == 0.0) continue;
    if (n != k) {
      L.w[n] = L.w[k]; L.omw[n] = L.omw[k]; L.sin_w[n] = L.sin_w[k]; L.cot_w[n] = L.cot_w[k];
      L.kappa[n] = L.kappa[k]; L.wma[n] = L.wma[k]; L.tb[n] = L.tb[k]; L.omtb[n] = L.omtb[k];
      L.optb[n] = L.optb[k]; L.dtoff[n] = L.dtoff[k]; L.dir[n] = L.dir[k];
    }
    L.src[n++] = k;
  }
  L.n = n;
  if (n == 0) return 0;
  ig_lanes_window(L, m);
  ig_lanes_window_delta(L);
  if (pow)
    ig_lanes_quadrature_impl<true>(L, m, res);
  else
    ig_lanes_quadrature_impl<false>(L, m, res);
  return n;
}
// Compiled for the baseline ISA and (x86, gcc/clang) for AVX2 + FMA and AVX-512, picked at run time as in
// implicit_grad.h.
#define HVAE_IG_LANES_BATCH(NAME, ATTR)                                                                        \
  ATTR inline int NAME(const double* omw, const double* kappa, const double* A, int cnt, double m, bool pow, \
                       IgLanes& L, double* res) {                                                            \
    return ig_lanes_batch_impl(omw, kappa, A, cnt, m, pow, L, res);                                          \
  }
HVAE_IG_LANES_BATCH(ig_lanes_batch_base, )
#if HVAE_IG_X86_DISPATCH
HVAE_IG_LANES_BATCH(ig_lanes_batch_avx2, __attribute__((target("avx2,fma"))))
HVAE_IG_LANES_BATCH(ig_lanes_batch_avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma"))))
inline bool ig_cpu_has_avx512() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
  }();
  return has;
}
#endif
#undef HVAE_IG_LANES_BATCH
inline int ig_lanes_batch(const double* omw, const double* kappa, const double* A, int cnt, double m, bool pow,
                          IgLanes& L, double* res) {
#if HVAE_IG_X86_DISPATCH
  if (ig_cpu_has_avx512()) return ig_lanes_batch_avx512(omw, kappa, A, cnt, m, pow, L, res);
  if (ig_cpu_has_avx2_fma()) return ig_lanes_batch_avx2(omw, kappa, A, cnt, m, pow, L, res);
#endif
  return ig_lanes_batch_base(omw, kappa, A, cnt, m, pow, L, res);
}

}  // namespace detail

// dw/dkappa for n samples of one dimension d: out[i] = vmf_w_dkappa(omw[i], kappa[i], d, A[i]) to float32
// accuracy (see the header), for callers that round the result to float32.
inline void vmf_w_dkappa_single(const double* omw, const double* kappa, const double* A, int64_t n, double d,
                                double* out) {
  const double m = d - 2.0;
  const bool lanes_ok = d >= 4.0 && m == static_cast<double>(static_cast<int64_t>(m));
  if (!lanes_ok) {
    for (int64_t i = 0; i < n; ++i) out[i] = vmf_w_dkappa(omw[i], kappa[i], d, A[i]);
    return;
  }
  const bool kpow = m <= 64.0;
  detail::IgLanes L;
  double res[detail::kIgLanes];
  for (int64_t i0 = 0; i0 < n; i0 += detail::kIgLanes) {
    const int cnt = static_cast<int>(n - i0 < detail::kIgLanes ? n - i0 : detail::kIgLanes);
    const int run = detail::ig_lanes_batch(omw + i0, kappa + i0, A + i0, cnt, m, kpow, L, res);
    int next = 0;  // the samples before L.src[k] that are not in the lanes: the scalar path
    for (int k = 0; k <= run; ++k) {
      const int stop = k < run ? L.src[k] : cnt;
      for (; next < stop; ++next) out[i0 + next] = vmf_w_dkappa(omw[i0 + next], kappa[i0 + next], d, A[i0 + next]);
      if (k == run) break;
      // a window end rounded onto t = +-1 (NaN) or an overflow: the scalar path
      const int64_t i = i0 + stop;
      out[i] = (res[k] >= 0.0 && res[k] < infinity()) ? res[k] : vmf_w_dkappa(omw[i], kappa[i], d, A[i]);
      next = stop + 1;
    }
  }
}

}  // namespace math
}  // namespace hvae

#endif  // !__CUDA_ARCH__
