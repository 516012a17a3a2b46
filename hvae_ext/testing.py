"""Helpers shared by the tests, the demo and the scripts (as ``torch_scatter/testing.py``): the devices to
parametrize over, the exact law of w = mu^T z, the statistical grid, seeded draws and the data location.

The exact law of w is computed here independently of hvae_ext (no library Bessel function is used):
with w = cos(theta), the density of theta on [0, pi] is proportional to

    exp(kappa cos(theta)) sin(theta)^(d - 2),

which is smooth for every d >= 2 (the (1 - w^2)^((d-3)/2) singularity of the density of w at d = 2 is
absorbed by the Jacobian). It is integrated with a cumulative Simpson rule on a grid that spans +-60
Gaussian widths around the mode (clipped to [0, pi]), in log space, so d = 10000 and kappa = 1e5 are as
easy as d = 3. KS tests use theta = atan2(|z - w mu|, w), which keeps full precision near w = +-1.

The data folder (Planetoid raw files under ``planetoid/<Name>/raw``, MNIST under ``MNIST/raw``) is
``$HVAE_EXT_DATA``, by default the folder ``shared/data`` beside the repository checkout (``../shared/data``
seen from its root). Tests only read it: whatever the experiments write goes to a temporary or cache folder.

The pytest-specific names (``requires_cuda``, ``DEVICES``, ``grid_params``) need pytest; the rest (the law
of w, used by ``python -m hvae_ext.demo``) does not.
"""

from __future__ import annotations

import math
import os
from functools import cache
from pathlib import Path

import numpy as np
import torch

try:
    import pytest
except ImportError:  # the demo and the scripts use the law of w without pytest
    pytest = None  # type: ignore[assignment]

DATA_ENV_VAR = "HVAE_EXT_DATA"
CUDA = torch.cuda.is_available()
NO_CUDA_REASON = "CUDA is not available on this machine"
# The devices to run on, as names (CPU, plus CUDA where available): for loops outside pytest.
DEVICE_NAMES = ["cpu"] + (["cuda"] if CUDA else [])

if pytest is not None:
    requires_cuda = pytest.mark.skipif(not CUDA, reason=NO_CUDA_REASON)
    # Parametrize over devices: "cuda" is always listed, and skipped with a reason where CUDA is absent.
    DEVICES = ["cpu", pytest.param("cuda", marks=[requires_cuda, pytest.mark.cuda])]

# The full statistical grid: every dimension and concentration the sampler's law is tested on (the slow tier).
GRID_D = [2, 3, 5, 10, 16, 50, 100, 256, 1000, 10000]
GRID_KAPPA = [1e-3, 0.1, 1.0, 10.0, 10.5, 20.0, 100.0, 1000.0, 1e5]
FULL_GRID = [(d, k) for d in GRID_D for k in GRID_KAPPA]
# Every test family on the grid is Bonferroni-corrected over the whole grid, whichever subset runs.
FAMILY_ALPHA = 1e-3
NUM_GRID_CELLS = len(FULL_GRID)


def data_root() -> Path:
    """The data folder: ``$HVAE_EXT_DATA``, else ``shared/data`` beside the repository (``../shared/data``)."""
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def grid_params(ci_subset):
    """The full grid as pytest params: cells in ``ci_subset`` run by default, the others under ``slow``."""
    ci_subset = set(ci_subset)
    return [
        pytest.param(d, k, id=f"d{d}-k{k:g}", marks=() if (d, k) in ci_subset else pytest.mark.slow)
        for d, k in FULL_GRID
    ]


def sample_count(d: int, n_max: int = 100_000, budget: int = 20_000_000) -> int:
    """n = 1e5 samples, fewer where d is large so that n * d stays below ``budget`` numbers."""
    return int(min(n_max, max(1000, budget // d)))


def random_unit(d: int, seed: int, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """A seeded uniformly random unit vector of R^d."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(d, dtype=torch.float64, generator=g)
    return (x / x.norm()).to(dtype=dtype, device=device)


def cell_seed(d: int, kappa: float, salt: int = 0) -> int:
    return (1_000_003 * d + int(round(1000 * math.log10(kappa) + 10_000)) * 7919 + salt) % (2**31 - 1)


def angle_from_loc(z: torch.Tensor, mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(w, theta) with w = mu^T z and theta = atan2(|z - w mu|, w), accurate near w = +-1."""
    w = z @ mu
    perp = z - w.unsqueeze(-1) * mu
    theta = torch.atan2(torch.linalg.vector_norm(perp, dim=-1), w)
    return w, theta


class WLaw:
    """The exact law of w = mu^T z (through theta = arccos w) by quadrature, for one (d, kappa)."""

    def __init__(self, d: int, kappa: float, points: int = 40_001):
        from scipy.integrate import cumulative_simpson, simpson

        self.d, self.kappa = d, float(kappa)
        m = d - 2.0
        k = self.kappa
        # Mode of g(theta) = k cos(theta) + m log sin(theta): k sin^2 = m cos  ->  cos = (-m + sqrt(m^2 + 4k^2)) / 2k.
        if m == 0:
            mode = 0.0
        else:
            c = 2 * k / (m + math.sqrt(m * m + 4 * k * k))  # rationalised root, no cancellation
            mode = math.acos(min(1.0, c))
        s = math.sin(mode)
        curv = k * math.cos(mode) + (m / (s * s) if s > 0 else 0.0)  # -g''(mode)
        width = 1.0 / math.sqrt(curv) if curv > 0 else math.pi
        lo, hi = max(0.0, mode - 60 * width), min(math.pi, mode + 60 * width)
        th = np.linspace(lo, hi, points)
        with np.errstate(divide="ignore"):
            # k cos(theta) written as -k (1 - cos) = -2k sin^2(theta/2): no large constant to cancel.
            logf = -2 * k * np.sin(th / 2) ** 2 + (m * np.log(np.sin(th)) if m > 0 else 0.0)
        logf = logf - np.max(logf)
        f = np.exp(logf)
        cdf = cumulative_simpson(f, x=th, initial=0.0)
        total = cdf[-1]
        self.theta, self.pdf, self.cdf_grid = th, f / total, cdf / total
        self.lo, self.hi = lo, hi
        # Moments of w = cos(theta) (1 - w = 2 sin^2(theta/2) keeps precision near w = 1).
        omw = 2 * np.sin(th / 2) ** 2
        self.one_minus_mean = float(simpson(omw * self.pdf, x=th))
        self.mean = 1.0 - self.one_minus_mean
        dev = omw - self.one_minus_mean
        self.var = float(simpson(dev * dev * self.pdf, x=th))

    def cdf_theta(self, theta) -> np.ndarray:
        return np.interp(np.asarray(theta, dtype=np.float64), self.theta, self.cdf_grid, left=0.0, right=1.0)

    def ks(self, theta: torch.Tensor):
        from scipy import stats

        return stats.kstest(theta.detach().double().cpu().numpy(), self.cdf_theta)

    def cdf_w(self, w) -> np.ndarray:
        # F_w(w) = P(cos theta <= w) = 1 - F_theta(arccos w)
        return 1.0 - self.cdf_theta(np.arccos(np.clip(np.asarray(w, dtype=np.float64), -1, 1)))

    def pdf_w(self, w) -> np.ndarray:
        """Density of w on (-1, 1) (for plots)."""
        w = np.asarray(w, dtype=np.float64)
        th = np.arccos(np.clip(w, -1, 1))
        p = np.interp(th, self.theta, self.pdf, left=0.0, right=0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(np.sin(th) > 0, p / np.sin(th), 0.0)


@cache
def w_law(d: int, kappa: float) -> WLaw:
    return WLaw(d, kappa)


def mean_resultant_ref(d: int, kappa: float) -> float:
    """A_d(kappa) = E[w] from the quadrature (independent of hvae_ext's Bessel functions)."""
    return w_law(d, kappa).mean


def mean_resultant_deriv_ref(d: int, kappa: float) -> float:
    """dA/dkappa = Var[w] = 1 - A^2 - (d - 1) A / kappa, from the quadrature."""
    return w_law(d, kappa).var


def env_int(name: str, default: int) -> int:
    return int(float(os.environ.get(name, default)))


# --- CUDA checks shared by tests/integration/test_cuda_platform.py and scripts/gpu_check.py ----------------


def svae_train_step(model, x: torch.Tensor, lr: float = 1e-3):
    """A training step of ``model`` (an SVAE) on the batch ``x`` as a closure: zero_grad, ``model.loss(x)``,
    backward, Adam step (``capturable`` on CUDA, so that the step itself does not synchronise). Call it once
    before a sync check: Adam creates its state lazily."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, capturable=x.device.type == "cuda")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        model.loss(x).backward()
        opt.step()

    return step


def capture_rsample_graph(loc: torch.Tensor, kappa: torch.Tensor, weight: torch.Tensor, warmup: int = 3):
    """A CUDA graph of ``VonMisesFisher(loc, kappa).rsample()`` and the backward of ``(z * weight).sum()``
    (``loc`` and ``kappa`` require grad), warmed up on a side stream as the CUDA-graph docs ask; returns the
    graph and its static output z (each replay draws new samples into it and assigns the gradients)."""
    from . import VonMisesFisher

    def body():
        z = VonMisesFisher(loc, kappa, validate_args=False).rsample()
        (z * weight).sum().backward()
        return z

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(warmup):
            loc.grad = kappa.grad = None
            body()
    torch.cuda.current_stream().wait_stream(s)
    loc.grad = kappa.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        z = body()
    return graph, z
