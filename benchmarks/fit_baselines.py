"""The ways peers solve A_d(kappa) = r for the maximum-likelihood concentration, which hvae_ext's
``special.vmf_mean_resultant_inverse`` is measured against (benchmarks/test_bench_fit.py, benchmarks/fit_report.py):

* :func:`scipy_fit_kappa` -- ``scipy.stats.vonmises_fisher.fit`` itself (scipy >= 1.11): Brent's method on
  ``ive(d/2, k) / ive(d/2 - 1, k) - r`` in the bracket (1e-8, 1e9). It takes points, not r, so it is called
  on two points symmetric about e_1, [r, +-sqrt(1 - r^2), 0, ...], whose mean resultant length is r (exactly:
  the mean is (r, 0, ..., 0)); one call per value. NaN where it raises (no sign change in its bracket).
* :func:`banerjee` -- Banerjee, Dhillon, Ghosh and Sra (JMLR 2005): kappa ~ r (d - r^2) / (1 - r^2).
* :func:`sra` -- Sra (Comput. Stat. 2012): Banerjee's value followed by Newton steps on A_d(kappa) - r,
  A_d' = 1 - A_d^2 - (d - 1) A_d / kappa, with A_d from scipy's ``ive`` ratio as users write it
  (``sra_exact`` takes A_d from hvae_ext instead, which isolates the error of the method from that of ``ive``).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import ive

__all__ = ["banerjee", "sra", "sra_exact", "scipy_fit_kappa", "scipy_mean_resultant"]


def banerjee(r, d):
    r = np.asarray(r, dtype=np.float64)
    return r * (d - r * r) / (1.0 - r * r)


def scipy_mean_resultant(kappa, d):
    """A_d(kappa) = ive(d/2, kappa) / ive(d/2 - 1, kappa) (NaN where both underflow: 0/0)."""
    with np.errstate(all="ignore"):
        return ive(0.5 * d, kappa) / ive(0.5 * d - 1.0, kappa)


def _newton(r, d, steps, mean_resultant):
    kappa = banerjee(r, d)
    with np.errstate(all="ignore"):
        for _ in range(steps):
            a = mean_resultant(kappa, d)
            a_prime = 1.0 - a * a - (d - 1.0) * a / kappa
            kappa = kappa - (a - r) / a_prime
    return kappa


def sra(r, d, steps: int = 2):
    """Banerjee's value and ``steps`` Newton steps with A_d from scipy's ``ive`` (Sra 2012 uses 2)."""
    return _newton(np.asarray(r, dtype=np.float64), d, steps, scipy_mean_resultant)


def sra_exact(r, d, steps: int = 2):
    """As :func:`sra`, with A_d from hvae_ext (accurate to 1e-16): the error of the method alone."""
    import torch

    import hvae_ext

    def a_exact(kappa, d_):
        t = torch.from_numpy(np.ascontiguousarray(kappa, dtype=np.float64))
        return hvae_ext.special.vmf_mean_resultant(t, d_).numpy()

    return _newton(np.asarray(r, dtype=np.float64), d, steps, a_exact)


def scipy_fit_kappa(r, d):
    """kappa from ``scipy.stats.vonmises_fisher.fit`` on two points with mean resultant length r (one call per value)."""
    from scipy.stats import vonmises_fisher

    r = np.atleast_1d(np.asarray(r, dtype=np.float64))
    out = np.empty_like(r)
    x = np.zeros((2, int(d)))
    for i, ri in enumerate(r):
        s = np.sqrt((1.0 - ri) * (1.0 + ri))
        x[0, 0] = x[1, 0] = ri
        x[0, 1], x[1, 1] = s, -s
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                out[i] = vonmises_fisher.fit(x)[1]
        except (ValueError, RuntimeError):
            out[i] = np.nan
    return out
