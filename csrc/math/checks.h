// The rules of the distributions' argument checks (hvae_ext/distributions/_validation.py), shared by the CPU
// and CUDA kernels of the fused checks _vmf_check_unit_rows and _check_positive_finite (csrc/cpu/check_cpu.cpp,
// csrc/cuda/check_cuda.cu): the same arithmetic in the same order on both devices, so they accept and reject the
// same rows.
//
// Unit norm of a row x (d entries of a float64, float32, float16 or bfloat16 tensor), with a tolerance tol:
//   s   = sum of x_j^2, in float64 (8 partial sums, lane j mod 8, added pairwise; no fused multiply-add),
//   n   = sqrt(s) rounded to the tensor's dtype,
//   dev = |n - 1| rounded to the tensor's dtype,
//   the row passes iff dev <= tol (false for NaN).
// This is the rule the Python check computed with torch.linalg.vector_norm in the tensor's dtype, with the norm
// correctly rounded (torch's float32 reduction may differ from it in the last bit). A row with a NaN or an
// infinity has a non-finite s and fails.
#pragma once

#include "common.h"

namespace hvae {
namespace math {

// The precision a norm is rounded to: the tensor's dtype.
enum class CheckPrecision : int { kFloat64 = 0, kFloat32 = 1, kFloat16 = 2, kBFloat16 = 3 };

// Machine epsilon (the spacing of the dtype's numbers just above 1).
HVAE_HD double check_eps(CheckPrecision p) {
  switch (p) {
    case CheckPrecision::kFloat64:
      return 2.220446049250313e-16;  // 2^-52
    case CheckPrecision::kFloat32:
      return 1.1920928955078125e-07;  // 2^-23
    case CheckPrecision::kFloat16:
      return 9.765625e-04;  // 2^-10
    default:
      return 7.8125e-03;  // 2^-7
  }
}

// A float rounded to nearest (ties to even) to `kept` of its 23 fraction bits: float16 keeps 10, bfloat16 7.
// Exact for float16's normal range and all of bfloat16's (the same exponent range as float32); below or above
// float16's normal range the result differs from float16's, which no decision of the unit-norm rule depends on
// (such norms are < 6.2e-5 or > 65504, far from 1).
HVAE_HD float round_fraction_bits(float x, int kept) {
  union {
    float f;
    uint32_t u;
  } v;
  v.f = x;
  if ((v.u & 0x7f800000u) == 0x7f800000u) return x;  // inf, NaN
  const int drop = 23 - kept;
  const uint32_t half = 1u << (drop - 1), lsb = (v.u >> drop) & 1u;
  v.u = (v.u + half - 1u + lsb) & ~((1u << drop) - 1u);
  return v.f;
}

// x rounded to the dtype (float16/bfloat16: through float32, as torch computes them in float32 and rounds).
HVAE_HD double round_to_precision(double x, CheckPrecision p) {
  switch (p) {
    case CheckPrecision::kFloat64:
      return x;
    case CheckPrecision::kFloat32:
      return static_cast<double>(static_cast<float>(x));
    case CheckPrecision::kFloat16:
      return static_cast<double>(round_fraction_bits(static_cast<float>(x), 10));
    default:
      return static_cast<double>(round_fraction_bits(static_cast<float>(x), 7));
  }
}

// acc + v * v with both operations rounded (never contracted to a fused multiply-add, on either device).
HVAE_HD_HOT double add_square(double acc, double v) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(acc, __dmul_rn(v, v));
#else
  return acc + v * v;
#endif
}

constexpr int kSumLanes = 8;

// The 8 partial sums of squares, added pairwise into s.
HVAE_HD_HOT double combine_lanes(const double* acc) {
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// s of a row: entry j (at p[j * stride]) goes to partial sum j mod 8. `load` converts an entry to double.
template <typename T, typename Load>
HVAE_HD_HOT double row_sum_squares(const T* p, int64_t d, int64_t stride, Load load) {
  double acc[kSumLanes] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  int64_t j = 0;
  if (stride == 1) {
    for (; j + kSumLanes <= d; j += kSumLanes) {
#pragma unroll
      for (int k = 0; k < kSumLanes; ++k) acc[k] = add_square(acc[k], load(p[j + k]));
    }
  } else {
    for (; j + kSumLanes <= d; j += kSumLanes) {
#pragma unroll
      for (int k = 0; k < kSumLanes; ++k) acc[k] = add_square(acc[k], load(p[(j + k) * stride]));
    }
  }
  for (int k = 0; j < d; ++j, ++k) acc[k] = add_square(acc[k], load(p[j * stride]));
  return combine_lanes(acc);
}

// The unit-norm rule on a row's s (see the top of this file).
HVAE_HD bool unit_norm_passes(double s, double tol, CheckPrecision p) {
  const double n = round_to_precision(sqrt(s), p);
  const double dev = round_to_precision(fabs(n - 1.0), p);
  return dev <= tol;
}

// A screen on s alone: every s in [lo, hi] passes unit_norm_passes (the rounding of sqrt, of n and of dev moves
// the deviation by less than the margin); rows outside it (and NaN) go through the rule itself. Computed once
// per call, on the host.
struct UnitNormScreen {
  double lo, hi;
};
inline UnitNormScreen unit_norm_screen(double tol, CheckPrecision p) {
  const double eps = check_eps(p);
  const double inner = tol - (2.0 * eps * (1.0 + tol) + 8.881784197001252e-16);  // margin: rounding + 2^-50
  if (!(inner > 0.0)) return {1.0, 0.0};                                         // empty: every row is ruled on
  const double below = 1.0 - inner;
  return {below > 0.0 ? below * below : 0.0, (1.0 + inner) * (1.0 + inner)};
}
HVAE_HD_HOT bool in_screen(double s, const UnitNormScreen& screen) { return s >= screen.lo && s <= screen.hi; }

// A screen before the screen, on CPUs: s_f, the sum of squares of a float32, float16 or bfloat16 row computed in
// float32 (in any order; 8 rows to a SIMD register, no conversion), screened by [lo, hi] such that every s_f in it has
// its float64 s in the screen above. Rows outside it (and NaN, and squares that overflow float32) go through the
// float64 screen and the rule as before, so the decisions are exactly those of the rule. Bounds (Higham, "Accuracy and
// Stability of Numerical Algorithms", 2002, section 3.1, any order of summation): with gamma_n = n u / (1 - n u),
//   |s_f - s| <= gamma_{d+1}(2^-24) s + d 2^-149 (d squares rounded in float32, d - 1 additions; squares that
//                                                  underflow lose at most 2^-149 each),
//   |s64 - s| <= gamma_d(2^-53) s               (the squares are exact in float64, d - 1 additions),
// where s is the exact sum. So s64 >= screen.lo when s_f >= (screen.lo (1 + gamma_f) / (1 - gamma_64) + slack), and
// s64 <= screen.hi when s_f <= (screen.hi (1 - gamma_f) / (1 + gamma_64) - slack); slack = 2^-100 covers the
// underflow term, the bounds get a further 2^-40 relative (the rounding of this computation) and are rounded
// outward-safe to float32 (lo up, hi down). Empty for very large d (then only the float64 screen runs).
struct UnitNormScreenFloat {
  float lo, hi;
  bool enabled;
};
inline UnitNormScreenFloat unit_norm_screen_float(const UnitNormScreen& screen, int64_t d) {
  const double n = static_cast<double>(d), u32 = 5.9604644775390625e-08, u64 = 1.1102230246251565e-16;
  const double gamma_f = (n + 1.0) * u32 / (1.0 - (n + 1.0) * u32), gamma_64 = n * u64 / (1.0 - n * u64);
  const double slack = 7.888609052210118e-31, rel = 9.094947017729282e-13;  // 2^-100, 2^-40
  if (!(screen.lo <= screen.hi) || !(gamma_f < 0.5)) return {1.0f, 0.0f, false};
  const double lo = screen.lo * (1.0 + gamma_f) / (1.0 - gamma_64) * (1.0 + rel) + slack;
  const double hi = screen.hi * (1.0 - gamma_f) / (1.0 + gamma_64) * (1.0 - rel) - slack;
  const float lo_f = std::nextafter(static_cast<float>(lo), std::numeric_limits<float>::infinity());
  const float hi_f = std::nextafter(static_cast<float>(hi), 0.0f);
  if (!(lo_f <= hi_f)) return {1.0f, 0.0f, false};
  return {lo_f, hi_f, true};
}

// The concentration rule: finite and > 0 (false for NaN).
HVAE_HD_HOT bool positive_finite(double x) { return x > 0.0 && x != infinity(); }
// The same on a float32 (or a float16/bfloat16 read as float32): 0 < x <= FLT_MAX, the float64 rule's answer for
// the same number (the conversion to float64 is exact), in twice the SIMD lanes.
HVAE_HD_HOT bool positive_finite(float x) { return x > 0.0f && x <= 3.40282346638528859812e+38f; }

}  // namespace math
}  // namespace hvae
