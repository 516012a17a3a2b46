// The float32 tangent normals of the CPU sampler: math::box_muller_float (math/philox.h, the one definition
// of Box-Muller) over many pairs in one loop, which gcc vectorizes (clones for AVX-512 and AVX2 chosen at load
// time, portable default otherwise).
#pragma once

#include <cstdint>

#include "../math/philox.h"

namespace hvae {
namespace cpu {

// The forward sampler's vectorized loops: clones for AVX-512 and AVX2, picked at load time. No contraction into
// fused multiply-adds (AVX-512 implies FMA): the samples are then the same bits on every x86 machine.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HVAE_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default"), optimize("fp-contract=off")))
#else
#define HVAE_VECTOR_CLONES
#endif

// Box-Muller on n pairs: words[2p], words[2p+1] are the two random words of pair p, whose normals go to
// out[2p] (cos) and out[2p+1] (sin).
HVAE_VECTOR_CLONES
inline void box_muller_float(const uint32_t* __restrict words, float* __restrict out, int64_t n) {
  for (int64_t p = 0; p < n; ++p) {
    math::box_muller_float(math::uniform24(words[2 * p]), math::uniform24(words[2 * p + 1]), &out[2 * p],
                           &out[2 * p + 1]);
  }
}

}  // namespace cpu
}  // namespace hvae
