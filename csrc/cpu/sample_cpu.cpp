// CPU kernels of the vMF sampler: one pass per sample row, rows in parallel (at::parallel_for).
// Each row draws from its own Philox streams keyed by (seed, row), so results do not depend on the
// number of threads.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cstring>
#include <cstdint>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "../sample_checks.h"
#include "../vmf_math.h"
#include "../math/fastmath.h"
#include "../math/implicit_grad_lanes.h"
#include "fast_normal.h"
#include "mean_resultant_rows.h"
#include "sphere_rows.h"

namespace hvae {
namespace {

// The forward pass works on tiles of rows, each step one loop over the tile that gcc vectorizes (the
// math of csrc/math/ is branch-free on the host): the Philox blocks of all rows, Wood's proposal rounds for
// the rows still rejecting (compacted after each round), the Box-Muller normals of all tangent draws, then
// the reflection (its per-row coefficients side by side). Row r draws exactly the words of its own streams,
// as the CUDA kernel does (docs/performance.md has the profile).

// The per-row fields of math::WoodEnvelope, one array each (what a vectorized loop can load).
struct EnvelopeColumns {
  std::vector<double> b, x0, omx0, kappa_omx0, log1p_x0;
  double dm1 = 0.0, gamma_dd = 0.0, gamma_c = 0.0;  // depend on d only
  explicit EnvelopeColumns(int64_t n) : b(n), x0(n), omx0(n), kappa_omx0(n), log1p_x0(n) {}
  void move(int to, int from) {
    b[to] = b[from];
    x0[to] = x0[from];
    omx0[to] = omx0[from];
    kappa_omx0[to] = kappa_omx0[from];
    log1p_x0[to] = log1p_x0[from];
  }
};

// Per-thread buffers, allocated once per chunk of tiles (never per row): the tangent buffers (sphere_rows.h) and
// Wood's per-row state.
struct TileScratch : TangentScratch {
  EnvelopeColumns env;  // per pending row
  std::vector<double> kappa, omw, omw_try;
  std::vector<int32_t> pending;  // tile rows still rejecting
  std::vector<int32_t> accepted;
  TileScratch(int64_t tile, int64_t blocks_per_row, bool single)
      : TangentScratch(tile, blocks_per_row, single),
        env(tile),
        kappa(tile),
        omw(tile),
        omw_try(tile),
        pending(tile),
        accepted(tile) {}
};

// Proposal round `round` for n pending rows row0 + idx[j] (math::wood_round on blocks 2 round, 2 round + 1
// of each row's radial stream); lane j's envelope is env[j]. Philox and the round are fused in one loop body.
template <bool kCircle>
HVAE_ALWAYS_INLINE void wood_rounds_impl(uint64_t seed, int64_t row0, const int32_t* __restrict idx, int n,
                                         uint32_t round, const EnvelopeColumns& env, double* __restrict omw,
                                         int32_t* __restrict accepted) {
  const uint32_t lo0 = static_cast<uint32_t>(row0), hi0 = static_cast<uint32_t>(static_cast<uint64_t>(row0) >> 32);
  const double* __restrict b = env.b.data();
  const double* __restrict x0 = env.x0.data();
  const double* __restrict omx0 = env.omx0.data();
  const double* __restrict kappa_omx0 = env.kappa_omx0.data();
  const double* __restrict log1p_x0 = env.log1p_x0.data();
  const double dm1 = env.dm1, gamma_dd = env.gamma_dd, gamma_c = env.gamma_c;  // locals: no aliasing doubt
  for (int j = 0; j < n; ++j) {
    uint32_t w[math::kWordsPerRound];
    const uint32_t lo = lo0 + static_cast<uint32_t>(idx[j]), hi = hi0 + (lo < lo0 ? 1u : 0u);
    math::philox_block(seed, lo, hi, math::kStreamRadial, 2u * round, w);
    math::philox_block(seed, lo, hi, math::kStreamRadial, 2u * round + 1u, w + 4);
    math::WoodEnvelope e;
    e.b = b[j];
    e.x0 = x0[j];
    e.omx0 = omx0[j];
    e.kappa_omx0 = kappa_omx0[j];
    e.log1p_x0 = log1p_x0[j];
    e.dm1 = dm1;
    e.gamma_dd = gamma_dd;
    e.gamma_c = gamma_c;
    double o;
    accepted[j] = math::wood_round(w, e, kCircle, &o) ? 1 : 0;
    omw[j] = o;
  }
}
HVAE_VECTOR_CLONES
void wood_rounds(uint64_t seed, int64_t row0, const int32_t* idx, int n, uint32_t round, const EnvelopeColumns& env,
                 bool circle, double* omw, int32_t* accepted) {
  if (circle) {
    wood_rounds_impl<true>(seed, row0, idx, n, round, env, omw, accepted);
  } else {
    wood_rounds_impl<false>(seed, row0, idx, n, round, env, omw, accepted);
  }
}

// d = 3: the exact inversion for rows row0 .. row0 + n - 1 (every row is "pending": no rejection).
HVAE_VECTOR_CLONES
void sphere_rows(uint64_t seed, int64_t row0, int n, const double* __restrict kappa, double* __restrict omw) {
  const uint32_t lo0 = static_cast<uint32_t>(row0), hi0 = static_cast<uint32_t>(static_cast<uint64_t>(row0) >> 32);
  for (int j = 0; j < n; ++j) {
    uint32_t out[4];
    const uint32_t lo = lo0 + static_cast<uint32_t>(j), hi = hi0 + (lo < lo0 ? 1u : 0u);
    math::philox_block(seed, lo, hi, math::kStreamRadial, 0u, out);
    const double k = kappa[j];
    omw[j] = math::sphere_one_minus_w(out[0], out[1], k, math::fast_expm1_nonpositive(-2.0 * k));
  }
}

// The envelopes of n rows (math::wood_envelope), column by column.
HVAE_VECTOR_CLONES
void envelopes(const double* __restrict kappa, int n, double d, EnvelopeColumns& env) {
  double* __restrict b = env.b.data();
  double* __restrict x0 = env.x0.data();
  double* __restrict omx0 = env.omx0.data();
  double* __restrict kappa_omx0 = env.kappa_omx0.data();
  double* __restrict log1p_x0 = env.log1p_x0.data();
  for (int j = 0; j < n; ++j) {
    const math::WoodEnvelope e = math::wood_envelope(kappa[j], d);
    b[j] = e.b;
    x0[j] = e.x0;
    omx0[j] = e.omx0;
    kappa_omx0[j] = e.kappa_omx0;
    log1p_x0[j] = e.log1p_x0;
  }
  const math::WoodEnvelope e = math::wood_envelope(1.0, d);  // the fields that depend on d only (any kappa)
  env.dm1 = e.dm1;
  env.gamma_dd = e.gamma_dd;
  env.gamma_c = e.gamma_c;
}

// 1 - w for the tile rows row0 .. row0 + n - 1 into s.omw; returns the first row that exhausted the bound,
// or -1. Non-finite or negative kappa never enters the loop (NaN; kappa = inf gives 0).
template <typename scalar_t>
int64_t radial_tile(uint64_t seed, int64_t row0, int n, const scalar_t* kappa_p, int64_t B, int64_t d, TileScratch& s) {
  int64_t b = row0 % B;
  for (int j = 0; j < n; ++j, b = b + 1 == B ? 0 : b + 1) {  // no % per row
    s.kappa[j] = static_cast<double>(kappa_p[b]);
  }
  if (d == 3) {
    bool plain = true;
    for (int j = 0; j < n; ++j) plain &= s.kappa[j] >= 0.0 && s.kappa[j] < math::infinity();
    if (plain) {
      sphere_rows(seed, row0, n, s.kappa.data(), s.omw.data());
      return -1;
    }
  }
  int np = 0;
  for (int j = 0; j < n; ++j) {
    const double k = s.kappa[j];
    if (d == 3 || !(k >= 0.0) || k == math::infinity()) {  // no rejection loop (see sample_one_minus_w)
      int rounds;
      s.omw[j] = math::sample_one_minus_w(seed, static_cast<uint64_t>(row0 + j), k, static_cast<double>(d), &rounds);
      continue;
    }
    s.kappa[np] = k;
    s.pending[np++] = j;
  }
  envelopes(s.kappa.data(), np, static_cast<double>(d), s.env);
  const bool circle = d == 2;
  for (int round = 0; round < math::kMaxWoodRounds && np > 0; ++round) {
    wood_rounds(seed, row0, s.pending.data(), np, static_cast<uint32_t>(round), s.env, circle, s.omw_try.data(),
                s.accepted.data());
    int kept = 0;
    for (int j = 0; j < np; ++j) {
      if (s.accepted[j]) {
        s.omw[s.pending[j]] = s.omw_try[j];
      } else {
        s.pending[kept] = s.pending[j];
        s.env.move(kept++, j);
      }
    }
    np = kept;
  }
  for (int j = 0; j < np; ++j) s.omw[s.pending[j]] = math::quiet_nan();
  return np > 0 ? row0 + s.pending[0] : -1;
}

std::tuple<at::Tensor, at::Tensor> vmf_sample_cpu(const at::Tensor& loc_in, const at::Tensor& kappa_in,
                                                  const at::Tensor& seed, int64_t num_samples) {
  check_sample_args(loc_in, kappa_in, seed, num_samples);
  const at::Tensor loc = loc_in.contiguous(), kappa = kappa_in.contiguous();
  const int64_t B = loc.size(0), d = loc.size(1), rows = num_samples * B;
  at::Tensor z = at::empty({rows, d}, loc.options());
  at::Tensor omw = at::empty({rows}, loc.options());
  if (rows == 0) return {z, omw};
  const uint64_t key = static_cast<uint64_t>(seed.item<int64_t>());
  std::atomic<int64_t> failed_row{-1};
  AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "vmf_sample_cpu", [&] {
    const scalar_t* loc_p = loc.data_ptr<scalar_t>();
    const scalar_t* kappa_p = kappa.data_ptr<scalar_t>();
    scalar_t* z_p = z.data_ptr<scalar_t>();
    scalar_t* omw_p = omw.data_ptr<scalar_t>();
    const int64_t tile = rows_per_tile(d), blocks = tangent_blocks<scalar_t>(d);
    const int64_t num_tiles = (rows + tile - 1) / tile;
    at::parallel_for(0, num_tiles, std::max<int64_t>(1, 16384 / (tile * d)), [&](int64_t t0, int64_t t1) {
      TileScratch scratch(tile, blocks, std::is_same<scalar_t, float>::value);
      ReflectColumns columns(tile);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t row0 = t * tile;
        const int n = static_cast<int>(std::min(tile, rows - row0));
        const int64_t bad = radial_tile<scalar_t>(key, row0, n, kappa_p, B, d, scratch);
        if (bad >= 0) {
          int64_t expected = -1;
          failed_row.compare_exchange_strong(expected, bad);
        }
        const scalar_t* normals = tangent_tile_normals(key, row0, n, blocks, scratch, static_cast<scalar_t*>(nullptr));
        for (int j = 0; j < n; ++j) {
          omw_p[row0 + j] = static_cast<scalar_t>(scratch.omw[j]);
          columns.omw[j] = scratch.omw[j];
        }
        // a row's normals: 4 per block for float (two pairs), 2 for double (one pair)
        const int64_t per_row = (std::is_same<scalar_t, float>::value ? 4 : 2) * blocks;
        reflect_tile<scalar_t>(loc_p, B, row0, n, normals, per_row, d, columns, z_p);
      }
    });
  });
  const int64_t bad = failed_row.load();
  TORCH_CHECK(bad < 0, "vmf_sample: the rejection loop of sample row ", bad, " (parameter row ", bad % B,
              ", kappa = ", kappa[bad % B].item<double>(), ", d = ", d, ") exhausted its bound of ",
              math::kMaxWoodRounds, " proposals; this indicates invalid input, please report it");
  return {z, omw};
}

// Opt-in proposal counter (the benchmarks' "proposals per sample"): for each sample row of vmf_sample with the
// same key, the number of Wood proposals the sampler draws for it and its 1 - w (float64), by the scalar
// math::sample_one_minus_w on the same Philox streams as the tiled kernel (which is not changed by this and
// counts nothing). tests/statistical/test_sampler_statistics.py checks that its 1 - w are the kernel's.
std::tuple<at::Tensor, at::Tensor> vmf_sample_proposals_cpu(const at::Tensor& loc, const at::Tensor& kappa_in,
                                                            const at::Tensor& seed, int64_t num_samples) {
  check_sample_args(loc, kappa_in, seed, num_samples);
  const at::Tensor kappa = kappa_in.to(at::kDouble).contiguous();
  const int64_t B = loc.size(0), d = loc.size(1), rows = num_samples * B;
  at::Tensor omw = at::empty({rows}, kappa.options());
  at::Tensor count = at::empty({rows}, kappa.options().dtype(at::kInt));
  if (rows == 0) return {omw, count};
  const uint64_t key = static_cast<uint64_t>(seed.item<int64_t>());
  const double* kappa_p = kappa.data_ptr<double>();
  double* omw_p = omw.data_ptr<double>();
  int32_t* count_p = count.data_ptr<int32_t>();
  at::parallel_for(0, rows, 1024, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int rounds = 0;
      omw_p[r] =
          math::sample_one_minus_w(key, static_cast<uint64_t>(r), kappa_p[r % B], static_cast<double>(d), &rounds);
      count_p[r] = rounds;
    }
  });
  return {omw, count};
}

// dw/dkappa of n samples: float32 results by the float32 rule (math/implicit_grad_single.h) vectorized across
// the samples (math/implicit_grad_lanes.h), float64 by the scalar rule of math/implicit_grad.h.
inline void w_dkappa_tile(const double* omw, const double* kappa, const double* A, int n, double d, float*,
                          double* out) {
  math::vmf_w_dkappa_single(omw, kappa, A, n, d, out);
}
inline void w_dkappa_tile(const double* omw, const double* kappa, const double* A, int n, double d, double*,
                          double* out) {
  for (int j = 0; j < n; ++j) out[j] = math::vmf_w_dkappa(omw[j], kappa[j], d, A[j]);
}

// The backward of rows row0 .. row0 + n - 1 in one pass over the tile: A_d(kappa) of its rows (when not computed
// per parameter row beforehand), the reflection (dL/dmu written, dL/dw kept), then dw/dkappa of the whole tile,
// then dL/dkappa = dL/dw dw/dkappa.
constexpr int kBackwardTile = 256;
struct BackwardScratch {
  double dl_dw[kBackwardTile], omw[kBackwardTile], kappa[kBackwardTile], a[kBackwardTile], dwdk[kBackwardTile];
};
// A_d(kappa) for the backward of a float32 sample: float64 arithmetic with the float32-result truncations (see
// vmf_sample_backward_cpu).
template <typename scalar_t>
constexpr bool kSingleA = std::is_same<scalar_t, float>::value;

template <typename scalar_t>
void backward_tile(const scalar_t* g_p, const scalar_t* z_p, const scalar_t* omw_p, const scalar_t* loc_p,
                   const scalar_t* kappa_p, const double* a_p, int64_t B, int64_t d, int64_t row0, int n,
                   scalar_t* gl_p, scalar_t* gk_p, BackwardScratch& s) {
  int64_t b = row0 % B;
  for (int j = 0; j < n; ++j, b = b + 1 == B ? 0 : b + 1) {
    s.omw[j] = static_cast<double>(omw_p[row0 + j]);
    s.kappa[j] = static_cast<double>(kappa_p[b]);
    // a_p: A_d(kappa) per parameter row, computed beforehand when rows share parameters; else below
    if (a_p != nullptr) s.a[j] = a_p[b];
  }
  if (a_p == nullptr) cpu::vmf_mean_resultant_rows(s.kappa, n, static_cast<double>(d), kSingleA<scalar_t>, s.a);
  reflect_backward_rows<scalar_t>(g_p, z_p, s.omw, loc_p, B, d, row0, n, gl_p, s.dl_dw);
  w_dkappa_tile(s.omw, s.kappa, s.a, n, static_cast<double>(d), static_cast<scalar_t*>(nullptr), s.dwdk);
  for (int j = 0; j < n; ++j) gk_p[row0 + j] = static_cast<scalar_t>(s.dl_dw[j] * s.dwdk[j]);
}

std::tuple<at::Tensor, at::Tensor> vmf_sample_backward_cpu(const at::Tensor& grad_z_in, const at::Tensor& z_in,
                                                           const at::Tensor& omw_in, const at::Tensor& loc_in,
                                                           const at::Tensor& kappa_in) {
  check_sample_backward_args(grad_z_in, z_in, omw_in, loc_in, kappa_in);
  const at::Tensor g = grad_z_in.contiguous(), z = z_in.contiguous(), omw = omw_in.contiguous();
  const at::Tensor loc = loc_in.contiguous(), kappa = kappa_in.contiguous();
  const int64_t B = loc.size(0), d = loc.size(1), rows = z.size(0);
  const int64_t num_samples = B == 0 ? 0 : rows / B;
  // One sample per parameter row (the usual VAE case) writes straight into the result; otherwise
  // per-sample gradients are summed over the sample axis.
  at::Tensor grad_loc = at::empty({rows, d}, loc.options());
  at::Tensor grad_kappa = at::empty({rows}, loc.options());
  // A_d(kappa) once per parameter row, not once per sample, in float64 whatever the dtype: the one-sided form
  // of dw/dkappa uses w - A, whose absolute error must stay well below the spread of w (~1 / kappa). For a
  // float32 result with the `single` truncations of math/bessel.h (within 1e-9 relative of the float64 path;
  // cheaper; the float32 rule's error on the mpmath points and the dense grid is unchanged:
  // tests/unit/test_ops_implicit_grad.py::test_float32_*), never rounded to float32 (1.6e-3 error at d = 1e5, kappa =
  // 1e7).
  std::vector<double> mean_resultant(num_samples == 1 ? 0 : static_cast<size_t>(B));
  AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "vmf_sample_backward_cpu", [&] {
    const scalar_t* g_p = g.data_ptr<scalar_t>();
    const scalar_t* z_p = z.data_ptr<scalar_t>();
    const scalar_t* omw_p = omw.data_ptr<scalar_t>();
    const scalar_t* loc_p = loc.data_ptr<scalar_t>();
    const scalar_t* kappa_p = kappa.data_ptr<scalar_t>();
    scalar_t* gl_p = grad_loc.data_ptr<scalar_t>();
    scalar_t* gk_p = grad_kappa.data_ptr<scalar_t>();
    // One sample per parameter row (the VAE case): A in the tile loop, no second parallel region.
    double* a_p = num_samples == 1 ? nullptr : mean_resultant.data();
    if (a_p != nullptr) {
      at::parallel_for(0, B, 2048, [&](int64_t begin, int64_t end) {
        double k[cpu::kMeanResultantLanes];
        for (int64_t b0 = begin; b0 < end; b0 += cpu::kMeanResultantLanes) {
          const int64_t cnt = std::min<int64_t>(cpu::kMeanResultantLanes, end - b0);
          for (int64_t j = 0; j < cnt; ++j) k[j] = static_cast<double>(kappa_p[b0 + j]);
          cpu::vmf_mean_resultant_rows(k, cnt, static_cast<double>(d), kSingleA<scalar_t>, a_p + b0);
        }
      });
    }
    const int64_t num_tiles = (rows + kBackwardTile - 1) / kBackwardTile;
    const int64_t grain = std::max<int64_t>(1, 8192 / (kBackwardTile * d));
    at::parallel_for(0, num_tiles, grain, [&](int64_t t0, int64_t t1) {
      BackwardScratch scratch;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t row0 = t * kBackwardTile;
        const int n = static_cast<int>(std::min<int64_t>(kBackwardTile, rows - row0));
        backward_tile<scalar_t>(g_p, z_p, omw_p, loc_p, kappa_p, a_p, B, d, row0, n, gl_p, gk_p, scratch);
      }
    });
  });
  return sum_over_samples(grad_loc, grad_kappa, B);
}

}  // namespace

TORCH_LIBRARY_IMPL(hvae_ext, CPU, m) {
  m.impl("vmf_sample", &vmf_sample_cpu);
  m.impl("vmf_sample_backward", &vmf_sample_backward_cpu);
  m.impl("_vmf_sample_proposals", &vmf_sample_proposals_cpu);
}

}  // namespace hvae
