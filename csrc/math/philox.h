// Counter-based random numbers: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers:
// as easy as 1, 2, 3", SC 2011), the generator behind curand's and torch's CUDA Philox state.
//
// Every sample row owns its own streams: the key is the 64-bit seed drawn from torch's generator for
// the call, the counter holds (block index, stream id, row index). So a row's draws do not depend on
// which thread computes it or how many threads there are: the same seed gives the same samples on 1
// or 16 CPU threads, and the CPU and CUDA kernels draw the same numbers for the same seed.
#pragma once

#include "common.h"
#include "fastmath.h"

namespace hvae {
namespace math {

namespace detail {

HVAE_HD_HOT void mulhilo32(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
#if defined(__CUDA_ARCH__)
  *hi = __umulhi(a, b);
  *lo = a * b;
#else
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(product >> 32);
  *lo = static_cast<uint32_t>(product);
#endif
}

}  // namespace detail

// Ten rounds of Philox4x32 on counter `ctr` with key (k0, k1); writes four 32-bit words to `out`.
HVAE_HD_HOT void philox4x32_10(const uint32_t ctr[4], uint32_t k0, uint32_t k1, uint32_t out[4]) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
#if defined(__CUDA_ARCH__)
#pragma unroll
#elif defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC unroll 10
#endif
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    detail::mulhilo32(kMul0, c0, &hi0, &lo0);
    detail::mulhilo32(kMul1, c2, &hi1, &lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

// A uniform on the open interval (0, 1) with 53 random bits from two words (27 + 26 bits): never 0, so
// log(u) is finite. Written as hi 2^-27 + (lo + 1/2) 2^-53 (exact in double) so that it needs only 32-bit
// integer to double conversions, which vectorize.
HVAE_HD_HOT double uniform53(uint32_t word_hi, uint32_t word_lo) {
  return static_cast<double>(static_cast<int32_t>(word_hi >> 5)) * (1.0 / 134217728.0) +
         (static_cast<double>(static_cast<int32_t>(word_lo >> 6)) + 0.5) * (1.0 / 9007199254740992.0);
}

// A uniform on (0, 1) with 24 random bits (float32 tangent draws): (top 24 bits + 1/2) 2^-24, never 0.
HVAE_HD_HOT float uniform24(uint32_t word) { return (static_cast<float>(word >> 8) + 0.5f) * (1.0f / 16777216.0f); }

// The Box-Muller transform (Box & Muller 1958), the one definition of the library's normals: two independent
// standard normals from two uniforms in (0, 1),
//   n0 = sqrt(-2 log u1) cos(2 pi u2),   n1 = sqrt(-2 log u1) sin(2 pi u2).
// float64: host: branch-free polynomials (fastmath.h), so loops over many pairs vectorize; device: the CUDA
// math functions.
HVAE_HD_HOT void box_muller(double u1, double u2, double* n0, double* n1) {
#if defined(__CUDA_ARCH__)
  const double radius = ::sqrt(-2.0 * ::log(u1));
#else
  const double radius = __builtin_sqrt(-2.0 * fast_log_core(u1));  // u1 >= 2^-54: a normal number
#endif
  double c, s;
  fast_cos_sin_2pi(u2, &c, &s);
  *n0 = radius * c;
  *n1 = radius * s;
}

// float32 (the tangent draws of float32 samples). Host: branch-free float polynomials that gcc vectorizes (the
// CPU sampler's loop over a tile, cpu/fast_normal.h): log to ~1e-7 relative (atanh series on [sqrt(1/2),
// sqrt(2))), sin/cos to ~3e-8 absolute (Taylor series on [-pi/4, pi/4] after quadrant reduction), far below
// what changes the law of a normalised Gaussian direction. Device: the CUDA float math functions.
HVAE_HD_HOT void box_muller_float(float u1, float u2, float* n0, float* n1) {
#if defined(__CUDA_ARCH__)
  const float radius = ::sqrtf(-2.0f * ::logf(u1));
  const float angle = 6.28318530717958647692f * u2;
  *n0 = radius * ::cosf(angle);
  *n1 = radius * ::sinf(angle);
#else
  constexpr float kLn2 = 0.693147180559945f, kTwoPi = 6.283185307179586f;
  // log(u1), u1 in (0, 1): u1 = m 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh((m-1)/(m+1)).
  uint32_t bits;
  __builtin_memcpy(&bits, &u1, sizeof bits);
  int32_t e = static_cast<int32_t>((bits >> 23) & 0xffu) - 127;
  uint32_t mbits = (bits & 0x007fffffu) | 0x3f800000u;  // m in [1, 2)
  float m;
  __builtin_memcpy(&m, &mbits, sizeof m);
  const bool high = m > 1.41421356f;
  m = high ? 0.5f * m : m;
  e = high ? e + 1 : e;
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  const float log_m = 2.0f * s * (1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9)))));
  const float log_u1 = static_cast<float>(e) * kLn2 + log_m;
  const float radius = __builtin_sqrtf(-2.0f * log_u1);
  // sin/cos(2 pi u2): quadrant q = round(4 u2), x = 2 pi (u2 - q/4) in [-pi/4, pi/4].
  const float qf = __builtin_floorf(4.0f * u2 + 0.5f);
  const float x = kTwoPi * (u2 - 0.25f * qf), x2 = x * x;
  const float sin_x = x * (1.0f - x2 * (1.0f / 6 - x2 * (1.0f / 120 - x2 * (1.0f / 5040 - x2 * (1.0f / 362880)))));
  const float cos_x = 1.0f - x2 * (0.5f - x2 * (1.0f / 24 - x2 * (1.0f / 720 - x2 * (1.0f / 40320))));
  const int q = static_cast<int>(qf) & 3;
  const float c = q == 0 ? cos_x : q == 1 ? -sin_x : q == 2 ? -cos_x : sin_x;
  const float sn = q == 0 ? sin_x : q == 1 ? cos_x : q == 2 ? -sin_x : -cos_x;
  *n0 = radius * c;
  *n1 = radius * sn;
#endif
}

// Stream ids: the rejection loop and the tangent direction draw from separate streams, so the tangent
// direction of a row does not depend on how many proposals its rejection loop needed. The Power Spherical
// sampler (power_spherical.h) draws its two Gamma variates from streams of their own and its tangent direction
// from the same tangent stream as the vMF sampler.
enum : uint32_t { kStreamRadial = 0u, kStreamTangent = 1u, kStreamGammaAlpha = 2u, kStreamGammaBeta = 3u };

// Block `block` of the stream (seed, row, stream): the four words a PhiloxStream returns as its
// words 4 block .. 4 block + 3. Random access, so that a kernel can draw many blocks side by side.
// The row as two 32-bit halves: loops over rows stay in 32-bit lanes.
HVAE_HD_HOT void philox_block(uint64_t seed, uint32_t row_lo, uint32_t row_hi, uint32_t stream, uint32_t block,
                              uint32_t out[4]) {
  const uint32_t ctr[4] = {block, stream, row_lo, row_hi};
  philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), out);
}
HVAE_HD_HOT void philox_block(uint64_t seed, uint64_t row, uint32_t stream, uint32_t block, uint32_t out[4]) {
  philox_block(seed, static_cast<uint32_t>(row), static_cast<uint32_t>(row >> 32), stream, block, out);
}

// A stream of random words for one (seed, row, stream); four words per Philox call.
class PhiloxStream {
 public:
  HVAE_HD PhiloxStream(uint64_t seed, uint64_t row, uint32_t stream)
      : key0_(static_cast<uint32_t>(seed)), key1_(static_cast<uint32_t>(seed >> 32)), used_(4) {
    ctr_[0] = 0u;
    ctr_[1] = stream;
    ctr_[2] = static_cast<uint32_t>(row);
    ctr_[3] = static_cast<uint32_t>(row >> 32);
  }

  HVAE_HD uint32_t next_u32() {
    if (used_ == 4) {
      philox4x32_10(ctr_, key0_, key1_, buf_);
      ++ctr_[0];
      used_ = 0;
    }
    return buf_[used_++];
  }

  // Uniform on the open interval (0, 1) with 53 random bits (uniform53).
  HVAE_HD double uniform_double() {
    const uint32_t hi = next_u32();
    return uniform53(hi, next_u32());
  }

  // Uniform on (0, 1) with 24 random bits, for float32 tangent draws.
  HVAE_HD float uniform_float() { return uniform24(next_u32()); }

  // Two independent standard normals by the Box-Muller transform (Box & Muller 1958).
  HVAE_HD void normal_pair(double* z0, double* z1) {
    const double u1 = uniform_double();
    box_muller(u1, uniform_double(), z0, z1);
  }
  HVAE_HD void normal_pair(float* z0, float* z1) {
    const float u1 = uniform_float();
    box_muller_float(u1, uniform_float(), z0, z1);
  }
  // Random access to the k-th pair of normal_pair(): the same numbers a sequential stream produces for
  // its k-th call, so that a CUDA warp can split one row's tangent draws across its lanes and still
  // match the CPU kernel. A float pair uses two words (two pairs per Philox block), a double pair four.
  HVAE_HD void seek_normal_pair(uint64_t pair, float*) {
    ctr_[0] = static_cast<uint32_t>(pair >> 1);
    philox4x32_10(ctr_, key0_, key1_, buf_);
    ++ctr_[0];
    used_ = static_cast<int>(pair & 1u) * 2;
  }
  HVAE_HD void seek_normal_pair(uint64_t pair, double*) {
    ctr_[0] = static_cast<uint32_t>(pair);
    used_ = 4;
  }

 private:
  uint32_t key0_, key1_;
  uint32_t ctr_[4];
  uint32_t buf_[4];
  int used_;
};

}  // namespace math
}  // namespace hvae
