// The inverse of the mean resultant length: kappa with A_d(kappa) = r, the maximum-likelihood
// concentration of a von Mises-Fisher fit with mean resultant length r (Banerjee et al. 2005; Sra 2012).
//
//   vmf_mean_resultant_inverse(r, d)                 kappa = A_d^{-1}(r),  0 <= r < 1, d >= 2
//   vmf_mean_resultant_inverse_dr(kappa, r, d)       d kappa / d r = 1 / A_d'(kappa)
//
// Method. A_d is increasing and concave on [0, inf) with A_d(0) = 0, so h(kappa) = kappa A_d'/A_d lies in
// (0, 1], and the Riccati equation A_d' = 1 - A_d^2 - (d - 1) A_d / kappa (DLMF 10.29.2) gives
//     G(kappa) = kappa (1 - A_d^2) / A_d = d - 1 + h(kappa)  in  (d - 1, d].
// The root therefore satisfies kappa = r G(kappa) / (1 - r^2), which brackets it in
//     [r (d - 1) / (1 - r^2),  r d / (1 - r^2)]        (relative width 1 / (d - 1))
// and suggests iterating on the well-scaled function
//     F(kappa) = kappa - r G(kappa) / (1 - r^2) = kappa (A - r)(1 + r A) / (A (1 - r^2)),   A = A_d(kappa),
// which has the sign of A - r, vanishes at the root and has slope F' = 1 + rho there with
// rho = -kappa G'/G in [0, 1): F is close to the identity minus a constant in every regime (kappa << d,
// kappa ~ d, kappa >> d), unlike A - r, whose slope A' ~ (d - 1) / (2 kappa^2) vanishes as kappa grows.
// The second form of F has no cancellation beyond A - r itself.
//
// Newton's method on F, safeguarded by the bracket (a step that leaves it bisects it), from the start
//     kappa_0 = r (alpha + sqrt(r^2 alpha^2 + (1 - r^2) beta^2)) / (1 - r^2),
//     alpha = (d - 1)/2,  beta^2 = (d^2 - 1)/4 + (1 - r^2) (d + 1)/2,
// the inverse of A ~ kappa / (alpha + sqrt(kappa^2 + beta^2)), the form of Amos's (1974) bounds (beta =
// nu + 1/2 and nu + 3/2, nu = d/2 - 1); beta^2 moves from (nu + 3/2)^2 as r -> 0, where A_d ~ kappa / d,
// to (nu + 1/2)(nu + 3/2) as r -> 1, where it matches A_d to O(kappa^-2). Measured: within 1.8% of the
// root for d = 2, 0.33% for d = 16, 6e-7 for d = 1e5 (r in [1e-8, 1 - 1e-10]). The slope is
//     F'(kappa) = kappa A'(1 + r A) / (A (1 - r^2)) + (A - r) d/dkappa[kappa (1 + rA) / (A (1 - r^2))],
// evaluated as kappa A' (1 + r A) / (A (1 - r^2)) (exact at the root) with A' from the Riccati equation.
// Where that formula cancels (kappa >> d: 1 - A^2 and (d - 1) A / kappa agree to many digits) its
// value is replaced by 1 + 1/(2 kappa), the large-kappa limit of F' (rho ~ 1/(2 kappa)), whichever has
// the smaller error bound (fit_slope); both are clamped to [1, 2]. Newton then converges quadratically
// (linearly, at the small rate F'/s - 1, where the limit is used); iteration stops after a step below 1e-9 kappa
// (1e-6 for float32 results), the next error being below ~1e-17 (1e-11), or when the bracket has
// shrunk to 4e-16 kappa, or after kFitMaxIterations.
//
// Accuracy. r carries no error of its own, but A_d(kappa) is only known to ~1e-16 relative, so kappa is
// determined to ~1e-16 c, c = r / (kappa A_d'(kappa)) the condition number of the problem (1 for
// kappa << d, about 1 / (1 - r) for kappa >> d). Measured against 50-digit mpmath roots in
// tests/unit/distributions/test_fit.py.
//
// dkappa/dr. From F(kappa; r) = 0 at the root, d kappa / d r = 1 / A'(kappa) =
// kappa (1 + r^2) / (r (1 - r^2) F'(kappa)), with the same F' as above. Its relative error is that of
// F': ~4.4e-16 kappa^2 / d where the Riccati formula for A' is used (the cancellation every A_d' of this
// library has for kappa >> d) and at most ~1e-8 where the two evaluations of F' meet (measured in
// tests/unit/distributions/test_fit.py). At r = 0 (kappa = 0) it is d.
//
// Special values: r = 0 gives 0; r < 0, r >= 1, NaN r, d < 2 or infinite d give NaN (as torch.special).
//
// References
//   A. Banerjee, I. S. Dhillon, J. Ghosh, S. Sra, Clustering on the unit hypersphere using von Mises-Fisher
//     distributions, JMLR 6 (2005) 1345-1382: kappa ~ r (d - r^2) / (1 - r^2).
//   S. Sra, A short note on parameter approximation for von Mises-Fisher distributions, Comput. Stat. 27
//     (2012) 177-190: Newton steps on A_d(kappa) - r from Banerjee's value.
//   D. E. Amos, Computation of modified Bessel functions and their ratios, Math. Comp. 28 (1974) 239-251.
#pragma once

#include "bessel.h"
#include "common.h"

namespace hvae {
namespace math {

namespace detail {

constexpr int kFitMaxIterations = 40;

// F'(kappa) of the header comment, in [1, 2], from A = A_d(kappa) (a > 0, kappa > 0) and one_minus_r2 = 1 - r^2.
HVAE_HD double fit_slope(double kappa, double a, double r, double d, double one_minus_r2) {
  const double t1 = (1.0 - a) * (1.0 + a);
  const double t2 = (d - 1.0) * a / kappa;
  const double a_prime = t1 - t2;
  double s;
  // t1 and t2 carry absolute errors of ~2e-16 (a + t2) (A to ~1e-16 relative), so the formula's relative
  // error is e_formula ~ 4.4e-16 (a + t2) / A'. For kappa >> d, rho = F' - 1 = (1 + e) / (2 kappa) with
  // |e| <= 1/kappa + 0.4 (d / kappa)^2 (measured against mpmath for d in [2, 1e5], kappa >= 10 d). The
  // evaluation with the smaller error bound is taken: the formula up to kappa ~ 7e3 d^(3/5), then the limit.
  const double inv_k = 1.0 / kappa, dk = d * inv_k;
  const double e_asym = (kappa > 10.0 * d) ? 0.5 * inv_k * (inv_k + 0.4 * dk * dk) : infinity();
  if (a_prime > 0.0 && 4.4e-16 * (a + t2) <= e_asym * a_prime) {
    s = kappa * a_prime * (1.0 + r * a) / (a * one_minus_r2);
  } else {
    s = 1.0 + 0.5 * inv_k;
  }
  return s < 1.0 ? 1.0 : (s > 2.0 ? 2.0 : s);
}

}  // namespace detail

// kappa = A_d^{-1}(r) for 0 <= r < 1, d >= 2 (NaN elsewhere); see the header comment.
HVAE_HD double vmf_mean_resultant_inverse(double r, double d, bool single = false) {
  if (!(r >= 0.0) || !(r < 1.0) || !(d >= 2.0) || is_inf(d)) return quiet_nan();
  if (r == 0.0) return 0.0;
  const double one_minus_r2 = (1.0 - r) * (1.0 + r);  // 1 - r exact for r >= 1/2 (Sterbenz)
  const double scale = r / one_minus_r2;
  // The bracket, widened by a few roundings: for kappa << d the root is within ~kappa^2 / d^2 of hi.
  double lo = scale * (d - 1.0) * (1.0 - 1e-15), hi = scale * d * (1.0 + 1e-15);
  const double alpha = 0.5 * (d - 1.0);
  const double beta2 = 0.25 * (d - 1.0) * (d + 1.0) + one_minus_r2 * 0.5 * (d + 1.0);
  double kappa = scale * (alpha + ::sqrt(r * r * alpha * alpha + one_minus_r2 * beta2));
  if (!(kappa > lo && kappa < hi)) kappa = 0.5 * (lo + hi);
  if (!(lo > 0.0)) lo = 0.0;  // d = 2 rounding, or underflow for tiny r
  const double stop = single ? 1e-6 : 1e-9;
  for (int it = 0; it < detail::kFitMaxIterations; ++it) {
    const double a = vmf_mean_resultant(kappa, d, single);
    if (a == r) return kappa;
    if (!(a > 0.0)) return kappa;  // kappa underflowed (r below ~1e-308 d); A_d(kappa) ~ kappa / d
    const double f = kappa * ((a - r) * (1.0 + r * a)) / (a * one_minus_r2);
    if (f < 0.0) {
      lo = kappa;
    } else {
      hi = kappa;
    }
    const double step = f / detail::fit_slope(kappa, a, r, d, one_minus_r2);
    double next = kappa - step;
    if (!(next >= lo && next <= hi)) next = 0.5 * (lo + hi);
    const double change = ::fabs(next - kappa);
    kappa = next;
    if (change <= stop * kappa || hi - lo <= 4e-16 * kappa) break;
  }
  return kappa;
}

// d kappa / d r at the root kappa = A_d^{-1}(r), = 1 / A_d'(kappa) (d at r = 0); NaN where kappa is NaN.
HVAE_HD double vmf_mean_resultant_inverse_dr(double kappa, double r, double d, bool single = false) {
  if (is_nan(kappa) || is_nan(r) || !(d >= 2.0) || is_inf(d)) return quiet_nan();
  if (r == 0.0 || kappa == 0.0) return d;
  const double one_minus_r2 = (1.0 - r) * (1.0 + r);
  const double a = vmf_mean_resultant(kappa, d, single);
  const double s = detail::fit_slope(kappa, a, r, d, one_minus_r2);
  return kappa * (1.0 + r * r) / (r * one_minus_r2 * s);
}

}  // namespace math
}  // namespace hvae
