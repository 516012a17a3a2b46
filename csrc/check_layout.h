// The rows of a tensor of shape (..., d) as the fused argument checks read them (csrc/cpu/check_cpu.cpp,
// csrc/cuda/check_cuda.cu): in place, whatever the strides, without a copy.
//
// Batch dimensions of size 1 or stride 0 (expanded) are dropped: every row along them is the same row, and the
// first of them in row-major order is the one at index 0, so the first row that fails a rule is found among the
// distinct rows. The rest are merged where their strides allow. Each distinct row r (0 <= r < rows) has its
// memory offset and its index in the full row-major batch (what the checks report).
//
// The results of a check: int64 (3,), each the first row (in row-major order of the batch) that
//   [0] fails the rule, [1] contains a NaN, [2] contains a NaN or an infinity; -1 where there is none.
// The CUDA kernels take the minimum with atomicMin on the unsigned bits, from -1 (all bits set).
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdint>

#include "math/common.h"

namespace hvae {

struct RowLayout {
  static constexpr int kMaxDims = 10;
  int ndim = 0;  // kept batch dimensions, outermost first
  int64_t size[kMaxDims] = {};
  int64_t mem_stride[kMaxDims] = {};  // in elements
  int64_t row_stride[kMaxDims] = {};  // in rows of the full batch
  int64_t rows = 1;                   // distinct rows
  int64_t d = 1;                      // entries per row (1: a check of elements)
  int64_t inner_stride = 1;           // stride of the entries within a row

  // Offset (in elements) and full-batch row index of distinct row r.
  HVAE_HD void locate(int64_t r, int64_t* offset, int64_t* full_row) const {
    int64_t off = 0, full = 0;
    for (int k = ndim - 1; k >= 0; --k) {
      const int64_t i = r % size[k];
      r /= size[k];
      off += i * mem_stride[k];
      full += i * row_stride[k];
    }
    *offset = off;
    *full_row = full;
  }
};

// The layout of x's rows: `event_dims` trailing dimensions form a row (1 for (..., d), 0 for a check of
// elements). False if more than kMaxDims batch dimensions remain after merging (the caller then checks a
// contiguous copy). An empty x gives rows = 0.
inline bool make_row_layout(const at::Tensor& x, int event_dims, RowLayout* out) {
  RowLayout L;
  const int64_t nd = x.dim();
  const int64_t batch_dims = nd - event_dims;
  if (event_dims == 1) {
    L.d = x.size(nd - 1);
    L.inner_stride = L.d > 1 ? x.stride(nd - 1) : 1;
  }
  if (x.numel() == 0) {
    L.rows = 0;
    *out = L;
    return true;
  }
  int64_t full_rows_after = 1;  // rows of the full batch per step of the current dimension
  // collected innermost first, then reversed
  int64_t size[64], mem[64], row[64];
  int n = 0;
  for (int64_t k = batch_dims - 1; k >= 0; --k) {
    const int64_t s = x.size(k), st = x.stride(k);
    if (s != 1 && st != 0) {
      if (n > 0 && mem[n - 1] * size[n - 1] == st && row[n - 1] * size[n - 1] == full_rows_after) {
        size[n - 1] *= s;  // merges with the dimension inside it
      } else {
        if (n == 64) return false;
        size[n] = s;
        mem[n] = st;
        row[n] = full_rows_after;
        ++n;
      }
    }
    full_rows_after *= s;
  }
  if (n > RowLayout::kMaxDims) return false;
  L.ndim = n;
  L.rows = 1;
  for (int k = 0; k < n; ++k) {
    L.size[k] = size[n - 1 - k];
    L.mem_stride[k] = mem[n - 1 - k];
    L.row_stride[k] = row[n - 1 - k];
    L.rows *= L.size[k];
  }
  *out = L;
  return true;
}

// The row layout of x, or of a contiguous copy of x (kept alive in `holder`) when x has too many dimensions that
// cannot be merged.
inline RowLayout row_layout_or_copy(const at::Tensor& x, int event_dims, at::Tensor* holder) {
  RowLayout L;
  *holder = x;
  if (!make_row_layout(x, event_dims, &L)) {
    *holder = x.contiguous();
    make_row_layout(*holder, event_dims, &L);
  }
  return L;
}

inline void check_check_input(const char* op, const at::Tensor& x, bool rows) {
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble || x.scalar_type() == at::kHalf ||
                  x.scalar_type() == at::kBFloat16,
              op, ": x must be float32, float64, float16 or bfloat16, got ", x.scalar_type());
  if (rows) TORCH_CHECK(x.dim() >= 1, op, ": x must have shape (..., d), got a scalar");
}

}  // namespace hvae
