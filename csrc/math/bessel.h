// Modified Bessel functions of the first kind for the von Mises-Fisher distribution, in float64,
// finite and accurate (relative error / max(1, |value|) ~1e-15 .. 1e-13) for orders v in [0, 5e5] and
// arguments x in [0, 1e7] and beyond.
//
// Regions and methods
//   1. Small argument, x^2/4 <= v + 1: the power series (DLMF 10.25.2)
//        I_v(x) = (x/2)^v / Gamma(v+1) * sum_k (x^2/4)^k / (k! (v+1)_k),
//      all terms positive, so the sum is accurate to a few ulps; kept in scaled form (log of the sum
//      apart from (x/2)^v / Gamma(v+1)), so log C_d(kappa) has no cancellation as kappa -> 0.
//   2. Order v >= kDebyeMinOrder = 20, any x: Olver's uniform asymptotic (Debye) expansion
//      (DLMF 10.41.3, with 12 terms U_k(p) from the recurrence DLMF 10.41.10; Olver 1954)
//        I_v(v z) ~ e^{v eta} / ((2 pi v)^{1/2} (1 + z^2)^{1/4}) sum_k U_k(p) / v^k,
//        p = 1/sqrt(1+z^2),  eta = sqrt(1+z^2) + log(z / (1 + sqrt(1+z^2))).
//      With 12 terms and v >= 20 the truncation error is below 1e-15 uniformly in z (measured against
//      mpmath). No overflow: only the logarithm is formed.
//   3. The ratio R_v(x) = I_v(x)/I_{v-1}(x) for v - 1 >= kDebyeMinOrder: from the companion expansion
//      of I_v'(v z) (DLMF 10.41.4, V_k from DLMF 10.41.11) and I_{v+1} = I_v' - (v/x) I_v, rearranged so
//      that nothing cancels for small or large z (mu = v - 1, z = x / mu):
//        R_v(x) = z / (1 + sqrt(1+z^2)) + z p sum_{k>=1} W_k(p)/mu^k / sum_{k>=0} U_k(p)/mu^k,
//        W_k = (V_k - U_k) / (1 - p^2) = -p (U_{k-1}/2 + p U_{k-1}').
//      A difference of two Debye logarithms would lose |log I| * eps (1e-9 at x = 1e7).
//   4. Small orders (v < 20, or v - 1 < 20 for the ratio), x beyond the series: the ratio at order
//      v + N >= 20 from (3), then the backward recurrence R_k = 1 / (2k/x + R_{k+1}) (DLMF 10.29.1; the
//      Gauss continued fraction run backwards, stable since |dR_k/dR_{k+1}| = R_k^2 < 1), and
//        log I_v(x) = log I_{v+N}(x) - sum_{k=1..N} log R_{v+k}(x).
//
// The vMF quantities: C_d(kappa) = kappa^{d/2-1} / ((2 pi)^{d/2} I_{d/2-1}(kappa)) and
// A_d(kappa) = R_{d/2}(kappa) = -d/dkappa log C_d(kappa). In the Debye region log C_d is assembled with
// v log kappa - v log z = v log v done analytically, again so that no large terms cancel.
// References: F. W. J. Olver, "The asymptotic expansion of Bessel functions of large order", Phil. Trans.
// R. Soc. A 247 (1954); NIST DLMF chapter 10; D. E. Amos, "Computation of modified Bessel functions and
// their ratios", Math. Comp. 28 (1974); TensorFlow Probability, tfp.math.bessel (same regions, other
// choices). Accuracy is measured against 50-digit mpmath in tests/test_special_accuracy.py; see
// docs/special_functions.md.
#pragma once

#include "common.h"

namespace hvae {
namespace math {

namespace detail {

constexpr double kDebyeMinOrder = 20.0;
constexpr int kDebyeTerms = 12;
// float32 results need only ~1e-7: 8 terms from order 8 are accurate to ~5e-10 (log I) and ~4e-8 (ratio),
// measured against mpmath, and save most of the backward recurrence at small orders.
constexpr double kDebyeMinOrderSingle = 8.0;
constexpr int kDebyeTermsSingle = 8;
HVAE_HD double debye_min_order(bool single) { return single ? kDebyeMinOrderSingle : kDebyeMinOrder; }
HVAE_HD int debye_terms(bool single) { return single ? kDebyeTermsSingle : kDebyeTerms; }

// U_k(p) = p^k * sum_{j=0..k} U[k(k+1)/2 + j] p^{2j}, k = 0..12.
#define HVAE_DEBYE_U_VALUES \
    1.0, 0.125, -0.20833333333333334, 0.0703125, -0.4010416666666667, 0.3342013888888889, 0.0732421875, \
    -0.8912109375, 1.8464626736111112, -1.0258125964506173, 0.112152099609375, -2.3640869140625, \
    8.78912353515625, -11.207002616222994, 4.669584423426247, 0.22710800170898438, -7.368794359479632, \
    42.53499874538846, -91.81824154324002, 84.63621767460073, -28.212072558200244, 0.5725014209747314, \
    -26.491430486951554, 218.1905117442116, -699.5796273761325, 1059.9904525279999, -765.2524681411817, \
    212.57013003921713, 1.7277275025844574, -108.09091978839466, 1200.9029132163525, -5305.646978613403, \
    11655.393336864534, -13586.550006434138, 8061.722181737309, -1919.457662318407, 6.074042001273483, \
    -493.915304773088, 7109.514302489364, -41192.65496889755, 122200.46498301746, -203400.17728041555, \
    192547.00123253153, -96980.59838863752, 20204.29133096615, 24.380529699556064, -2499.8304818112097, \
    45218.76898136273, -331645.1724845636, 1268365.2733216248, -2813563.226586534, 3763271.297656404, \
    -2998015.9185381066, 1311763.6146629772, -242919.18790055133, 110.01714026924674, \
    -13886.08975371704, 308186.4046126624, -2785618.1280864547, 13288767.166421818, -37567176.66076335, \
    66344512.27472903, -74105148.21153265, 50952602.49266464, -19706819.118432228, 3284469.853072038, \
    551.3358961220206, -84005.43360302408, 2243768.1779224495, -24474062.72573873, 142062907.7975331, \
    -495889784.2750303, 1106842816.8230145, -1621080552.1083372, 1553596899.57058, -939462359.6815784, \
    325573074.18576574, -49329253.66450996, 3038.090510922384, -549842.3275722887, 17395107.553978164, \
    -225105661.88941526, 1559279864.8792574, -6563293792.619285, 17954213731.1556, -33026599749.800724, \
    41280185579.753975, -34632043388.158775, 18688207509.295826, -5866481492.051847, 814789096.1183121
// W_k(p) = p^k * sum_{j=0..k-1} W[(k-1)k/2 + j] p^{2j}, k = 1..12.
#define HVAE_DEBYE_W_VALUES \
    -0.5, -0.1875, 0.7291666666666666, -0.17578125, 1.8046875, -2.1723090277777777, -0.25634765625, \
    4.90166015625, -13.848470052083334, 9.745219666280864, -0.5046844482421875, 15.36656494140625, \
    -74.70755004882812, 117.67352747034144, -58.36980529282809, -1.249094009399414, 55.26595769609724, \
    -404.0824880811903, 1055.9097777472603, -1142.5889386071099, 437.2871246521038, -3.7212592363357544, \
    225.17715913908822, -2291.0003733142216, 8744.745342201657, -15369.861561655998, 12626.665724329498, \
    -3932.547405725517, -12.95795626938343, 1026.8637379897493, -13810.383501988053, 71626.23421128094, \
    -180658.59672140027, 237764.6251125974, -157203.58254387754, 41268.33973984575, -51.629357010824606, \
    5186.110700117424, -88868.92878111705, 597293.4970490145, -2016307.6722197882, 3762903.2796876873, \
    -3947213.5252668965, 2182063.463744344, -495005.13760867063, -231.6150321457826, 28748.05054082891, \
    -610453.3812483968, 5140500.173510736, -22196392.283128433, 54864482.918437414, -80910332.89961268, \
    70453374.08564551, -33449972.17390592, 6680277.667265162, -1155.1799728270908, 173576.121921463, \
    -4468702.866883605, 45962699.1134265, -245842192.57880363, 770127121.5456487, -1492751526.1814032, \
    1815576131.1825502, -1350243966.055613, 561644344.8753184, -100176330.51869716, -6340.362805403237, \
    1134073.3536408253, -34778406.757797964, 428296097.7004278, -2770226702.051895, 10661630361.91315, \
    -26010806195.34084, 41337554078.762596, -42723914738.19095, 27714139610.606564, -10255551836.851622, \
    1652529997.7610838

#if defined(__CUDACC__)
static __constant__ double kDebyeUDevice[91] = {HVAE_DEBYE_U_VALUES};
static __constant__ double kDebyeWDevice[78] = {HVAE_DEBYE_W_VALUES};
#endif
static constexpr double kDebyeUHost[91] = {HVAE_DEBYE_U_VALUES};
static constexpr double kDebyeWHost[78] = {HVAE_DEBYE_W_VALUES};

HVAE_HD const double* debye_u() {
#if defined(__CUDA_ARCH__)
  return kDebyeUDevice;
#else
  return kDebyeUHost;
#endif
}
HVAE_HD const double* debye_w() {
#if defined(__CUDA_ARCH__)
  return kDebyeWDevice;
#else
  return kDebyeWHost;
#endif
}

// sum_{k=0..terms} U_k(p) / v^k and, if sum_w != nullptr, sum_{k=1..terms} W_k(p) / v^k.
HVAE_HD double debye_sums(double p, double v, double* sum_w, int terms) {
  const double* u = debye_u();
  const double* w = debye_w();
  const double p2 = p * p, step = p / v;
  double su = 1.0, sw = 0.0, scale = 1.0;
  for (int k = 1; k <= terms; ++k) {
    scale *= step;
    const double* uk = u + k * (k + 1) / 2;
    double q = uk[k];
    for (int j = k - 1; j >= 0; --j) q = q * p2 + uk[j];
    su += scale * q;
    if (sum_w != nullptr) {
      const double* wk = w + (k - 1) * k / 2;
      double r = wk[k - 1];
      for (int j = k - 2; j >= 0; --j) r = r * p2 + wk[j];
      sw += scale * r;
    }
  }
  if (sum_w != nullptr) *sum_w = sw;
  return su;
}

// Debye pieces at order v >= 20: log I_v(x) = v * eta_part - 0.5 log(2 pi v) - 0.25 log1p(z^2) + log S_U,
// with eta = sqrt(1+z^2) + log z - log1p(sqrt(1+z^2)).
HVAE_HD double log_bessel_iv_debye(double v, double x, bool single) {
  const double z = x / v, s = ::sqrt(1.0 + z * z), p = 1.0 / s;
  const double eta = s + ::log(z) - ::log1p(s);
  return v * eta - 0.5 * (kLog2Pi + ::log(v)) - 0.25 * ::log1p(z * z) +
         ::log(debye_sums(p, v, nullptr, debye_terms(single)));
}

// R_v(x) = I_v(x)/I_{v-1}(x) for mu = v - 1 >= 20 (region 3).
HVAE_HD double bessel_iv_ratio_debye(double v, double x, bool single) {
  const double mu = v - 1.0, z = x / mu, s = ::sqrt(1.0 + z * z), p = 1.0 / s;
  double sw;
  const double su = debye_sums(p, mu, &sw, debye_terms(single));
  return z / (1.0 + s) + z * p * sw / su;
}

// log of sum_k (x^2/4)^k / (k! (v+1)_k), the series of region 1 without its leading factor.
HVAE_HD double log_bessel_series_sum(double v, double x, bool single) {
  const double tol = single ? 1e-9 : 1e-17;
  const double q = 0.25 * x * x;
  double term = 1.0, sum = 0.0;
  for (int k = 1; k <= 500; ++k) {
    term *= q / (k * (v + k));
    sum += term;
    if (term <= tol * sum) break;
  }
  return ::log1p(sum);
}

HVAE_HD bool in_series_region(double v, double x) { return 0.25 * x * x <= v + 1.0; }

// The ratio R_v(x), v >= 1/2, x > 0, by region 3 at order v + n (n >= 0 the least with v + n - 1 >= 20)
// and the backward recurrence of region 4 down to v. If log_prod is given, it receives
// sum_{k=0..n} log R_{v+k}(x), and top_order the order v + n of the first ratio (for log I).
HVAE_HD double ratio_by_recurrence(double v, double x, double* log_prod, double* top_order, bool single) {
  double n = 0.0;
  const double min_order = debye_min_order(single);
  if (v - 1.0 < min_order) n = ::ceil(min_order - (v - 1.0));
  double r = bessel_iv_ratio_debye(v + n, x, single);  // R_{v+n}
  double log_p = 0.0, prod = 1.0;
  for (double k = v + n - 1.0; k >= v - 0.5; k -= 1.0) {
    // Loop runs n times: R_k from R_{k+1}.
    if (log_prod != nullptr) {
      prod *= r;
      if (prod < 1e-250) {
        log_p += ::log(prod);
        prod = 1.0;
      }
    }
    r = 1.0 / (2.0 * k / x + r);
  }
  if (log_prod != nullptr) {
    prod *= r;  // include R_v itself
    *log_prod = log_p + ::log(prod);
    *top_order = v + n;
  }
  return r;
}

}  // namespace detail

// log I_v(x) for v >= 0, x >= 0. `single`: float32 accuracy suffices (faster).
HVAE_HD double log_bessel_iv(double v, double x, bool single = false) {
  if (is_nan(v) || is_nan(x) || v < 0.0 || x < 0.0) return quiet_nan();
  if (x == 0.0) return v == 0.0 ? 0.0 : -infinity();
  if (is_inf(x)) return infinity();
  if (detail::in_series_region(v, x))
    return v * ::log(0.5 * x) - ::lgamma(v + 1.0) + detail::log_bessel_series_sum(v, x, single);
  if (v >= detail::debye_min_order(single)) return detail::log_bessel_iv_debye(v, x, single);
  // log I_v = log I_{v+M} - sum_{k=1..M} log R_{v+k}: the recurrence starts at R_{v+M} with
  // (v + M) - 1 >= 20 from region 3 and runs down to R_{v+1}; top = v + M.
  double log_prod = 0.0, top = 0.0;
  detail::ratio_by_recurrence(v + 1.0, x, &log_prod, &top, single);
  return detail::log_bessel_iv_debye(top, x, single) - log_prod;
}

// R_v(x) = I_v(x) / I_{v-1}(x) for v >= 1/2, x >= 0.
HVAE_HD double bessel_iv_ratio(double v, double x, bool single = false) {
  if (is_nan(v) || is_nan(x) || v < 0.5 || x < 0.0) return quiet_nan();
  if (x == 0.0) return 0.0;
  if (is_inf(x)) return 1.0;
  return detail::ratio_by_recurrence(v, x, nullptr, nullptr, single);
}

// log C_d(kappa), C_d = kappa^{d/2-1} / ((2 pi)^{d/2} I_{d/2-1}(kappa)), d >= 2, kappa >= 0.
HVAE_HD double vmf_log_normalizer(double kappa, double d, bool single = false) {
  if (is_nan(kappa) || is_nan(d) || kappa < 0.0 || d < 2.0) return quiet_nan();
  const double v = 0.5 * d - 1.0;
  // -log |S^{d-1}| = lgamma(d/2) - log 2 - (d/2) log pi
  const double minus_log_area = ::lgamma(0.5 * d) - kLog2 - 0.5 * d * kLogPi;
  if (kappa == 0.0) return minus_log_area;
  if (is_inf(kappa)) return infinity();
  if (detail::in_series_region(v, kappa)) return minus_log_area - detail::log_bessel_series_sum(v, kappa, single);
  if (v >= detail::debye_min_order(single)) {
    // v log kappa - log I_v(kappa) with v log kappa - v log z = v log v done analytically.
    const double z = kappa / v, s = ::sqrt(1.0 + z * z), p = 1.0 / s;
    return -0.5 * d * kLog2Pi - v * (s - ::log(v) - ::log1p(s)) + 0.5 * (kLog2Pi + ::log(v)) +
           0.25 * ::log1p(z * z) - ::log(detail::debye_sums(p, v, nullptr, detail::debye_terms(single)));
  }
  return v * ::log(kappa) - 0.5 * d * kLog2Pi - log_bessel_iv(v, kappa, single);
}

// A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) = E[mu^T z] = -d/dkappa log C_d(kappa).
HVAE_HD double vmf_mean_resultant(double kappa, double d, bool single = false) {
  if (is_nan(kappa) || is_nan(d) || kappa < 0.0 || d < 2.0) return quiet_nan();
  return bessel_iv_ratio(0.5 * d, kappa, single);
}

}  // namespace math
}  // namespace hvae
