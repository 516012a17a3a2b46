// One home for every formula of hvae_ext. The CPU kernels (csrc/cpu) and the CUDA kernels (csrc/cuda)
// include this header and only loop; each function below is __host__ __device__ and documented with its
// reference in the header that defines it.
//   math/bessel.h         log I_v(x), I_v/I_{v-1}, log C_d(kappa), A_d(kappa)
//   math/vmf.h            log |S^{d-1}|, KL(vMF || uniform)
//   math/vmf_fit.h        A_d^{-1}(r): the maximum-likelihood concentration for a mean resultant length r
//   math/wood.h           Wood's rejection sampler for w = mu^T z, the d = 3 inversion, the reflection and
//                         its backward
//   math/implicit_grad.h  dw/dkappa by implicit reparameterization
//   math/implicit_grad_single.h  the float32 rule of dw/dkappa, one sample (implicit_grad_lanes.h: the same
//                         rule vectorized across samples, host only, included by the CPU sampler)
//   math/philox.h         counter-based random numbers keyed by (seed, row, stream), Box-Muller
//   math/fastmath.h       the host's branch-free elementary functions
#pragma once

#include "math/common.h"
#include "math/philox.h"
#include "math/bessel.h"
#include "math/implicit_grad.h"
#include "math/implicit_grad_single.h"
#include "math/vmf.h"
#include "math/vmf_fit.h"
#include "math/wood.h"
