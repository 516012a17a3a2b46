// math::philox_block for eight rows at once with AVX2 (CPU kernels only): the ten rounds of math::philox4x32_10 on
// eight counters (block, stream, row_lo + idx[l], row_hi + carry), l = 0..7, with the 32 x 32 -> 64-bit products of
// the even and odd lanes from two vpmuludq. Integer arithmetic throughout: the same words as math::philox_block.
// (gcc's vectorization of the scalar rounds widens every lane to 64 bits and packs the halves back with shuffles,
// about three times slower.) Callers check math::detail::ig_cpu_has_avx2_fma() first.
#pragma once

#include <cstdint>

#include "../math/implicit_grad.h"  // HVAE_IG_X86_DISPATCH, ig_cpu_has_avx2_fma
#include "../math/philox.h"

#if HVAE_IG_X86_DISPATCH
#include <immintrin.h>

namespace hvae {
namespace cpu {

#define HVAE_AVX2 __attribute__((target("avx2"), always_inline)) inline

// The eight low and high halves of the products of the lanes of c with m.
HVAE_AVX2 void philox_mulhilo_x8(__m256i c, __m256i m, __m256i* hi, __m256i* lo) {
  const __m256i even = _mm256_mul_epu32(c, m);                        // lanes 0, 2, 4, 6: 64-bit products
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(c, 32), m);  // lanes 1, 3, 5, 7
  *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

// Block `block` of stream `stream` for the rows row0 + idx[l] (idx: eight int32 offsets, row0 split in halves
// lo0, hi0); out[i] holds word i of the eight rows.
HVAE_AVX2 void philox_block_x8(uint64_t seed, uint32_t lo0, uint32_t hi0, __m256i idx, uint32_t stream, uint32_t block,
                               __m256i out[4]) {
  const __m256i base = _mm256_set1_epi32(static_cast<int>(lo0));
  const __m256i lo = _mm256_add_epi32(base, idx);
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  // carry where lo < lo0 (unsigned): -1 in the lane
  const __m256i carry = _mm256_cmpgt_epi32(_mm256_xor_si256(base, sign), _mm256_xor_si256(lo, sign));
  __m256i c0 = _mm256_set1_epi32(static_cast<int>(block)), c1 = _mm256_set1_epi32(static_cast<int>(stream));
  __m256i c2 = lo, c3 = _mm256_sub_epi32(_mm256_set1_epi32(static_cast<int>(hi0)), carry);
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(0xD2511F53u)),
                m1 = _mm256_set1_epi32(static_cast<int>(0xCD9E8D57u));
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    __m256i hi0v, lo0v, hi1v, lo1v;
    philox_mulhilo_x8(c0, m0, &hi0v, &lo0v);
    philox_mulhilo_x8(c2, m1, &hi1v, &lo1v);
    c0 = _mm256_xor_si256(_mm256_xor_si256(hi1v, c1), _mm256_set1_epi32(static_cast<int>(k0)));
    c2 = _mm256_xor_si256(_mm256_xor_si256(hi0v, c3), _mm256_set1_epi32(static_cast<int>(k1)));
    c1 = lo1v;
    c3 = lo0v;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

// The four words of eight rows as eight groups of four consecutive words (row l's at dst[l]), for the row-major
// word buffers: a 4 x 8 transpose.
HVAE_AVX2 void philox_store_rows_x8(const __m256i w[4], uint32_t* const dst[8]) {
  const __m256i t0 = _mm256_unpacklo_epi32(w[0], w[1]), t1 = _mm256_unpackhi_epi32(w[0], w[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(w[2], w[3]), t3 = _mm256_unpackhi_epi32(w[2], w[3]);
  const __m256i r04 = _mm256_unpacklo_epi64(t0, t2), r15 = _mm256_unpackhi_epi64(t0, t2);
  const __m256i r26 = _mm256_unpacklo_epi64(t1, t3), r37 = _mm256_unpackhi_epi64(t1, t3);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[0]), _mm256_castsi256_si128(r04));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[1]), _mm256_castsi256_si128(r15));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[2]), _mm256_castsi256_si128(r26));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[3]), _mm256_castsi256_si128(r37));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[4]), _mm256_extracti128_si256(r04, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[5]), _mm256_extracti128_si256(r15, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[6]), _mm256_extracti128_si256(r26, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[7]), _mm256_extracti128_si256(r37, 1));
}

#undef HVAE_AVX2

}  // namespace cpu
}  // namespace hvae
#endif
