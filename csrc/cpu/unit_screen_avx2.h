// The float32 screen of the unit-norm check (math::unit_norm_screen_float) on AVX2, for float32 rows whose entries
// are contiguous: whether every row of a block has its float32 sum of squares in [lo, hi]. A block with a row
// outside (or a NaN, or a square that overflows) goes back to the float64 pass and the rule, so the decisions stay
// the rule's. The screen's bound holds for any order of summation, so each row's squares are added in whatever
// order the registers give. Callers check math::detail::ig_cpu_has_avx2_fma() first.
//
// Why by hand: for d >= 8 gcc vectorizes the scalar float32 loop across rows with transposes, slower than the
// float64 pass it is meant to skip (a (65536, 16) check took 476 us on one core in float64); here each row is
// summed 8 entries to a register and 8 rows' registers are reduced together by horizontal adds. For d = 3, 8 rows
// are 3 registers, regrouped by blends into x, y and z of the same 8 rows.
#pragma once

#include <cstdint>

#include "../math/implicit_grad.h"  // HVAE_IG_X86_DISPATCH, ig_cpu_has_avx2_fma

#if HVAE_IG_X86_DISPATCH
#include <immintrin.h>

namespace hvae {
namespace cpu {

#define HVAE_SCREEN_AVX2_FN __attribute__((target("avx2"), optimize("fp-contract=off"))) inline
#define HVAE_SCREEN_AVX2 __attribute__((target("avx2"), optimize("fp-contract=off"), always_inline)) inline

// The lanes of s inside [lo, hi] (all bits set), NaN outside.
HVAE_SCREEN_AVX2 __m256 screen_lanes(__m256 s, __m256 lo, __m256 hi) {
  return _mm256_and_ps(_mm256_cmp_ps(s, lo, _CMP_GE_OQ), _mm256_cmp_ps(s, hi, _CMP_LE_OQ));
}

// The 8 partial sums of squares of a row of d >= 8 entries (entry j to lane j mod 8; the last d mod 8 entries by a
// masked load, which reads nothing past the row). D > 0: d = D known at compile time (the loop unrolls).
template <int D>
HVAE_SCREEN_AVX2 __m256 row_square_lanes(const float* p, int64_t d_runtime, __m256i tail_mask) {
  const int64_t d = D > 0 ? D : d_runtime;
  __m256 x = _mm256_loadu_ps(p);
  __m256 acc = _mm256_mul_ps(x, x);
  int64_t j = 8;
  for (; j + 8 <= d; j += 8) {
    x = _mm256_loadu_ps(p + j);
    acc = _mm256_add_ps(acc, _mm256_mul_ps(x, x));
  }
  if (j < d) {
    x = _mm256_maskload_ps(p + j, tail_mask);
    acc = _mm256_add_ps(acc, _mm256_mul_ps(x, x));
  }
  return acc;
}

// Lane r: the sum of the 8 lanes of a[r], for 8 rows' partial sums.
HVAE_SCREEN_AVX2 __m256 reduce_rows8(const __m256* a) {
  const __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 h0123 = _mm256_hadd_ps(h01, h23), h4567 = _mm256_hadd_ps(h45, h67);  // halves of rows 0-3, 4-7
  return _mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20), _mm256_permute2f128_ps(h0123, h4567, 0x31));
}

// Rows [0, n) at p + r * row_stride, d >= 8 entries each (D > 0: d = D): all inside [lo, hi]?
template <int D>
HVAE_SCREEN_AVX2_FN bool float_rows_in_screen_avx2(const float* p, int64_t row_stride, int64_t d, int64_t n, float lo,
                                                   float hi) {
  const int tail = static_cast<int>(d % 8);
  alignas(32) int32_t mask_words[8];
  for (int k = 0; k < 8; ++k) mask_words[k] = k < tail ? -1 : 0;
  const __m256i tail_mask = _mm256_load_si256(reinterpret_cast<const __m256i*>(mask_words));
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  __m256 inside = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  int64_t r = 0;
  for (; r + 8 <= n; r += 8) {
    __m256 acc[8];
    for (int k = 0; k < 8; ++k) acc[k] = row_square_lanes<D>(p + (r + k) * row_stride, d, tail_mask);
    inside = _mm256_and_ps(inside, screen_lanes(reduce_rows8(acc), vlo, vhi));
  }
  bool all = _mm256_movemask_ps(inside) == 0xff;
  for (; r < n; ++r) {  // the last rows, one register each
    const __m256 acc = row_square_lanes<D>(p + r * row_stride, d, tail_mask);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    const float s = _mm_cvtss_f32(_mm_add_ss(s4, _mm_movehdup_ps(s4)));
    all = all && s >= lo && s <= hi;
  }
  return all;
}

// Rows [0, n) of 3 entries, back to back from p: all inside [lo, hi]? Rows r..r+7 are the registers
// a = (x0 y0 z0 x1 y1 z1 x2 y2), b = (z2 x3 y3 z3 x4 y4 z4 x5), c = (y5 z5 x6 y6 z6 x7 y7 z7); blends take the
// x of rows (0 3 6 1 4 7 2 5), the y of rows (5 0 3 6 1 4 7 2) and the z of rows (2 5 0 3 6 1 4 7), and two
// lane rotations line the y and z up with the x.
HVAE_SCREEN_AVX2_FN bool float_rows3_in_screen_avx2(const float* p, int64_t n, float lo, float hi) {
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  const __m256i rotate1 = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0),
                rotate2 = _mm256_setr_epi32(2, 3, 4, 5, 6, 7, 0, 1);
  __m256 inside = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  int64_t r = 0;
  for (; r + 8 <= n; r += 8) {
    __m256 a = _mm256_loadu_ps(p + 3 * r), b = _mm256_loadu_ps(p + 3 * r + 8), c = _mm256_loadu_ps(p + 3 * r + 16);
    a = _mm256_mul_ps(a, a);
    b = _mm256_mul_ps(b, b);
    c = _mm256_mul_ps(c, c);
    const __m256 x = _mm256_blend_ps(_mm256_blend_ps(a, b, 0x92), c, 0x24);
    const __m256 y = _mm256_blend_ps(_mm256_blend_ps(a, b, 0x24), c, 0x49);
    const __m256 z = _mm256_blend_ps(_mm256_blend_ps(a, b, 0x49), c, 0x92);
    const __m256 s =
        _mm256_add_ps(_mm256_add_ps(x, _mm256_permutevar8x32_ps(y, rotate1)), _mm256_permutevar8x32_ps(z, rotate2));
    inside = _mm256_and_ps(inside, screen_lanes(s, vlo, vhi));
  }
  bool all = _mm256_movemask_ps(inside) == 0xff;
  for (; r < n; ++r) {
    const float* q = p + 3 * r;
    const float s = q[0] * q[0] + q[1] * q[1] + q[2] * q[2];
    all = all && s >= lo && s <= hi;
  }
  return all;
}

#undef HVAE_SCREEN_AVX2
#undef HVAE_SCREEN_AVX2_FN

}  // namespace cpu
}  // namespace hvae

#endif  // HVAE_IG_X86_DISPATCH
