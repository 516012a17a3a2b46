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
#include "fastmath.h"
#include "householder.h"
#include "philox.h"

namespace hvae {
namespace math {

// Bound on proposals per sample. Wood's envelope accepts with probability well above 1/3 for every
// (d, kappa) (the benchmarks record the mean number of proposals), so reaching the bound means broken
// input, not bad luck: the kernels report the row instead of returning garbage.
constexpr int kMaxWoodRounds = 10000;

// Logarithms inside a proposal round: their arguments are uniforms in [2^-54, 1), t^3 of the Gamma draw, and
// 1 + x0 ratio in [1, 2 / (1 - x0)], so the host polynomials need only clamps, no libm fallback, and a loop
// over rows that calls wood_round vectorizes. The clamps act only where any value gives the same decision
// (t^3 -> 0; 1 - x0 < 1e-300, i.e. kappa > 1e300 d).
HVAE_HD_HOT double round_log(double x) {
#if defined(__CUDA_ARCH__)
  return ::log(x);
#else
  return fast_log_core(x < 2.2250738585072014e-308 ? 2.2250738585072014e-308 : x);
#endif
}
HVAE_HD_HOT double round_log1p(double y) {
#if defined(__CUDA_ARCH__)
  return ::log1p(y);
#else
  return fast_log1p_core(y > 1e300 ? 1e300 : y);
#endif
}

// Per parameter row: the envelope of [Wood 1994] and the constants of the [MT 2000] Gamma draw.
struct WoodEnvelope {
  double dm1, b, x0, omx0;
  double kappa_omx0;         // kappa (1 - x0), formed without overflow or underflow
  double log1p_x0;           // log(1 + x0)
  double gamma_dd, gamma_c;  // [MT 2000] for the shape (d - 1) / 2: dd = shape - 1/3, c = 1 / sqrt(9 dd)
};

HVAE_HD_HOT WoodEnvelope wood_envelope(double kappa, double d) {
  WoodEnvelope e;
  e.dm1 = d - 1.0;
  // Written in terms of the smaller of kappa and d - 1 so that 4 kappa^2 cannot overflow (kappa > 1e154).
  // (branch-free, so that the CPU kernel's loop over rows vectorizes)
  const bool large = kappa > e.dm1;
  const double t = large ? e.dm1 / kappa : 0.0;
  const double den_large = 2.0 + __builtin_sqrt(4.0 + t * t);
  const double b_small = e.dm1 / (2.0 * kappa + __builtin_sqrt(4.0 * kappa * kappa + e.dm1 * e.dm1));
  e.b = large ? t / den_large : b_small;
  const double kappa_b = large ? e.dm1 / den_large : kappa * b_small;  // kappa b, O(d) for every kappa
  e.x0 = (1.0 - e.b) / (1.0 + e.b);
  e.omx0 = 2.0 * e.b / (1.0 + e.b);
  e.kappa_omx0 = 2.0 * kappa_b / (1.0 + e.b);
  e.log1p_x0 = round_log1p(e.x0);  // x0 in [0, 1)
  e.gamma_dd = 0.5 * e.dm1 - 1.0 / 3.0;
  e.gamma_c = 1.0 / __builtin_sqrt(9.0 * e.gamma_dd);  // d = 2: unused (NaN)
  return e;
}

// Philox blocks per proposal round: round k of a row uses blocks 2k and 2k + 1 of its radial stream.
constexpr int kWordsPerRound = 8;

// One proposal round of Wood's sampler from 8 random words; returns whether it was accepted and, if so,
// 1 - w in *omw. d >= 4: words 0-3 give two normals (Box-Muller), Z and X; X and words 4-5 give
// V = 2 Gamma((d-1)/2) ~ chi^2_{d-1} by [MT 2000]; words 6-7 the uniform of the accept test. A Gamma draw
// that [MT 2000] rejects rejects the whole round (the next round draws Z afresh): Z and V are independent, so
// an accepted round still has eps ~ Beta((d-1)/2, (d-1)/2). d = 2: words 0-1 give the arcsine proposal,
// words 6-7 the accept test. Branch-free on the host.
//   eps = (1 + Z / R) / 2 with R = sqrt(Z^2 + V) (the first coordinate of a uniform point on S^{d-1}, whose
//   law is Wood's proposal); the cancelling side is rewritten with R^2 - Z^2 = V. With
//   ratio = (1 - w) / (1 - x0) = eps (1 + b) / ((1 - eps) + b eps), the accept test is
//   log u <= kappa (1 - x0) (1 - ratio) + (d - 1) (log(1 + x0 ratio) - log(1 + x0)),
//   the same as Wood's  kappa (w - x0) + (d - 1) log((1 - x0 w) / (1 - x0^2)), with no tiny arguments.
HVAE_HD_HOT bool wood_round(const uint32_t* words, const WoodEnvelope& e, bool circle, double* omw) {
  double eps, ome;
  bool gamma_ok = true;
  if (circle) {  // d = 2: eps = sin^2(pi u / 2)
    double c, s;
    fast_cos_sin_2pi(0.25 * uniform53(words[0], words[1]), &c, &s);
    eps = s * s;
    ome = c * c;
  } else {
    double z, x;
    box_muller(uniform53(words[0], words[1]), uniform53(words[2], words[3]), &z, &x);
    const double t = 1.0 + e.gamma_c * x;
    const double v = t * t * t, u = uniform53(words[4], words[5]), x2 = x * x;
    // bitwise & and |: both logs are always evaluated, so the host loop has no branches
    gamma_ok =
        (t > 0.0) & ((u < 1.0 - 0.0331 * x2 * x2) | (round_log(u) < 0.5 * x2 + e.gamma_dd * (1.0 - v + round_log(v))));
    const double chi2 = 2.0 * e.gamma_dd * v;
    const double r = __builtin_sqrt(z * z + chi2);
    const bool neg = z < 0.0;
    const double rz = neg ? r - z : r + z;  // no cancellation
    eps = neg ? chi2 / (2.0 * r * rz) : rz / (2.0 * r);
    ome = neg ? rz / (2.0 * r) : chi2 / (2.0 * r * rz);
  }
  const double den = ome + e.b * eps;
  const double ratio = eps * (1.0 + e.b) / den;
  const double log_ratio = e.kappa_omx0 * ((ome - eps) / den) + e.dm1 * (round_log1p(e.x0 * ratio) - e.log1p_x0);
  *omw = e.omx0 * ratio;
  return gamma_ok & (round_log(uniform53(words[6], words[7])) <= log_ratio);
}

// d = 3 needs no rejection: 1 - w = -log1p(u (e^{-2 kappa} - 1)) / kappa, u from words 0-1 of block 0;
// expm1_m2k = expm1(-2 kappa), once per parameter row.
HVAE_HD_HOT double sphere_one_minus_w(uint32_t word_hi, uint32_t word_lo, double kappa, double expm1_m2k) {
  const double u = uniform53(word_hi, word_lo);
  return kappa < 1e-300 ? 2.0 * u : -round_log1p(u * expm1_m2k) / kappa;
}

// Draws 1 - w for sample row `row` from its radial stream. Returns NaN for NaN or negative kappa (no loop is
// run), 0 for kappa = inf (the limit w = 1). *rounds receives the number of proposals used; a finite input
// that exhausts kMaxWoodRounds returns NaN with *rounds = kMaxWoodRounds + 1 so the caller can name the row.
// The CPU kernel runs the same rounds for many rows side by side and draws identical numbers.
HVAE_HD double sample_one_minus_w(uint64_t seed, uint64_t row, double kappa, double d, int* rounds) {
  *rounds = 0;
  if (!(kappa >= 0.0) || !(d >= 2.0)) return quiet_nan();
  if (kappa == infinity()) return 0.0;
  uint32_t words[kWordsPerRound];
  if (d == 3.0) {
    *rounds = 1;
    philox_block(seed, row, kStreamRadial, 0u, words);
    return sphere_one_minus_w(words[0], words[1], kappa, ::expm1(-2.0 * kappa));
  }
  const WoodEnvelope env = wood_envelope(kappa, d);
  for (int i = 0; i < kMaxWoodRounds; ++i) {
    philox_block(seed, row, kStreamRadial, 2u * i, words);
    philox_block(seed, row, kStreamRadial, 2u * i + 1u, words + 4);
    double omw;
    if (wood_round(words, env, d == 2.0, &omw)) {
      *rounds = i + 1;
      return omw;
    }
  }
  *rounds = kMaxWoodRounds + 1;
  return quiet_nan();
}

}  // namespace math
}  // namespace hvae
