// Elementary functions for the hot loops of the kernels, shared by the sampler (wood.h) and the implicit
// gradient (implicit_grad.h).
//
// On the host: inline polynomials without libm calls or branches in the hot versions, so that gcc can
// vectorize loops over rows or quadrature nodes that use them (glibc's log/sin/cos are scalar calls, each
// ~10-20 ns, and block vectorization). Errors measured against mpmath: exp 0.7 ulp, log and log1p 1.5 ulp,
// sin/cos 1 ulp. On the device: the CUDA math functions.
#pragma once

#include <cstring>

#include "common.h"

#if !defined(__CUDA_ARCH__) && (defined(__GNUC__) || defined(__clang__))
#define HVAE_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define HVAE_ALWAYS_INLINE inline
#endif

namespace hvae {
namespace math {

#if !defined(__CUDA_ARCH__)
HVAE_ALWAYS_INLINE double fast_from_bits(long long b) {
  double x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}
HVAE_ALWAYS_INLINE long long fast_to_bits(double x) {
  long long b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

// e^x for x in [-708, 709] (clamped: e^-708 = 3e-308 stands in for 0; x > 709 does not occur here).
// k = round(x / log 2), r = x - k log 2 in [-0.347, 0.347] (log 2 in two parts), a degree-11 polynomial
// (Chebyshev interpolant of e^r, relative error 4e-18), times 2^k built in the exponent bits.
HVAE_ALWAYS_INLINE double fast_exp_core(double x) {
  const double xc = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
  const double shift = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer in the low bits
  const double kd = xc * 1.4426950408889634 + shift;
  const double k = kd - shift;
  const double r = (xc - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
  double q = 2.5110037605963778e-08;
  q = q * r + 2.7632639639041030e-07;
  q = q * r + 2.7557240918578970e-06;
  q = q * r + 2.4801485482328492e-05;
  q = q * r + 1.9841269890047114e-04;
  q = q * r + 1.3888888952314775e-03;
  q = q * r + 8.3333333333196006e-03;
  q = q * r + 4.1666666666488095e-02;
  q = q * r + 1.6666666666666681e-01;
  q = q * r + 5.0000000000000184e-01;
  q = q * r + 1.0;
  q = q * r + 1.0;
  return q * fast_from_bits((fast_to_bits(kd) - 0x4338000000000000LL + 1023) << 52);
}

// The two halves of the host logarithms. fast_log_split: z = 2^e m with m in [sqrt(1/2), sqrt(2)) for z a
// positive normal number. fast_log_reduced: e log 2 + log(1 + f) for f = m - 1, log(1 + f) = 2 atanh(s),
// s = f / (2 + f) (|s| <= 0.1716), series to s^21, log 2 in two parts.
HVAE_ALWAYS_INLINE void fast_log_split(double z, double* e, double* m) {
  const long long b = fast_to_bits(z);
  double mm = fast_from_bits((b & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);  // [1, 2)
  double ee = fast_from_bits(0x4330000000000000LL | (b >> 52)) - (4503599627370496.0 + 1023.0);
  const bool big = mm > 1.4142135623730951;
  *m = big ? 0.5 * mm : mm;
  *e = big ? ee + 1.0 : ee;
}
HVAE_ALWAYS_INLINE double fast_log_reduced(double e, double f) {
  const double s = f / (2.0 + f), s2 = s * s;
  double q = 1.0 / 21.0;
  q = q * s2 + 1.0 / 19.0;
  q = q * s2 + 1.0 / 17.0;
  q = q * s2 + 1.0 / 15.0;
  q = q * s2 + 1.0 / 13.0;
  q = q * s2 + 1.0 / 11.0;
  q = q * s2 + 1.0 / 9.0;
  q = q * s2 + 1.0 / 7.0;
  q = q * s2 + 1.0 / 5.0;
  q = q * s2 + 1.0 / 3.0;
  return e * 6.93147180369123816490e-01 + ((2.0 * s + 2.0 * s * (s2 * q)) + e * 1.90821492927058770002e-10);
}

// sin u and cos u for |u| <= pi/4 (quadrature node offsets): Taylor polynomials to u^15 and u^16 (truncation
// < 1e-16), written so that a loop over many u vectorizes.
HVAE_ALWAYS_INLINE void fast_sincos_quarter_pi(double u, double* s, double* c) {
  const double u2 = u * u;
  double su = 7.6471637318198165e-13 * u2 - 1.6059043836821615e-10;
  su = su * u2 + 2.5052108385441719e-08;
  su = su * u2 - 2.7557319223985891e-06;
  su = su * u2 + 1.9841269841269841e-04;
  su = su * u2 - 8.3333333333333333e-03;
  su = su * u2 + 1.6666666666666667e-01;
  su = -su;
  double cu = 4.7794773323873853e-14 * u2 - 1.1470745597729725e-11;
  cu = cu * u2 + 2.0876756987868099e-09;
  cu = cu * u2 - 2.7557319223985891e-07;
  cu = cu * u2 + 2.4801587301587302e-05;
  cu = cu * u2 - 1.3888888888888889e-03;
  cu = cu * u2 + 4.1666666666666667e-02;
  cu = cu * u2 - 0.5;
  *s = u + u * (u2 * su);
  *c = 1.0 + u2 * cu;
}

// log(1 + y) for y > -1 with 1 + y a normal number; for e = 0 the exact y is used as m - 1, so the
// rounding of 1 + y does not matter (and for e != 0, |log1p(y)| > 0.34 absorbs it).
HVAE_ALWAYS_INLINE double fast_log1p_core(double y) {
  double z = 1.0 + y;
  z = z < 2.2250738585072014e-308 ? 2.2250738585072014e-308 : z;
  double e, m;
  fast_log_split(z, &e, &m);
  return fast_log_reduced(e, e == 0.0 ? y : m - 1.0);
}

// log x for x a positive normal double (m - 1 is exact by Sterbenz's lemma).
HVAE_ALWAYS_INLINE double fast_log_core(double x) {
  double e, m;
  fast_log_split(x, &e, &m);
  return fast_log_reduced(e, m - 1.0);
}
#endif

HVAE_HD_HOT double fast_exp(double x) {
#if defined(__CUDA_ARCH__)
  return ::exp(x);
#else
  return x < -708.0 ? 0.0 : (x > 709.0 ? infinity() : fast_exp_core(x));
#endif
}

HVAE_HD_HOT double fast_log1p(double y) {
#if defined(__CUDA_ARCH__)
  return ::log1p(y);
#else
  const double z = 1.0 + y;
  if (!(z >= 2.2250738585072014e-308 && z <= 1.7976931348623157e308)) return ::log1p(y);
  return fast_log1p_core(y);
#endif
}

// sin h and cos h for |h| <= pi/2: Taylor polynomials to h^21 and h^20 (truncation < 3e-17).
HVAE_HD_HOT void fast_sincos_half_pi(double h, double* s, double* c) {
  const double h2 = h * h;
  double ps = 1.9572941063391261e-20;
  ps = ps * h2 - 8.2206352466243297e-18;
  ps = ps * h2 + 2.8114572543455208e-15;
  ps = ps * h2 - 7.6471637318198165e-13;
  ps = ps * h2 + 1.6059043836821615e-10;
  ps = ps * h2 - 2.5052108385441719e-08;
  ps = ps * h2 + 2.7557319223985891e-06;
  ps = ps * h2 - 1.9841269841269841e-04;
  ps = ps * h2 + 8.3333333333333333e-03;
  ps = ps * h2 - 1.6666666666666667e-01;
  *s = h + h * (h2 * ps);
  double pc = 4.1103176233121649e-19;
  pc = pc * h2 - 1.5619206968586226e-16;
  pc = pc * h2 + 4.7794773323873853e-14;
  pc = pc * h2 - 1.1470745597729725e-11;
  pc = pc * h2 + 2.0876756987868099e-09;
  pc = pc * h2 - 2.7557319223985891e-07;
  pc = pc * h2 + 2.4801587301587302e-05;
  pc = pc * h2 - 1.3888888888888889e-03;
  pc = pc * h2 + 4.1666666666666667e-02;
  pc = pc * h2 - 0.5;
  *c = 1.0 + h2 * pc;
}

// cos and sin of 2 pi u for u in [0, 1]: quadrant q = round(4 u), h = 2 pi (u - q / 4) in [-pi/4, pi/4]
// (u - q/4 is exact), then the polynomials of fast_sincos_half_pi. Branch-free.
HVAE_HD_HOT void fast_cos_sin_2pi(double u, double* c, double* s) {
#if defined(__CUDA_ARCH__)
  ::sincospi(2.0 * u, s, c);
#else
  const double qf = __builtin_floor(4.0 * u + 0.5);
  const double h = 2.0 * kPi * (u - 0.25 * qf);
  double sh, ch;
  fast_sincos_half_pi(h, &sh, &ch);
  const int q = static_cast<int>(qf) & 3;
  *c = q == 0 ? ch : q == 1 ? -sh : q == 2 ? -ch : sh;
  *s = q == 0 ? sh : q == 1 ? ch : q == 2 ? -sh : -ch;
#endif
}

// e^x - 1 for x <= 0 (the d = 3 inversion's expm1(-2 kappa)). Host: Taylor polynomial to x^14 on
// [-0.35, 0] (truncation < 4e-18 relative), e^x - 1 below; branch-free.
HVAE_HD_HOT double fast_expm1_nonpositive(double x) {
#if defined(__CUDA_ARCH__)
  return ::expm1(x);
#else
  double q = 1.0 / 87178291200.0;  // 1 / 14!
  q = q * x + 1.0 / 6227020800.0;
  q = q * x + 1.0 / 479001600.0;
  q = q * x + 1.0 / 39916800.0;
  q = q * x + 1.0 / 3628800.0;
  q = q * x + 1.0 / 362880.0;
  q = q * x + 1.0 / 40320.0;
  q = q * x + 1.0 / 5040.0;
  q = q * x + 1.0 / 720.0;
  q = q * x + 1.0 / 120.0;
  q = q * x + 1.0 / 24.0;
  q = q * x + 1.0 / 6.0;
  q = q * x + 0.5;
  const double small = x + x * (x * q);
  return x > -0.35 ? small : fast_exp_core(x) - 1.0;
#endif
}

}  // namespace math
}  // namespace hvae
