// Host emulation of the CUDA C++ that hvae_ext's kernels use (csrc/cuda/*.cu), so that the kernels themselves
// run on a machine without a GPU. A translation unit of the emulation includes this header first, then one
// .cu file of csrc/cuda whose launches `k<<<grid, block, shmem, stream>>>(args)` were rewritten
// mechanically to `::hvae_emu::launch(::hvae_emu::LaunchConfig(grid, block, shmem, stream).named("k"), &k, args)`
// (tests/cuda_emulation/build.py); nothing else of the kernel text changes.
//
// What this header provides:
//   - the CUDA keywords (__global__, __device__, __host__, __forceinline__, __constant__, __launch_bounds__);
//   - threadIdx, blockIdx, blockDim, gridDim, warpSize;
//   - warp collectives (__shfl_sync, __shfl_xor_sync, __shfl_up_sync, __shfl_down_sync, __ballot_sync,
//     __any_sync, __all_sync, __syncwarp) and __syncthreads: the threads of a block run as fibers
//     (runtime.cpp) and every collective is a checked rendezvous: all 32 lanes of the warp take part, none has
//     exited, all are at the same call (file and line) with the same operation, and the mask is full.
//     A violation is an error thrown by the launch (a RuntimeError in Python);
//   - the bit and integer intrinsics the math headers use (__umulhi, __longlong_as_double, ...);
//   - the device math library: after this header, `__CUDACC__` and `__CUDA_ARCH__` are defined, so
//     csrc/math/*.h take their device branches, and their calls of exp, log, log1p, expm1, sincos,
//     sincospi, lgamma, asin, logf, sinf, cosf, ... go to wrappers that call glibc (standing in for CUDA's
//     libm) and, when configured, move the result by up to the function's maximum ulp error in the CUDA
//     Programming Guide's table of mathematical functions;
//   - the c10/cuda headers the .cu files include (shim/c10/cuda/*.h): a CUDAGuard that does nothing, a
//     stream handle, C10_CUDA_CHECK and C10_CUDA_KERNEL_LAUNCH_CHECK, and cudaDeviceGetAttribute, whose
//     multiprocessor count is configurable (a small count makes the kernels' grid-stride loops iterate);
//   - TORCH_LIBRARY_IMPL(hvae_ext, CUDA, m) registers the kernels as the CPU kernels of the namespace
//     HVAE_EMU_NS instead, so that torch.ops.<HVAE_EMU_NS>.<op> runs the emulated CUDA kernel on CPU tensors.
#pragma once

// ---- everything of the host side first: torch and the standard library see no CUDA macros ----------------
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <math.h>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#ifndef HVAE_EMU_NS
#error "HVAE_EMU_NS (the op namespace of this emulation build) must be defined"
#endif
#define HVAE_EMU_STR2_(x) #x
#define HVAE_EMU_STR_(x) HVAE_EMU_STR2_(x)

#include "emu_runtime.h"

constexpr int warpSize = 32;

namespace hvae_emu {

// ---- launches ------------------------------------------------------------------------------------------
struct LaunchConfig {
  dim3 grid, block;
  const char* name = "kernel";  // the kernel's name in the source, for error messages
  LaunchConfig named(const char* n) const {
    LaunchConfig c = *this;
    c.name = n;
    return c;
  }
  template <class G, class B, class S = int, class St = void*>
  LaunchConfig(G g, B b, S shared_bytes = 0, St = nullptr) : grid(to_dim3(g, "grid")), block(to_dim3(b, "block")) {
    TORCH_CHECK(static_cast<long long>(shared_bytes) == 0,
                "cuda emulation: dynamic shared memory is not emulated (requested ",
                static_cast<long long>(shared_bytes), " bytes)");
  }
  static dim3 to_dim3(dim3 v, const char*) { return v; }
  template <class I, class = std::enable_if_t<std::is_integral<I>::value>>
  static dim3 to_dim3(I v, const char* what) {
    const long long n = static_cast<long long>(v);
    // cudaErrorInvalidConfiguration on a GPU
    TORCH_CHECK(n >= 1 && n <= (what[0] == 'g' ? 2147483647LL : 1024LL), "cuda emulation: invalid ", what,
                " dimension ", n);
    return dim3(static_cast<unsigned>(n));
  }
};

template <class... P>
struct KernelCall {
  void (*kernel)(P...);
  std::tuple<std::decay_t<P>...> params;  // converted once, as the launch does; each thread gets copies
  static void run(void* self) {
    auto* call = static_cast<KernelCall*>(self);
    std::apply([call](const auto&... p) { call->kernel(p...); }, call->params);
  }
};

template <class... P, class... A>
void launch(const LaunchConfig& cfg, void (*kernel)(P...), A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "cuda emulation: wrong number of kernel arguments");
  KernelCall<P...> call{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
  run_grid(cfg.grid, cfg.block, &KernelCall<P...>::run, &call, cfg.name);
}

// ---- warp collectives ----------------------------------------------------------------------------------
template <class T>
T shuffle(Collective op, const char* file, int line, unsigned mask, T v, int arg, int width = warpSize) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "cuda emulation: shuffle of a type > 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = collective(op, file, line, mask, bits, arg, width);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

inline void syncwarp(const char* file, int line, unsigned mask = 0xffffffffu) {
  (void)collective(Collective::kSyncWarp, file, line, mask, 0, 0, warpSize);
}

// ---- intrinsics ----------------------------------------------------------------------------------------
inline unsigned umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline long long umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}
template <class To, class From>
inline To bit_cast(From f) {
  static_assert(sizeof(To) == sizeof(From), "size");
  To t;
  std::memcpy(&t, &f, sizeof t);
  return t;
}

// ---- the device math library -----------------------------------------------------------------------------
// glibc's function, then moved by up to the maximum ulp error of CUDA's function (CUDA C++ Programming Guide,
// "Mathematical Functions", double and single precision tables): 0 for sqrt/sqrtf (IEEE, -prec-sqrt=true)
// and fma; 1 for exp, expm1, log, log1p, logf; 2 for sin, cos, sincos, sincospi, asin, acos, atan2, atanh,
// pow, sinf, cosf, expf; 4 for lgamma (outside -23.0001 < x < -2.2637). The second argument of perturb
// numbers the function, for the pseudo-random mode.
namespace dev {
#define HVAE_EMU_UNARY_(NAME, ULPS, ID)                                    \
  inline double NAME(double x) { return perturb(::NAME(x), ULPS, ID, x); } \
  inline float NAME(float x) { return perturb(::NAME##f(x), ULPS, ID + 100, x); }
HVAE_EMU_UNARY_(exp, 1, 1)
HVAE_EMU_UNARY_(expm1, 1, 2)
HVAE_EMU_UNARY_(log, 1, 3)
HVAE_EMU_UNARY_(log1p, 1, 4)
HVAE_EMU_UNARY_(sin, 2, 5)
HVAE_EMU_UNARY_(cos, 2, 6)
HVAE_EMU_UNARY_(asin, 2, 7)
HVAE_EMU_UNARY_(acos, 2, 8)
HVAE_EMU_UNARY_(atanh, 2, 9)
HVAE_EMU_UNARY_(lgamma, 4, 10)
#undef HVAE_EMU_UNARY_
inline double sqrt(double x) { return ::sqrt(x); }  // IEEE on the device
inline float sqrt(float x) { return ::sqrtf(x); }
inline double atan2(double y, double x) { return perturb(::atan2(y, x), 2, 11, y + x); }
inline double pow(double x, double y) { return perturb(::pow(x, y), 2, 12, x + y); }
inline float expf(float x) { return perturb(::expf(x), 2, 101, x); }
inline float logf(float x) { return perturb(::logf(x), 1, 103, x); }
inline float sinf(float x) { return perturb(::sinf(x), 2, 105, x); }
inline float cosf(float x) { return perturb(::cosf(x), 2, 106, x); }
inline float sqrtf(float x) { return ::sqrtf(x); }
inline void sincos(double x, double* s, double* c) {
  *s = perturb(::sin(x), 2, 13, x);
  *c = perturb(::cos(x), 2, 14, x);
}
// sin(pi x) and cos(pi x): glibc has no sincospi; x is reduced exactly to r in [-1/4, 1/4] around a multiple
// of 1/2 and sin/cos(pi r) taken in long double (error < 0.51 ulp before the perturbation). Exact at
// multiples of 1/2, as CUDA's.
inline void sincospi(double x, double* s, double* c) {
  if (!std::isfinite(x)) {
    *s = *c = std::numeric_limits<double>::quiet_NaN();
    return;
  }
  const double q = std::nearbyint(2.0 * x);  // x = q/2 + r, |r| <= 1/4, r exact
  const double r = x - 0.5 * q;
  const long double pr = 3.141592653589793238462643383279502884L * static_cast<long double>(r);
  const double sr = static_cast<double>(std::sin(pr)), cr = static_cast<double>(std::cos(pr));
  const long long k = static_cast<long long>(std::fmod(q, 4.0) + 4.0) & 3;
  double sv = k == 0 ? sr : k == 1 ? cr : k == 2 ? -sr : -cr;
  double cv = k == 0 ? cr : k == 1 ? -sr : k == 2 ? -cr : sr;
  if (sv == 0.0) sv = 0.0 * x;  // sinpi(n) = +-0
  *s = perturb(sv, 2, 15, x);
  *c = perturb(cv, 2, 16, x);
}
}  // namespace dev

}  // namespace hvae_emu

namespace std {
namespace hvae_emu = ::hvae_emu;  // so that std::NAME(...) still names a function after the macros below
}

// ---- the op registration: the emulation's namespace, CPU dispatch key ------------------------------------
#undef TORCH_LIBRARY_IMPL
#define TORCH_LIBRARY_IMPL(ns, k, m) HVAE_EMU_LIBRARY_IMPL_(m, C10_UID)
#define HVAE_EMU_LIBRARY_IMPL_(m, uid) HVAE_EMU_LIBRARY_IMPL_2_(m, uid)
#define HVAE_EMU_LIBRARY_IMPL_2_(m, uid)                                                            \
  static void C10_CONCATENATE(hvae_emu_impl_init_, uid)(torch::Library&);                           \
  static const torch::detail::TorchLibraryInit C10_CONCATENATE(hvae_emu_impl_static_init_, uid)(    \
      torch::Library::IMPL, &C10_CONCATENATE(hvae_emu_impl_init_, uid), HVAE_EMU_STR_(HVAE_EMU_NS), \
      std::make_optional(c10::DispatchKey::CPU), __FILE__, __LINE__);                               \
  void C10_CONCATENATE(hvae_emu_impl_init_, uid)(torch::Library & m)

// ---- the CUDA runtime API of the c10/cuda shims ------------------------------------------------------------
using cudaStream_t = void*;
enum cudaError_t { cudaSuccess = 0 };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  TORCH_CHECK(attr == cudaDevAttrMultiProcessorCount, "cuda emulation: attribute ", static_cast<int>(attr),
              " is not emulated");
  TORCH_CHECK(device == 0, "cuda emulation: device ", device, " (only device 0 exists)");
  *value = hvae_emu::multiprocessor_count();
  return cudaSuccess;
}
namespace c10 {
namespace cuda {
struct CUDAGuard {
  explicit CUDAGuard(c10::Device) {}
  explicit CUDAGuard(c10::DeviceIndex) {}
};
struct CUDAStream {
  operator cudaStream_t() const { return nullptr; }
  cudaStream_t stream() const { return nullptr; }
};
inline CUDAStream getCurrentCUDAStream(c10::DeviceIndex = -1) { return {}; }
inline c10::DeviceIndex current_device() { return 0; }
}  // namespace cuda
}  // namespace c10
#define C10_CUDA_CHECK(expr)                                                         \
  do {                                                                               \
    const cudaError_t hvae_emu_err_ = (expr);                                        \
    TORCH_CHECK(hvae_emu_err_ == cudaSuccess, "cuda emulation: CUDA error ", #expr); \
  } while (0)
#define C10_CUDA_KERNEL_LAUNCH_CHECK() \
  do {                                 \
  } while (0)  // the emulated launch throws its errors itself

// ---- CUDA C++ keywords and intrinsics --------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __umulhi(a, b) ::hvae_emu::umulhi(a, b)
#define __umul64hi(a, b) ::hvae_emu::umul64hi(a, b)
#define __longlong_as_double(b) ::hvae_emu::bit_cast<double>(static_cast<long long>(b))
#define __double_as_longlong(x) ::hvae_emu::bit_cast<long long>(static_cast<double>(x))
#define __int_as_float(b) ::hvae_emu::bit_cast<float>(static_cast<int>(b))
#define __float_as_int(x) ::hvae_emu::bit_cast<int>(static_cast<float>(x))
#define __popc(x) __builtin_popcount(x)
#define __ldg(p) (*(p))
// atomicMin (integer types): a compare-and-swap loop, so it is atomic also where blocks run on host threads
namespace hvae_emu {
template <typename T>
inline T atomic_min(T* address, T val) {
  T old = __atomic_load_n(address, __ATOMIC_RELAXED);
  while (val < old && !__atomic_compare_exchange_n(address, &old, val, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
}  // namespace hvae_emu
#define atomicMin(address, val) ::hvae_emu::atomic_min(address, val)
// __dadd_rn / __dmul_rn: one IEEE operation each, never contracted into a fused multiply-add (out of line, so
// that the FMA variant's -ffp-contract=fast cannot fuse them with their neighbours, as nvcc does not)
namespace hvae_emu {
__attribute__((noinline)) inline double dadd_rn(double a, double b) { return a + b; }
__attribute__((noinline)) inline double dmul_rn(double a, double b) { return a * b; }
}  // namespace hvae_emu
#define __dadd_rn(a, b) ::hvae_emu::dadd_rn(a, b)
#define __dmul_rn(a, b) ::hvae_emu::dmul_rn(a, b)
#define __shfl_sync(mask, v, ...) \
  ::hvae_emu::shuffle(::hvae_emu::Collective::kShfl, __FILE__, __LINE__, mask, v, __VA_ARGS__)
#define __shfl_xor_sync(mask, v, ...) \
  ::hvae_emu::shuffle(::hvae_emu::Collective::kShflXor, __FILE__, __LINE__, mask, v, __VA_ARGS__)
#define __shfl_up_sync(mask, v, ...) \
  ::hvae_emu::shuffle(::hvae_emu::Collective::kShflUp, __FILE__, __LINE__, mask, v, __VA_ARGS__)
#define __shfl_down_sync(mask, v, ...) \
  ::hvae_emu::shuffle(::hvae_emu::Collective::kShflDown, __FILE__, __LINE__, mask, v, __VA_ARGS__)
#define __ballot_sync(mask, p) \
  static_cast<unsigned>(       \
      ::hvae_emu::collective(::hvae_emu::Collective::kBallot, __FILE__, __LINE__, mask, (p) ? 1u : 0u, 0, warpSize))
#define __any_sync(mask, p) \
  static_cast<int>(         \
      ::hvae_emu::collective(::hvae_emu::Collective::kAny, __FILE__, __LINE__, mask, (p) ? 1u : 0u, 0, warpSize))
#define __all_sync(mask, p) \
  static_cast<int>(         \
      ::hvae_emu::collective(::hvae_emu::Collective::kAll, __FILE__, __LINE__, mask, (p) ? 1u : 0u, 0, warpSize))
#define __syncwarp(...) ::hvae_emu::syncwarp(__FILE__, __LINE__, ##__VA_ARGS__)
#define __syncthreads() \
  ((void)::hvae_emu::collective(::hvae_emu::Collective::kSyncThreads, __FILE__, __LINE__, 0xffffffffu, 0, 0, warpSize))
// __shared__ is not defined: a kernel with shared memory fails to compile here instead of running wrongly.

// ---- device compilation: the math headers take their device branches -------------------------------------
#define __CUDACC__ 1
#ifndef HVAE_EMU_CUDA_ARCH
#define HVAE_EMU_CUDA_ARCH 900
#endif
#define __CUDA_ARCH__ HVAE_EMU_CUDA_ARCH

// Every call of these functions (::NAME(...), std::NAME(...) or NAME(...)) from here on is the device's.
#define exp(...) hvae_emu::dev::exp(__VA_ARGS__)
#define expm1(...) hvae_emu::dev::expm1(__VA_ARGS__)
#define log(...) hvae_emu::dev::log(__VA_ARGS__)
#define log1p(...) hvae_emu::dev::log1p(__VA_ARGS__)
#define sin(...) hvae_emu::dev::sin(__VA_ARGS__)
#define cos(...) hvae_emu::dev::cos(__VA_ARGS__)
#define asin(...) hvae_emu::dev::asin(__VA_ARGS__)
#define acos(...) hvae_emu::dev::acos(__VA_ARGS__)
#define atanh(...) hvae_emu::dev::atanh(__VA_ARGS__)
#define atan2(...) hvae_emu::dev::atan2(__VA_ARGS__)
#define lgamma(...) hvae_emu::dev::lgamma(__VA_ARGS__)
#define pow(...) hvae_emu::dev::pow(__VA_ARGS__)
#define sqrt(...) hvae_emu::dev::sqrt(__VA_ARGS__)
#define expf(...) hvae_emu::dev::expf(__VA_ARGS__)
#define logf(...) hvae_emu::dev::logf(__VA_ARGS__)
#define sinf(...) hvae_emu::dev::sinf(__VA_ARGS__)
#define cosf(...) hvae_emu::dev::cosf(__VA_ARGS__)
#define sqrtf(...) hvae_emu::dev::sqrtf(__VA_ARGS__)
#define sincos(...) hvae_emu::dev::sincos(__VA_ARGS__)
#define sincospi(...) hvae_emu::dev::sincospi(__VA_ARGS__)
