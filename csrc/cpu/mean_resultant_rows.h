// A_d(kappa) for many kappa at one d (the CPU backward's per-row A, csrc/cpu/sample_cpu.cpp): the same bits as
// math::vmf_mean_resultant, with the values in bessel.h's region S (the usual VAE range, e.g. kappa < 13.25 at
// d = 16 for a float32 result) summed with the samples as the vector lanes.
//
// The scalar call is a short series whose every step waits on a division and on the stopping test: latency,
// not arithmetic (17% of the float32 backward at d = 16, kappa = 10: benchmarks/results/profile-cpu.txt). Across
// values, the step's divisor depends on the term index and d only, and each lane keeps its sums once its own
// stopping test has passed, so every lane adds the same terms in the same order as the scalar loop.
#pragma once

#include <cstdint>

#include "../math/bessel.h"
#include "fast_normal.h"  // HVAE_VECTOR_CLONES

namespace hvae {
namespace cpu {

constexpr int kMeanResultantLanes = 64;

// I_{mu+1}(x) / I_mu(x) for n <= kMeanResultantLanes values x in region S (x > 0 finite): the loop of
// math::detail::series_log_sum<true>, lane by lane.
HVAE_VECTOR_CLONES
inline void series_ratio_lanes(const double* __restrict x, int n, double mu, double tol, double* __restrict out) {
  double q[kMeanResultantLanes], b[kMeanResultantLanes], sb[kMeanResultantLanes], skb[kMeanResultantLanes];
  double active[kMeanResultantLanes];  // 0 or 1 (a double, so that the loops vectorize)
  const double r = 1.0 / (mu + 1.0);
  for (int l = 0; l < n; ++l) {
    q[l] = 0.25 * x[l] * x[l] * r;
    b[l] = 1.0;
    sb[l] = 0.0;
    skb[l] = 0.0;
    active[l] = 1.0;
  }
  for (int k = 1; k <= math::detail::kMaxSeriesTerms; k += 4) {
    double any = 0.0;
    for (int l = 0; l < n; ++l) {
      const double ql = q[l], q2 = ql * ql, q3 = q2 * ql;
      double bl = b[l], sbl = sb[l], skbl = skb[l];
      const double b3 = math::detail::series_step<true>(k, r, ql, q2, q3, &bl, &sbl, &skbl);
      const bool on = active[l] != 0.0;
      b[l] = on ? bl : b[l];
      sb[l] = on ? sbl : sb[l];
      skb[l] = on ? skbl : skb[l];
      active[l] = (on && !(b3 <= tol * sbl)) ? 1.0 : 0.0;
      any += active[l];
    }
    if (any == 0.0) break;
  }
  for (int l = 0; l < n; ++l) out[l] = math::detail::series_ratio(x[l], r, q[l], sb[l], skb[l]);
}

// out[i] = math::vmf_mean_resultant(kappa[i], d, single) for i < n, bit for bit.
inline void vmf_mean_resultant_rows(const double* kappa, int64_t n, double d, bool single, double* out) {
  const double mu = 0.5 * d - 1.0, tol = math::detail::tolerance(single);
  const bool valid_d = d >= 2.0 && !math::is_inf(d);
  double x[kMeanResultantLanes], res[kMeanResultantLanes];
  int32_t src[kMeanResultantLanes];
  for (int64_t i0 = 0; i0 < n; i0 += kMeanResultantLanes) {
    const int cnt = static_cast<int>(n - i0 < kMeanResultantLanes ? n - i0 : kMeanResultantLanes);
    int m = 0;
    for (int j = 0; j < cnt; ++j) {
      const double k = kappa[i0 + j];
      if (valid_d && k > 0.0 && k < math::infinity() &&
          math::detail::region_of(mu, k, single) == math::detail::kSeries) {
        x[m] = k;
        src[m++] = j;
      } else {
        out[i0 + j] = math::vmf_mean_resultant(k, d, single);
      }
    }
    if (m == 0) continue;
    series_ratio_lanes(x, m, mu, tol, res);
    for (int l = 0; l < m; ++l) out[i0 + src[l]] = res[l];
  }
}

}  // namespace cpu
}  // namespace hvae
