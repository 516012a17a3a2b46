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
#include "sphere_rows.h"

namespace hvae {
namespace {

// Per-thread buffers of the forward pass: the tangent buffers and 1 - t of the tile's rows.
struct PowerSphericalScratch : TangentScratch {
  ReflectColumns columns;
  PowerSphericalScratch(int64_t tile, int64_t blocks_per_row, bool single)
      : TangentScratch(tile, blocks_per_row, single), columns(tile) {}
};

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
  const double dd = static_cast<double>(d);
  const math::GammaShape shape_beta = math::gamma_shape(0.5 * (dd - 1.0));
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
        int64_t b = row0 % B;
        for (int j = 0; j < n; ++j, b = b + 1 == B ? 0 : b + 1) {
          const int64_t r = row0 + j;
          s.columns.omw[j] = math::power_spherical_one_minus_t(key, static_cast<uint64_t>(r),
                                                               static_cast<double>(kappa_p[b]), dd, shape_beta,
                                                               &g_p[2 * r], &g_p[2 * r + 1]);
        }
        tangent_words(key, row0, n, blocks, s.tangent_words.data());
        const scalar_t* normals = tangent_normals(s.tangent_words.data(), n * blocks, s, static_cast<scalar_t*>(nullptr));
        const int64_t per_row = (std::is_same<scalar_t, float>::value ? 4 : 2) * blocks;
        reflect_tile<scalar_t>(loc_p, B, row0, n, normals, per_row, d, s.columns, z_p);
      }
    });
  });
  return {z, gammas};
}

// The backward of a tile's rows: the reflection (dL/dmu written, dL/dt kept; the vMF's code), then
// dL/dkappa = dL/dt dt/dkappa by implicit reparameterization of G_a (math/power_spherical.h).
constexpr int kBackwardTile = 256;

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
      double omt[kBackwardTile], dl_dt[kBackwardTile];
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
          const int64_t r = row0 + j;
          const double alpha = beta + static_cast<double>(kappa_p[b]);
          gk_p[r] = static_cast<scalar_t>(dl_dt[j] * math::power_spherical_t_dkappa(gam_p[2 * r], gam_p[2 * r + 1], alpha));
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
