// The reflection that places a sample with first coordinate w = 1 - omw and a tangent direction v around mu,
// and its backward: shared by every law on the sphere whose samples are (w, sqrt(1 - w^2) v) rotated to mu (the
// von Mises-Fisher sampler of wood.h, the Power Spherical sampler of power_spherical.h).
#pragma once

#include "common.h"

namespace hvae {
namespace math {

// The reflection. With y = (w, sqrt(1 - w^2) v), v uniform on S^{d-2}, a sample around mu is z = Q y for
// any orthogonal Q with Q e1 = mu. We use Q = -s H_a, H_a = I - 2 a a^T / |a|^2 the Householder reflection
// with a = mu + s e1 and s = sign(mu_0) (+1 at mu_0 = 0): then Q e1 = mu exactly for unit mu, Q is
// orthogonal for any mu (|a|^2 >= 1 + |mu|^2 is never small, so no epsilon is needed), and Q^{-1} = Q.
// Choosing the sign by mu_0 keeps |a| away from 0, so there is no singular point mu = e1 as in the
// reference code's (e1 - mu) / (|e1 - mu| + 1e-5). Since Q is an involution the backward pass recovers
// y = Q z from the saved output instead of storing y.
//
// Backward, for L with g = dL/dz:
//   dL/dmu = 2 s [ (c g + (a.g) y) / |a|^2 - 2 (a.g) c a / |a|^4 ],   c = a.y
//   dL/dw  = gt_0 - w / sqrt(1 - w^2) * sum_{i>0} gt_i v_i,           gt = Q g
//   dL/dkappa = dL/dw * dw/dkappa  (implicit reparameterization: implicit_grad.h for the vMF, power_spherical.h)
// Every formula of the reflection is below; the CPU and CUDA kernels only form the sums and loop.
HVAE_HD_HOT double householder_sign(double mu0) { return mu0 >= 0.0 ? 1.0 : -1.0; }

// Forward: the per-row coefficients of z = -s (y - 2 a (a.y) / |a|^2), y = (1 - omw, scale v), from the sums
// sq = v.v, tail_dot = mu_tail.v, n2_tail = |mu_tail|^2 (v: the d - 1 tangent normals, not normalised).
// Then z_0 = householder_z0(c, omw), z_i = householder_zi(c, v_i, mu_i) = -s (scale v_i - coef mu_i).
struct HouseholderForward {
  double sign, a0, scale, coef;
};
HVAE_HD_HOT HouseholderForward householder_forward(double mu0, double omw, double sq, double tail_dot, double n2_tail) {
  HouseholderForward c;
  // 1 - w^2 = omw (2 - omw) keeps precision near w = 1.
  c.scale = sq > 0.0 ? __builtin_sqrt(omw * (2.0 - omw) / sq) : 0.0;
  c.sign = householder_sign(mu0);
  c.a0 = mu0 + c.sign;
  c.coef = 2.0 * (c.a0 * (1.0 - omw) + c.scale * tail_dot) / (c.a0 * c.a0 + n2_tail);
  return c;
}
HVAE_HD_HOT double householder_z0(const HouseholderForward& c, double omw) {
  return -c.sign * ((1.0 - omw) - c.coef * c.a0);
}
// T: double, or a vector of doubles (gcc vector extension) for several coordinates at once.
template <typename T>
HVAE_HD_HOT T householder_zi(const HouseholderForward& c, T v, T mu) {
  return -c.sign * (c.scale * v - c.coef * mu);
}

// Backward, pass 1: the per-row coefficients from the sums n2_tail = |mu_tail|^2, az_tail = mu_tail.z_tail,
// ag_tail = mu_tail.g_tail and the first coordinates (a = mu + s e1).
struct HouseholderBackward {
  double sign, a0, coef_z, coef_g, gmu_a, gmu_g, gmu_y;
};
HVAE_HD_HOT HouseholderBackward householder_backward(double mu0, double z0, double g0, double n2_tail, double az_tail,
                                                     double ag_tail) {
  HouseholderBackward c;
  c.sign = householder_sign(mu0);
  c.a0 = mu0 + c.sign;
  const double n2 = c.a0 * c.a0 + n2_tail, az = c.a0 * z0 + az_tail, ag = c.a0 * g0 + ag_tail;
  const double two_inv_n2 = 2.0 / n2;  // one division: the five coefficients are on the row's critical path
  c.coef_z = az * two_inv_n2;
  c.coef_g = ag * two_inv_n2;
  const double y_dot_a = c.sign * az;  // c = a.y with y = Q z
  c.gmu_a = -c.sign * ag * y_dot_a * (two_inv_n2 * two_inv_n2);
  c.gmu_g = c.sign * y_dot_a * two_inv_n2;
  c.gmu_y = c.sign * ag * two_inv_n2;
  return c;
}
// Pass 2, coordinate i (mu_0 -> a_0 for i = 0): y_i = (Q z)_i, gt_i = (Q g)_i and dL/dmu_i. T: double, or a
// vector of doubles (gcc vector extension) for several coordinates at once.
template <typename T>
HVAE_HD_HOT void householder_backward_elem(const HouseholderBackward& c, T a_i, T z_i, T g_i, T* y_i, T* gt_i,
                                           T* gmu_i) {
  *y_i = -c.sign * (z_i - c.coef_z * a_i);
  *gt_i = -c.sign * (g_i - c.coef_g * a_i);
  *gmu_i = c.gmu_g * g_i + c.gmu_y * *y_i + c.gmu_a * a_i;
}
// dL/dw = gt_0 - w / sqrt(1 - w^2) * sum_{i>0} gt_i v_i, v = y_tail / |y_tail|, from tail_dot = sum gt_i y_i
// and tail_sq = |y_tail|^2.
HVAE_HD_HOT double householder_dl_dw(double gt0, double tail_dot, double tail_sq, double omw) {
  const double w = 1.0 - omw, sin2 = omw * (2.0 - omw);
  return (tail_sq > 0.0 && sin2 > 0.0) ? gt0 - w * tail_dot / __builtin_sqrt(tail_sq * sin2) : gt0;
}

}  // namespace math
}  // namespace hvae
