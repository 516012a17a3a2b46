// CPU kernels of the fused argument checks (csrc/math/checks.h has the rules, csrc/check_layout.h the rows and the
// results): one read of the tensor, rows in parallel, no temporaries.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>

#include "../check_layout.h"
#include "../math/checks.h"
#include "../math/fastmath.h"
#include "fast_normal.h"  // HVAE_VECTOR_CLONES
#include "unit_screen_avx2.h"

namespace hvae {
namespace {

template <typename T>
constexpr math::CheckPrecision precision_of() {
  if (std::is_same<T, double>::value) return math::CheckPrecision::kFloat64;
  if (std::is_same<T, float>::value) return math::CheckPrecision::kFloat32;
  if (std::is_same<T, at::Half>::value) return math::CheckPrecision::kFloat16;
  return math::CheckPrecision::kBFloat16;
}

template <typename T>
HVAE_HD_HOT double load(T v) {
  return static_cast<double>(static_cast<float>(v));
}
template <>
HVAE_HD_HOT double load<double>(double v) {
  return v;
}
// An entry in the narrowest type that holds it exactly: float64 stays, the others become float32.
template <typename T>
HVAE_HD_HOT float load_narrow(T v) {
  return static_cast<float>(v);
}
HVAE_HD_HOT double load_narrow(double v) { return v; }

// The first rows found by the threads: the minimum over them (an unsigned minimum from ~0, as on CUDA).
struct FirstRows {
  std::atomic<uint64_t> row[3];
  FirstRows() {
    for (auto& r : row) r.store(~uint64_t{0});
  }
  void offer(int k, int64_t full_row) {
    uint64_t v = static_cast<uint64_t>(full_row), cur = row[k].load();
    while (v < cur && !row[k].compare_exchange_weak(cur, v)) {
    }
  }
  at::Tensor result(const at::Tensor& like) const {
    at::Tensor out = at::empty({3}, like.options().dtype(at::kLong));
    int64_t* p = out.data_ptr<int64_t>();
    for (int k = 0; k < 3; ++k) p[k] = static_cast<int64_t>(row[k].load());
    return out;
  }
};

// Whether the row (or element) holds a NaN, an infinity.
template <typename T>
void classify(const T* p, int64_t d, int64_t stride, bool* has_nan, bool* has_nonfinite) {
  for (int64_t j = 0; j < d; ++j) {
    const double v = load(p[j * stride]);
    *has_nan = *has_nan || math::is_nan(v);
    *has_nonfinite = *has_nonfinite || math::is_nan(v) || math::is_inf(v);
  }
}

// The rows of [begin, end) in a chunk: distinct row r at base + offset, counted from (idx, offset, full).
struct Cursor {
  const RowLayout& L;
  int64_t idx[RowLayout::kMaxDims] = {};
  int64_t offset = 0, full = 0;
  Cursor(const RowLayout& layout, int64_t r) : L(layout) {
    for (int k = L.ndim - 1; k >= 0; --k) {
      idx[k] = r % L.size[k];
      r /= L.size[k];
      offset += idx[k] * L.mem_stride[k];
      full += idx[k] * L.row_stride[k];
    }
  }
  void next() {
    for (int k = L.ndim - 1; k >= 0; --k) {
      offset += L.mem_stride[k];
      full += L.row_stride[k];
      if (++idx[k] < L.size[k]) return;
      offset -= idx[k] * L.mem_stride[k];
      full -= idx[k] * L.row_stride[k];
      idx[k] = 0;
    }
  }
};

// Rows per parallel task: about 512K entries (2 MB of float32). Below that a check is a pass over memory of well under
// 0.1 ms, and a parallel region costs a barrier, which on a CPU shared with other jobs can wait for a descheduled
// thread far longer than the pass itself (measured: a (65536, 3) check of 26 us in parallel took 8 ms per call
// while another job ran). Above it the pass reads memory at the bandwidth of one core, often from beyond the
// caches (a (65536, 64) float32 check right after a sampler call: 1.2 ms on one thread, 0.75 ms on two; torch's
// two-thread loc.sum() 0.6 ms), and the second core's bandwidth is worth the barrier.
constexpr int64_t kParallelEntries = int64_t{1} << 19;
inline int64_t grain_rows(int64_t d) { return std::max<int64_t>(1, kParallelEntries / std::max<int64_t>(d, 1)); }

// A row that failed the screen: the rule itself, then the report (the row, and whether it holds a NaN, an
// infinity).
template <typename T>
HVAE_ALWAYS_INLINE void rule_on_row(const T* p, int64_t d, int64_t stride, double s, double tol, int64_t full,
                                    FirstRows& first) {
  if (math::unit_norm_passes(s, tol, precision_of<T>())) return;
  first.offer(0, full);
  bool has_nan = false, has_nonfinite = false;
  classify(p, d, stride, &has_nan, &has_nonfinite);
  if (has_nan) first.offer(1, full);
  if (has_nonfinite) first.offer(2, full);
}

constexpr int64_t kBlock = 256;  // rows per block of the flat path

// Rows at base + r * row_stride (one kept batch dimension, entries contiguous): blocks of rows, the sums of squares
// of a block into s[] (D > 0: d = D known at compile time, the loop over the block vectorizes), then the screen of
// the block; the rule only for blocks with a row outside the screen.
template <typename T, int D>
HVAE_ALWAYS_INLINE void unit_rows_flat(const T* base, int64_t d, int64_t row_stride, int64_t full_stride, double tol,
                                       const math::UnitNormScreen& screen, int64_t begin, int64_t end,
                                       FirstRows& first) {
  const int64_t dd = D > 0 ? D : d;
  double s[kBlock];
  for (int64_t r0 = begin; r0 < end; r0 += kBlock) {
    const int64_t n = std::min<int64_t>(kBlock, end - r0);
    const T* p0 = base + r0 * row_stride;
    for (int64_t j = 0; j < n; ++j) {
      s[j] = math::row_sum_squares(p0 + j * row_stride, dd, 1, [](T v) { return load(v); });
    }
    int outside = 0;
    for (int64_t j = 0; j < n; ++j) outside |= math::in_screen(s[j], screen) ? 0 : 1;
    if (!outside) continue;
    for (int64_t j = 0; j < n; ++j) {
      if (!math::in_screen(s[j], screen))
        rule_on_row(p0 + j * row_stride, dd, 1, s[j], tol, (r0 + j) * full_stride, first);
    }
  }
}

// Rows of d = D < 8 float32, float16 or bfloat16 entries, back to back: first the sums of squares of a block in
// float32 and their screen (math::unit_norm_screen_float), a loop that vectorizes 8 rows to a register (a (65536, 3)
// float32 check: 104 us -> 43 us on one core); a block with a row outside it goes through unit_rows_flat, the float64
// sums, their screen and the rule. (For d >= 8 the compiler vectorizes this loop across rows with transposes, which
// measured slower than the float64 pass; float32 rows of d = 3 or d >= 8 take the AVX2 screens of
// unit_screen_avx2.h where the CPU has AVX2.)
template <typename T, int D>
HVAE_ALWAYS_INLINE void unit_rows_small(const T* base, int64_t full_stride, double tol,
                                        const math::UnitNormScreen& screen, const math::UnitNormScreenFloat& fscreen,
                                        int64_t begin, int64_t end, FirstRows& first) {
  static_assert(D > 0 && D < math::kSumLanes, "unit_rows_small is for rows of fewer than 8 entries");
  const float lo_f = fscreen.lo, hi_f = fscreen.hi;  // locals: not re-read through the reference in the loop
  for (int64_t r0 = begin; r0 < end; r0 += kBlock) {
    const int64_t n = std::min<int64_t>(kBlock, end - r0);
    const T* p0 = base + r0 * D;
    int inside = 1;
    for (int64_t j = 0; j < n; ++j) {
      const T* p = p0 + j * D;
      float sf = static_cast<float>(p[0]) * static_cast<float>(p[0]);
      for (int k = 1; k < D; ++k) sf += static_cast<float>(p[k]) * static_cast<float>(p[k]);
      inside &= static_cast<int>(sf >= lo_f) & static_cast<int>(sf <= hi_f);  // no short circuit: no branch
    }
    if (!inside) unit_rows_flat<T, D>(base, D, D, full_stride, tol, screen, r0, r0 + n, first);
  }
}

// Any layout: the rows counted by the cursor.
template <typename T>
HVAE_ALWAYS_INLINE void unit_rows_strided(const T* base, const RowLayout& L, double tol,
                                          const math::UnitNormScreen& screen, int64_t begin, int64_t end,
                                          FirstRows& first) {
  const int64_t d = L.d, stride = L.inner_stride;
  Cursor c(L, begin);
  for (int64_t r = begin; r < end; ++r, c.next()) {
    const T* p = base + c.offset;
    const double s = math::row_sum_squares(p, d, stride, [](T v) { return load(v); });
    if (!math::in_screen(s, screen)) rule_on_row(p, d, stride, s, tol, c.full, first);
  }
}

#if HVAE_IG_X86_DISPATCH
// Float32 rows with contiguous entries, d = 3 back to back or d >= 8 at any row stride, on AVX2: each block first
// through the float32 screen of unit_screen_avx2.h; a block with a row outside it through unit_rows_flat.
inline void unit_rows_screened_avx2(const float* base, int64_t d, int64_t row_stride, int64_t full_stride, double tol,
                                    const math::UnitNormScreen& screen, const math::UnitNormScreenFloat& fscreen,
                                    int64_t begin, int64_t end, FirstRows& first) {
  for (int64_t r0 = begin; r0 < end; r0 += kBlock) {
    const int64_t n = std::min<int64_t>(kBlock, end - r0);
    const float* p0 = base + r0 * row_stride;
    const float lo = fscreen.lo, hi = fscreen.hi;
    bool inside;
    switch (d) {  // the common sizes with d known at compile time
      case 3:
        inside = cpu::float_rows3_in_screen_avx2(p0, n, lo, hi);
        break;
      case 8:
        inside = cpu::float_rows_in_screen_avx2<8>(p0, row_stride, d, n, lo, hi);
        break;
      case 16:
        inside = cpu::float_rows_in_screen_avx2<16>(p0, row_stride, d, n, lo, hi);
        break;
      case 32:
        inside = cpu::float_rows_in_screen_avx2<32>(p0, row_stride, d, n, lo, hi);
        break;
      case 64:
        inside = cpu::float_rows_in_screen_avx2<64>(p0, row_stride, d, n, lo, hi);
        break;
      default:
        inside = cpu::float_rows_in_screen_avx2<0>(p0, row_stride, d, n, lo, hi);
    }
    if (!inside) unit_rows_flat<float, 0>(base, d, row_stride, full_stride, tol, screen, r0, r0 + n, first);
  }
}
#endif

template <typename T>
HVAE_ALWAYS_INLINE void unit_rows_chunk_impl(const T* base, const RowLayout& L, double tol,
                                             const math::UnitNormScreen& screen,
                                             const math::UnitNormScreenFloat& fscreen, int64_t begin, int64_t end,
                                             FirstRows& first) {
  if (L.ndim > 1 || (L.inner_stride != 1 && L.d > 1)) {
    unit_rows_strided<T>(base, L, tol, screen, begin, end, first);
    return;
  }
  const int64_t rs = L.ndim == 1 ? L.mem_stride[0] : 0, fs = L.ndim == 1 ? L.row_stride[0] : 0;
#if HVAE_IG_X86_DISPATCH
  if constexpr (std::is_same<T, float>::value) {
    if (fscreen.enabled && (L.d == 3 ? rs == 3 : L.d >= 8 && rs >= L.d) && math::detail::ig_cpu_has_avx2_fma()) {
      unit_rows_screened_avx2(base, L.d, rs, fs, tol, screen, fscreen, begin, end, first);
      return;
    }
  }
#endif
  // clang-format off: the macro's case list (clang-format does not settle on one layout for it)
  switch (L.d) {
#define HVAE_SMALL_CASE(D)                                                            \
  case D:                                                                             \
    if (!std::is_same<T, double>::value && fscreen.enabled && rs == D)                \
      unit_rows_small<T, D>(base, fs, tol, screen, fscreen, begin, end, first);       \
    else                                                                              \
      unit_rows_flat<T, D>(base, L.d, rs, fs, tol, screen, begin, end, first);        \
    return;
#define HVAE_FLAT_CASE(D)                                                    \
  case D:                                                                    \
    unit_rows_flat<T, D>(base, L.d, rs, fs, tol, screen, begin, end, first); \
    return;
    HVAE_SMALL_CASE(2) HVAE_SMALL_CASE(3) HVAE_SMALL_CASE(4) HVAE_SMALL_CASE(5) HVAE_SMALL_CASE(6) HVAE_SMALL_CASE(7)
    HVAE_FLAT_CASE(8) HVAE_FLAT_CASE(16)
#undef HVAE_SMALL_CASE
#undef HVAE_FLAT_CASE
    default:
      unit_rows_flat<T, 0>(base, L.d, rs, fs, tol, screen, begin, end, first);
  }
  // clang-format on
}
// The sums of squares vectorize (clones for AVX-512 and AVX2, no contraction into fused multiply-adds: the same
// s on every machine and on CUDA).
#define HVAE_UNIT_ROWS_CHUNK(T)                                                                 \
  HVAE_VECTOR_CLONES void unit_rows_chunk(                                                      \
      const T* base, const RowLayout& L, double tol, const math::UnitNormScreen& screen,        \
      const math::UnitNormScreenFloat& fscreen, int64_t begin, int64_t end, FirstRows& first) { \
    unit_rows_chunk_impl<T>(base, L, tol, screen, fscreen, begin, end, first);                  \
  }
HVAE_UNIT_ROWS_CHUNK(double)
HVAE_UNIT_ROWS_CHUNK(float)
HVAE_UNIT_ROWS_CHUNK(at::Half)
HVAE_UNIT_ROWS_CHUNK(at::BFloat16)
#undef HVAE_UNIT_ROWS_CHUNK

// Elements finite and > 0: contiguous (or evenly strided) blocks tested in one vectorized pass, the rest by the
// cursor; elements are reported only in blocks that hold a failure.
template <typename T>
HVAE_ALWAYS_INLINE void report_element(T x, int64_t full, FirstRows& first) {
  const double v = load(x);
  if (math::positive_finite(v)) return;
  first.offer(0, full);
  if (math::is_nan(v)) first.offer(1, full);
  if (math::is_nan(v) || math::is_inf(v)) first.offer(2, full);
}
template <typename T>
HVAE_ALWAYS_INLINE void positive_chunk_impl(const T* base, const RowLayout& L, int64_t begin, int64_t end,
                                            FirstRows& first) {
  if (L.ndim <= 1) {
    const int64_t st = L.ndim == 1 ? L.mem_stride[0] : 0, fs = L.ndim == 1 ? L.row_stride[0] : 0;
    for (int64_t r0 = begin; r0 < end; r0 += kBlock) {
      const int64_t n = std::min<int64_t>(kBlock, end - r0);
      const T* p0 = base + r0 * st;
      int bad = 0;    // in float32 for float32/16 and bfloat16 (the same answers), 8 to a SIMD register
      if (st == 1) {  // contiguous: the loop vectorizes
        for (int64_t j = 0; j < n; ++j) bad |= static_cast<int>(!math::positive_finite(load_narrow(p0[j])));
      } else {
        for (int64_t j = 0; j < n; ++j) bad |= static_cast<int>(!math::positive_finite(load_narrow(p0[j * st])));
      }
      if (!bad) continue;
      for (int64_t j = 0; j < n; ++j) report_element(p0[j * st], (r0 + j) * fs, first);
    }
    return;
  }
  Cursor c(L, begin);
  for (int64_t r = begin; r < end; ++r, c.next()) report_element(base[c.offset], c.full, first);
}
#define HVAE_POSITIVE_CHUNK(T)                                                                          \
  HVAE_VECTOR_CLONES void positive_chunk(const T* base, const RowLayout& L, int64_t begin, int64_t end, \
                                         FirstRows& first) {                                            \
    positive_chunk_impl<T>(base, L, begin, end, first);                                                 \
  }
HVAE_POSITIVE_CHUNK(double)
HVAE_POSITIVE_CHUNK(float)
HVAE_POSITIVE_CHUNK(at::Half)
HVAE_POSITIVE_CHUNK(at::BFloat16)
#undef HVAE_POSITIVE_CHUNK

at::Tensor vmf_check_unit_rows_cpu(const at::Tensor& x, double tol) {
  check_check_input("_vmf_check_unit_rows", x, true);
  at::Tensor held;
  const RowLayout L = row_layout_or_copy(x, 1, &held);
  FirstRows first;
  if (L.rows > 0 && L.d > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, held.scalar_type(), "_vmf_check_unit_rows", [&] {
      const scalar_t* base = held.data_ptr<scalar_t>();
      const math::UnitNormScreen screen = math::unit_norm_screen(tol, precision_of<scalar_t>());
      const math::UnitNormScreenFloat fscreen = math::unit_norm_screen_float(screen, L.d);
      at::parallel_for(0, L.rows, grain_rows(L.d), [&](int64_t begin, int64_t end) {
        unit_rows_chunk(base, L, tol, screen, fscreen, begin, end, first);
      });
    });
  }
  return first.result(x);
}

at::Tensor check_positive_finite_cpu(const at::Tensor& x) {
  check_check_input("_check_positive_finite", x, false);
  at::Tensor held;
  const RowLayout L = row_layout_or_copy(x, 0, &held);
  FirstRows first;
  if (L.rows > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, held.scalar_type(), "_check_positive_finite", [&] {
      const scalar_t* base = held.data_ptr<scalar_t>();
      at::parallel_for(0, L.rows, kParallelEntries,
                       [&](int64_t begin, int64_t end) { positive_chunk(base, L, begin, end, first); });
    });
  }
  return first.result(x);
}

}  // namespace

TORCH_LIBRARY_IMPL(hvae_ext, CPU, m) {
  m.impl("_vmf_check_unit_rows", &vmf_check_unit_rows_cpu);
  m.impl("_check_positive_finite", &check_positive_finite_cpu);
}

}  // namespace hvae
