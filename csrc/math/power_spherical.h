// The Power Spherical distribution PS(mu, kappa) on S^{d-1} (De Cao and Aziz 2020, "The Power Spherical
// distribution", arXiv 2006.04437): density C (1 + mu^T z)^kappa. Its samples are z = Q (t, sqrt(1 - t^2) v) with
// v uniform on S^{d-2}, Q the reflection of householder.h, and
//   t = 2 B - 1,  B ~ Beta(alpha, beta),  alpha = (d - 1) / 2 + kappa,  beta = (d - 1) / 2,
// B = G_a / (G_a + G_b) from two Gamma variates G_a ~ Gamma(alpha), G_b ~ Gamma(beta). Carried as
//   1 - t = 2 G_b / (G_a + G_b)
// (no cancellation: for kappa >> d the samples crowd at t = 1 - O(d / kappa), as the vMF's w).
//
// References
//   [MT 2000]    G. Marsaglia, W. W. Tsang, "A simple method for generating gamma variables", ACM TOMS 26(3),
//                363-372: the squeeze and the boost G(a) = G(a + 1) U^{1/a} for a < 1.
//   [FMM 2018]   M. Figurnov, S. Mohamed, A. Mnih, "Implicit reparameterization gradients", NeurIPS 2018:
//                dx/da = -(dF(x; a)/da) / p(x; a) for a sample x of the CDF F.
//   [Temme 1979] N. M. Temme, "The asymptotic expansion of the incomplete gamma functions", SIAM J. Math. Anal.
//                10(4), 757-766: Q(a, x) = erfc(eta sqrt(a/2)) / 2 + e^{-a eta^2/2} / sqrt(2 pi a) sum_k C_k(eta) a^-k,
//                eta^2 / 2 = lambda - 1 - log(lambda), lambda = x / a.
//   [DLMF 8.7.1] P(a, x) = x^a e^{-x} sum_{n>=0} x^n / Gamma(a + n + 1).
//
// The gradient. With t = 1 - 2 G_b / S, S = G_a + G_b, and only alpha depending on kappa:
//   dt/dkappa = 2 dB/dalpha = 2 (1 - B) (dG_a/dalpha) / S = (1 - t) (dG_a/dalpha) / S,
// the pathwise derivative of B through G_a (G_a and G_b are independent, so this is an unbiased gradient of any
// E[f(B)]), with dG/da of a Gamma(a) sample x by implicit reparameterization [FMM 2018],
//   dx/da = -(dP(a, x)/da) / p(x; a),  p(x; a) = x^{a-1} e^{-x} / Gamma(a):
//   a <= kGammaSeriesMaxShape, x <= a + 1: from [DLMF 8.7.1] differentiated term by term,
//       dx/da = -(x / a) sum_{n>=0} c_n (log x - psi(a + n + 1)),  c_n = x^n / ((a + 1) ... (a + n)),
//     summed until the terms are below 1e-17 of the sum (past the largest term; about 8 sqrt(a) terms);
//   a <= kGammaSeriesMaxShape, x > a + 1: Legendre's continued fraction of Q(a, x) and its derivative in a
//     (gamma_dshape_fraction); both accurate to ~1e-12 relative (tests/unit/distributions/test_power_spherical.py
//     checks 1e-11 against mpmath);
//   a > kGammaSeriesMaxShape: [Temme 1979] differentiated in a at fixed x (mu = lambda - 1):
//       dx/da = lambda Gamma*(a) { mu / eta - eta / 2 + (log lambda - 1 / (2a)) (C_0 + C_1 / a)
//                                   - (1 + mu) (C_0' + C_1' / a) / a - C_1 / a^2 },
//     C_0 = 1/mu - 1/eta, C_1 = 1/eta^3 - 1/mu^3 - 1/mu^2 - 1/(12 mu) (' = d/dmu), Gamma*(a) = Gamma(a) /
//     (sqrt(2 pi / a) a^a e^-a), with Taylor series in mu for |mu| < 1/8 (the closed forms cancel there); the
//     truncation error is O(a^-3): below 1e-9 relative for a > 1000 and 1e-12 from a = 1e6 (checked against
//     mpmath quadrature of the integral forms of dP/da).
#pragma once

#include "common.h"
#include "fastmath.h"
#include "householder.h"
#include "philox.h"
#include "wood.h"  // round_log: the clamped logarithm of a proposal round

namespace hvae {
namespace math {

// Bound on Marsaglia-Tsang rounds per Gamma variate: each is accepted with probability above 0.95, so reaching the
// bound means broken input; the kernels return NaN for the row (as Wood's bound in wood.h).
constexpr int kMaxGammaRounds = 10000;
// Philox blocks per Gamma round: round k of a variate uses blocks 2k and 2k + 1 of its stream.
constexpr int kGammaWordsPerRound = 8;

// The [MT 2000] constants of one shape a > 0: dd = a' - 1/3, c = 1 / sqrt(9 dd) for a' = a (a >= 1) or a + 1
// (the boost, a < 1), and 1 / a for the boost's U^{1/a}.
struct GammaShape {
  double dd, c, inv_shape;
  bool boost;
};
HVAE_HD GammaShape gamma_shape(double a) {
  GammaShape g;
  g.boost = a < 1.0;
  g.dd = (g.boost ? a + 1.0 : a) - 1.0 / 3.0;
  g.c = 1.0 / ::sqrt(9.0 * g.dd);
  g.inv_shape = 1.0 / a;
  return g;
}

// One [MT 2000] round from 8 random words: words 0-3 give the normal x (Box-Muller, the first of its pair), words 4-5
// the uniform of the test, words 6-7 the boost's uniform (a < 1; independent of the test, so its use after an
// accepted round keeps the law). Returns whether the round was accepted; *out is the variate if so. Branch-free on
// the host (both logarithms and the boost are always evaluated, with wood.h's clamped logarithms), so that the CPU
// kernel's loop over the rows of a tile vectorizes.
// gamma_round in parts, for kernels that defer the logarithmic test to the few rows whose squeeze fails (the
// result is the same): the candidate (x, t = 1 + c x, v = t^3, u), the squeeze, the logarithmic test, the scale.
struct GammaCandidate {
  double x2, t, v, u;
};
HVAE_HD_HOT GammaCandidate gamma_round_candidate(const uint32_t* words, double c) {
  double x, unused;
  box_muller(uniform53(words[0], words[1]), uniform53(words[2], words[3]), &x, &unused);
  GammaCandidate k;
  k.t = 1.0 + c * x;
  k.v = k.t * k.t * k.t;
  k.u = uniform53(words[4], words[5]);
  k.x2 = x * x;
  return k;
}
HVAE_HD_HOT bool gamma_round_squeeze(const GammaCandidate& k) { return k.u < 1.0 - 0.0331 * k.x2 * k.x2; }
HVAE_HD_HOT bool gamma_round_log_test(const GammaCandidate& k, double dd) {
  return round_log(k.u) < 0.5 * k.x2 + dd * (1.0 - k.v + round_log(k.v));
}
HVAE_HD_HOT double gamma_round_scale(const uint32_t* words, double inv_shape, bool boost) {
  return boost ? fast_exp(round_log(uniform53(words[6], words[7])) * inv_shape) : 1.0;
}
HVAE_HD_HOT bool gamma_round(const uint32_t* words, double dd, double c, double inv_shape, bool boost, double* out) {
  const GammaCandidate k = gamma_round_candidate(words, c);
  const bool ok = (k.t > 0.0) & (gamma_round_squeeze(k) | gamma_round_log_test(k, dd));
  *out = dd * k.v * gamma_round_scale(words, inv_shape, boost);
  return ok;
}
HVAE_HD_HOT bool gamma_round(const uint32_t* words, const GammaShape& g, double* out) {
  return gamma_round(words, g.dd, g.c, g.inv_shape, g.boost, out);
}

// A Gamma(a) variate from the stream (seed, row, stream): NaN where a is not a positive finite number or the bound
// is reached.
HVAE_HD bool gamma_shape_valid(const GammaShape& g) { return g.dd > -1.0 / 3.0 && g.dd < infinity(); }
HVAE_HD double gamma_sample(uint64_t seed, uint64_t row, uint32_t stream, const GammaShape& g) {
  if (!gamma_shape_valid(g)) return quiet_nan();
  uint32_t words[kGammaWordsPerRound];
  for (int k = 0; k < kMaxGammaRounds; ++k) {
    philox_block(seed, row, stream, 2u * static_cast<uint32_t>(k), words);
    philox_block(seed, row, stream, 2u * static_cast<uint32_t>(k) + 1u, words + 4);
    double x;
    if (gamma_round(words, g, &x)) return x;
  }
  return quiet_nan();
}

// The two Gamma variates of sample row `row` (alpha = (d - 1) / 2 + kappa, beta = (d - 1) / 2: gb, the shape of
// G_b, is the same for every row); returns 1 - t = 2 G_b / (G_a + G_b). NaN for NaN, negative or infinite kappa.
HVAE_HD double power_spherical_one_minus_t(uint64_t seed, uint64_t row, double kappa, double d, const GammaShape& gb,
                                           double* g_alpha, double* g_beta) {
  const double beta = 0.5 * (d - 1.0);
  const GammaShape ga = gamma_shape(beta + (kappa >= 0.0 ? kappa : quiet_nan()));
  *g_alpha = gamma_sample(seed, row, kStreamGammaAlpha, ga);
  *g_beta = gamma_sample(seed, row, kStreamGammaBeta, gb);
  return 2.0 * *g_beta / (*g_alpha + *g_beta);
}

// psi(x) for x > 0: the recurrence up to x >= 6, then the asymptotic series (error < 1e-16 relative there).
HVAE_HD double digamma_positive(double x) {
  double shift = 0.0;
  while (x < 6.0) {
    shift -= 1.0 / x;
    x += 1.0;
  }
  const double r = 1.0 / x, r2 = r * r;
  const double series =
      r2 *
      (1.0 / 12 - r2 * (1.0 / 120 - r2 * (1.0 / 252 - r2 * (1.0 / 240 - r2 * (1.0 / 132 - r2 * (691.0 / 32760))))));
  return shift + ::log(x) - 0.5 * r - series;
}

// Shapes up to this use the series of dx/da, larger ones the [Temme 1979] expansion (see the top of this file).
constexpr double kGammaSeriesMaxShape = 1000.0;
constexpr int kGammaSeriesMaxTerms = 20000;

// Taylor coefficients in mu = lambda - 1 (sympy, from eta = mu sqrt(2 (mu - log(1 + mu)) / mu^2)) of
// f1 = mu / eta - eta / 2, C_0 and C_1; 20 terms, |mu| < 1/8.
constexpr int kTemmeTaylorTerms = 20;
// 60 coefficients: f1, C_0, C_1, 20 each.
// clang-format off: one row of coefficients per line
#define HVAE_TEMME_VALUES \
    1, -0.16666666666666666, 0.083333333333333329, -0.054629629629629632, 0.04035493827160494, -0.031872795414462078, 0.026272597001763667, -0.022308047961983147, 0.019358637841710758, -0.017081443336038137, 0.015271830102717661, -0.013800272608384265, 0.012580864136222359, -0.011554421603303349, 0.010678867349752291, -0.0099234799118405378, 0.0092653140539015397, -0.0086868926695191535, 0.008174673421629761, -0.0077180031382188541, \
    -0.33333333333333331, 0.083333333333333329, -0.042592592592592592, 0.027237654320987653, -0.019477513227513229, 0.01489620076425632, -0.011915478640015678, 0.0098422305200372324, -0.0083280935121802322, 0.0071803483850698593, -0.0062844192721012142, 0.0055682526178851138, -0.0049844456844156584, 0.0045006363572576563, -0.0040940356694601585, 0.0037481681888972334, -0.0034508503769709489, 0.0031928936118061431, -0.0029672473773571044, 0.0027684185377559864, \
    -0.0018518518518518519, -0.003472222222222222, 0.0038029100529100527, -0.003429049088771311, 0.0029881319811875368, -0.0025972581998334313, 0.0022708655428187751, -0.002001612631813119, 0.0017789427446165951, -0.0015934139242758903, 0.0014374305837483469, -0.001305075568638374, 0.0011917732719073143, -0.0010939765389837166, 0.0010089168019233184, -0.00093441463083075227, 0.00086873860827654911, -0.00081050057506413967, 0.00075857763727603454, -0.00071205373339691528
// clang-format on
#if defined(__CUDACC__) || defined(__HIPCC__)
static __constant__ double kTemmeTaylorDevice[3 * kTemmeTaylorTerms] = {HVAE_TEMME_VALUES};
#endif
static constexpr double kTemmeTaylorHost[3 * kTemmeTaylorTerms] = {HVAE_TEMME_VALUES};
#undef HVAE_TEMME_VALUES
HVAE_HD const double* temme_taylor() {
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
  return kTemmeTaylorDevice;
#else
  return kTemmeTaylorHost;
#endif
}

// dx/da for a <= kGammaSeriesMaxShape, x <= a + 1: [DLMF 8.7.1] differentiated term by term (no cancellation
// on this side of the mode: the terms change sign once, where they are already small). State (c, psi, sum) from
// gamma_series_init; each gamma_series_step adds terms n and n + 1 (n = 1, 3, 5, ...: one division for both) and
// returns whether the sum has converged (past the largest term, the last term below 1e-17 of the sum).
struct GammaSeries {
  double log_x, c, psi, sum;
};
HVAE_HD GammaSeries gamma_series_init_logs(double log_x, double psi_a1) {  // log x, psi_a1 = psi(a + 1)
  GammaSeries s;
  s.log_x = log_x;
  s.psi = psi_a1;
  s.c = 1.0;
  s.sum = s.log_x - s.psi;
  return s;
}
HVAE_HD GammaSeries gamma_series_init(double a, double x) {
  return gamma_series_init_logs(::log(x), digamma_positive(a + 1.0));
}
// A step in two halves: its coefficients, which depend on a only (r0 = 1 / (a + n), r1 = 1 / (a + n + 1) and
// psi(a + n + 1), psi(a + n + 2) from psi = psi(a + n)), so that rows of one shape can share them, and the update.
struct GammaSeriesCoeffs {
  double r0, r1, psi0, psi1;
};
HVAE_HD_HOT GammaSeriesCoeffs gamma_series_coeffs(double a, int n, double psi) {
  const double p0 = a + n, p1 = p0 + 1.0, q = 1.0 / (p0 * p1);
  GammaSeriesCoeffs k;
  k.r0 = p1 * q;
  k.r1 = p0 * q;
  k.psi0 = psi + k.r0;
  k.psi1 = k.psi0 + k.r1;
  return k;
}
HVAE_HD_HOT bool gamma_series_update(double x, const GammaSeriesCoeffs& k, GammaSeries* s) {
  double c = s->c * (x * k.r0);
  const double term0 = c * (s->log_x - k.psi0);
  c *= x * k.r1;
  const double term1 = c * (s->log_x - k.psi1);
  s->c = c;
  s->psi = k.psi1;
  s->sum += term0 + term1;
  return (x * k.r1 < 1.0) & (::fabs(term1) <= 1e-17 * ::fabs(s->sum));
}
HVAE_HD_HOT bool gamma_series_step(double a, double x, int n, GammaSeries* s) {
  return gamma_series_update(x, gamma_series_coeffs(a, n, s->psi), s);
}
HVAE_HD_HOT double gamma_series_result(double a, double x, const GammaSeries& s) { return -(x / a) * s.sum; }
HVAE_HD double gamma_dshape_series(double a, double x) {
  GammaSeries s = gamma_series_init(a, x);
  for (int n = 1; n < kGammaSeriesMaxTerms; n += 2) {
    if (gamma_series_step(a, x, n, &s)) break;
  }
  return gamma_series_result(a, x, s);
}

// dx/da for a <= kGammaSeriesMaxShape, x > a + 1: the upper side, where the series cancels. With
// Q(a, x) = x^a e^{-x} F / Gamma(a) and Legendre's continued fraction [DLMF 8.9.2]
//   F = 1 / (x + 1 - a - 1 (1 - a) / (x + 3 - a - 2 (2 - a) / (x + 5 - a - ...))),
//   dx/da = (dQ/da) / p = x (F (log x - psi(a)) + dF/da),
// F and dF/da from the convergents' three-term recurrences and their derivatives in a (as in AS 187: R. J. Moore,
// "Derivatives of the incomplete gamma integral", Appl. Statist. 31(3), 1982), renormalised at each step
// (B_n = 1). gamma_fraction_step takes convergent n = 1, 2, ... and returns whether F and dF/da have converged.
struct GammaFraction {
  double am2, am1, bm2, dam2, dam1, dbm2, dbm1, f, df;
};
HVAE_HD_HOT GammaFraction gamma_fraction_init() {
  GammaFraction s;
  s.am2 = 1.0;
  s.am1 = 0.0;
  s.bm2 = 0.0;
  s.dam2 = 0.0;
  s.dam1 = 0.0;
  s.dbm2 = 0.0;
  s.dbm1 = 0.0;
  s.f = 0.0;
  s.df = 0.0;
  return s;
}
HVAE_HD_HOT bool gamma_fraction_step(double a, double x, int n, GammaFraction* s) {
  const double k = n - 1.0;
  const double an = n == 1 ? 1.0 : -k * (k - a), dan = n == 1 ? 0.0 : k;
  const double bn = x + 2.0 * k + 1.0 - a;                           // d bn / da = -1
  const double A = bn * s->am1 + an * s->am2, B = bn + an * s->bm2;  // bm1 = 1
  const double dA = bn * s->dam1 + an * s->dam2 - s->am1 + dan * s->am2;
  const double dB = bn * s->dbm1 + an * s->dbm2 - 1.0 + dan * s->bm2;
  const double r = 1.0 / B;
  s->am2 = s->am1 * r;
  s->am1 = A * r;
  s->bm2 = r;
  s->dam2 = s->dam1 * r;
  s->dam1 = dA * r;
  s->dbm2 = s->dbm1 * r;
  s->dbm1 = dB * r;
  const double fn = s->am1, dfn = s->dam1 - s->am1 * s->dbm1;
  const bool done = (n > 2) & (::fabs(fn - s->f) <= 1e-16 * ::fabs(fn)) & (::fabs(dfn - s->df) <= 1e-16 * ::fabs(dfn));
  s->f = fn;
  s->df = dfn;
  return done;
}
HVAE_HD double gamma_fraction_result_logs(double x, double log_x, double psi_a, const GammaFraction& s) {
  return x * (s.f * (log_x - psi_a) + s.df);  // log_x = log x, psi_a = psi(a)
}
HVAE_HD double gamma_fraction_result(double a, double x, const GammaFraction& s) {
  return gamma_fraction_result_logs(x, ::log(x), digamma_positive(a), s);
}
HVAE_HD double gamma_dshape_fraction(double a, double x) {
  GammaFraction s = gamma_fraction_init();
  for (int n = 1; n < kGammaSeriesMaxTerms; ++n) {
    if (gamma_fraction_step(a, x, n, &s)) break;
  }
  return gamma_fraction_result(a, x, s);
}

// The method of dx/da for (a, x): 0 the series, 1 the continued fraction, 2 Temme's expansion; -1 invalid input (NaN).
HVAE_HD_HOT int gamma_dshape_method(double a, double x) {
  if (!(x > 0.0) || !(a > 0.0) || !(x < infinity()) || !(a < infinity())) return -1;
  if (a > kGammaSeriesMaxShape) return 2;
  return x <= a + 1.0 ? 0 : 1;
}

// dx/da by Temme's expansion (a > kGammaSeriesMaxShape; see the top of this file).
HVAE_HD double gamma_dshape_temme(double a, double x) {
  const double mu = (x - a) / a, lambda = x / a, inv_a = 1.0 / a;
  double f1, c0, c1, dc0, dc1;
  if (::fabs(mu) < 0.125) {
    const double* tf = temme_taylor();
    const double* tc0 = tf + kTemmeTaylorTerms;
    const double* tc1 = tf + 2 * kTemmeTaylorTerms;
    f1 = c0 = c1 = dc0 = dc1 = 0.0;
    for (int k = kTemmeTaylorTerms - 1; k >= 0; --k) {
      f1 = f1 * mu + tf[k];
      c0 = c0 * mu + tc0[k];
      c1 = c1 * mu + tc1[k];
      if (k > 0) {
        dc0 = dc0 * mu + k * tc0[k];
        dc1 = dc1 * mu + k * tc1[k];
      }
    }
  } else {
    const double eta = (mu > 0.0 ? 1.0 : -1.0) * ::sqrt(2.0 * (mu - ::log1p(mu)));
    const double deta = mu / ((1.0 + mu) * eta);  // d eta / d mu
    const double im = 1.0 / mu, ie = 1.0 / eta;
    f1 = mu * ie - 0.5 * eta;
    c0 = im - ie;
    c1 = ie * ie * ie - im * im * im - im * im - im / 12.0;
    dc0 = -im * im + deta * ie * ie;
    dc1 = -3.0 * deta * ie * ie * ie * ie + 3.0 * im * im * im * im + 2.0 * im * im * im + im * im / 12.0;
  }
  const double gamma_star =
      1.0 + inv_a * (1.0 / 12 + inv_a * (1.0 / 288 - inv_a * (139.0 / 51840 + inv_a * (571.0 / 2488320))));
  const double s = c0 + c1 * inv_a;
  const double braces =
      f1 + (::log1p(mu) - 0.5 * inv_a) * s - (1.0 + mu) * (dc0 + dc1 * inv_a) * inv_a - c1 * inv_a * inv_a;
  return lambda * gamma_star * braces;
}

// dx/da for a Gamma(a) sample x > 0 (see the top of this file). NaN for x <= 0 or non-finite input.
HVAE_HD double gamma_sample_dshape(double a, double x) {
  switch (gamma_dshape_method(a, x)) {
    case 0:
      return gamma_dshape_series(a, x);
    case 1:
      return gamma_dshape_fraction(a, x);
    case 2:
      return gamma_dshape_temme(a, x);
    default:
      return quiet_nan();
  }
}

// dt/dkappa of a sample with Gamma variates g_alpha, g_beta, given dG_a/dalpha (gamma_sample_dshape at
// alpha = (d - 1) / 2 + kappa): (1 - t) (dG_a/dalpha) / (G_a + G_b), 1 - t = 2 G_b / (G_a + G_b).
HVAE_HD_HOT double power_spherical_t_dkappa(double g_alpha, double g_beta, double dg_alpha) {
  const double s = g_alpha + g_beta;
  return (2.0 * g_beta / s) * dg_alpha / s;
}

}  // namespace math
}  // namespace hvae
