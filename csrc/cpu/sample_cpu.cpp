// CPU kernels of the vMF sampler: one pass per sample row, rows in parallel (at::parallel_for).
// Each row draws from its own Philox streams keyed by (seed, row), so results do not depend on the
// number of threads.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cstdint>

#include <vector>

#include "../sample_checks.h"
#include "../vmf_math.h"
#include "fast_normal.h"

namespace hvae {
namespace {

using math::PhiloxStream;

// Per-thread scratch of the tangent draws, allocated once per chunk of rows (never per row).
struct TangentScratch {
  std::vector<uint32_t> words0, words1;
  std::vector<float> normals0, normals1;
  explicit TangentScratch(int64_t d) : words0(d / 2), words1(d / 2), normals0(d / 2), normals1(d / 2) {}
};

// d - 1 standard normals into z[1:]; returns their sum of squares.
inline double draw_tangent(PhiloxStream& stream, int64_t d, float* z, TangentScratch& scratch) {
  const int64_t pairs = d / 2;  // covers z[1 .. 2 * pairs]; the last normal is dropped when d is even
  for (int64_t p = 0; p < pairs; ++p) {  // the words of pair p, in the order the scalar stream uses them
    scratch.words0[p] = stream.next_u32();
    scratch.words1[p] = stream.next_u32();
  }
  cpu::box_muller_float(scratch.words0.data(), scratch.words1.data(), scratch.normals0.data(),
                        scratch.normals1.data(), pairs);
  double sq = 0.0;
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t i = 1 + 2 * p;
    const float n0 = scratch.normals0[p], n1 = scratch.normals1[p];
    z[i] = n0;
    sq += static_cast<double>(n0) * n0;
    if (i + 1 < d) {
      z[i + 1] = n1;
      sq += static_cast<double>(n1) * n1;
    }
  }
  return sq;
}

// float64 keeps libm's Box-Muller (full double precision).
inline double draw_tangent(PhiloxStream& stream, int64_t d, double* z, TangentScratch&) {
  double sq = 0.0;
  for (int64_t i = 1; i < d; i += 2) {
    double n0, n1;
    stream.normal_pair(&n0, &n1);
    z[i] = n0;
    sq += n0 * n0;
    if (i + 1 < d) {
      z[i + 1] = n1;
      sq += n1 * n1;
    }
  }
  return sq;
}

template <typename scalar_t>
void sample_row(uint64_t seed, int64_t row, const scalar_t* mu, double kappa, int64_t d, scalar_t* z,
                scalar_t* omw_out, int* rounds, TangentScratch& scratch) {
  PhiloxStream radial(seed, static_cast<uint64_t>(row), math::kStreamRadial);
  const double omw = math::sample_one_minus_w(radial, kappa, static_cast<double>(d), rounds);
  *omw_out = static_cast<scalar_t>(omw);

  // Tangent direction: d - 1 standard normals written straight into z[1:], normalised below.
  PhiloxStream tangent(seed, static_cast<uint64_t>(row), math::kStreamTangent);
  const double sq = draw_tangent(tangent, d, z, scratch);
  // y = (w, sqrt(1 - w^2) v / |v|); 1 - w^2 = omw (2 - omw) keeps precision near w = 1.
  const double y0 = 1.0 - omw;
  const double scale = sq > 0.0 ? ::sqrt(omw * (2.0 - omw) / sq) : 0.0;
  // z = -s (y - 2 a (a.y) / |a|^2), a = mu + s e1 (see math/wood.h).
  const double s = math::householder_sign(static_cast<double>(mu[0]));
  const double a0 = static_cast<double>(mu[0]) + s;
  double tail_dot = 0.0, n2 = a0 * a0;
  for (int64_t i = 1; i < d; ++i) {
    const double m = static_cast<double>(mu[i]);
    tail_dot += m * static_cast<double>(z[i]);
    n2 += m * m;
  }
  const double ay = a0 * y0 + scale * tail_dot;
  const double coef = 2.0 * ay / n2;
  z[0] = static_cast<scalar_t>(-s * (y0 - coef * a0));
  for (int64_t i = 1; i < d; ++i) {
    z[i] = static_cast<scalar_t>(-s * (scale * static_cast<double>(z[i]) - coef * static_cast<double>(mu[i])));
  }
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
    const int64_t grain = std::max<int64_t>(1, 16384 / d);
    at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
      TangentScratch scratch(d);
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r % B;
        int rounds = 0;
        sample_row<scalar_t>(key, r, loc_p + b * d, static_cast<double>(kappa_p[b]), d, z_p + r * d,
                             omw_p + r, &rounds, scratch);
        if (rounds > math::kMaxWoodRounds) {
          int64_t expected = -1;
          failed_row.compare_exchange_strong(expected, r);
        }
      }
    });
  });
  const int64_t bad = failed_row.load();
  TORCH_CHECK(bad < 0, "vmf_sample: the rejection loop of sample row ", bad, " (parameter row ", bad % B,
              ", kappa = ", kappa[bad % B].item<double>(), ", d = ", d, ") exhausted its bound of ",
              math::kMaxWoodRounds, " proposals; this indicates invalid input, please report it");
  return {z, omw};
}

template <typename scalar_t>
void backward_row(const scalar_t* g, const scalar_t* z, double omw, const scalar_t* mu, double kappa,
                  int64_t d, scalar_t* grad_mu, double* grad_kappa) {
  const double s = math::householder_sign(static_cast<double>(mu[0]));
  const double a0 = static_cast<double>(mu[0]) + s;
  // Pass 1: |a|^2, a.z, a.g.
  double n2 = a0 * a0, az = a0 * z[0], ag = a0 * g[0];
  for (int64_t i = 1; i < d; ++i) {
    const double m = static_cast<double>(mu[i]);
    n2 += m * m;
    az += m * static_cast<double>(z[i]);
    ag += m * static_cast<double>(g[i]);
  }
  const double coef_z = 2.0 * az / n2, coef_g = 2.0 * ag / n2;
  const double c = s * az;  // a.y with y = Q z
  const double gmu_a = -4.0 * s * ag * c / (n2 * n2);
  const double gmu_g = 2.0 * s * c / n2, gmu_y = 2.0 * s * ag / n2;
  // Pass 2: y = Q z and gt = Q g on the fly; write dL/dmu, accumulate the tangent sums.
  const double y0 = -s * (static_cast<double>(z[0]) - coef_z * a0);
  const double gt0 = -s * (static_cast<double>(g[0]) - coef_g * a0);
  grad_mu[0] = static_cast<scalar_t>(gmu_g * g[0] + gmu_y * y0 + gmu_a * a0);
  double tail_dot = 0.0, tail_sq = 0.0;
  for (int64_t i = 1; i < d; ++i) {
    const double m = static_cast<double>(mu[i]);
    const double yi = -s * (static_cast<double>(z[i]) - coef_z * m);
    const double gti = -s * (static_cast<double>(g[i]) - coef_g * m);
    tail_dot += gti * yi;
    tail_sq += yi * yi;
    grad_mu[i] = static_cast<scalar_t>(gmu_g * g[i] + gmu_y * yi + gmu_a * m);
  }
  // dL/dw = gt_0 - w / sqrt(1 - w^2) * sum_i gt_i v_i,  v = y_tail / |y_tail|.
  const double w = 1.0 - omw, sin2 = omw * (2.0 - omw);
  double dl_dw = gt0;
  if (tail_sq > 0.0 && sin2 > 0.0) dl_dw -= w * tail_dot / ::sqrt(tail_sq * sin2);
  const double dd = static_cast<double>(d);
  const double dw_dk = math::vmf_w_dkappa(omw, kappa, dd, math::vmf_mean_resultant(kappa, dd));
  *grad_kappa = dl_dw * dw_dk;
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
  AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "vmf_sample_backward_cpu", [&] {
    const scalar_t* g_p = g.data_ptr<scalar_t>();
    const scalar_t* z_p = z.data_ptr<scalar_t>();
    const scalar_t* omw_p = omw.data_ptr<scalar_t>();
    const scalar_t* loc_p = loc.data_ptr<scalar_t>();
    const scalar_t* kappa_p = kappa.data_ptr<scalar_t>();
    scalar_t* gl_p = grad_loc.data_ptr<scalar_t>();
    scalar_t* gk_p = grad_kappa.data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, 8192 / d);
    at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r % B;
        double gk = 0.0;
        backward_row<scalar_t>(g_p + r * d, z_p + r * d, static_cast<double>(omw_p[r]), loc_p + b * d,
                               static_cast<double>(kappa_p[b]), d, gl_p + r * d, &gk);
        gk_p[r] = static_cast<scalar_t>(gk);
      }
    });
  });
  if (num_samples == 1) return {grad_loc, grad_kappa};
  return {grad_loc.view({num_samples, B, d}).sum(0), grad_kappa.view({num_samples, B}).sum(0)};
}

}  // namespace

TORCH_LIBRARY_IMPL(hvae_ext, CPU, m) {
  m.impl("vmf_sample", &vmf_sample_cpu);
  m.impl("vmf_sample_backward", &vmf_sample_backward_cpu);
}

}  // namespace hvae
