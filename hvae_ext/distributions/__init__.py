"""Distributions on the hypersphere: :class:`VonMisesFisher`, :class:`PowerSpherical` and
:class:`HypersphericalUniform`.

All count ``d`` as the ambient dimension: samples lie on :math:`S^{d-1} \\subset R^d`.
"""

from . import kl  # noqa: F401  (registers the KL divergences)
from .constraints import unit_sphere
from .fit import MixtureFit, fit_mixture
from .hyperspherical_uniform import HypersphericalUniform
from .power_spherical import PowerSpherical
from .von_mises_fisher import VonMisesFisher

__all__ = ["VonMisesFisher", "PowerSpherical", "HypersphericalUniform", "unit_sphere", "fit_mixture", "MixtureFit"]
