"""hvae_ext: hyperspherical latent variables for PyTorch.

The von Mises-Fisher distribution with a fused rejection sampler and unbiased reparameterized
gradients, the Power Spherical distribution with a fused sampler of the same kind, the uniform distribution on
the sphere, their KL divergences, and the Bessel-function
special functions they need, all as compiled CPU and CUDA kernels.
"""

import torch  # noqa: F401  (must be loaded before the extension library)

from . import (
    _ops,  # noqa: F401  (registers fake kernels and autograd)
    special,
)
from .distributions import HypersphericalUniform, PowerSpherical, VonMisesFisher
from .distributions.fit import MixtureFit, fit_mixture
from .distributions.von_mises_fisher import set_sampler_checks

__version__ = "0.1.0"

__all__ = [
    "VonMisesFisher",
    "PowerSpherical",
    "HypersphericalUniform",
    "fit_mixture",
    "MixtureFit",
    "special",
    "set_sampler_checks",
    "__version__",
]
