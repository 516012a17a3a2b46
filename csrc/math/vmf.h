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
// Accuracy against 50-digit mpmath references (tests/unit/distributions/test_entropy_kl_accuracy.py, d in [2, 1e5], kappa in
// [0.1, 1e12]): entropy 4e-16, KL(vMF || U) 2e-14, KL(vMF || vMF) 9e-14 (relative to max(1, |value|)),
// kappa A_d' 4e-11 (relative).
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
  int region;      // the region of bessel.h (kHankel and kDebye: g and t without cancellation)
  double g;        // -log C_d(kappa) - kappa
  double t;        // kappa (1 - A_d(kappa))
  double a;        // A_d(kappa)
  double eps;      // 1 - A_d(kappa)
  double u;        // t - (d - 1)/2 (regions H and D; there without cancellation)
  double f;        // log 0F1(; d/2; kappa^2/4) = -log C_d(kappa) - log |S^{d-1}|
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

// A_d''(kappa) = -2 A A' - (d - 1) (A' / kappa - A / kappa^2), from A' = 1 - A^2 - (d - 1) A / kappa (the
// double backward of A_d); 0 at kappa = 0 (A_d is odd) and at kappa = inf.
HVAE_HD double vmf_mean_resultant_second_derivative(double kappa, double d) {
  if (!(kappa >= 0.0) || !(d >= 2.0) || is_inf(d)) return quiet_nan();
  if (kappa == 0.0 || is_inf(kappa)) return 0.0;
  const detail::VmfParts p = detail::vmf_parts(kappa, d);
  const double a = p.a, a1 = detail::kappa_mean_resultant_derivative(kappa, d, p) / kappa;
  return -2.0 * a * a1 - (d - 1.0) * (a1 / kappa - a / (kappa * kappa));
}

// D'(kappa) for D = kappa A_d'(kappa) = d/dkappa KL(vMF || uniform) (the KL's double backward):
// D' = (1 - A^2) - (2 kappa A + d - 1) A'; 1/d at kappa = 0, 0 at kappa = inf.
HVAE_HD double vmf_kl_uniform_second_derivative(double kappa, double d) {
  if (!(kappa >= 0.0) || !(d >= 2.0) || is_inf(d)) return quiet_nan();
  if (kappa == 0.0) return 1.0 / d;
  if (is_inf(kappa)) return 0.0;
  const detail::VmfParts p = detail::vmf_parts(kappa, d);
  const double a = p.a, a1 = detail::kappa_mean_resultant_derivative(kappa, d, p) / kappa;
  return (1.0 - a * a) - (2.0 * kappa * a + (d - 1.0)) * a1;
}

}  // namespace math
}  // namespace hvae
