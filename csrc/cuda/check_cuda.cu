// CUDA kernels of the fused argument checks (csrc/math/checks.h has the rules, csrc/check_layout.h the rows and the
// results): one launch that reads the tensor once, one thread per row, no host synchronisation (the caller reads
// the three results, once per validated construction).
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <type_traits>

#include "../check_layout.h"
#include "../math/checks.h"

namespace hvae {
namespace {

constexpr int kThreads = 256;

template <typename T>
constexpr math::CheckPrecision precision_of() {
  if (std::is_same<T, double>::value) return math::CheckPrecision::kFloat64;
  if (std::is_same<T, float>::value) return math::CheckPrecision::kFloat32;
  if (std::is_same<T, at::Half>::value) return math::CheckPrecision::kFloat16;
  return math::CheckPrecision::kBFloat16;
}

template <typename T>
__device__ __forceinline__ double load(T v) {
  return static_cast<double>(static_cast<float>(v));
}
template <>
__device__ __forceinline__ double load<double>(double v) {
  return v;
}

__device__ __forceinline__ void offer(int64_t* out, int k, int64_t full_row) {
  atomicMin(reinterpret_cast<unsigned long long*>(out + k), static_cast<unsigned long long>(full_row));
}

template <typename T>
__global__ void unit_rows_kernel(const T* __restrict__ base, RowLayout L, double tol, math::UnitNormScreen screen,
                                 int64_t* __restrict__ out) {
  constexpr math::CheckPrecision P = precision_of<T>();
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < L.rows; r += step) {
    int64_t offset, full;
    L.locate(r, &offset, &full);
    const T* p = base + offset;
    const double s = math::row_sum_squares(p, L.d, L.inner_stride, [](T v) { return load(v); });
    if (math::in_screen(s, screen) || math::unit_norm_passes(s, tol, P)) continue;
    offer(out, 0, full);
    bool has_nan = false, has_nonfinite = false;
    for (int64_t j = 0; j < L.d; ++j) {
      const double v = load(p[j * L.inner_stride]);
      has_nan = has_nan || math::is_nan(v);
      has_nonfinite = has_nonfinite || math::is_nan(v) || math::is_inf(v);
    }
    if (has_nan) offer(out, 1, full);
    if (has_nonfinite) offer(out, 2, full);
  }
}

template <typename T>
__global__ void positive_finite_kernel(const T* __restrict__ base, RowLayout L, int64_t* __restrict__ out) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < L.rows; r += step) {
    int64_t offset, full;
    L.locate(r, &offset, &full);
    const double v = load(base[offset]);
    if (math::positive_finite(v)) continue;
    offer(out, 0, full);
    if (math::is_nan(v)) offer(out, 1, full);
    if (math::is_nan(v) || math::is_inf(v)) offer(out, 2, full);
  }
}

int grid_for(int64_t rows) {
  const int64_t blocks = (rows + kThreads - 1) / kThreads;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(blocks, 65535)));
}

at::Tensor vmf_check_unit_rows_cuda(const at::Tensor& x, double tol) {
  check_check_input("_vmf_check_unit_rows", x, true);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor held;
  const RowLayout L = row_layout_or_copy(x, 1, &held);
  at::Tensor out = at::full({3}, -1, x.options().dtype(at::kLong));
  if (L.rows > 0 && L.d > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, held.scalar_type(), "_vmf_check_unit_rows", [&] {
      const math::UnitNormScreen screen = math::unit_norm_screen(tol, precision_of<scalar_t>());
      unit_rows_kernel<scalar_t><<<grid_for(L.rows), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          held.data_ptr<scalar_t>(), L, tol, screen, out.data_ptr<int64_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return out;
}

at::Tensor check_positive_finite_cuda(const at::Tensor& x) {
  check_check_input("_check_positive_finite", x, false);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor held;
  const RowLayout L = row_layout_or_copy(x, 0, &held);
  at::Tensor out = at::full({3}, -1, x.options().dtype(at::kLong));
  if (L.rows > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, held.scalar_type(), "_check_positive_finite", [&] {
      positive_finite_kernel<scalar_t><<<grid_for(L.rows), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          held.data_ptr<scalar_t>(), L, out.data_ptr<int64_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(hvae_ext, CUDA, m) {
  m.impl("_vmf_check_unit_rows", &vmf_check_unit_rows_cuda);
  m.impl("_check_positive_finite", &check_positive_finite_cuda);
}

}  // namespace hvae
