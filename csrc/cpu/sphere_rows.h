// The CPU kernels' tangent draws and reflection of a tile of sample rows, shared by the samplers of every law
// on the sphere whose samples are (w, sqrt(1 - w^2) v) rotated to mu (sample_cpu.cpp: von Mises-Fisher;
// power_spherical_cpu.cpp: Power Spherical). Row r's tangent normals come from its tangent stream (math/philox.h)
// and the reflection's formulas from math/householder.h; here are only the loops over a tile, vectorized by gcc.
// Everything is in an unnamed namespace: each kernel file gets its own copy (the target_clones functions need it).
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../math/householder.h"
#include "../math/implicit_grad_lanes.h"
#include "../math/philox.h"
#include "fast_normal.h"
#include "philox_x8.h"

namespace hvae {
namespace {

// Rows per tile: the tile's tangent normals (rows x d) stay in the L1/L2 cache.
inline int64_t rows_per_tile(int64_t d) { return std::max<int64_t>(1, std::min<int64_t>(256, 8192 / d)); }

// Philox blocks of the tangent stream per row: a float pair of normals takes two words, a double pair four.
template <typename scalar_t>
inline int64_t tangent_blocks(int64_t d) {
  const int64_t pairs = d / 2;  // cover z[1 .. 2 * pairs]; the last normal is dropped when d is even
  return std::is_same<scalar_t, float>::value ? (pairs + 1) / 2 : pairs;
}

// Leading slots of the normals buffers (zeros), so that a row's normals can be read from one slot before its first
// (reflect_sums_impl).
constexpr int64_t kNormalsPad = 8;

// The tangent buffers of a tile: its Philox words and their normals.
struct TangentScratch {
  std::vector<uint32_t> tangent_words;  // 4 words per tangent block, row after row
  std::vector<float> normals_f;         // float32: 4 normals per block, after kNormalsPad zeros
  std::vector<double> normals_d;        // float64: 2 normals per block, after kNormalsPad zeros
  TangentScratch(int64_t tile, int64_t blocks_per_row, bool single)
      : tangent_words(4 * tile * blocks_per_row),
        normals_f(single ? kNormalsPad + 4 * tile * blocks_per_row : 0),
        normals_d(single ? 0 : kNormalsPad + 2 * tile * blocks_per_row) {}
};

#if HVAE_IG_X86_DISPATCH
#define HVAE_TANGENT_AVX2 __attribute__((target("avx2"), optimize("fp-contract=off")))
// The tangent stream's blocks of rows row0 .. row0 + n - 1 on AVX2, eight rows at a time (cpu::philox_block_x8),
// the rest one by one: sink.rows8(j, b, w) takes block b of rows j .. j + 7 (w[i]: word i of the eight rows),
// sink.row(j, b, w) block b of a remaining row j (its four words). Callers check ig_cpu_has_avx2_fma().
template <typename Sink>
HVAE_TANGENT_AVX2 inline void tangent_blocks_avx2(uint64_t seed, int64_t row0, int n, int64_t blocks, Sink& sink) {
  const uint32_t lo0 = static_cast<uint32_t>(row0), hi0 = static_cast<uint32_t>(static_cast<uint64_t>(row0) >> 32);
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(j), lanes);
    for (int64_t b = 0; b < blocks; ++b) {
      __m256i w[4];
      cpu::philox_block_x8(seed, lo0, hi0, idx, math::kStreamTangent, static_cast<uint32_t>(b), w);
      sink.rows8(j, b, w);
    }
  }
  for (; j < n; ++j) {
    const uint32_t lo = lo0 + static_cast<uint32_t>(j), hi = hi0 + (lo < lo0 ? 1u : 0u);
    for (int64_t b = 0; b < blocks; ++b) {
      uint32_t w[4];
      math::philox_block(seed, lo, hi, math::kStreamTangent, static_cast<uint32_t>(b), w);
      sink.row(j, b, w);
    }
  }
}

// The words themselves, row after row (as tangent_words).
struct TangentWordsSink {
  uint32_t* words;
  int64_t blocks;
  HVAE_TANGENT_AVX2 inline void rows8(int j, int64_t b, const __m256i* w) {
    uint32_t* dst[8];
    for (int l = 0; l < 8; ++l) dst[l] = words + 4 * ((j + l) * blocks + b);
    cpu::philox_store_rows_x8(w, dst);
  }
  HVAE_TANGENT_AVX2 inline void row(int j, int64_t b, const uint32_t* w) {
    for (int i = 0; i < 4; ++i) words[4 * (j * blocks + b) + i] = w[i];
  }
};

HVAE_TANGENT_AVX2 void tangent_words_avx2(uint64_t seed, int64_t row0, int n, int64_t blocks, uint32_t* words) {
  TangentWordsSink sink{words, blocks};
  tangent_blocks_avx2(seed, row0, n, blocks, sink);
}
#endif

// The tangent stream's blocks of rows row0 .. row0 + n - 1, row after row, and their normals.
HVAE_VECTOR_CLONES
void tangent_words(uint64_t seed, int64_t row0, int n, int64_t blocks, uint32_t* __restrict words) {
  const uint32_t lo0 = static_cast<uint32_t>(row0), hi0 = static_cast<uint32_t>(static_cast<uint64_t>(row0) >> 32);
#if HVAE_IG_X86_DISPATCH
  if (blocks < 16 && math::detail::ig_cpu_has_avx2_fma()) return tangent_words_avx2(seed, row0, n, blocks, words);
#endif
  if (blocks >= 16) {  // vectorize over a row's blocks
    for (int j = 0; j < n; ++j) {
      const uint32_t lo = lo0 + static_cast<uint32_t>(j), hi = hi0 + (lo < lo0 ? 1u : 0u);
      uint32_t* w = words + 4 * j * blocks;
      for (int64_t b = 0; b < blocks; ++b) {
        uint32_t out[4];
        math::philox_block(seed, lo, hi, math::kStreamTangent, static_cast<uint32_t>(b), out);
        for (int i = 0; i < 4; ++i) w[4 * b + i] = out[i];
      }
    }
  } else {  // few blocks per row: vectorize over rows
    for (int64_t b = 0; b < blocks; ++b) {
      for (int j = 0; j < n; ++j) {
        const uint32_t lo = lo0 + static_cast<uint32_t>(j), hi = hi0 + (lo < lo0 ? 1u : 0u);
        uint32_t out[4];
        math::philox_block(seed, lo, hi, math::kStreamTangent, static_cast<uint32_t>(b), out);
        for (int i = 0; i < 4; ++i) words[4 * (j * blocks + b) + i] = out[i];
      }
    }
  }
}

HVAE_VECTOR_CLONES
void box_muller_double(const uint32_t* __restrict words, double* __restrict out, int64_t blocks) {
  for (int64_t k = 0; k < blocks; ++k) {
    const uint32_t* w = words + 4 * k;
    double n0, n1;
    math::box_muller(math::uniform53(w[0], w[1]), math::uniform53(w[2], w[3]), &n0, &n1);
    out[2 * k] = n0;
    out[2 * k + 1] = n1;
  }
}

inline const float* tangent_normals(const uint32_t* words, int64_t blocks, TangentScratch& s, float*) {
  cpu::box_muller_float(words, s.normals_f.data() + kNormalsPad, 2 * blocks);
  return s.normals_f.data() + kNormalsPad;
}
inline const double* tangent_normals(const uint32_t* words, int64_t blocks, TangentScratch& s, double*) {
  box_muller_double(words, s.normals_d.data() + kNormalsPad, blocks);
  return s.normals_d.data() + kNormalsPad;
}

#if HVAE_IG_X86_DISPATCH
// float32 rows with few blocks on AVX2: the words of eight rows go straight into Box-Muller (math::box_muller_float,
// the loop over the eight rows vectorized) and the normals are stored row by row, without the words buffer: the
// same normals as tangent_words then tangent_normals.
struct TangentNormalsFloatSink {
  float* normals;
  int64_t blocks;
  HVAE_TANGENT_AVX2 inline void rows8(int j, int64_t b, const __m256i* w) {
    alignas(32) uint32_t wa[4][8];
    for (int i = 0; i < 4; ++i) _mm256_store_si256(reinterpret_cast<__m256i*>(wa[i]), w[i]);
    alignas(32) float o[4][8];
    for (int l = 0; l < 8; ++l) {
      math::box_muller_float(math::uniform24(wa[0][l]), math::uniform24(wa[1][l]), &o[0][l], &o[1][l]);
      math::box_muller_float(math::uniform24(wa[2][l]), math::uniform24(wa[3][l]), &o[2][l], &o[3][l]);
    }
    __m256i ov[4];
    for (int i = 0; i < 4; ++i) ov[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(o[i]));
    uint32_t* dst[8];
    for (int l = 0; l < 8; ++l) dst[l] = reinterpret_cast<uint32_t*>(normals + 4 * ((j + l) * blocks + b));
    cpu::philox_store_rows_x8(ov, dst);  // the 4 x 8 transpose, on the normals' bits
  }
  HVAE_TANGENT_AVX2 inline void row(int j, int64_t b, const uint32_t* w) {
    float* out = normals + 4 * (j * blocks + b);
    math::box_muller_float(math::uniform24(w[0]), math::uniform24(w[1]), &out[0], &out[1]);
    math::box_muller_float(math::uniform24(w[2]), math::uniform24(w[3]), &out[2], &out[3]);
  }
};

HVAE_TANGENT_AVX2 void tangent_normals_float_avx2(uint64_t seed, int64_t row0, int n, int64_t blocks, float* normals) {
  TangentNormalsFloatSink sink{normals, blocks};
  tangent_blocks_avx2(seed, row0, n, blocks, sink);
}
#undef HVAE_TANGENT_AVX2
#endif

// The tangent normals of rows row0 .. row0 + n - 1 (blocks per row), into the scratch buffers.
inline const float* tangent_tile_normals(uint64_t seed, int64_t row0, int n, int64_t blocks, TangentScratch& s,
                                         float*) {
#if HVAE_IG_X86_DISPATCH
  if (blocks < 16 && math::detail::ig_cpu_has_avx2_fma()) {
    tangent_normals_float_avx2(seed, row0, n, blocks, s.normals_f.data() + kNormalsPad);
    return s.normals_f.data() + kNormalsPad;
  }
#endif
  tangent_words(seed, row0, n, blocks, s.tangent_words.data());
  return tangent_normals(s.tangent_words.data(), n * blocks, s, static_cast<float*>(nullptr));
}
inline const double* tangent_tile_normals(uint64_t seed, int64_t row0, int n, int64_t blocks, TangentScratch& s,
                                          double*) {
  tangent_words(seed, row0, n, blocks, s.tangent_words.data());
  return tangent_normals(s.tangent_words.data(), n * blocks, s, static_cast<double*>(nullptr));
}

// Blocks of eight coordinates, held as 8 / W gcc vectors of W doubles: W = 8 on AVX-512, 4 on AVX2, 2 on the
// baseline (SSE2), so that each vector is one register. (One 8-double vector on AVX2 made gcc keep the
// accumulators on the stack, with partial stores feeding wide loads: 3x slower rows.) Loaded from and stored to
// float32 or float64 memory. The lanes and the order of every sum are those of eight lanes: the same bits for
// every W.
// (Always inlined, so the -Wpsabi note on returning a vector wider than the baseline ISA's registers is moot.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
template <int W>
struct VecW;
template <>
struct VecW<2> {
  typedef double D __attribute__((vector_size(16)));
  typedef float F __attribute__((vector_size(8)));
};
template <>
struct VecW<4> {
  typedef double D __attribute__((vector_size(32)));
  typedef float F __attribute__((vector_size(16)));
};
template <>
struct VecW<8> {
  typedef double D __attribute__((vector_size(64)));
  typedef float F __attribute__((vector_size(32)));
};
constexpr int kV8 = 8;
template <int W>
HVAE_ALWAYS_INLINE typename VecW<W>::D loadw(const double* p) {
  typename VecW<W>::D v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <int W>
HVAE_ALWAYS_INLINE typename VecW<W>::D loadw(const float* p) {
  typename VecW<W>::F v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, typename VecW<W>::D);
}
template <int W>
HVAE_ALWAYS_INLINE void storew(double* p, typename VecW<W>::D v) {
  std::memcpy(p, &v, sizeof v);
}
template <int W>
HVAE_ALWAYS_INLINE void storew(float* p, typename VecW<W>::D v) {
  const typename VecW<W>::F f = __builtin_convertvector(v, typename VecW<W>::F);
  std::memcpy(p, &f, sizeof f);
}
// The sum of eight lanes (lane e in part e / W), ((e0 + e1) + (e2 + e3)) + ((e4 + e5) + (e6 + e7)).
template <int W>
HVAE_ALWAYS_INLINE double hsum8(const typename VecW<W>::D* v) {
  double e[kV8];
  for (int k = 0; k < kV8; ++k) e[k] = v[k / W][k % W];
  return ((e[0] + e[1]) + (e[2] + e[3])) + ((e[4] + e[5]) + (e[6] + e[7]));
}
#pragma GCC diagnostic pop

// The reflection of a tile (math/wood.h): z = -s (y - 2 a (a.y) / |a|^2) with
// y = (1 - omw, sqrt(omw (2 - omw)) v / |v|), a = mu + s e1, v = the d - 1 normals of the row. In three
// steps, so that the divisions and square roots of all rows run side by side: the dot products row by row, the
// per-row coefficients over the tile, the writes row by row; rows with d <= kSmallReflectD in one fixed-d loop
// vectorized across rows instead (reflect_small_impl).
struct ReflectColumns {
  std::vector<double> sq, tail_dot, n2, mu0, omw, scale, coef, sign;
  explicit ReflectColumns(int64_t n) : sq(n), tail_dot(n), n2(n), mu0(n), omw(n), scale(n), coef(n), sign(n) {}
};

HVAE_VECTOR_CLONES
void reflect_coefficients(int n, ReflectColumns& c) {
  const double* __restrict sq = c.sq.data();
  const double* __restrict tail_dot = c.tail_dot.data();
  const double* __restrict n2_tail = c.n2.data();
  const double* __restrict mu0 = c.mu0.data();
  const double* __restrict omw = c.omw.data();
  double* __restrict scale = c.scale.data();
  double* __restrict coef = c.coef.data();
  double* __restrict sign = c.sign.data();
  for (int j = 0; j < n; ++j) {
    const math::HouseholderForward h = math::householder_forward(mu0[j], omw[j], sq[j], tail_dot[j], n2_tail[j]);
    coef[j] = h.coef;
    scale[j] = h.scale;
    sign[j] = h.sign;
  }
}

// The row loops of reflect_tile (dot products, writes).
// Row j's tangent normals v start at normals + j * per_row, after kNormalsPad leading slots of the buffer, so that
// vb = v - 1 (vb[i] = v[i - 1], the normal of coordinate i) can be read in blocks of eight from coordinate 0 on;
// coordinate 0 is masked out of the first block (its terms are done apart), the last d mod 8 go one by one.
// Each row's three sums are eight partial sums added in a fixed order: the same bits on every ISA.
template <int W, typename scalar_t>
HVAE_ALWAYS_INLINE void reflect_sums_impl(const scalar_t* loc_p, int64_t B, int64_t row0, int n,
                                          const scalar_t* normals, int64_t normals_per_row, int64_t d,
                                          ReflectColumns& c) {
  typedef typename VecW<W>::D V;
  constexpr int P = kV8 / W;
  int64_t b = row0 % B;
  for (int j = 0; j < n; ++j, b = b + 1 == B ? 0 : b + 1) {
    const scalar_t* __restrict mu = loc_p + b * d;
    const scalar_t* __restrict vb = normals + j * normals_per_row - 1;
    V sq[P] = {}, tail_dot[P] = {}, n2[P] = {};
    int64_t i = 0;
    for (; i + kV8 <= d; i += kV8) {
      for (int k = 0; k < P; ++k) {
        V v = loadw<W>(vb + i + k * W), m = loadw<W>(mu + i + k * W);
        if (i == 0 && k == 0) {  // a select, not a product: vb[0] may be anything
          v[0] = 0.0;
          m[0] = 0.0;
        }
        sq[k] += v * v;
        tail_dot[k] += m * v;
        n2[k] += m * m;
      }
    }
    double r_sq = 0.0, r_dot = 0.0, r_n2 = 0.0;
    for (i = i == 0 ? 1 : i; i < d; ++i) {
      const double v = static_cast<double>(vb[i]), m = static_cast<double>(mu[i]);
      r_sq += v * v;
      r_dot += m * v;
      r_n2 += m * m;
    }
    c.sq[j] = hsum8<W>(sq) + r_sq;
    c.tail_dot[j] = hsum8<W>(tail_dot) + r_dot;
    c.n2[j] = hsum8<W>(n2) + r_n2;
    c.mu0[j] = static_cast<double>(mu[0]);
  }
}
template <int W, typename scalar_t>
HVAE_ALWAYS_INLINE void reflect_writes_impl(const scalar_t* loc_p, int64_t B, int64_t row0, int n,
                                            const scalar_t* normals, int64_t normals_per_row, int64_t d,
                                            const ReflectColumns& c, scalar_t* z_p) {
  typedef typename VecW<W>::D V;
  int64_t b = row0 % B;
  for (int j = 0; j < n; ++j, b = b + 1 == B ? 0 : b + 1) {
    const scalar_t* __restrict mu = loc_p + b * d;
    const scalar_t* __restrict vb = normals + j * normals_per_row - 1;
    scalar_t* __restrict z = z_p + (row0 + j) * d;
    math::HouseholderForward h;
    h.sign = c.sign[j];
    h.a0 = c.mu0[j] + h.sign;
    h.scale = c.scale[j];
    h.coef = c.coef[j];
    int64_t i = 0;
    for (; i + kV8 <= d; i += kV8) {
      for (int k = 0; k < kV8; k += W)
        storew<W>(z + i + k, math::householder_zi<V>(h, loadw<W>(vb + i + k), loadw<W>(mu + i + k)));
    }
    for (i = i == 0 ? 1 : i; i < d; ++i)
      z[i] = static_cast<scalar_t>(
          math::householder_zi<double>(h, static_cast<double>(vb[i]), static_cast<double>(mu[i])));
    z[0] = static_cast<scalar_t>(math::householder_z0(h, c.omw[j]));  // after the blocks, which wrote it too
  }
}

// Rows with d <= kSmallReflectD: the whole reflection of a row (sums, coefficients, writes) in one loop body with a
// fixed d, the loop over rows vectorized (grouped loads and stores). The sums run over i = 1 .. d - 1 in order, as
// in reflect_sums_impl's tail: the same bits as the general path. Row j reads mu_p + j d (rows whose parameter rows
// are consecutive) and writes z_p + j d.
constexpr int64_t kSmallReflectD = 7;
template <int D, typename scalar_t>
HVAE_ALWAYS_INLINE void reflect_small_impl(const scalar_t* __restrict mu_p, const scalar_t* __restrict normals,
                                           int64_t normals_per_row, const double* __restrict omw, int n,
                                           scalar_t* __restrict z_p) {
  for (int j = 0; j < n; ++j) {
    const scalar_t* mu = mu_p + j * D;
    const scalar_t* v = normals + j * normals_per_row;
    double sq = 0.0, tail_dot = 0.0, n2 = 0.0;
    for (int i = 1; i < D; ++i) {
      const double vi = static_cast<double>(v[i - 1]), mi = static_cast<double>(mu[i]);
      sq += vi * vi;
      tail_dot += mi * vi;
      n2 += mi * mi;
    }
    const math::HouseholderForward h = math::householder_forward(static_cast<double>(mu[0]), omw[j], sq, tail_dot, n2);
    scalar_t* z = z_p + j * D;
    z[0] = static_cast<scalar_t>(math::householder_z0(h, omw[j]));
    for (int i = 1; i < D; ++i)
      z[i] = static_cast<scalar_t>(
          math::householder_zi<double>(h, static_cast<double>(v[i - 1]), static_cast<double>(mu[i])));
  }
}
template <typename scalar_t>
HVAE_ALWAYS_INLINE void reflect_small_switch(int64_t d, const scalar_t* mu_p, const scalar_t* normals, int64_t per_row,
                                             const double* omw, int n, scalar_t* z_p) {
  switch (d) {
    case 2:
      reflect_small_impl<2, scalar_t>(mu_p, normals, per_row, omw, n, z_p);
      break;
    case 3:
      reflect_small_impl<3, scalar_t>(mu_p, normals, per_row, omw, n, z_p);
      break;
    case 4:
      reflect_small_impl<4, scalar_t>(mu_p, normals, per_row, omw, n, z_p);
      break;
    case 5:
      reflect_small_impl<5, scalar_t>(mu_p, normals, per_row, omw, n, z_p);
      break;
    case 6:
      reflect_small_impl<6, scalar_t>(mu_p, normals, per_row, omw, n, z_p);
      break;
    default:
      reflect_small_impl<7, scalar_t>(mu_p, normals, per_row, omw, n, z_p);
      break;
  }
}
// The reflection of a tile: the fixed-d loop for runs of rows with consecutive parameter rows (d <= kSmallReflectD,
// B >= 32; smaller B gives short runs), else the three steps. Compiled for the baseline ISA, AVX2 and AVX-512 and
// picked at run time (a template cannot take target_clones), without FP contraction: the same bits on every ISA.
template <int W, typename scalar_t>
HVAE_ALWAYS_INLINE void reflect_tile_impl(const scalar_t* loc_p, int64_t B, int64_t row0, int n,
                                          const scalar_t* normals, int64_t normals_per_row, int64_t d,
                                          ReflectColumns& c, scalar_t* z_p) {
  if (d <= kSmallReflectD && B >= 32) {
    for (int j0 = 0; j0 < n;) {
      const int64_t b0 = (row0 + j0) % B;
      const int len = static_cast<int>(std::min<int64_t>(n - j0, B - b0));
      reflect_small_switch<scalar_t>(d, loc_p + b0 * d, normals + j0 * normals_per_row, normals_per_row,
                                     c.omw.data() + j0, len, z_p + (row0 + j0) * d);
      j0 += len;
    }
    return;
  }
  reflect_sums_impl<W, scalar_t>(loc_p, B, row0, n, normals, normals_per_row, d, c);
  reflect_coefficients(n, c);
  reflect_writes_impl<W, scalar_t>(loc_p, B, row0, n, normals, normals_per_row, d, c, z_p);
}
#define HVAE_REFLECT_TILE(SUFFIX, W, ATTR)                                                                        \
  template <typename scalar_t>                                                                                    \
  ATTR void reflect_tile_##SUFFIX(const scalar_t* loc_p, int64_t B, int64_t row0, int n, const scalar_t* normals, \
                                  int64_t per_row, int64_t d, ReflectColumns& c, scalar_t* z_p) {                 \
    reflect_tile_impl<W, scalar_t>(loc_p, B, row0, n, normals, per_row, d, c, z_p);                               \
  }
HVAE_REFLECT_TILE(base, 2, )
#if HVAE_IG_X86_DISPATCH
HVAE_REFLECT_TILE(avx2, 4, __attribute__((target("avx2"), optimize("fp-contract=off"))))
HVAE_REFLECT_TILE(avx512, 8, __attribute__((target("avx512f,avx512dq,avx512vl,avx2"), optimize("fp-contract=off"))))
#endif
#undef HVAE_REFLECT_TILE
template <typename scalar_t>
void reflect_tile(const scalar_t* loc_p, int64_t B, int64_t row0, int n, const scalar_t* normals,
                  int64_t normals_per_row, int64_t d, ReflectColumns& c, scalar_t* z_p) {
#if HVAE_IG_X86_DISPATCH
  if (math::detail::ig_cpu_has_avx512())
    return reflect_tile_avx512<scalar_t>(loc_p, B, row0, n, normals, normals_per_row, d, c, z_p);
  if (math::detail::ig_cpu_has_avx2_fma())
    return reflect_tile_avx2<scalar_t>(loc_p, B, row0, n, normals, normals_per_row, d, c, z_p);
#endif
  reflect_tile_base<scalar_t>(loc_p, B, row0, n, normals, normals_per_row, d, c, z_p);
}

// Backward of the reflection of a tile's rows (math/wood.h has the formulas): writes dL/dmu and dL/dw. Four
// phases, so that no row waits on its own divisions and square root: (1) per row, the three sums over the tail
// (pass 1, eight coordinates at a time; coordinate 0 is masked out of the first block: its terms use
// a_0 = mu_0 + s and are done apart); (2) across rows, the per-row coefficients; (3) per row, dL/dmu and the
// two tangent sums (pass 2); (4) across rows, dL/dw. Done row by row, the chain sums -> division -> pass 2 ->
// sums -> square root made the reflection latency-bound (45 ns a row at d = 16, float32).
constexpr int kReflectBackwardChunk = 64;  // rows per phase: the per-row arrays stay in L1
struct ReflectBackwardRows {
  double n2[kReflectBackwardChunk], az[kReflectBackwardChunk], ag[kReflectBackwardChunk];
  double mu0[kReflectBackwardChunk], z0[kReflectBackwardChunk], g0[kReflectBackwardChunk];
  double sign[kReflectBackwardChunk], a0[kReflectBackwardChunk], coef_z[kReflectBackwardChunk],
      coef_g[kReflectBackwardChunk], gmu_a[kReflectBackwardChunk], gmu_g[kReflectBackwardChunk],
      gmu_y[kReflectBackwardChunk];
  double gt0[kReflectBackwardChunk], dot[kReflectBackwardChunk], sq[kReflectBackwardChunk];
};

// Pass 1 of one row: the tail sums |mu_tail|^2, mu_tail.z_tail, mu_tail.g_tail.
template <int W, typename scalar_t>
HVAE_ALWAYS_INLINE void reflect_backward_sums(const scalar_t* __restrict g, const scalar_t* __restrict z,
                                              const scalar_t* __restrict mu, int64_t d, double* n2, double* az,
                                              double* ag) {
  typedef typename VecW<W>::D V;
  constexpr int P = kV8 / W;
  V tail_mask = {};  // {0, 1, 1, ...}: coordinate 0 out of the first block
  for (int l = 1; l < W; ++l) tail_mask[l] = 1.0;
  V s_mm[P] = {}, s_mz[P] = {}, s_mg[P] = {};
  int64_t i = 0;
  for (; i + kV8 <= d; i += kV8) {
    for (int k = 0; k < P; ++k) {
      const V m = i == 0 && k == 0 ? tail_mask * loadw<W>(mu) : loadw<W>(mu + i + k * W);
      s_mm[k] += m * m;
      s_mz[k] += m * loadw<W>(z + i + k * W);
      s_mg[k] += m * loadw<W>(g + i + k * W);
    }
  }
  double r_mm = 0.0, r_mz = 0.0, r_mg = 0.0;
  for (int64_t r = i == 0 ? 1 : i; r < d; ++r) {
    const double m = static_cast<double>(mu[r]);
    r_mm += m * m;
    r_mz += m * static_cast<double>(z[r]);
    r_mg += m * static_cast<double>(g[r]);
  }
  *n2 = hsum8<W>(s_mm) + r_mm;
  *az = hsum8<W>(s_mz) + r_mz;
  *ag = hsum8<W>(s_mg) + r_mg;
}

// Pass 2 of one row: dL/dmu written, returns gt_0 and the tangent sums sum_{i>0} gt_i y_i and |y_tail|^2.
template <int W, typename scalar_t>
HVAE_ALWAYS_INLINE void reflect_backward_grads(const math::HouseholderBackward& c, const scalar_t* __restrict g,
                                               const scalar_t* __restrict z, const scalar_t* __restrict mu, int64_t d,
                                               scalar_t* __restrict grad_mu, double* gt0, double* dot, double* sq) {
  typedef typename VecW<W>::D V;
  constexpr int P = kV8 / W;
  V tail_mask = {};
  for (int l = 1; l < W; ++l) tail_mask[l] = 1.0;
  V s_dot[P] = {}, s_sq[P] = {};
  int64_t i = 0;
  for (; i + kV8 <= d; i += kV8) {
    for (int k = 0; k < P; ++k) {
      V y, gt, gmu;
      math::householder_backward_elem<V>(c, loadw<W>(mu + i + k * W), loadw<W>(z + i + k * W), loadw<W>(g + i + k * W),
                                         &y, &gt, &gmu);
      const V yt = i == 0 && k == 0 ? tail_mask * y : y;
      s_dot[k] += gt * yt;
      s_sq[k] += yt * yt;
      storew<W>(grad_mu + i + k * W, gmu);
    }
  }
  double r_dot = 0.0, r_sq = 0.0;
  for (int64_t r = i == 0 ? 1 : i; r < d; ++r) {
    double y, gt, gmu;
    math::householder_backward_elem<double>(c, static_cast<double>(mu[r]), static_cast<double>(z[r]),
                                            static_cast<double>(g[r]), &y, &gt, &gmu);
    r_dot += gt * y;
    r_sq += y * y;
    grad_mu[r] = static_cast<scalar_t>(gmu);
  }
  double y0, gmu0;  // coordinate 0, with a_0 (written over the first block's value)
  math::householder_backward_elem<double>(c, c.a0, static_cast<double>(z[0]), static_cast<double>(g[0]), &y0, gt0,
                                          &gmu0);
  grad_mu[0] = static_cast<scalar_t>(gmu0);
  *dot = hsum8<W>(s_dot) + r_dot;
  *sq = hsum8<W>(s_sq) + r_sq;
}

template <int W, typename scalar_t>
HVAE_ALWAYS_INLINE void reflect_backward_rows_impl(const scalar_t* g_p, const scalar_t* z_p, const double* omw,
                                                   const scalar_t* loc_p, int64_t B, int64_t d, int64_t row0, int n,
                                                   scalar_t* gl_p, double* dl_dw) {
  ReflectBackwardRows R;
  for (int j0 = 0; j0 < n; j0 += kReflectBackwardChunk) {
    const int cnt = std::min(kReflectBackwardChunk, n - j0);
    const int64_t b0 = (row0 + j0) % B;
    int64_t b = b0;
    for (int j = 0; j < cnt; ++j, b = b + 1 == B ? 0 : b + 1) {
      const int64_t r = row0 + j0 + j;
      const scalar_t *g = g_p + r * d, *z = z_p + r * d, *mu = loc_p + b * d;
      reflect_backward_sums<W, scalar_t>(g, z, mu, d, &R.n2[j], &R.az[j], &R.ag[j]);
      R.mu0[j] = static_cast<double>(mu[0]);
      R.z0[j] = static_cast<double>(z[0]);
      R.g0[j] = static_cast<double>(g[0]);
    }
    for (int j = 0; j < cnt; ++j) {
      const math::HouseholderBackward c =
          math::householder_backward(R.mu0[j], R.z0[j], R.g0[j], R.n2[j], R.az[j], R.ag[j]);
      R.sign[j] = c.sign;
      R.a0[j] = c.a0;
      R.coef_z[j] = c.coef_z;
      R.coef_g[j] = c.coef_g;
      R.gmu_a[j] = c.gmu_a;
      R.gmu_g[j] = c.gmu_g;
      R.gmu_y[j] = c.gmu_y;
    }
    b = b0;
    for (int j = 0; j < cnt; ++j, b = b + 1 == B ? 0 : b + 1) {
      const int64_t r = row0 + j0 + j;
      const math::HouseholderBackward c = {R.sign[j],  R.a0[j],    R.coef_z[j], R.coef_g[j],
                                           R.gmu_a[j], R.gmu_g[j], R.gmu_y[j]};
      reflect_backward_grads<W, scalar_t>(c, g_p + r * d, z_p + r * d, loc_p + b * d, d, gl_p + r * d, &R.gt0[j],
                                          &R.dot[j], &R.sq[j]);
    }
    for (int j = 0; j < cnt; ++j) dl_dw[j0 + j] = math::householder_dl_dw(R.gt0[j], R.dot[j], R.sq[j], omw[j0 + j]);
  }
}
// Compiled for the baseline ISA, AVX2 + FMA and AVX-512, picked at run time (math/implicit_grad.h's CPU checks).
#define HVAE_REFLECT_BACKWARD_ROWS(NAME, W, ATTR)                                                               \
  template <typename scalar_t>                                                                                  \
  ATTR void NAME(const scalar_t* g_p, const scalar_t* z_p, const double* omw, const scalar_t* loc_p, int64_t B, \
                 int64_t d, int64_t row0, int n, scalar_t* gl_p, double* dl_dw) {                               \
    reflect_backward_rows_impl<W, scalar_t>(g_p, z_p, omw, loc_p, B, d, row0, n, gl_p, dl_dw);                  \
  }
HVAE_REFLECT_BACKWARD_ROWS(reflect_backward_rows_base, 2, )
#if HVAE_IG_X86_DISPATCH
HVAE_REFLECT_BACKWARD_ROWS(reflect_backward_rows_avx2, 4, __attribute__((target("avx2,fma"))))
HVAE_REFLECT_BACKWARD_ROWS(reflect_backward_rows_avx512, 8,
                           __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma"))))
#endif
#undef HVAE_REFLECT_BACKWARD_ROWS
template <typename scalar_t>
void reflect_backward_rows(const scalar_t* g_p, const scalar_t* z_p, const double* omw, const scalar_t* loc_p,
                           int64_t B, int64_t d, int64_t row0, int n, scalar_t* gl_p, double* dl_dw) {
#if HVAE_IG_X86_DISPATCH
  if (math::detail::ig_cpu_has_avx512()) {
    reflect_backward_rows_avx512<scalar_t>(g_p, z_p, omw, loc_p, B, d, row0, n, gl_p, dl_dw);
    return;
  }
  if (math::detail::ig_cpu_has_avx2_fma()) {
    reflect_backward_rows_avx2<scalar_t>(g_p, z_p, omw, loc_p, B, d, row0, n, gl_p, dl_dw);
    return;
  }
#endif
  reflect_backward_rows_base<scalar_t>(g_p, z_p, omw, loc_p, B, d, row0, n, gl_p, dl_dw);
}

}  // namespace
}  // namespace hvae
