// Closed forms of the von Mises-Fisher distribution built on the Bessel functions of bessel.h.
//
//   log |S^{d-1}| = log 2 + (d/2) log pi - lgamma(d/2)                      (surface area of the unit sphere in R^d)
//   H(kappa) = -log C_d(kappa) - kappa A_d(kappa)                            (entropy)
//   KL(vMF(mu, kappa) || U(S^{d-1})) = log C_d(kappa) + kappa A_d(kappa) + log |S^{d-1}| = log |S^{d-1}| - H
//                                    = kappa A_d(kappa) - log 0F1(; d/2; kappa^2 / 4)
//   KL(vMF(mu_p, k_p) || vMF(mu_q, k_q)) = log C_d(k_p) + k_p A_d(k_p) - log C_d(k_q) - k_q A_d(k_p) mu_q^T mu_p
// The 0F1 form follows from I_v(x) = (x/2)^v / Gamma(v+1) 0F1(; v+1; x^2/4) (DLMF 10.25.2) and is used
// where kappa^2 is small against d: there the first form is a difference of two nearly equal numbers of
// size log |S^{d-1}| (~ d log d), while the KL itself is ~ kappa^2 / (2d).
//
// Large kappa. -log C_d and kappa A_d are both ~kappa there and cancel in H and in the KLs (the direct
// formulas lose kappa * eps absolutely: 2e-4 at kappa = 1e12). In the large-argument regions of bessel.h
// (H: Hankel, kappa >= max(20, 0.64 mu^2) for mu = d/2 - 1 < 32; D: Olver's expansion, mu >= 32) the two
// pieces are therefore computed without forming kappa:
//   g(kappa) = -log C_d(kappa) - kappa = (d/2) log 2 pi - mu log kappa + (log I_mu(kappa) - kappa)
//     H: g = ((d-1)/2) log 2 pi - (mu + 1/2) log kappa + log T                          (DLMF 10.40.1)
//     D: g = (d/2) log 2 pi + mu / (s + z) - mu log(mu (1 + s)) - log(2 pi mu)/2 - log(s)/2 + log sum U_k / mu^k
//        (z = kappa/mu, s = sqrt(1 + z^2); mu eta - kappa = mu (s - z) + mu log(z / (1 + s)), s - z = 1/(s + z))
//   t(kappa) = kappa (1 - A_d(kappa)), from 1 - A_d summed without cancellation (bessel.h, regions H and D),
// so that H = g + t, KL(vMF || U) = log |S^{d-1}| - g - t and KL(vMF || vMF) = (g_q - g_p) + (k_q - k_p)/k_p t_p
// + k_q A_p (1 - mu_q^T mu_p), with g_q - g_p itself formed from differences (log1p) where both lie in one
// region. f = log 0F1(; d/2; kappa^2/4) = -log C_d - log |S^{d-1}| is the other useful piece: KL(vMF || U) =
// kappa A_d - f, and KL(vMF || vMF) = (f_q - f_p) - A_p (k_q - k_p) + k_q A_p (1 - mu_q^T mu_p), which is used
// where its terms are smaller than those of the g form (small kappa against d, where g ~ d log d). In region D
//   f = mu (s - 1) - mu log((1 + s)/2) + sigma(mu) - log(s)/2 + log sum U_k / mu^k        (Olver's form),
// sigma(mu) = lgamma(mu + 1) - (mu + 1/2) log mu + mu - log(2 pi)/2 (Stirling's series), where nothing of
// size mu log mu cancels; in region S, f is the log of the series itself.
// The kappa-derivatives need kappa A_d' = kappa (1 - A^2) - (d - 1) A ~ (d - 1)/(2 kappa), whose direct form
// cancels two terms of size d; see kappa_mean_resultant_derivative.
// Accuracy against 50-digit mpmath references (tests/unit/distributions/test_entropy_kl_accuracy.py, d in [2, 1e5],
// kappa in [0.1, 1e12]): entropy 4e-16, KL(vMF || U) 2e-14, KL(vMF || vMF) 9e-14 (relative to max(1, |value|)), kappa
// A_d' 4e-11 (relative). The second derivatives A_d'' and D' = (kappa A_d')' of the double backward have expansions of
// their own (below; measured against 60-digit references for d in [2, 1e5], kappa in [0, 1e12]:
// docs/second_derivative_accuracy.md).
#pragma once

#include "bessel.h"
#include "common.h"

namespace hvae {
namespace math {

// log |S^{d-1}| (the one definition is bessel.h's minus_log_sphere_area)
HVAE_HD double log_sphere_area(double d) { return -detail::minus_log_sphere_area(d); }

namespace detail {

// lgamma(nu + 1) - (nu + 1/2) log nu + nu - log(2 pi)/2 (Stirling's series, DLMF 5.11.1), nu >= 32:
// the next term 691 / (360360 nu^11) is below 2e-20.
HVAE_HD double stirling_remainder(double nu) {
  const double r = 1.0 / nu, r2 = r * r;
  return r * (1.0 / 12.0 + r2 * (-1.0 / 360.0 + r2 * (1.0 / 1260.0 + r2 * (-1.0 / 1680.0 + r2 * (1.0 / 1188.0)))));
}

// The large-kappa pieces of the comment at the top, for finite kappa > 0 and d >= 2.
struct VmfParts {
  int region;  // the region of bessel.h (kHankel and kDebye: g and t without cancellation)
  double g;    // -log C_d(kappa) - kappa
  double t;    // kappa (1 - A_d(kappa))
  double a;    // A_d(kappa)
  double eps;  // 1 - A_d(kappa)
  double u;    // t - (d - 1)/2 (regions H and D; there without cancellation)
  double f;    // log 0F1(; d/2; kappa^2/4) = -log C_d(kappa) - log |S^{d-1}|
  // region D: z = kappa/mu, s = sqrt(1 + z^2), log sum U_k/mu^k; region H: log T
  double z, s, log_sum;
};

HVAE_HD VmfParts vmf_parts(double kappa, double d) {
  const double mu = 0.5 * d - 1.0;
  VmfParts out;
  out.region = region_of(mu, kappa, false);
  out.z = out.s = out.log_sum = 0.0;
  if (out.region == kHankel) {
    out.log_sum = hankel_log_sum<true>(mu, kappa, tolerance(false), &out.a, &out.u);
    out.g = 0.5 * (d - 1.0) * kLog2Pi - (mu + 0.5) * ::log(kappa) + out.log_sum;
    out.t = (mu + 0.5) + out.u;
    out.eps = out.t / kappa;
    out.f = out.g + kappa + minus_log_sphere_area(d);  // d < 66: |log |S^{d-1}|| < 33
  } else if (out.region == kDebye) {
    const Debye db = debye<true>(mu, kappa, false);
    const double log_mu = ::log(mu);
    out.a = db.ratio;
    out.z = db.z;
    out.s = db.s;
    out.log_sum = db.log_sum;
    out.g = 0.5 * d * kLog2Pi + mu / (db.s + db.z) - mu * (::log1p(db.s) + log_mu) - 0.5 * (kLog2Pi + log_mu) -
            0.5 * db.log_s + db.log_sum;
    out.eps = db.one_minus_ratio;
    out.t = kappa * db.one_minus_ratio;
    out.u = db.u;
    if (db.z < 1e150) {
      const double z2 = db.z * db.z;
      out.f = mu * z2 / (db.s + 1.0) - mu * ::log1p(z2 / (2.0 * (db.s + 1.0))) + stirling_remainder(mu) -
              0.5 * db.log_s + db.log_sum;
    } else {
      out.f = out.g + kappa + minus_log_sphere_area(d);
    }
  } else if (out.region == kSeries) {
    // log C_d = -log |S^{d-1}| - log S with S = 0F1(; d/2; kappa^2/4) the series; kappa <= 48 or kappa^2/4 <= d/2
    out.f = series_log_sum<true>(mu, kappa, tolerance(false), &out.a);
    out.g = (out.f - minus_log_sphere_area(d)) - kappa;
    out.eps = 1.0 - out.a;
    out.t = kappa * out.eps;
    out.u = out.t - (mu + 0.5);
  } else {
    // Region R (d < 66, kappa <= 615): the direct forms lose at most ~kappa eps.
    const double log_c = vmf_log_normalizer_impl<true>(kappa, d, false, &out.a);
    out.g = -log_c - kappa;
    out.eps = 1.0 - out.a;
    out.t = kappa * out.eps;
    out.u = out.t - (mu + 0.5);
    out.f = -log_c + minus_log_sphere_area(d);
  }
  return out;
}

// log(y / x) for x, y > 0 from diff = y - x (accurate to a few ulps): log1p(diff / x) where y / x is in
// [1/2, 2] (there the difference is what carries the information), log(y / x) elsewhere (log1p near -1 would
// amplify the rounding of diff / x).
HVAE_HD double log_ratio(double x, double y, double diff) {
  return (y <= 2.0 * x && x <= 2.0 * y) ? ::log1p(diff / x) : ::log(y / x);
}

// kappa A_d'(kappa) = kappa (1 - A^2) - (d - 1) A = kappa Var[w] from the parts: with eps = 1 - A and
// u = kappa eps - (d - 1)/2, it equals 2u + eps ((d - 1)/2 - u), used in region H and in D for z > 1. (The
// first form is a difference of two terms of size d that leaves (d - 1) / (2 kappa): its absolute error
// d * eps is a relative error kappa * eps, 1e-4 at kappa = 1e12. The second keeps ~(d/2) eps relative.)
HVAE_HD double kappa_mean_resultant_derivative(double kappa, double d, const VmfParts& p) {
  if (p.region == kHankel || (p.region == kDebye && p.z > 1.0)) return 2.0 * p.u + p.eps * ((0.5 * d - 0.5) - p.u);
  return kappa * (1.0 - p.a * p.a) - (d - 1.0) * p.a;
}

// g(k_q) - g(k_p) (g = -log C_d - kappa), by differences of the slowly varying pieces where both lie in
// region H or both in D, so that it has a small absolute error when k_q is close to k_p.
HVAE_HD double vmf_g_difference(double kp, double kq, double d, const VmfParts& p, const VmfParts& q) {
  if (kp == kq) return 0.0;
  const double mu = 0.5 * d - 1.0;
  if (p.region == kHankel && q.region == kHankel) {
    // k_q - k_p is exact within a factor 2 (Sterbenz)
    return -(mu + 0.5) * log_ratio(kp, kq, kq - kp) + (q.log_sum - p.log_sum);
  }
  if (p.region == kSeries && q.region == kSeries) {
    return (q.f - p.f) - (kq - kp);  // g = f + log |S^{d-1}| - kappa
  }
  if (p.region == kDebye && q.region == kDebye) {
    // g = const + mu / (s + z) - mu log(1 + s) - log(s)/2 + log sum; with dz = z_q - z_p,
    // s_q - s_p = dz (z_q + z_p) / (s_q + s_p).
    const double dz = (kq - kp) / mu;
    const double ds = dz * (q.z + p.z) / (q.s + p.s);
    const double d_inv = -(ds + dz) / ((q.s + q.z) * (p.s + p.z));  // 1/(s_q + z_q) - 1/(s_p + z_p)
    return mu * d_inv - mu * log_ratio(1.0 + p.s, 1.0 + q.s, ds) - 0.5 * log_ratio(p.s, q.s, ds) +
           (q.log_sum - p.log_sum);
  }
  return q.g - p.g;
}

}  // namespace detail

// Entropy H = -log C_d(kappa) - kappa A_d(kappa) of vMF(mu, kappa) on S^{d-1}, d >= 2, kappa >= 0.
HVAE_HD double vmf_entropy(double kappa, double d) {
  if (!(kappa >= 0.0) || !(d >= 2.0) || is_inf(d)) return quiet_nan();
  if (kappa == 0.0) return -detail::minus_log_sphere_area(d);
  if (is_inf(kappa)) return -infinity();
  const detail::VmfParts p = detail::vmf_parts(kappa, d);
  if (p.region == detail::kHankel || p.region == detail::kDebye) return p.g + p.t;
  double a;
  const double log_c = vmf_log_normalizer_and_mean_resultant(kappa, d, &a);
  return -log_c - kappa * a;
}

// KL(vMF(mu_p, kp) || vMF(mu_q, kq)) from kp, kq > 0 and one_minus_cos = 1 - mu_q^T mu_p (in [0, 2]).
HVAE_HD double vmf_kl_vmf(double kp, double kq, double one_minus_cos, double d) {
  if (!(kp >= 0.0) || !(kq >= 0.0) || !(d >= 2.0) || is_inf(d) || is_nan(one_minus_cos)) return quiet_nan();
  if (is_inf(kp) || is_inf(kq)) return quiet_nan();
  if (kp == 0.0) {
    // KL(U || vMF(kq)) = -log C_d(kq) - log |S^{d-1}|
    return -vmf_log_normalizer(kq, d) + detail::minus_log_sphere_area(d);
  }
  const detail::VmfParts p = detail::vmf_parts(kp, d);
  if (kq == 0.0) return -detail::minus_log_sphere_area(d) - p.g - p.t;  // log|S| - H_p
  const detail::VmfParts q = detail::vmf_parts(kq, d);
  // -H_p - log C(kq) - kq A_p (1 - omc) = (g_q - g_p) + (kq - kp)/kp t_p + kq A_p omc      (g form)
  //                                      = (f_q - f_p) - A_p (kq - kp) + kq A_p omc          (f form)
  // The g form cancels nothing of size kappa; where both concentrations lie in region H or both in D (or
  // both in S) g_q - g_p is itself a sum of differences. Otherwise the form whose terms are smaller is used
  // (f where one concentration is small against d and the other not huge: there g ~ log |S^{d-1}| ~ d log d).
  const double dk = kq - kp;
  const double rest = kq * p.a * one_minus_cos;
  const bool same = p.region == q.region && p.region != detail::kRecurrence;
  const double g_terms = ::fabs(q.g) + ::fabs(p.g) + ::fabs((dk / kp) * p.t);
  const double f_terms = ::fabs(q.f) + ::fabs(p.f) + ::fabs(p.a * dk);
  if (same || g_terms <= f_terms) return detail::vmf_g_difference(kp, kq, d, p, q) + (dk / kp) * p.t + rest;
  return (q.f - p.f) - p.a * dk + rest;
}

// KL(vMF || U) and, in *dkappa, its derivative kappa A_d'(kappa) = kappa (1 - A^2) - (d - 1) A, from one
// evaluation of A (and of log C_d where it is needed).
HVAE_HD double vmf_kl_uniform_and_dkappa(double kappa, double d, double* dkappa) {
  if (!(kappa >= 0.0) || !(d >= 2.0)) {
    *dkappa = quiet_nan();
    return quiet_nan();
  }
  if (kappa == 0.0) {
    *dkappa = 0.0;
    return 0.0;
  }
  if (is_inf(kappa)) {
    *dkappa = 0.0;  // kappa A_d' ~ (d - 1) / (2 kappa)
    return infinity();
  }
  const double q = 0.25 * kappa * kappa;  // argument of 0F1(; d/2; q)
  double a, kl;
  if (q <= 4.0 * d) {
    // log 0F1 = log1p(sum_{k>=1} q^k / (k! (d/2)_k)); term ratio q / (k (d/2 + k - 1)) <= 8 / k.
    a = vmf_mean_resultant(kappa, d);
    double term = 1.0, sum = 0.0;
    for (int k = 1; k <= 200; ++k) {
      term *= q / (k * (0.5 * d + k - 1.0));
      sum += term;
      if (term < 1e-17 * sum) break;
    }
    kl = kappa * a - ::log1p(sum);
    *dkappa = kappa * (1.0 - a * a) - (d - 1.0) * a;
  } else {
    const detail::VmfParts p = detail::vmf_parts(kappa, d);
    a = p.a;
    if (p.region == detail::kDebye && p.z <= 1.0) {
      kl = kappa * a - p.f;
    } else if (p.region == detail::kHankel || p.region == detail::kDebye) {
      kl = (-detail::minus_log_sphere_area(d) - p.g) - p.t;
    } else {
      kl = vmf_log_normalizer_and_mean_resultant(kappa, d, &a) + kappa * a + log_sphere_area(d);
    }
    *dkappa = detail::kappa_mean_resultant_derivative(kappa, d, p);
  }
  return kl;
}

HVAE_HD double vmf_kl_uniform(double kappa, double d) {
  double dkappa;
  return vmf_kl_uniform_and_dkappa(kappa, d, &dkappa);
}

// d/dkappa KL(vMF || U) = kappa A_d'(kappa) = kappa (1 - A^2) - (d - 1) A.
// Accurate also at large kappa (see detail::kappa_mean_resultant_derivative).
HVAE_HD double vmf_kl_uniform_dkappa(double kappa, double d) {
  if (!(kappa >= 0.0) || !(d >= 2.0) || is_inf(d)) return quiet_nan();
  if (kappa == 0.0 || is_inf(kappa)) return 0.0;
  return detail::kappa_mean_resultant_derivative(kappa, d, detail::vmf_parts(kappa, d));
}

// A_d'(kappa) = 1 - A^2 - (d - 1) A / kappa = Var[w], accurate also at large kappa; 1/d at kappa = 0.
HVAE_HD double vmf_mean_resultant_derivative(double kappa, double d) {
  if (!(kappa >= 0.0) || !(d >= 2.0) || is_inf(d)) return quiet_nan();
  if (kappa == 0.0) return 1.0 / d;
  if (is_inf(kappa)) return 0.0;
  return detail::kappa_mean_resultant_derivative(kappa, d, detail::vmf_parts(kappa, d)) / kappa;
}

namespace detail {

// ---- Second derivatives: A_d''(kappa) and D'(kappa), D = kappa A_d'(kappa) --------------------------------
// The Riccati forms A' = 1 - A^2 - (d - 1) A / kappa and its derivative
//   A'' = -2 A A' - (d - 1) (A' / kappa - A / kappa^2),    D' = A' + kappa A''
// cancel: at small kappa A'' ~ -6 kappa / (d^2 (d + 2)) is left from terms of size 1/d (a wrong sign at d = 64,
// kappa = 6e-6), at large kappa D' ~ -(d - 1) / (2 kappa^2) from terms ~kappa times larger (47 % off at
// d = 257, kappa = 9.6e8). Each regime below sums A'' and D' from an expansion of its own instead, in which the
// terms have the size of the result (mu = d/2 - 1, c = (d - 1)/2; measured accuracy against 60-digit mpmath in
// tests/unit/test_second_derivatives.py and docs/second_derivative_accuracy.md):
//  T. kappa^2 <= rho J (all d): the Taylor series of A_d in kappa;
//  C. mu < 32, beyond T and below region H of bessel.h: the cumulants of the power series of I_mu;
//  H. mu < 32, kappa >= max(20, 0.64 mu^2) (region H of bessel.h): Hankel's expansion in y = 1/kappa;
//  D. mu >= 32 beyond T: Olver's uniform expansion in z = kappa/mu, differentiated in z.

// T. A_d(kappa) = sum_{n>=0} a_n kappa^{2n+1}; the Riccati equation gives a_0 = 1/d and
//   a_n = -sum_{i+j=n-1} a_i a_j / (d + 2n)
// (the coefficient of kappa^{2n} in A' + (d - 1) A / kappa = 1 - A^2). By the Mittag-Leffler expansion
// A_d(kappa) = sum_k 2 kappa / (kappa^2 + j_k^2) over the positive zeros j_k of J_mu (Watson, A Treatise on the
// Theory of Bessel Functions, 15.41), a_n = 2 (-1)^n sigma_{n+1} with the Rayleigh sums sigma_m = sum_k j_k^{-2m}
// (Watson 15.51), so the series alternates and |a_n| kappa^{2n} <= a_0 (kappa^2 / j_1^2)^n. With the lower bound
// J = max(4 (mu + 1), mu (mu + 2)) < j_1^2 (sigma_1 = 1 / (4 (mu + 1)); Watson 15.3) and kappa^2 <= rho J,
// the terms of A'' = sum 2n (2n+1) a_n kappa^{2n-1} and D' = sum (2n+1)^2 a_n kappa^{2n} fall by factors
// 20 rho / 6 and 9 rho at least, so with rho = 1/10 the sums keep at least 2/3 (A'') and 1/10 (D') of their
// first term (D' vanishes only beyond T), and 22 terms reach 1e-17 of it. The coefficients are carried as
// h_n = a_n kappa^{2n-2} (n >= 1), so that nothing underflows for tiny kappa:
//   A'' = kappa sum 2n (2n+1) h_n,   D' = 1/d + kappa^2 sum (2n+1)^2 h_n.
constexpr double kTaylorRho = 0.1;
constexpr int kTaylorTerms = 24;

HVAE_HD double taylor_bound_sq(double mu) {  // J = max(4 (mu + 1), mu (mu + 2)) < j_{mu,1}^2
  const double a = 4.0 * (mu + 1.0), b = mu * (mu + 2.0);
  return a > b ? a : b;
}

HVAE_HD void second_derivatives_taylor(double kappa, double d, double* a2, double* dprime) {
  const double k2 = kappa * kappa;
  double e[kTaylorTerms];  // e_n = a_n kappa^{2n}
  e[0] = 1.0 / d;
  double sum_a2 = 0.0, sum_dp = 0.0;
  for (int n = 1; n < kTaylorTerms; ++n) {
    double conv = 0.0;  // sum_{i+j=n-1} e_i e_j: all of one sign
    for (int i = 0, j = n - 1; i <= j; ++i, --j) conv += (i == j ? 1.0 : 2.0) * (e[i] * e[j]);
    const double h = -conv / (d + 2.0 * n);  // a_n kappa^{2n-2}
    e[n] = h * k2;
    const double m = 2.0 * n + 1.0;
    const double t_a2 = (2.0 * n) * m * h, t_dp = m * m * h;
    sum_a2 += t_a2;
    sum_dp += t_dp;
    // alternating, with decreasing terms: the tail is below the last term
    if (::fabs(t_a2) <= 1e-17 * ::fabs(sum_a2) && ::fabs(t_dp) * k2 <= 1e-17 * e[0]) break;
  }
  *a2 = kappa * sum_a2;
  *dprime = e[0] + k2 * sum_dp;
}

// C. mu < 32 between T and region H (kappa < 615). With q = kappa^2/4 and the power series
// I_mu(kappa) = (kappa/2)^mu / Gamma(mu + 1) sum_k t_k, t_k = q^k / (k! (mu + 1)_k) (DLMF 10.25.2),
// log S(q) = log sum_k t_k generates the cumulants K_j of k under the weights t_k: (q d/dq)^j log S = K_j (the
// weights are an exponential family in log q). With d/dkappa = (2/kappa) q d/dq and A = (2/kappa) K_1
// (bessel.h, region S):
//   A' = (4 K_2 - 2 K_1) / kappa^2,  A'' = 4 (2 K_3 - 3 K_2 + K_1) / kappa^3,  D' = (8 K_3 - 8 K_2 + 2 K_1) / kappa^2.
// All t_k are positive; they are summed outwards from k0 near the largest term (t_k0 = 1: nothing overflows at
// kappa = 615), with the moments taken about k0 (the mean is within 1 of it). The bracket of A'' is
// ~K_1^2 / (mu + 1) against terms ~K_1 at the lower end (K_1 >= rho/2 there: a loss of a factor 20 at most) and
// ~(d - 1)/4 against ~kappa/2 at the upper end (a factor 50 at d = 2, kappa = 20).
HVAE_HD void second_derivatives_cumulants(double kappa, double mu, double* a2, double* dprime) {
  const double q = 0.25 * kappa * kappa;
  // t_{k+1} / t_k = q / ((k + 1)(k + 1 + mu)) crosses 1 at k = j - 1, j (j + mu) = q
  const double j = 0.5 * (::sqrt(mu * mu + 4.0 * q) - mu);
  const double k0 = j > 1.0 ? ::floor(j - 1.0) : 0.0;
  double s0 = 1.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  double t = 1.0;
  for (int i = 1; i <= 1000; ++i) {  // upwards: k = k0 + i, t_k = t_{k-1} q / (k (k + mu))
    const double k = k0 + i;
    t *= q / (k * (k + mu));
    const double di = static_cast<double>(i), ti = t * di;
    s0 += t;
    s1 += ti;
    s2 += ti * di;
    s3 += ti * di * di;
    if (t <= 1e-18 * s0) break;
  }
  t = 1.0;
  for (int i = 1; i <= k0 && i <= 1000; ++i) {  // downwards: k = k0 - i, t_k = t_{k+1} (k + 1)(k + 1 + mu) / q
    const double k1 = k0 - i + 1.0;
    t *= k1 * (k1 + mu) / q;
    const double di = static_cast<double>(i), ti = t * di;
    s0 += t;
    s1 -= ti;
    s2 += ti * di;
    s3 -= ti * di * di;
    if (t <= 1e-18 * s0) break;
  }
  const double m1 = s1 / s0, m2 = s2 / s0, m3 = s3 / s0;        // moments of k - k0
  const double c2 = m2 - m1 * m1;                               // K_2
  const double c3 = (m3 - 3.0 * m1 * m2) + 2.0 * m1 * m1 * m1;  // K_3
  const double c1 = k0 + m1;                                    // K_1
  const double inv = 1.0 / kappa;
  *a2 = 4.0 * ((2.0 * c3 - 3.0 * c2) + c1) * (inv * inv * inv);
  *dprime = ((8.0 * c3 - 8.0 * c2) + 2.0 * c1) * (inv * inv);
}

// H. mu < 32, kappa >= max(20, 0.64 mu^2). Hankel's expansion (DLMF 10.40.1) I_mu(kappa) ~ e^kappa T(y) /
// sqrt(2 pi kappa), T(y) = sum_k t_k, t_k = (-1)^k a_k(mu) y^k, y = 1/kappa, gives (bessel.h, region H)
//   1 - A = c y + y^2 L'(y),  L = log T,
// and with d/dkappa = -y^2 d/dy:
//   A'' = -y^3 (2c + 6 y L' + 6 y^2 L'' + y^3 L'''),   D' = A' + kappa A'' = -y^2 (c + 4 y L' + 5 y^2 L'' + y^3 L'''),
// where y^j L^(j) come from the falling-factorial moments S_j = sum_k k (k-1)..(k-j+1) t_k / T:
//   y L' = S_1,  y^2 L'' = S_2 - S_1^2,  y^3 L''' = S_3 - 3 S_1 S_2 + 2 S_1^3.
// |6 S_1| ~ 6 a_1 y = 3 (4 mu^2 - 1) / (4 kappa) <= 4.7 against 2c = 2 mu + 1 (and |4 S_1| <= 3.1 against c):
// no significant cancellation. The sums are those of bessel.h's hankel_log_sum (same truncation).
HVAE_HD void second_derivatives_hankel(double kappa, double mu, double* a2, double* dprime) {
  const double m = 4.0 * mu * mu, y = 1.0 / kappa, c = mu + 0.5;
  double t = 1.0, s0 = 1.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  for (int k = 1; k < kMaxHankelTerms; ++k) {
    const double kk = static_cast<double>(k);
    t *= -(m - (2.0 * kk - 1.0) * (2.0 * kk - 1.0)) * y / (8.0 * kk);
    s0 += t;
    s1 += kk * t;
    s2 += kk * (kk - 1.0) * t;
    s3 += kk * (kk - 1.0) * (kk - 2.0) * t;
    if (::fabs(t) <= 1e-17 * ::fabs(s0)) break;
  }
  const double l1 = s1 / s0, f2 = s2 / s0, f3 = s3 / s0;
  const double l2 = f2 - l1 * l1;
  const double l3 = (f3 - 3.0 * l1 * f2) + 2.0 * l1 * l1 * l1;
  const double y2 = y * y;
  *a2 = -(y2 * y) * ((2.0 * c + 6.0 * l1) + (6.0 * l2 + l3));
  *dprime = -y2 * ((c + 4.0 * l1) + (5.0 * l2 + l3));
}

// D. mu >= 32 beyond T (z = kappa/mu >= 0.3). Olver's expansion (bessel.h, region D) gives A = F(z),
//   F = z / (1 + s) + z p R,   R = SW / SU,   SU = sum_{k>=0} U_k(p) / mu^k,   SW = sum_{k>=1} W_k(p) / mu^k,
// s = sqrt(1 + z^2), p = 1/s, so A'' = F''/mu^2 and D' = (z F')'/mu. With dp/dz = -z p^3, (z p)' = p^3,
// (z p)'' = -3 z p^5, and for each monomial p^m of U_k, W_k: (p^m)' = -m z p^{m+2},
// (p^m)'' = -m p^{m+2} + m (m+2) z^2 p^{m+4}:
//   (z/(1+s))'' = -z p^3 (1 + 2s) / (1+s)^2,   (z (z/(1+s))')' = p^3 (1 + s - s^2) / (1+s)
//   (from (z/(1+s))' = p / (1+s) and z^2 = (s-1)(s+1); its zero at s = 1.618 is the zero of D' to leading order),
//   (z p R)' = p^3 R + z p R',   (z p R)'' = -3 z p^5 R + 2 p^3 R' + z p R'',
//   R' = (SW' - R SU') / SU,   R'' = (SW'' - 2 R' SU' - R SU'') / SU.
// At large z, F'' ~ -(2 + 1/mu) / z^3 and (z F')' ~ -(1 + 1/(2 mu)) / z^2: their terms have one sign.
HVAE_HD void second_derivatives_debye(double kappa, double mu, double* a2, double* dprime) {
  const double z = kappa / mu;
  const double s = z < 1e150 ? ::sqrt(1.0 + z * z) : z;
  const double p = 1.0 / s, p2 = p * p;
  const double* uc = debye_u();
  const double* wc = debye_w();
  const int terms = debye_terms(mu, false);
  // sum c p^m / mu^k, sum m c p^m / mu^k, sum m (m + 2) c p^m / mu^k over the monomials c p^m of U_k and W_k
  double u0 = 1.0, u1 = 0.0, u2 = 0.0, w0 = 0.0, w1 = 0.0, w2 = 0.0;
  double scale = 1.0, pk = 1.0;  // mu^-k, p^k
  for (int k = 1; k < terms; ++k) {
    scale /= mu;
    pk *= p;
    double pm = pk * scale;  // p^m / mu^k, m = k + 2 jj
    const double* uk = uc + k * (k + 1) / 2;
    const double* wk = wc + (k - 1) * k / 2;
    for (int jj = 0; jj <= k; ++jj) {
      const double m = k + 2.0 * jj;
      const double tu = uk[jj] * pm;
      u0 += tu;
      u1 += m * tu;
      u2 += m * (m + 2.0) * tu;
      if (jj < k) {
        const double tw = wk[jj] * pm;
        w0 += tw;
        w1 += m * tw;
        w2 += m * (m + 2.0) * tw;
      }
      pm *= p2;
    }
  }
  const double z2 = z * z, p4 = p2 * p2;
  const double su1 = -z * p2 * u1, su2 = -p2 * u1 + z2 * p4 * u2;  // SU', SU''
  const double sw1 = -z * p2 * w1, sw2 = -p2 * w1 + z2 * p4 * w2;  // SW', SW''
  const double r = w0 / u0;
  const double r1 = (sw1 - r * su1) / u0;
  const double r2 = (sw2 - 2.0 * r1 * su1 - r * su2) / u0;
  const double p3 = p2 * p, one_s = 1.0 + s;
  const double g1 = p3 * r + z * p * r1;                                  // (z p R)'
  const double g2 = -3.0 * z * p3 * p2 * r + 2.0 * p3 * r1 + z * p * r2;  // (z p R)''
  const double f2 = -z * p3 * (1.0 + 2.0 * s) / (one_s * one_s);          // (z/(1+s))''
  const double zf1 = p3 * ((1.0 + s) - s * s) / one_s;                    // (z (z/(1+s))')'
  *a2 = (f2 + g2) / (mu * mu);
  *dprime = (zf1 + (g1 + z * g2)) / mu;
}

// A_d''(kappa) and D'(kappa) for finite kappa > 0 and finite d >= 2, from the regime of the comment above.
HVAE_HD void vmf_second_derivatives(double kappa, double d, double* a2, double* dprime) {
  const double mu = 0.5 * d - 1.0;
  if (kappa * kappa <= kTaylorRho * taylor_bound_sq(mu)) {
    second_derivatives_taylor(kappa, d, a2, dprime);
  } else if (mu >= kDebyeMinOrder) {
    second_derivatives_debye(kappa, mu, a2, dprime);
  } else if (kappa >= hankel_min_x(mu)) {
    second_derivatives_hankel(kappa, mu, a2, dprime);
  } else {
    second_derivatives_cumulants(kappa, mu, a2, dprime);
  }
}

}  // namespace detail

// A_d''(kappa) = E[(w - A)^3] under vMF(kappa) (the double backward of A_d), accurate relatively for d in
// [2, 1e5], kappa in (0, 1e12] (detail::vmf_second_derivatives); 0 at kappa = 0 (A_d is odd) and at kappa = inf.
HVAE_HD double vmf_mean_resultant_second_derivative(double kappa, double d) {
  if (!(kappa >= 0.0) || !(d >= 2.0) || is_inf(d)) return quiet_nan();
  if (kappa == 0.0 || is_inf(kappa)) return 0.0;
  double a2, dprime;
  detail::vmf_second_derivatives(kappa, d, &a2, &dprime);
  return a2;
}

// D'(kappa) = A' + kappa A'' for D = kappa A_d'(kappa) = d/dkappa KL(vMF || uniform) (the KL's double
// backward), accurate to 1e-10 of max(|D'|, A') (detail::vmf_second_derivatives; D' has one zero, near the
// maximum of D); 1/d at kappa = 0, 0 at kappa = inf.
HVAE_HD double vmf_kl_uniform_second_derivative(double kappa, double d) {
  if (!(kappa >= 0.0) || !(d >= 2.0) || is_inf(d)) return quiet_nan();
  if (kappa == 0.0) return 1.0 / d;
  if (is_inf(kappa)) return 0.0;
  double a2, dprime;
  detail::vmf_second_derivatives(kappa, d, &a2, &dprime);
  return dprime;
}

}  // namespace math
}  // namespace hvae
