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
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 += kWeyl0; k1 += kWeyl1;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

// A uniform on the open interval (0, 1) with 53 random bits from two words (27 + 26 bits): never 0, so
// log(u) is finite. Written as hi 2^-27 + (lo + 1/2) 2^-53 (exact in double) so that it needs only 32-bit
// integer to double conversions, which vectorize.
HVAE_HD_HOT double uniform53(uint32_t word_hi, uint32_t word_lo) {
  return static_cast<double>(static_cast<int32_t>(word_hi >> 5)) * (1.0 / 134217728.0) +
         (static_cast<double>(static_cast<int32_t>(word_lo >> 6)) + 0.5) * (1.0 / 9007199254740992.0);
}

// Two independent standard normals from two uniforms in (0, 1) by the Box-Muller transform (Box & Muller
// 1958): n0 = sqrt(-2 log u1) cos(2 pi u2), n1 = sqrt(-2 log u1) sin(2 pi u2). Host: branch-free
// polynomials (fastmath.h), so loops over many pairs vectorize; device: the CUDA math functions.
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

// Stream ids: the rejection loop and the tangent direction draw from separate streams, so the tangent
// direction of a row does not depend on how many proposals its rejection loop needed.
enum : uint32_t { kStreamRadial = 0u, kStreamTangent = 1u };

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
  HVAE_HD float uniform_float() { return (static_cast<float>(next_u32() >> 8) + 0.5f) * (1.0f / 16777216.0f); }

  // Two independent standard normals by the Box-Muller transform (Box & Muller 1958).
  HVAE_HD void normal_pair(double* z0, double* z1) {
    const double u1 = uniform_double();
    box_muller(u1, uniform_double(), z0, z1);
  }
  HVAE_HD void normal_pair(float* z0, float* z1) {
    const float radius = ::sqrtf(-2.0f * ::logf(uniform_float()));
    const float angle = 6.28318530717958647692f * uniform_float();
    *z0 = radius * ::cosf(angle);
    *z1 = radius * ::sinf(angle);
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

  // One standard normal; the second of each Box-Muller pair is kept for the next call.
  HVAE_HD double normal_double() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double z0;
    normal_pair(&z0, &spare_);
    has_spare_ = true;
    return z0;
  }

 private:
  uint32_t key0_, key1_;
  uint32_t ctr_[4];
  uint32_t buf_[4];
  int used_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace math
}  // namespace hvae
