// Shared definitions for the __host__ __device__ math headers of hvae_ext.
//
// Every formula of the library lives in a header under csrc/math/ as an inline function that
// compiles both for the host (the CPU kernels) and for the device (the CUDA kernels). The
// kernels only loop over elements or rows and call these functions.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define HVAE_HD __host__ __device__ __forceinline__
#define HVAE_HD_HOT __host__ __device__ __forceinline__
#elif defined(__GNUC__) || defined(__clang__)
#define HVAE_HD inline
// Small functions called inside the CPU kernels' vectorized loops: always inlined there, so that the loop
// body has no calls and gcc can vectorize it.
#define HVAE_HD_HOT __attribute__((always_inline)) inline
#else
#define HVAE_HD inline
#define HVAE_HD_HOT inline
#endif

namespace hvae {
namespace math {

constexpr double kPi = 3.14159265358979323846264338327950288;
constexpr double kLogPi = 1.14472988584940017414342735135305871;
constexpr double kLog2 = 0.69314718055994530941723212145817657;
constexpr double kLog2Pi = 1.83787706640934548356065947281123527;

HVAE_HD double quiet_nan() {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(0x7ff8000000000000LL);
#else
  return std::numeric_limits<double>::quiet_NaN();
#endif
}
HVAE_HD double infinity() {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(0x7ff0000000000000LL);
#else
  return std::numeric_limits<double>::infinity();
#endif
}

// NaN/inf tests that behave the same on host and device (the kernels are not built with -ffast-math).
HVAE_HD bool is_nan(double x) { return x != x; }
HVAE_HD bool is_inf(double x) { return x == infinity() || x == -infinity(); }

}  // namespace math
}  // namespace hvae
