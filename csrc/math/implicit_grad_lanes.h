// dw/dkappa for many samples at once, to float32 accuracy, vectorized across samples (host only).
//
// The rule of implicit_grad_single.h (the integral of vmf_w_dkappa on one window with one Gauss-Legendre
// panel; which samples take it; its accuracy), with the samples of a tile as the vector lanes: each step (the
// setup, the window search, the window ends, every quadrature node) is one loop over the lanes calling the
// per-sample piece of implicit_grad_single.h, which gcc vectorizes, so the per-sample setup that a scalar call
// pays alone (Newton steps, one sincos, the node bookkeeping) is spread over 4 or 8 lanes. The samples the rule
// does not take go to the float64 rule vmf_w_dkappa.
#pragma once

#if !defined(__CUDA_ARCH__)

#include "implicit_grad_single.h"

namespace hvae {
namespace math {
namespace detail {

constexpr int kIgLanes = 64;  // lanes per batch (arrays on the stack)

// The lanes of one batch, structure of arrays: the IgLane fields, the window distance and end, the sample index.
struct IgLanes {
  double w[kIgLanes], omw[kIgLanes], sin_w[kIgLanes], cot_w[kIgLanes], kappa[kIgLanes], wma[kIgLanes];
  double tb[kIgLanes], omtb[kIgLanes], optb[kIgLanes], dtoff[kIgLanes], dir[kIgLanes], inv_b[kIgLanes];
  double x[kIgLanes], end[kIgLanes];
  int32_t src[kIgLanes];  // the sample index
  int n = 0;
};
HVAE_ALWAYS_INLINE IgLane ig_lanes_get(const IgLanes& L, int k) {
  return IgLane{L.w[k],  L.omw[k],  L.sin_w[k], L.cot_w[k], L.kappa[k], L.wma[k],
                L.tb[k], L.omtb[k], L.optb[k],  L.dtoff[k], L.dir[k],   L.inv_b[k]};
}
HVAE_ALWAYS_INLINE void ig_lanes_put(IgLanes& L, int k, const IgLane& p) {
  L.w[k] = p.w;
  L.omw[k] = p.omw;
  L.sin_w[k] = p.sin_w;
  L.cot_w[k] = p.cot_w;
  L.kappa[k] = p.kappa;
  L.wma[k] = p.wma;
  L.tb[k] = p.tb;
  L.omtb[k] = p.omtb;
  L.optb[k] = p.optb;
  L.dtoff[k] = p.dtoff;
  L.dir[k] = p.dir;
  L.inv_b[k] = p.inv_b;
}

// ig_lane_setup of samples 0 .. n-1 into lanes 0 .. n-1 of L; ok[k] = 1 or 0 (a double: the loop vectorizes).
HVAE_ALWAYS_INLINE void ig_lanes_setup_all(const double* __restrict omw, const double* __restrict kappa,
                                           const double* __restrict A, int n, double m, bool kpow, IgLanes& L,
                                           double* __restrict ok) {
  for (int k = 0; k < n; ++k) {
    IgLane p;
    ok[k] = ig_lane_setup(omw[k], kappa[k], m, A[k], kpow, &p) ? 1.0 : 0.0;
    ig_lanes_put(L, k, p);
  }
}

// The window search over the lanes, every lane stepping until all have converged (a converged lane's x no
// longer changes, so each lane ends where vmf_w_dkappa_float32_rule's loop ends).
HVAE_ALWAYS_INLINE void ig_lanes_window(IgLanes& L, double m) {
  const int n = L.n;
  double done[kIgLanes];  // 0 or 1 (a double, so that the loops vectorize)
  for (int k = 0; k < n; ++k) {
    L.x[k] = ig_lane_window_start(ig_lanes_get(L, k), m);
    done[k] = 0.0;
  }
  for (int it = 0; it < kIgLanesWindowSteps; ++it) {
    double active = 0.0;
    for (int k = 0; k < n; ++k) {
      bool dk = done[k] != 0.0;
      L.x[k] = ig_lane_window_step(ig_lanes_get(L, k), m, L.x[k], &dk);
      done[k] = dk ? 1.0 : 0.0;
      active += 1.0 - done[k];
    }
    if (active == 0.0) break;
  }
}

// The window ends over the lanes.
HVAE_ALWAYS_INLINE void ig_lanes_window_delta(IgLanes& L) {
  for (int k = 0; k < L.n; ++k) L.end[k] = ig_lane_window_end(ig_lanes_get(L, k), L.x[k]);
}

// The panel of every lane and the result sin th_w (I_1 + |w - A| I_0). kPow: e^{(d-2) log(sin th / sin th_w)}
// by repeated squaring, the squarings as loops over the lanes.
template <bool kPow>
HVAE_ALWAYS_INLINE void ig_lanes_quadrature_impl(const IgLanes& L, double m, double* out) {
  const int n = L.n;
  const int npow = static_cast<int>(m);
  double hh[kIgLanes], sm[kIgLanes], cm[kIgLanes], i0[kIgLanes], i1[kIgLanes];
  for (int k = 0; k < n; ++k) {
    ig_lane_panel(L.end[k], &hh[k], &sm[k], &cm[k]);
    i0[k] = 0.0;
    i1[k] = 0.0;
  }
  for (int j = 0; j < kIgLanesNodes / 2; ++j) {
    double xj, wj;
    ig_lanes_node_weight(j, &xj, &wj);
    double base[2][kIgLanes], acc[2][kIgLanes], t[2][kIgLanes], adt[2][kIgLanes];
    for (int k = 0; k < n; ++k) {
      double tk[2], bk[2], ak[2];
      ig_lane_nodes<kPow>(ig_lanes_get(L, k), m, hh[k], sm[k], cm[k], xj, tk, bk, ak);
      for (int q = 0; q < 2; ++q) {
        t[q][k] = tk[q];
        adt[q][k] = ak[q];
        base[q][k] = kPow ? bk[q] : 0.0;
        acc[q][k] = 1.0;
      }
    }
    if (kPow) {  // ig_lane_pow, lane by lane
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
      double e0 = ig_exp(t[0][k]), e1 = ig_exp(t[1][k]);
      if (kPow) {
        e0 *= acc[0][k];
        e1 *= acc[1][k];
      }
      ig_lane_add_pair(wj, e0, e1, adt[0][k], adt[1][k], &i0[k], &i1[k]);
    }
  }
  for (int k = 0; k < n; ++k) out[k] = ig_lane_result(L.sin_w[k], L.wma[k], hh[k], i0[k], i1[k]);
}
// One batch of cnt <= kIgLanes samples: the setup of every sample, the samples that may run in the lanes moved
// to the front (none moves in the usual batch, where all may), then the three steps. Returns the number of
// lanes run: res[k] is the result of sample L.src[k]; the other samples are the caller's (scalar path).
HVAE_ALWAYS_INLINE int ig_lanes_batch_impl(const double* omw, const double* kappa, const double* A, int cnt, double m,
                                           bool pow, IgLanes& L, double* res) {
  double ok[kIgLanes];
  ig_lanes_setup_all(omw, kappa, A, cnt, m, pow, L, ok);
  int n = 0;
  for (int k = 0; k < cnt; ++k) {
    if (ok[k] == 0.0) continue;
    if (n != k) ig_lanes_put(L, n, ig_lanes_get(L, k));
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
#define HVAE_IG_LANES_BATCH(NAME, ATTR)                                                                      \
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

// dw/dkappa for n samples of one dimension d to float32 accuracy: out[i] = vmf_w_dkappa_float32_rule(omw[i],
// kappa[i], d, A[i]) up to the rounding of the vectorized arithmetic (fused multiply-adds), for callers that
// round the result to float32.
inline void vmf_w_dkappa_single(const double* omw, const double* kappa, const double* A, int64_t n, double d,
                                double* out) {
  const double m = d - 2.0;
  bool kpow;
  if (!detail::ig_rule_applies(d, &kpow)) {
    for (int64_t i = 0; i < n; ++i) out[i] = vmf_w_dkappa(omw[i], kappa[i], d, A[i]);
    return;
  }
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
