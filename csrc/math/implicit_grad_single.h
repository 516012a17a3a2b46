// dw/dkappa to float32 accuracy: the rule of the samplers' float32 backward, one sample at a time
// (__host__ __device__). The CPU runs the same steps with the samples of a tile as vector lanes
// (implicit_grad_lanes.h calls the per-sample pieces below in loops over the lanes); the CUDA backward runs
// vmf_w_dkappa_float32_rule, one sample per thread.
//
// The integral is vmf_w_dkappa's (implicit_grad.h: formulas, windows, the one-sided form with A):
// sin th_w (I_1 + |w - A| I_0) over the window from t_b = w (or the mode t*) to where l has dropped by
// kIgLanesDrop (+-4..6, as ig_t_window), with one kIgLanesNodes-point Gauss-Legendre panel in the angle. Only
// the common case takes this rule: d >= 4 integer, the one-sided form (1 - A >= 1e-3, A consistent), windows
// that end inside (-1, 1) and, for d <= 66, the repeated-squaring power of implicit_grad.h; every other
// sample (and every input that vmf_w_dkappa treats specially: kappa = 0 or inf, w = +-1, NaN) gets the float64
// rule vmf_w_dkappa. Accuracy, against the float64 rule (itself within 5.5e-12 of 40-digit mpmath): relative
// error <= 1e-5 (measured 6.5e-8 on the mpmath points and 2.5e-7 on a dense grid of d, kappa and w,
// tests/unit/test_ops_implicit_grad.py::test_float32_*).
//
// On the host the elementary functions are fastmath.h's branch-free polynomials (so that the lane loops
// vectorize); on a GPU, CUDA's exp, log1p and sincos.
#pragma once

#include "common.h"
#include "fastmath.h"
#include "implicit_grad.h"

namespace hvae {
namespace math {
namespace detail {

#ifndef HVAE_IG_LANES_NODES
#define HVAE_IG_LANES_NODES 14
#endif
#ifndef HVAE_IG_LANES_DROP
#define HVAE_IG_LANES_DROP 22.0
#endif
constexpr int kIgLanesNodes = HVAE_IG_LANES_NODES;            // Gauss-Legendre nodes per panel for a float32 result
constexpr double kIgLanesDrop = HVAE_IG_LANES_DROP;           // window: l within ~22 of its maximum on the side
constexpr double kIgLanesTolLo = -6.0, kIgLanesTolHi = 10.0;  // accepted drop: target + [lo, hi]
constexpr int kIgLanesWindowSteps = 12;                       // Newton steps of the window search, at most

// The positive half of the rule (the rule is symmetric): nodes, weights.
#if HVAE_IG_LANES_NODES == 14
#define HVAE_IG_LANES_X_VALUES                                                                        \
  1.08054948707343668e-01, 3.19112368927889745e-01, 5.15248636358154100e-01, 6.87292904811685479e-01, \
      8.27201315069765020e-01, 9.28434883663573518e-01, 9.86283808696812425e-01
#define HVAE_IG_LANES_W_VALUES                                                                        \
  2.15263853463157934e-01, 2.05198463721295715e-01, 1.85538397477937878e-01, 1.57203167158193630e-01, \
      1.21518570687903310e-01, 8.01580871597599859e-02, 3.51194603317517492e-02
#elif HVAE_IG_LANES_NODES == 12
#define HVAE_IG_LANES_X_VALUES                                                                        \
  1.25233408511468913e-01, 3.67831498998180184e-01, 5.87317954286617483e-01, 7.69902674194304693e-01, \
      9.04117256370474798e-01, 9.81560634246719244e-01
#define HVAE_IG_LANES_W_VALUES                                                                        \
  2.49147045813402690e-01, 2.33492536538354611e-01, 2.03167426723065730e-01, 1.60078328543346415e-01, \
      1.06939325995319065e-01, 4.71753363865114114e-02
#elif HVAE_IG_LANES_NODES == 10
#define HVAE_IG_LANES_X_VALUES                                                                        \
  1.48874338981631216e-01, 4.33395394129247213e-01, 6.79409568299024436e-01, 8.65063366688984536e-01, \
      9.73906528517171743e-01
#define HVAE_IG_LANES_W_VALUES                                                                        \
  2.95524224714752815e-01, 2.69266719309996516e-01, 2.19086362515982014e-01, 1.49451349150580393e-01, \
      6.66713443086881380e-02
#endif
#if defined(__CUDACC__)
static __constant__ double kIgLanesXDevice[kIgLanesNodes / 2] = {HVAE_IG_LANES_X_VALUES};
static __constant__ double kIgLanesWDevice[kIgLanesNodes / 2] = {HVAE_IG_LANES_W_VALUES};
#endif
static constexpr double kIgLanesX[kIgLanesNodes / 2] = {HVAE_IG_LANES_X_VALUES};
static constexpr double kIgLanesW[kIgLanesNodes / 2] = {HVAE_IG_LANES_W_VALUES};
// Node j of the positive half and its weight (the device's copy on a GPU).
HVAE_HD void ig_lanes_node_weight(int j, double* x, double* w) {
#if defined(__CUDA_ARCH__)
  *x = kIgLanesXDevice[j];
  *w = kIgLanesWDevice[j];
#else
  *x = kIgLanesX[j];
  *w = kIgLanesW[j];
#endif
}

// Whether the rule applies at dimension d (d >= 4 integer; see the header), and in *kpow whether the power
// (sin th / sin th_w)^(d-2) is taken by repeated squaring (d <= 66).
HVAE_HD bool ig_rule_applies(double d, bool* kpow) {
  const double m = d - 2.0;
  *kpow = m <= 64.0;
  return d >= 4.0 && d < 9e15 && m == static_cast<double>(static_cast<long long>(m));
}

// The elementary functions of the rule: fastmath.h's polynomials on the host, CUDA's functions on a GPU.
HVAE_HD_HOT double ig_exp(double x) {
#if defined(__CUDA_ARCH__)
  return ::exp(x);
#else
  return fast_exp_core(x);
#endif
}
HVAE_HD_HOT double ig_log1p(double y) {  // 1 + y a normal number (fast_log1p_core's domain)
#if defined(__CUDA_ARCH__)
  return ::log1p(y);
#else
  return fast_log1p_core(y);
#endif
}
HVAE_HD_HOT void ig_sincos_quarter_pi(double u, double* s, double* c) {  // |u| <= pi/4
#if defined(__CUDA_ARCH__)
  ::sincos(u, s, c);
#else
  fast_sincos_quarter_pi(u, s, c);
#endif
}

// One sample: the point and the window base (t_b = w or the mode t*, 1 -+ t_b, t_b - w, dir = +1 towards
// t = 1, -1 towards -1).
struct IgLane {
  double w, omw, sin_w, cot_w, kappa, wma, tb, omtb, optb, dtoff, dir;
  double inv_b;  // 1 / ((1 - t_b)(1 + t_b)), which every Newton step of the window search needs
};

// Classifies a sample (m = d - 2): fills *p (always) and returns whether the rule applies (see the header).
// Branch-free (selects only), so that a loop over samples vectorizes: the branches of a scalar setup depend
// on where w falls against the mode and mispredict about half the time.
HVAE_HD_HOT bool ig_lane_setup(double omw, double kappa, double m, double A, bool kpow, IgLane* p) {
  const double one_minus_a = 1.0 - A;
  const double w = 1.0 - omw, sin2_w = omw * (2.0 - omw), sin_w = ::sqrt(sin2_w);
  const double r = m / kappa;
  const double sr = ::sqrt(r * r + 4.0);
  const double c_star = 2.0 / (r + sr), omc_star = (r + r * r / (sr + 2.0)) / (r + sr);
  const bool mode_above = omw > omc_star;
  const double star_dt = omw - omc_star, w_minus_a = one_minus_a - omw;
  const bool upper = w_minus_a >= 0.0;  // side [w, 1]; else [-1, w]
  const bool use_mode = upper & mode_above;
  // the drop of l from the mode to w (upper side, mode above w), where 1 + y is normal
  const double y = -star_dt * (2.0 * w + star_dt) / sin2_w, z = 1.0 + y;
  const bool y_ok = (z >= 2.2250738585072014e-308) & (z <= 1.7976931348623157e308);
  const double mode_drop = kappa * star_dt + 0.5 * m * ig_log1p(y_ok ? y : 0.0);
  // non-short-circuit &: no branches
  bool ok = (omw > 0.0) & (omw < 2.0) & (kappa > 0.0) & (kappa < 1e300);
  ok = ok & (one_minus_a >= kImplicitGradMinOneMinusA) & (A >= 0.0);
  ok = ok & (!kpow | (sin_w >= 1e-4)) & (r < 1e100);
  ok = ok & (!upper | !kpow | (kappa * omw <= 650.0));
  ok = ok & (!use_mode | (y_ok & (mode_drop <= 25.0)));  // else inconsistent A: (*) of implicit_grad.h
  ok = ok & (upper | mode_above);                        // else inconsistent A: (*)
  p->tb = use_mode ? c_star : w;
  p->omtb = use_mode ? omc_star : omw;
  p->optb = use_mode ? 1.0 + c_star : 2.0 - omw;
  p->dtoff = use_mode ? star_dt : 0.0;
  p->inv_b = 1.0 / (p->omtb * p->optb);
  p->w = w;
  p->omw = omw;
  p->sin_w = sin_w;
  p->cot_w = w / sin_w;
  p->kappa = kappa;
  p->wma = ::fabs(w_minus_a);
  p->dir = upper ? 1.0 : -1.0;
  return ok;
}

// ig_t_window for the rule: the distance x from t_b in direction dir at which l has dropped by kIgLanesDrop
// (within kIgLanesTol*), by Newton steps. The first guess:
HVAE_HD_HOT double ig_lane_window_start(const IgLane& p, double m) {
  const double target = kIgLanesDrop;
  const double x_max = p.dir > 0.0 ? p.omtb : p.optb;
  const double inv = p.inv_b;
  const double a = p.dir * (m * p.tb * inv - p.kappa), c = m * (1.0 + p.tb * p.tb) * inv * inv;
  const double a_pos = a > 0.0 ? a : 0.0;
  const double x = 2.0 * target / (a_pos + ::sqrt(a_pos * a_pos + 2.0 * c * target));
  return x < x_max ? x : 0.5 * x_max;
}
// One step from x (unchanged once *done): the next x, and *done set when the drop is accepted or the step
// is the last one needed. Two divisions a step (one in the logarithm): in the lanes the steps are bound by
// the divider, so the slope and the curvature test are written without their own.
HVAE_HD_HOT double ig_lane_window_step(const IgLane& p, double m, double x, bool* done) {
  const double tb = p.tb, omt_b = p.omtb, opt_b = p.optb, dir = p.dir, kappa = p.kappa;
  const double x_max = dir > 0.0 ? omt_b : opt_b;
  const double drop = -dir * kappa * x - 0.5 * m * ig_log1p(-dir * x * (2.0 * tb + dir * x) * p.inv_b);
  const double err = drop - kIgLanesDrop;
  const bool ok = (err >= kIgLanesTolLo) & (err <= kIgLanesTolHi);
  const double one_m_t = omt_b - dir * x, one_p_t = opt_b + dir * x, t = tb + dir * x;
  const double omt2 = one_m_t * one_p_t;
  // Newton: x - err / slope with slope = dl/dx = dir (m t - kappa (1 - t^2)) / (1 - t^2)
  double x_new = x - err * omt2 / (dir * (m * t - kappa * omt2));
  x_new = x_new < x_max ? x_new : x_max - (x_max - x) * ig_exp(err * (2.0 / m));
  x_new = x_new > 0.0 ? x_new : 0.5 * x;
  // the last step if the quadratic model's error, curv dx^2 / 2 with curv = m (1 + t^2) / (1 - t^2)^2, is small
  const double dx = x_new - x;
  const bool last = (::fabs(err) <= 12.0) & (0.5 * m * (1.0 + t * t) * dx * dx <= 3.0 * (omt2 * omt2));
  const bool stop = *done | ok;
  *done = stop | last;
  return stop ? x : x_new;
}

// ig_window_delta for the rule: delta = th_end - th_w of the window end t_b + dir x (inside (-1, 1)).
HVAE_HD_HOT double ig_lane_window_end(const IgLane& p, double x) {
  const double w = p.w, sin_w = p.sin_w, dir = p.dir;
  const double dt = p.dtoff + dir * x, omt = p.omtb - dir * x, opt = p.optb + dir * x;
  const double st = ::sqrt(omt * opt);
  const double sd = -dt * (w * (2.0 * w + dt) / (st + sin_w) + sin_w);
  const double cd = (w + dt) * w + st * sin_w;
  const double x2 = sd * sd;
  const double series = sd * (1.0 + x2 * (1.0 / 6.0 + x2 * (3.0 / 40.0 + x2 * (5.0 / 112.0 + x2 * (35.0 / 1152.0)))));
  // else ig_atan2_rough(sd, cd), branch-free
  const double ax = ::fabs(cd), ay = ::fabs(sd);
  const double mx = ax > ay ? ax : ay, mn = ax > ay ? ay : ax;
  const double q = mx > 0.0 ? mn / mx : 0.0, q2 = q * q;
  double at = q * (0.99997726 +
                   q2 * (-0.33262347 + q2 * (0.19354346 + q2 * (-0.11643287 + q2 * (0.05265332 + q2 * -0.01172120)))));
  at = ay > ax ? 0.5 * kPi - at : at;
  at = cd < 0.0 ? kPi - at : at;
  at = sd < 0.0 ? -at : at;
  return (cd > 0.0 && ay < 0.5) ? series : at;
}

// The panel [end, 0] (dir > 0) or [0, end] (dir < 0): its half width h and sin, cos of its half mid-angle.
HVAE_HD_HOT void ig_lane_panel(double end, double* h, double* sm, double* cm) {
  *h = 0.5 * ::fabs(end);
  fast_sincos_half_pi(0.25 * end, sm, cm);
}
// The two nodes mid -+ h x_j (half angles mid/2 -+ u): the exponent t (without the power when kPow), the base
// sin th / sin th_w of the power (kPow) and |cos th - w|.
template <bool kPow>
HVAE_HD_HOT void ig_lane_nodes(const IgLane& p, double m, double h, double sm, double cm, double xj, double* t,
                               double* base, double* adt) {
  double su, cu;
  ig_sincos_quarter_pi(0.5 * h * xj, &su, &cu);  // |u| <= pi/4
  const double a = sm * cu, b = cm * su, a2 = cm * cu, b2 = sm * su;
  for (int q = 0; q < 2; ++q) {
    const double s = q == 0 ? a - b : a + b, c = q == 0 ? a2 + b2 : a2 - b2;
    const double sd = 2.0 * s * c, cdm1 = -2.0 * s * s;
    const double diff = p.w * cdm1 - p.sin_w * sd;  // cos th - w
    const double y = cdm1 + p.cot_w * sd;           // sin th / sin th_w - 1
    adt[q] = ::fabs(diff);
    if (kPow) {
      base[q] = 1.0 + y;
      t[q] = p.kappa * diff;
    } else {
      t[q] = p.kappa * diff + m * ig_log1p(y);
    }
  }
}
// One node pair's terms of the two sums, e = the integrand's exponential factor at the nodes, weight wj.
HVAE_HD_HOT void ig_lane_add_pair(double wj, double e0, double e1, double adt0, double adt1, double* i0, double* i1) {
  *i0 += wj * (e0 + e1);
  *i1 += wj * (e0 * adt0 + e1 * adt1);
}
// The result from the panel's half width h and the sums: sin th_w (I_1 + |w - A| I_0).
HVAE_HD_HOT double ig_lane_result(double sin_w, double wma, double h, double i0, double i1) {
  return sin_w * h * (i1 + wma * i0);
}
// base^n by repeated squaring (the lanes run the same multiplications in the same order).
HVAE_HD_HOT double ig_lane_pow(double base, int n) {
  double acc = 1.0;
  for (int e = n; e > 0; e >>= 1) {
    if (e & 1) acc *= base;
    if (e > 1) base *= base;
  }
  return acc;
}

}  // namespace detail

// dw/dkappa of one sample to float32 accuracy (the header): the CUDA backward's rule for float32 samples, and
// the CPU lanes' rule sample by sample.
HVAE_HD double vmf_w_dkappa_float32_rule(double omw, double kappa, double d, double A) {
  const double m = d - 2.0;
  bool kpow;
  detail::IgLane p;
  if (!detail::ig_rule_applies(d, &kpow) || !detail::ig_lane_setup(omw, kappa, m, A, kpow, &p))
    return vmf_w_dkappa(omw, kappa, d, A);
  double x = detail::ig_lane_window_start(p, m);
  bool done = false;
  for (int it = 0; it < detail::kIgLanesWindowSteps && !done; ++it) x = detail::ig_lane_window_step(p, m, x, &done);
  double h, sm, cm;
  detail::ig_lane_panel(detail::ig_lane_window_end(p, x), &h, &sm, &cm);
  const int npow = static_cast<int>(m);
  double i0 = 0.0, i1 = 0.0;
  for (int j = 0; j < detail::kIgLanesNodes / 2; ++j) {
    double xj, wj, t[2], base[2], adt[2], e0, e1;
    detail::ig_lanes_node_weight(j, &xj, &wj);
    if (kpow) {
      detail::ig_lane_nodes<true>(p, m, h, sm, cm, xj, t, base, adt);
      e0 = detail::ig_exp(t[0]) * detail::ig_lane_pow(base[0], npow);
      e1 = detail::ig_exp(t[1]) * detail::ig_lane_pow(base[1], npow);
    } else {
      detail::ig_lane_nodes<false>(p, m, h, sm, cm, xj, t, base, adt);
      e0 = detail::ig_exp(t[0]);
      e1 = detail::ig_exp(t[1]);
    }
    detail::ig_lane_add_pair(wj, e0, e1, adt[0], adt[1], &i0, &i1);
  }
  const double res = detail::ig_lane_result(p.sin_w, p.wma, h, i0, i1);
  // a window end rounded onto t = +-1 (NaN) or an overflow: the float64 rule
  return (res >= 0.0 && res < infinity()) ? res : vmf_w_dkappa(omw, kappa, d, A);
}

}  // namespace math
}  // namespace hvae
