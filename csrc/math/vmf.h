// Closed forms of the von Mises-Fisher distribution built on the Bessel functions of bessel.h.
//
//   log |S^{d-1}| = log 2 + (d/2) log pi - lgamma(d/2)                      (surface area of the unit sphere in R^d)
//   KL(vMF(mu, kappa) || U(S^{d-1})) = log C_d(kappa) + kappa A_d(kappa) + log |S^{d-1}|
//                                    = kappa A_d(kappa) - log 0F1(; d/2; kappa^2 / 4)
// The second form follows from I_v(x) = (x/2)^v / Gamma(v+1) 0F1(; v+1; x^2/4) (DLMF 10.25.2) and is used
// where kappa^2 is small against d: there the first form is a difference of two nearly equal numbers of
// size log |S^{d-1}| (~ d log d), while the KL itself is ~ kappa^2 / (2d).
#pragma once

#include "bessel.h"
#include "common.h"

namespace hvae {
namespace math {

HVAE_HD double log_sphere_area(double d) { return kLog2 + 0.5 * d * kLogPi - ::lgamma(0.5 * d); }

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
  } else {
    kl = vmf_log_normalizer_and_mean_resultant(kappa, d, &a) + kappa * a + log_sphere_area(d);
  }
  *dkappa = kappa * (1.0 - a * a) - (d - 1.0) * a;
  return kl;
}

HVAE_HD double vmf_kl_uniform(double kappa, double d) {
  double dkappa;
  return vmf_kl_uniform_and_dkappa(kappa, d, &dkappa);
}

// d/dkappa KL(vMF || U) = kappa A_d'(kappa) = kappa (1 - A^2) - (d - 1) A.
HVAE_HD double vmf_kl_uniform_dkappa(double kappa, double d) {
  if (kappa == 0.0) return 0.0;
  const double a = vmf_mean_resultant(kappa, d);
  return kappa * (1.0 - a * a) - (d - 1.0) * a;
}

}  // namespace math
}  // namespace hvae
