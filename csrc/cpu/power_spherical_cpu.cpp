// CPU kernels of the Power Spherical sampler (math/power_spherical.h): one pass per tile of sample rows, tiles in
// parallel (at::parallel_for). Per row: the two Gamma variates of its Beta draw (each from its own Philox stream),
// then the tangent normals and the reflection of the vMF sampler (sphere_rows.h: the same tangent stream and the
// same code), so that results do not depend on the number of threads and the CUDA kernel draws the same numbers.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../math/power_spherical.h"
#include "../sample_checks.h"
#include "philox_x8.h"
#include "sphere_rows.h"

namespace hvae {
namespace {

// Per-thread buffers of the forward pass: the tangent buffers, the reflection's columns (1 - t in columns.omw) and
// the state of the Gamma draws of a tile.
struct PowerSphericalScratch : TangentScratch {
  ReflectColumns columns;
  std::vector<double> shape_a, shape_b, ga, gb;        // per tile row
  std::vector<double> dd, c, inv_shape, boost, value;  // per pending row (boost: 1.0 or 0.0)
  std::vector<int32_t> pending, accepted;
  // the squeeze-first rounds: the round's words (word i of pending row j at words[i * tile + j]), the candidates
  // (u, v, x^2) per pending row, and the rows whose squeeze failed, gathered
  std::vector<uint32_t> words;
  std::vector<double> cu, cv, cx2, tu, tv, tx2, tdd;
  std::vector<int32_t> which, tok;
  int64_t tile;
  PowerSphericalScratch(int64_t tile, int64_t blocks_per_row, bool single)
      : TangentScratch(tile, blocks_per_row, single),
        columns(tile),
        shape_a(tile),
        shape_b(tile),
        ga(tile),
        gb(tile),
        dd(tile),
        c(tile),
        inv_shape(tile),
        boost(tile),
        value(tile),
        pending(tile),
        accepted(tile),
        words(math::kGammaWordsPerRound * tile),
        cu(tile),
        cv(tile),
        cx2(tile),
        tu(tile),
        tv(tile),
        tx2(tile),
        tdd(tile),
        which(tile),
        tok(tile),
        tile(tile) {}
  void move(int to, int from) {
    pending[to] = pending[from];
    dd[to] = dd[from];
    c[to] = c[from];
    inv_shape[to] = inv_shape[from];
    boost[to] = boost[from];
  }
};

// Round `round` of the Gamma draws of n pending rows row0 + idx[j] (blocks 2 round, 2 round + 1 of each row's
// stream): math::gamma_round, Philox fused into the loop body, vectorized across the rows.
HVAE_VECTOR_CLONES
void gamma_rounds(uint64_t seed, int64_t row0, const int32_t* __restrict idx, int n, uint32_t stream, uint32_t round,
                  const double* __restrict dd, const double* __restrict c, const double* __restrict inv_shape,
                  const double* __restrict boost, double* __restrict value, int32_t* __restrict accepted) {
  const uint32_t lo0 = static_cast<uint32_t>(row0), hi0 = static_cast<uint32_t>(static_cast<uint64_t>(row0) >> 32);
  for (int j = 0; j < n; ++j) {
    uint32_t w[math::kGammaWordsPerRound];
    const uint32_t lo = lo0 + static_cast<uint32_t>(idx[j]), hi = hi0 + (lo < lo0 ? 1u : 0u);
    math::philox_block(seed, lo, hi, stream, 2u * round, w);
    math::philox_block(seed, lo, hi, stream, 2u * round + 1u, w + 4);
    double v;
    accepted[j] = math::gamma_round(w, dd[j], c[j], inv_shape[j], boost[j] != 0.0, &v) ? 1 : 0;
    value[j] = v;
  }
}

// The squeeze-first round for rows none of which boosts (shape >= 1), in three loops: the words of the round
// (gamma_words: 8 per pending row, word i of row j at w[i * stride + j]), the candidates and their squeeze
// (gamma_squeeze: accepted[j] is 1 (accepted by the squeeze), 0 (rejected: t <= 0) or 2 (the squeeze failed with
// t > 0)), then the logarithmic test for the few rows marked 2 (gamma_log_tests). Same variates and decisions as
// gamma_round; the logarithms are out of the loop that every row takes.
HVAE_VECTOR_CLONES
void gamma_words_portable(uint64_t seed, int64_t row0, const int32_t* __restrict idx, int n, uint32_t stream,
                          uint32_t round, uint32_t* __restrict w, int64_t stride) {
  const uint32_t lo0 = static_cast<uint32_t>(row0), hi0 = static_cast<uint32_t>(static_cast<uint64_t>(row0) >> 32);
  for (int j = 0; j < n; ++j) {
    uint32_t out[math::kGammaWordsPerRound];
    const uint32_t lo = lo0 + static_cast<uint32_t>(idx[j]), hi = hi0 + (lo < lo0 ? 1u : 0u);
    math::philox_block(seed, lo, hi, stream, 2u * round, out);
    math::philox_block(seed, lo, hi, stream, 2u * round + 1u, out + 4);
    for (int i = 0; i < math::kGammaWordsPerRound; ++i) w[i * stride + j] = out[i];
  }
}
#if HVAE_IG_X86_DISPATCH
__attribute__((target("avx2"))) void gamma_words_avx2(uint64_t seed, int64_t row0, const int32_t* idx, int n,
                                                      uint32_t stream, uint32_t round, uint32_t* w, int64_t stride) {
  const uint32_t lo0 = static_cast<uint32_t>(row0), hi0 = static_cast<uint32_t>(static_cast<uint64_t>(row0) >> 32);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256i iv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + j));
    __m256i out[8];
    cpu::philox_block_x8(seed, lo0, hi0, iv, stream, 2u * round, out);
    cpu::philox_block_x8(seed, lo0, hi0, iv, stream, 2u * round + 1u, out + 4);
    for (int i = 0; i < math::kGammaWordsPerRound; ++i)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(w + i * stride + j), out[i]);
  }
  if (j < n) gamma_words_portable(seed, row0, idx + j, n - j, stream, round, w + j, stride);
}
#endif
void gamma_words(uint64_t seed, int64_t row0, const int32_t* idx, int n, uint32_t stream, uint32_t round, uint32_t* w,
                 int64_t stride) {
#if HVAE_IG_X86_DISPATCH
  if (math::detail::ig_cpu_has_avx2_fma()) return gamma_words_avx2(seed, row0, idx, n, stream, round, w, stride);
#endif
  gamma_words_portable(seed, row0, idx, n, stream, round, w, stride);
}
HVAE_VECTOR_CLONES
void gamma_squeeze(const uint32_t* __restrict w, int64_t stride, int n, const double* __restrict dd,
                   const double* __restrict c, double* __restrict value, int32_t* __restrict accepted,
                   double* __restrict cu, double* __restrict cv, double* __restrict cx2) {
  for (int j = 0; j < n; ++j) {
    uint32_t words[6];
    for (int i = 0; i < 6; ++i) words[i] = w[i * stride + j];
    const math::GammaCandidate k = math::gamma_round_candidate(words, c[j]);
    accepted[j] = k.t > 0.0 ? (math::gamma_round_squeeze(k) ? 1 : 2) : 0;
    value[j] = dd[j] * k.v;  // gamma_round's dd v scale with scale = 1
    cu[j] = k.u;
    cv[j] = k.v;
    cx2[j] = k.x2;
  }
}
HVAE_VECTOR_CLONES
void gamma_log_tests(int n, const double* __restrict u, const double* __restrict v, const double* __restrict x2,
                     const double* __restrict dd, int32_t* __restrict ok) {
  for (int k = 0; k < n; ++k) {
    math::GammaCandidate cand;
    cand.u = u[k];
    cand.v = v[k];
    cand.x2 = x2[k];
    cand.t = 1.0;  // not read
    ok[k] = math::gamma_round_log_test(cand, dd[k]) ? 1 : 0;
  }
}
void gamma_round_squeeze_first(uint64_t seed, int64_t row0, int np, uint32_t stream, uint32_t round,
                               PowerSphericalScratch& s) {
  gamma_words(seed, row0, s.pending.data(), np, stream, round, s.words.data(), s.tile);
  gamma_squeeze(s.words.data(), s.tile, np, s.dd.data(), s.c.data(), s.value.data(), s.accepted.data(), s.cu.data(),
                s.cv.data(), s.cx2.data());
  int m = 0;
  for (int j = 0; j < np; ++j) {
    if (s.accepted[j] != 2) continue;
    s.which[m] = j;
    s.tu[m] = s.cu[j];
    s.tv[m] = s.cv[j];
    s.tx2[m] = s.cx2[j];
    s.tdd[m] = s.dd[j];
    ++m;
  }
  gamma_log_tests(m, s.tu.data(), s.tv.data(), s.tx2.data(), s.tdd.data(), s.tok.data());
  for (int k = 0; k < m; ++k) s.accepted[s.which[k]] = s.tok[k];
}

// The Gamma variates of stream `stream` for the tile rows row0 .. row0 + n - 1, of shape shape[j], into out[j]: the
// rows still rejecting are compacted after each round (as Wood's rounds of the vMF sampler). A row whose shape is not
// a positive finite number gets NaN at once; one that exhausts math::kMaxGammaRounds gets NaN.
void gamma_tile(uint64_t seed, int64_t row0, int n, uint32_t stream, const double* shape, double* out,
                PowerSphericalScratch& s) {
  int np = 0;
  bool any_boost = false;
  math::GammaShape g = math::gamma_shape(math::quiet_nan());
  double last = math::quiet_nan();
  for (int j = 0; j < n; ++j) {
    if (!(shape[j] == last)) {  // runs of equal shapes (G_b's for every row) share the constants
      last = shape[j];
      g = math::gamma_shape(last);
    }
    if (!math::gamma_shape_valid(g)) {
      out[j] = math::quiet_nan();
      continue;
    }
    s.pending[np] = j;
    s.dd[np] = g.dd;
    s.c[np] = g.c;
    s.inv_shape[np] = g.inv_shape;
    s.boost[np] = g.boost ? 1.0 : 0.0;
    any_boost |= g.boost;
    ++np;
  }
  for (int round = 0; round < math::kMaxGammaRounds && np > 0; ++round) {
    if (any_boost) {
      gamma_rounds(seed, row0, s.pending.data(), np, stream, static_cast<uint32_t>(round), s.dd.data(), s.c.data(),
                   s.inv_shape.data(), s.boost.data(), s.value.data(), s.accepted.data());
    } else {
      gamma_round_squeeze_first(seed, row0, np, stream, static_cast<uint32_t>(round), s);
    }
    int kept = 0;
    for (int j = 0; j < np; ++j) {
      if (s.accepted[j]) {
        out[s.pending[j]] = s.value[j];
      } else {
        s.move(kept++, j);
      }
    }
    np = kept;
  }
  for (int j = 0; j < np; ++j) out[s.pending[j]] = math::quiet_nan();
}

std::tuple<at::Tensor, at::Tensor> power_spherical_sample_cpu(const at::Tensor& loc_in, const at::Tensor& kappa_in,
                                                              const at::Tensor& seed, int64_t num_samples) {
  check_sample_args(loc_in, kappa_in, seed, num_samples, "power_spherical_sample");
  const at::Tensor loc = loc_in.contiguous(), kappa = kappa_in.contiguous();
  const int64_t B = loc.size(0), d = loc.size(1), rows = num_samples * B;
  at::Tensor z = at::empty({rows, d}, loc.options());
  // (G_a, G_b) per row, float64 whatever the dtype: the backward's dG_a/dalpha needs G_a itself
  at::Tensor gammas = at::empty({rows, 2}, loc.options().dtype(at::kDouble));
  if (rows == 0) return {z, gammas};
  const uint64_t key = static_cast<uint64_t>(seed.item<int64_t>());
  const double beta = 0.5 * (static_cast<double>(d) - 1.0);
  AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "power_spherical_sample_cpu", [&] {
    const scalar_t* loc_p = loc.data_ptr<scalar_t>();
    const scalar_t* kappa_p = kappa.data_ptr<scalar_t>();
    scalar_t* z_p = z.data_ptr<scalar_t>();
    double* g_p = gammas.data_ptr<double>();
    const int64_t tile = rows_per_tile(d), blocks = tangent_blocks<scalar_t>(d);
    const int64_t num_tiles = (rows + tile - 1) / tile;
    at::parallel_for(0, num_tiles, std::max<int64_t>(1, 16384 / (tile * d)), [&](int64_t t0, int64_t t1) {
      PowerSphericalScratch s(tile, blocks, std::is_same<scalar_t, float>::value);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t row0 = t * tile;
        const int n = static_cast<int>(std::min(tile, rows - row0));
        // the shapes alpha = beta + kappa (negative kappa: NaN, no draw) and beta; then 1 - t = 2 G_b / (G_a + G_b)
        int64_t b = row0 % B;
        for (int j = 0; j < n; ++j, b = b + 1 == B ? 0 : b + 1) {
          const double k = static_cast<double>(kappa_p[b]);
          s.shape_a[j] = beta + (k >= 0.0 ? k : math::quiet_nan());
          s.shape_b[j] = beta;
        }
        gamma_tile(key, row0, n, math::kStreamGammaAlpha, s.shape_a.data(), s.ga.data(), s);
        gamma_tile(key, row0, n, math::kStreamGammaBeta, s.shape_b.data(), s.gb.data(), s);
        for (int j = 0; j < n; ++j) {
          const int64_t r = row0 + j;
          g_p[2 * r] = s.ga[j];
          g_p[2 * r + 1] = s.gb[j];
          s.columns.omw[j] = 2.0 * s.gb[j] / (s.ga[j] + s.gb[j]);
        }
        const scalar_t* normals = tangent_tile_normals(key, row0, n, blocks, s, static_cast<scalar_t*>(nullptr));
        const int64_t per_row = (std::is_same<scalar_t, float>::value ? 4 : 2) * blocks;
        reflect_tile<scalar_t>(loc_p, B, row0, n, normals, per_row, d, s.columns, z_p);
      }
    });
  });
  return {z, gammas};
}

// The backward of a tile's rows: the reflection (dL/dmu written, dL/dt kept; the vMF's code), then
// dL/dkappa = dL/dt dt/dkappa by implicit reparameterization of G_a (math/power_spherical.h). dG_a/dalpha of the
// tile's rows side by side: the rows that take the series, then those that take the continued fraction, each a loop
// over the rows (vectorized) repeated until every row has converged (a converged row keeps its value: the same
// result as math::gamma_sample_dshape row by row); Temme's expansion and invalid input row by row.
constexpr int kBackwardTile = 256;

struct DshapeLanes {
  double a[kBackwardTile], x[kBackwardTile], out[kBackwardTile];
  int32_t idx[kBackwardTile], done[kBackwardTile];
  double s0[kBackwardTile], s1[kBackwardTile], s2[kBackwardTile], s3[kBackwardTile], s4[kBackwardTile],
      s5[kBackwardTile], s6[kBackwardTile], s7[kBackwardTile], s8[kBackwardTile];
  double f[kBackwardTile], df[kBackwardTile];  // per tile row: the continued fraction's F and dF/da
  int32_t rows[kBackwardTile];                 // the tile rows of the continued fraction
  int32_t series_rows[kBackwardTile], method[kBackwardTile];
  double log_x[kBackwardTile];
  // lane k to lane to (compaction of the continued fraction's lanes)
  void move(int to, int k) {
    idx[to] = idx[k];
    a[to] = a[k];
    x[to] = x[k];
    done[to] = done[k];
    s0[to] = s0[k];
    s1[to] = s1[k];
    s2[to] = s2[k];
    s3[to] = s3[k];
    s4[to] = s4[k];
    s5[to] = s5[k];
    s6[to] = s6[k];
    s7[to] = s7[k];
    s8[to] = s8[k];
  }
};

// psi(a) of a run of rows, computed once per distinct consecutive shape (the same value).
struct DigammaCache {
  double a = math::quiet_nan(), psi = 0.0;
  double operator()(double shape) {
    if (!(shape == a)) {
      a = shape;
      psi = math::digamma_positive(shape);
    }
    return psi;
  }
};

// A lane's step coefficients (math::gamma_series_coeffs): from its own shape and psi, or one set shared by all
// lanes (a tile of one shape: computed once per step).
struct LaneSeriesCoeffs {
  const DshapeLanes& lanes;
  int step;
  HVAE_ALWAYS_INLINE math::GammaSeriesCoeffs operator()(int j) const {
    return math::gamma_series_coeffs(lanes.a[j], step, lanes.s2[j]);
  }
};
struct SharedSeriesCoeffs {
  math::GammaSeriesCoeffs k;
  HVAE_ALWAYS_INLINE math::GammaSeriesCoeffs operator()(int) const { return k; }
};

// One step of the series for n lanes (math::gamma_series_step); returns the number of lanes not yet converged.
template <typename Coeffs>
HVAE_ALWAYS_INLINE int series_lanes_step(DshapeLanes& L, int n, Coeffs coeffs) {
  int left = 0;
  for (int j = 0; j < n; ++j) {
    math::GammaSeries st;
    st.log_x = L.s0[j];
    st.c = L.s1[j];
    st.psi = L.s2[j];
    st.sum = L.s3[j];
    const bool conv = math::gamma_series_update(L.x[j], coeffs(j), &st);
    const bool was = L.done[j] != 0;
    L.s1[j] = was ? L.s1[j] : st.c;
    L.s2[j] = was ? L.s2[j] : st.psi;
    L.s3[j] = was ? L.s3[j] : st.sum;
    const int32_t now = (was | conv) ? 1 : 0;
    L.done[j] = now;
    left += 1 - now;
  }
  return left;
}

HVAE_VECTOR_CLONES
int series_lanes(DshapeLanes& L, int n, int step) { return series_lanes_step(L, n, LaneSeriesCoeffs{L, step}); }

HVAE_VECTOR_CLONES
int series_lanes_shared(DshapeLanes& L, int n, math::GammaSeriesCoeffs k) {
  return series_lanes_step(L, n, SharedSeriesCoeffs{k});
}

HVAE_VECTOR_CLONES
int fraction_lanes(DshapeLanes& L, int n, int step) {
  int left = 0;
  for (int j = 0; j < n; ++j) {
    math::GammaFraction st;
    st.am2 = L.s0[j];
    st.am1 = L.s1[j];
    st.bm2 = L.s2[j];
    st.dam2 = L.s3[j];
    st.dam1 = L.s4[j];
    st.dbm2 = L.s5[j];
    st.dbm1 = L.s6[j];
    st.f = L.s7[j];
    st.df = L.s8[j];
    const bool conv = math::gamma_fraction_step(L.a[j], L.x[j], step, &st);
    const bool was = L.done[j] != 0;
    // the recurrence's state runs on (its values no longer matter once done); F and dF/da are kept
    L.s0[j] = st.am2;
    L.s1[j] = st.am1;
    L.s2[j] = st.bm2;
    L.s3[j] = st.dam2;
    L.s4[j] = st.dam1;
    L.s5[j] = st.dbm2;
    L.s6[j] = st.dbm1;
    L.s7[j] = was ? L.s7[j] : st.f;
    L.s8[j] = was ? L.s8[j] : st.df;
    const int32_t now = (was | conv) ? 1 : 0;
    L.done[j] = now;
    left += 1 - now;
  }
  return left;
}

// dG/da for the n rows (a[j], x[j]) into out[j]. When the series rows share one shape (one concentration per
// tile: many samples of one parameter row, or equal concentrations), its step coefficients are computed once per
// step for all of them; psi values once per run of equal shapes; the continued fraction's lanes are compacted as
// they converge (its trip counts vary by a factor of ~2 within a tile). Every row's value is that of
// math::gamma_sample_dshape.
void gamma_dshape_rows(const double* a, const double* x, int n, double* out, DshapeLanes& L) {
  // each row's method and log x (series and continued fraction both need it), the rows of each method listed
  // without branches (the two are about equally frequent: branches on them mispredict)
  int ms = 0, mf = 0;
  bool other = false;
  for (int j = 0; j < n; ++j) {
    const int method = math::gamma_dshape_method(a[j], x[j]);
    L.method[j] = method;
    L.series_rows[ms] = j;
    L.rows[mf] = j;
    ms += method == 0 ? 1 : 0;
    mf += method == 1 ? 1 : 0;
    other |= method < 0 || method > 1;
  }
  for (int j = 0; j < n; ++j) L.log_x[j] = L.method[j] == 0 || L.method[j] == 1 ? ::log(x[j]) : 0.0;
  // the series
  DigammaCache psi_series, psi_fraction;
  bool shared = true;
  for (int k = 0; k < ms; ++k) {
    const int j = L.series_rows[k];
    const math::GammaSeries st = math::gamma_series_init_logs(L.log_x[j], psi_series(a[j] + 1.0));
    L.idx[k] = j;
    L.a[k] = a[j];
    L.x[k] = x[j];
    L.done[k] = 0;
    L.s0[k] = st.log_x;
    L.s1[k] = st.c;
    L.s2[k] = st.psi;
    L.s3[k] = st.sum;
    shared &= a[j] == L.a[0];
  }
  int m = ms;
  if (shared && m > 0) {
    const double a0 = L.a[0];
    double psi = L.s2[0];
    for (int step = 1; step < math::kGammaSeriesMaxTerms; step += 2) {
      const math::GammaSeriesCoeffs k = math::gamma_series_coeffs(a0, step, psi);
      psi = k.psi1;
      if (series_lanes_shared(L, m, k) == 0) break;
    }
  } else {
    for (int step = 1; step < math::kGammaSeriesMaxTerms && m > 0; step += 2) {
      if (series_lanes(L, m, step) == 0) break;
    }
  }
  for (int k = 0; k < m; ++k) out[L.idx[k]] = -(L.x[k] / L.a[k]) * L.s3[k];
  // the continued fraction
  m = mf;
  for (int k = 0; k < mf; ++k) {
    const int j = L.rows[k];
    const math::GammaFraction st = math::gamma_fraction_init();
    L.idx[k] = j;
    L.a[k] = a[j];
    L.x[k] = x[j];
    L.done[k] = 0;
    L.s0[k] = st.am2;
    L.s1[k] = st.am1;
    L.s2[k] = st.bm2;
    L.s3[k] = st.dam2;
    L.s4[k] = st.dam1;
    L.s5[k] = st.dbm2;
    L.s6[k] = st.dbm1;
    L.s7[k] = st.f;
    L.s8[k] = st.df;
  }
  const int fraction_rows = m;
  for (int step = 1; step < math::kGammaSeriesMaxTerms && m > 0; ++step) {
    const int left = fraction_lanes(L, m, step);
    if (left == 0) break;
    if (4 * left <= 3 * m) {  // a quarter of the lanes done: keep the others
      int kept = 0;
      for (int k = 0; k < m; ++k) {
        if (L.done[k]) {
          L.f[L.idx[k]] = L.s7[k];
          L.df[L.idx[k]] = L.s8[k];
        } else {
          L.move(kept++, k);
        }
      }
      m = kept;
    }
  }
  for (int k = 0; k < m; ++k) {
    L.f[L.idx[k]] = L.s7[k];
    L.df[L.idx[k]] = L.s8[k];
  }
  for (int r = 0; r < fraction_rows; ++r) {
    const int j = L.rows[r];
    math::GammaFraction st;
    st.f = L.f[j];
    st.df = L.df[j];
    out[j] = math::gamma_fraction_result_logs(x[j], L.log_x[j], psi_fraction(a[j]), st);
  }
  // Temme's expansion, invalid input
  for (int j = 0; other && j < n; ++j) {
    if (L.method[j] == 2) out[j] = math::gamma_dshape_temme(a[j], x[j]);
    if (L.method[j] < 0) out[j] = math::quiet_nan();
  }
}

std::tuple<at::Tensor, at::Tensor> power_spherical_sample_backward_cpu(const at::Tensor& grad_z_in,
                                                                       const at::Tensor& z_in,
                                                                       const at::Tensor& gammas_in,
                                                                       const at::Tensor& loc_in,
                                                                       const at::Tensor& kappa_in) {
  check_power_spherical_backward_args(grad_z_in, z_in, gammas_in, loc_in, kappa_in);
  const at::Tensor g = grad_z_in.contiguous(), z = z_in.contiguous(), gammas = gammas_in.contiguous();
  const at::Tensor loc = loc_in.contiguous(), kappa = kappa_in.contiguous();
  const int64_t B = loc.size(0), d = loc.size(1), rows = z.size(0);
  at::Tensor grad_loc = at::empty({rows, d}, loc.options());
  at::Tensor grad_kappa = at::empty({rows}, loc.options());
  const double beta = 0.5 * (static_cast<double>(d) - 1.0);
  AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "power_spherical_sample_backward_cpu", [&] {
    const scalar_t* g_p = g.data_ptr<scalar_t>();
    const scalar_t* z_p = z.data_ptr<scalar_t>();
    const double* gam_p = gammas.data_ptr<double>();
    const scalar_t* loc_p = loc.data_ptr<scalar_t>();
    const scalar_t* kappa_p = kappa.data_ptr<scalar_t>();
    scalar_t* gl_p = grad_loc.data_ptr<scalar_t>();
    scalar_t* gk_p = grad_kappa.data_ptr<scalar_t>();
    const int64_t num_tiles = (rows + kBackwardTile - 1) / kBackwardTile;
    const int64_t grain = std::max<int64_t>(1, 8192 / (kBackwardTile * d));
    at::parallel_for(0, num_tiles, grain, [&](int64_t t0, int64_t t1) {
      double omt[kBackwardTile], dl_dt[kBackwardTile], alpha[kBackwardTile], ga[kBackwardTile], dga[kBackwardTile];
      DshapeLanes lanes;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t row0 = t * kBackwardTile;
        const int n = static_cast<int>(std::min<int64_t>(kBackwardTile, rows - row0));
        for (int j = 0; j < n; ++j) {
          const double ga = gam_p[2 * (row0 + j)], gb = gam_p[2 * (row0 + j) + 1];
          omt[j] = 2.0 * gb / (ga + gb);
        }
        reflect_backward_rows<scalar_t>(g_p, z_p, omt, loc_p, B, d, row0, n, gl_p, dl_dt);
        int64_t b = row0 % B;
        for (int j = 0; j < n; ++j, b = b + 1 == B ? 0 : b + 1) {
          alpha[j] = beta + static_cast<double>(kappa_p[b]);
          ga[j] = gam_p[2 * (row0 + j)];
        }
        gamma_dshape_rows(alpha, ga, n, dga, lanes);
        for (int j = 0; j < n; ++j) {
          const double dtdk = math::power_spherical_t_dkappa(ga[j], gam_p[2 * (row0 + j) + 1], dga[j]);
          gk_p[row0 + j] = static_cast<scalar_t>(dl_dt[j] * dtdk);
        }
      }
    });
  });
  return sum_over_samples(grad_loc, grad_kappa, B);
}

}  // namespace

TORCH_LIBRARY_IMPL(hvae_ext, CPU, m) {
  m.impl("power_spherical_sample", &power_spherical_sample_cpu);
  m.impl("power_spherical_sample_backward", &power_spherical_sample_backward_cpu);
}

}  // namespace hvae
