// Sampling w = mu^T z for z ~ vMF(mu, kappa) on S^{d-1}, and the reflection that places a sample around mu.
//
// References
//   [Wood 1994]  A. T. A. Wood, "Simulation of the von Mises Fisher distribution", Communications in
//                Statistics - Simulation and Computation 23(1), 157-164. Rejection sampler for w with a
//                Beta((d-1)/2, (d-1)/2) proposal pushed through a Moebius map.
//   [MT 2000]    G. Marsaglia, W. W. Tsang, "A simple method for generating gamma variables", ACM TOMS 26(3).
//   [Davidson 2018] T. R. Davidson et al., "Hyperspherical Variational Auto-Encoders", UAI 2018, Alg. 1.
//
// Precision. Everything here is carried in terms of omw = 1 - w rather than w: for kappa >> d the samples
// crowd at w = 1 - O(d / kappa), which float32 (and, for kappa ~ 1e12, float64) would round to w = 1. The
// envelope is written without any regime switch (the reference code of [Davidson 2018] switches b to a
// Taylor value for kappa > 10 but keeps the exact a, which samples the wrong distribution):
//   b    = (d - 1) / (2 kappa + sqrt(4 kappa^2 + (d - 1)^2))        (= Wood's b, rationalised: no cancellation)
//   x0   = (1 - b) / (1 + b),          1 - x0 = 2 b / (1 + b)
//   proposal  eps ~ Beta((d-1)/2, (d-1)/2),   w = (1 - (1 + b) eps) / (1 - (1 - b) eps)
//             1 - w = 2 b eps / ((1 - eps) + b eps)
//   accept iff  log u <= kappa (w - x0) + (d - 1) log((1 - x0 w) / (1 - x0^2))
//             = kappa ((1 - x0) - (1 - w)) + (d - 1) log(((1 - x0) + x0 (1 - w)) / ((1 - x0)(1 + x0))).
// d = 3 needs no rejection: the CDF of w inverts in closed form,
//   w = 1 + log(u + (1 - u) e^{-2 kappa}) / kappa,   i.e.   1 - w = -log1p(u * expm1(-2 kappa)) / kappa.
#pragma once

#include "common.h"
#include "philox.h"

namespace hvae {
namespace math {

// Bound on proposals per sample. Wood's envelope accepts with probability well above 1/3 for every
// (d, kappa) (the benchmarks record the mean number of proposals), so reaching the bound means broken
// input, not bad luck: the kernels report the row instead of returning garbage.
constexpr int kMaxWoodRounds = 10000;
constexpr int kMaxGammaRounds = 1000;

struct WoodEnvelope {
  double kappa, dm1, b, x0, omx0, log_norm;  // log_norm = log((1 - x0)(1 + x0))
};

HVAE_HD WoodEnvelope wood_envelope(double kappa, double d) {
  WoodEnvelope e;
  e.kappa = kappa;
  e.dm1 = d - 1.0;
  // Written in terms of the smaller of kappa and d - 1 so that 4 kappa^2 cannot overflow (kappa > 1e154).
  if (kappa > e.dm1) {
    const double t = e.dm1 / kappa;
    e.b = t / (2.0 + ::sqrt(4.0 + t * t));
  } else {
    e.b = e.dm1 / (2.0 * kappa + ::sqrt(4.0 * kappa * kappa + e.dm1 * e.dm1));
  }
  e.x0 = (1.0 - e.b) / (1.0 + e.b);
  e.omx0 = 2.0 * e.b / (1.0 + e.b);
  e.log_norm = ::log(e.omx0) + ::log1p(e.x0);
  return e;
}

// Gamma(shape, 1) for shape >= 1 by [MT 2000]; acceptance > 0.95.
HVAE_HD double sample_gamma(PhiloxStream& rng, double shape) {
  const double dd = shape - 1.0 / 3.0, c = 1.0 / ::sqrt(9.0 * dd);
  for (int i = 0; i < kMaxGammaRounds; ++i) {
    const double x = rng.normal_double();
    const double t = 1.0 + c * x;
    if (t <= 0.0) continue;
    const double v = t * t * t, u = rng.uniform_double(), x2 = x * x;
    if (u < 1.0 - 0.0331 * x2 * x2) return dd * v;
    if (::log(u) < 0.5 * x2 + dd * (1.0 - v + ::log(v))) return dd * v;
  }
  return quiet_nan();
}

// eps ~ Beta((d-1)/2, (d-1)/2), returned with 1 - eps (both to full relative precision).
// d = 2: the arcsine law, eps = sin^2(pi u / 2). d >= 4: eps = (1 + Z / R) / 2 with Z ~ N(0,1),
// V ~ chi^2_{d-1}, R = sqrt(Z^2 + V): the first coordinate of a uniform point on S^{d-1}, whose law at
// kappa = 0 is exactly Wood's proposal. The cancelling side is rewritten with R^2 - Z^2 = V.
HVAE_HD void sample_wood_proposal(PhiloxStream& rng, double d, double* eps, double* one_minus_eps) {
  if (d == 2.0) {
    const double half_angle = 0.5 * kPi * rng.uniform_double();
    const double s = ::sin(half_angle), c = ::cos(half_angle);
    *eps = s * s;
    *one_minus_eps = c * c;
    return;
  }
  const double z = rng.normal_double();
  const double v = 2.0 * sample_gamma(rng, 0.5 * (d - 1.0));
  const double r = ::sqrt(z * z + v);
  if (z < 0.0) {
    *eps = v / (2.0 * r * (r - z));
    *one_minus_eps = (r - z) / (2.0 * r);
  } else {
    *eps = (r + z) / (2.0 * r);
    *one_minus_eps = v / (2.0 * r * (r + z));
  }
}

// Draws 1 - w for one sample. Returns NaN for NaN or negative kappa (no loop is run), 0 for kappa = inf
// (the limit w = 1). *rounds receives the number of proposals used; a finite input that exhausts
// kMaxWoodRounds returns NaN with *rounds = kMaxWoodRounds + 1 so the caller can name the row.
HVAE_HD double sample_one_minus_w(PhiloxStream& rng, double kappa, double d, int* rounds) {
  *rounds = 0;
  if (!(kappa >= 0.0) || !(d >= 2.0)) return quiet_nan();
  if (kappa == infinity()) return 0.0;
  if (d == 3.0) {  // exact inversion of the CDF
    *rounds = 1;
    const double u = rng.uniform_double();
    if (kappa < 1e-300) return 2.0 * u;
    return -::log1p(u * ::expm1(-2.0 * kappa)) / kappa;
  }
  const WoodEnvelope env = wood_envelope(kappa, d);
  for (int i = 1; i <= kMaxWoodRounds; ++i) {
    double eps, ome;
    sample_wood_proposal(rng, d, &eps, &ome);
    const double omw = 2.0 * env.b * eps / (ome + env.b * eps);
    const double log_ratio =
        kappa * (env.omx0 - omw) + env.dm1 * (::log(env.omx0 + env.x0 * omw) - env.log_norm);
    if (::log(rng.uniform_double()) <= log_ratio) {
      *rounds = i;
      return omw;
    }
  }
  *rounds = kMaxWoodRounds + 1;
  return quiet_nan();
}

// ---------------------------------------------------------------------------------------------------
// The reflection. With y = (w, sqrt(1 - w^2) v), v uniform on S^{d-2}, a sample around mu is z = Q y for
// any orthogonal Q with Q e1 = mu. We use Q = -s H_a, H_a = I - 2 a a^T / |a|^2 the Householder reflection
// with a = mu + s e1 and s = sign(mu_0) (+1 at mu_0 = 0): then Q e1 = mu exactly for unit mu, Q is
// orthogonal for any mu (|a|^2 >= 1 + |mu|^2 is never small, so no epsilon is needed), and Q^{-1} = Q.
// Choosing the sign by mu_0 keeps |a| away from 0, so there is no singular point mu = e1 as in the
// reference code's (e1 - mu) / (|e1 - mu| + 1e-5). Since Q is an involution the backward pass recovers
// y = Q z from the saved output instead of storing y.
//
// Backward, for L with g = dL/dz:
//   dL/dmu = 2 s [ (c g + (a.g) y) / |a|^2 - 2 (a.g) c a / |a|^4 ],   c = a.y
//   dL/dw  = gt_0 - w / sqrt(1 - w^2) * sum_{i>0} gt_i v_i,           gt = Q g
//   dL/dkappa = dL/dw * dw/dkappa  (implicit reparameterization, implicit_grad.h)
HVAE_HD double householder_sign(double mu0) { return mu0 >= 0.0 ? 1.0 : -1.0; }

}  // namespace math
}  // namespace hvae
