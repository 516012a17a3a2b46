// Vectorizable Box-Muller for the CPU sampler's float32 tangent draws.
//
// The tangent direction needs d - 1 normals per row, which dominates the cost of rsample on the CPU.
// glibc's logf/sinf/cosf are scalar calls that block vectorization, so this file evaluates
//   n0 = sqrt(-2 log u1) cos(2 pi u2),   n1 = sqrt(-2 log u1) sin(2 pi u2)      (Box & Muller 1958)
// with branch-free polynomials that GCC vectorizes (AVX2 clone chosen at load time, portable default
// otherwise). Accuracy: log to ~1e-7 relative (atanh series on [sqrt(1/2), sqrt(2))), sin/cos to ~3e-8
// absolute (Taylor series on [-pi/4, pi/4] after quadrant reduction): far below what changes the law of
// a normalised Gaussian direction. The uniforms are the same 24-bit values the scalar path uses.
#pragma once

#include <cstdint>
#include <cstring>

namespace hvae {
namespace cpu {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HVAE_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HVAE_VECTOR_CLONES
#endif

// Box-Muller on n pairs: words[2p], words[2p+1] are the two random words of pair p, whose normals go to
// out[2p] (cos) and out[2p+1] (sin).
HVAE_VECTOR_CLONES
inline void box_muller_float(const uint32_t* __restrict words, float* __restrict out, int64_t n) {
  constexpr float kInv24 = 1.0f / 16777216.0f, kLn2 = 0.693147180559945f, kTwoPi = 6.283185307179586f;
  for (int64_t p = 0; p < n; ++p) {
    // log(u1), u1 in (0, 1): u1 = m 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh((m-1)/(m+1)).
    const float u1 = (static_cast<float>(words[2 * p] >> 8) + 0.5f) * kInv24;
    uint32_t bits;
    std::memcpy(&bits, &u1, sizeof bits);
    int32_t e = static_cast<int32_t>((bits >> 23) & 0xffu) - 127;
    uint32_t mbits = (bits & 0x007fffffu) | 0x3f800000u;  // m in [1, 2)
    float m;
    std::memcpy(&m, &mbits, sizeof m);
    const bool high = m > 1.41421356f;
    m = high ? 0.5f * m : m;
    e = high ? e + 1 : e;
    const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    const float log_m = 2.0f * s * (1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9)))));
    const float log_u1 = static_cast<float>(e) * kLn2 + log_m;
    const float radius = __builtin_sqrtf(-2.0f * log_u1);
    // sin/cos(2 pi u2): quadrant q = round(4 u2), x = 2 pi (u2 - q/4) in [-pi/4, pi/4].
    const float u2 = (static_cast<float>(words[2 * p + 1] >> 8) + 0.5f) * kInv24;
    const float qf = __builtin_floorf(4.0f * u2 + 0.5f);
    const float x = kTwoPi * (u2 - 0.25f * qf), x2 = x * x;
    const float sin_x = x * (1.0f - x2 * (1.0f / 6 - x2 * (1.0f / 120 - x2 * (1.0f / 5040 - x2 * (1.0f / 362880)))));
    const float cos_x = 1.0f - x2 * (0.5f - x2 * (1.0f / 24 - x2 * (1.0f / 720 - x2 * (1.0f / 40320))));
    const int q = static_cast<int>(qf) & 3;
    const float c = q == 0 ? cos_x : q == 1 ? -sin_x : q == 2 ? -cos_x : sin_x;
    const float sn = q == 0 ? sin_x : q == 1 ? cos_x : q == 2 ? -sin_x : -cos_x;
    out[2 * p] = radius * c;
    out[2 * p + 1] = radius * sn;
  }
}

}  // namespace cpu
}  // namespace hvae
