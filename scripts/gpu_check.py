"""The Python stages of scripts/gpu_check.sh, each writing a JSON record to --out.

    python scripts/gpu_check.py STAGE [--device cuda] [--out DIR] [--small]

Stages:
  info      versions, device, whether the build has the CUDA kernels
  sync      torch.cuda.set_sync_debug_mode("error") around rsample, its backward, KL, log_prob, entropy,
            the distribution's properties, the special functions and a whole S-VAE training step
            (forward, loss, backward, Adam step)
  agree     CPU against CUDA: special functions and their gradients (tight, relative 1e-12 in float64,
            a few float32 ulps), and samples (statistical: two-sample KS of w = mu^T z, tangent means)
  graph     CUDA-graph capture of rsample and its backward, replayed: fresh samples each replay, gradients
            equal to eager ones for the same seed
  bench     rsample forward and forward+backward at N = 2^20 rows, d in {3, 16, 64, 256}, against
            torch.randn of the same shape, power_spherical (if installed) and the pure-PyTorch Wood sampler
            of benchmarks/baselines.py; targets: forward within 2x randn and forward+backward within 4x
            at d = 64
  sanitize  small cases touching every kernel once (run under compute-sanitizer by gpu_check.sh)
  emulation the grid of tests/cuda_emulation (every op of csrc/cuda; d, kappa, dtypes, layouts, empty
            batches, partial tiles) on three backends: the CPU kernels, the CUDA kernels under host emulation
            (built here, in .cache/cuda_emulation) and, with --device cuda, the GPU; compares GPU with CPU,
            emulation with CPU and GPU with emulation (tolerances of tests/cuda_emulation/checks.py)

With --device cpu (and --small) every stage except graph runs on the CPU, so the script itself is tested
without a GPU (tests/integration/test_gpu_check.py); `scripts/gpu_check.sh --dry-run` does that.
Exit status: 0 when the stage passed, 1 when a check failed, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# the checkout's Python files, as in the tests (hvae_ext/_ops.py loads the installed compiled library)
sys.path.insert(0, str(ROOT))


def _device_name(device: str) -> str:
    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return platform.processor() or platform.machine() or "cpu"


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _unit(n, d, device, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1).to(
        device=device, dtype=dtype
    )


# --- info -----------------------------------------------------------------------------------------------


def stage_info(args) -> dict:
    import hvae_ext
    from hvae_ext import _ops

    rec = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "hvae_ext": hvae_ext.__version__,
        "hvae_ext_file": hvae_ext.__file__,
        "has_cuda_kernels": _ops.HAS_CUDA_KERNELS,
        "device": _device_name(args.device),
    }
    if torch.cuda.is_available():
        rec["capability"] = "{}.{}".format(*torch.cuda.get_device_capability(0))
        rec["torch_arch_list"] = torch.cuda.get_arch_list()
    rec["ok"] = args.device != "cuda" or (torch.cuda.is_available() and _ops.HAS_CUDA_KERNELS)
    return rec


# --- sync -----------------------------------------------------------------------------------------------


class _SyncDebug:
    """torch.cuda.set_sync_debug_mode("error") on CUDA (a synchronising call raises); nothing on CPU."""

    def __init__(self, device):
        self.cuda = torch.device(device).type == "cuda"

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            self.prev = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode("error")

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.set_sync_debug_mode(self.prev)
        return False


def stage_sync(args) -> dict:
    from torch.distributions import kl_divergence

    from hvae_ext import HypersphericalUniform, VonMisesFisher, special
    from hvae_ext.models import SVAE
    from hvae_ext.testing import svae_train_step

    dev = args.device
    n, d = (64, 16) if args.small else (4096, 64)
    checks = {}

    def check(name, fn):
        try:
            with _SyncDebug(dev):
                fn()
            _sync(dev)
            checks[name] = "ok"
        except Exception as e:  # noqa: BLE001  (recorded)
            checks[name] = f"FAILED: {type(e).__name__}: {e}"

    loc = _unit(n, d, dev).requires_grad_(True)
    kappa = (torch.rand(n, device=dev) * 100 + 0.1).requires_grad_(True)
    q = VonMisesFisher(loc, kappa, validate_args=False)
    p = HypersphericalUniform(d, validate_args=False, device=dev)
    state = {}

    def rsample():
        state["z"] = q.rsample((2,))

    def backward():
        (state["z"] * torch.randn_like(state["z"])).sum().backward()

    check("rsample", rsample)
    check("rsample_backward", backward)

    def fresh():  # a new distribution per check: the lazy properties hold graphs that backward frees
        return VonMisesFisher(loc, kappa, validate_args=False)

    check("kl_vmf_uniform", lambda: kl_divergence(fresh(), p).sum().backward())
    check(
        "kl_vmf_vmf",
        lambda: (
            kl_divergence(fresh(), VonMisesFisher(loc.flip(0), kappa.flip(0), validate_args=False)).sum().backward()
        ),
    )
    check("log_prob", lambda: fresh().log_prob(state["z"].detach()).sum().backward())
    check("entropy", lambda: fresh().entropy().sum().backward())
    check("properties", lambda: [fresh().mean, fresh().variance, fresh().covariance_matrix[:4], fresh().stddev])
    check(
        "special",
        lambda: [
            special.log_bessel_iv(2.5, kappa),
            special.bessel_iv_ratio(1.5, kappa),
            special.vmf_log_normalizer(kappa, d),
            special.vmf_mean_resultant(kappa, d),
        ],
    )

    torch.manual_seed(0)
    model = SVAE.mlp(latent_dim=16, hidden=(256, 128)).to(dev)
    train_step = svae_train_step(model, (torch.rand(128, 784, device=dev) < 0.3).float())
    train_step()  # warm-up outside the check (lazy state creation)
    check("svae_training_step", train_step)
    return {"checks": checks, "n": n, "d": d, "ok": all(v == "ok" for v in checks.values())}


# --- agree ----------------------------------------------------------------------------------------------


def stage_agree(args) -> dict:
    from scipy import stats

    from hvae_ext import VonMisesFisher, special

    dev = args.device
    res = {"special": {}, "samples": {}}
    ok = True
    g = torch.Generator().manual_seed(0)
    m = 2000 if args.small else 200_000
    kappa = torch.exp(torch.empty(m, dtype=torch.float64).uniform_(math.log(1e-6), math.log(1e6), generator=g))
    dims = torch.randint(2, 5000, (m,), generator=g)
    v = dims.double() / 2 - 1
    for dtype, rtol in ((torch.float64, 1e-12), (torch.float32, 8 * 2**-23)):
        k = kappa.to(dtype).requires_grad_(True)
        kd = k.detach().to(dev).requires_grad_(True)
        cases = {
            "log_bessel_iv": (lambda a, b, dd: special.log_bessel_iv(b, a), v.to(dtype)),
            "bessel_iv_ratio": (lambda a, b, dd: special.bessel_iv_ratio(b + 1, a), v.to(dtype)),
            "vmf_log_normalizer": (lambda a, b, dd: special.vmf_log_normalizer(a, dd), None),
            "vmf_mean_resultant": (lambda a, b, dd: special.vmf_mean_resultant(a, dd), None),
        }
        for name, (fn, order) in cases.items():
            out_c = fn(k, order, dims)
            out_d = fn(kd, order.to(dev) if order is not None else None, dims.to(dev))
            (gc,) = torch.autograd.grad(out_c.sum(), k)
            (gd,) = torch.autograd.grad(out_d.sum(), kd)
            finite = torch.isfinite(out_c)
            err = ((out_d.cpu() - out_c).abs() / out_c.abs().clamp_min(1.0))[finite].max().item()
            gfin = torch.isfinite(gc)
            gerr = ((gd.cpu() - gc).abs() / gc.abs().clamp_min(1.0))[gfin].max().item()
            same_nonfinite = bool(torch.equal(finite, torch.isfinite(out_d.cpu())))
            passed = err <= rtol and gerr <= 4 * rtol and same_nonfinite
            ok &= passed
            res["special"][f"{name}/{str(dtype)[6:]}"] = {
                "max_rel_err": err,
                "grad_max_rel_err": gerr,
                "tol": rtol,
                "ok": passed,
            }
    n = 2000 if args.small else 200_000
    for d, k in ((3, 1.0), (16, 10.0), (64, 100.0), (256, 1000.0), (2, 0.5)):
        mu = _unit(1, d, "cpu", seed=d)
        q_c = VonMisesFisher(mu.expand(n, d), torch.full((n,), k), validate_args=False)
        q_d = VonMisesFisher(mu.to(dev).expand(n, d), torch.full((n,), k, device=dev), validate_args=False)
        torch.manual_seed(1)
        z_c = q_c.sample()
        torch.manual_seed(2)
        z_d = q_d.sample().cpu()
        w_c, w_d = (z_c @ mu[0]).double(), (z_d @ mu[0]).double()
        ks = stats.ks_2samp(w_c.numpy(), w_d.numpy())
        # the tangent part is uniform: its mean is 0 in both
        t_d = z_d.double() - w_d[:, None] * mu.double()
        tmax = float(t_d.mean(0).abs().max() / (t_d.std(0).max() / math.sqrt(n) + 1e-300))
        norm_err = float((torch.linalg.vector_norm(z_d.double(), dim=-1) - 1).abs().max())
        passed = ks.pvalue > 1e-4 and tmax < 6 and norm_err < 1e-5
        ok &= passed
        res["samples"][f"d{d}-k{k:g}"] = {
            "ks_pvalue": ks.pvalue,
            "tangent_mean_max_z": tmax,
            "max_norm_err": norm_err,
            "ok": passed,
        }
    res["ok"] = ok
    return res


# --- graph ----------------------------------------------------------------------------------------------


def stage_graph(args) -> dict:
    from hvae_ext.testing import capture_rsample_graph

    if torch.device(args.device).type != "cuda":
        return {"skipped": "CUDA graphs need a CUDA device", "ok": True}
    dev = args.device
    n, d = (1024, 16) if args.small else (65536, 64)
    loc = _unit(n, d, dev).requires_grad_(True)
    kappa = (torch.rand(n, device=dev) * 50 + 1).requires_grad_(True)
    graph, z_static = capture_rsample_graph(loc, kappa, torch.randn(n, d, device=dev))
    outs = []
    for _ in range(3):
        graph.replay()
        torch.cuda.synchronize()
        outs.append((z_static.clone(), loc.grad.clone(), kappa.grad.clone()))
    fresh = not torch.equal(outs[0][0], outs[1][0])
    finite = all(torch.isfinite(t).all().item() for o in outs for t in o)
    on_sphere = float((torch.linalg.vector_norm(outs[-1][0], dim=-1) - 1).abs().max()) < 1e-5
    # each replay draws a new seed and overwrites .grad (captured as an assignment): grads are finite, and
    # the replayed samples follow the law (mean of w against A_d(kappa))
    from hvae_ext import special

    w = (outs[-1][0] * loc.detach()).sum(-1).double()
    k = kappa.detach().double()
    a = special.vmf_mean_resultant(k, d)
    var = 1 - a * a - (d - 1) * a / k
    zscore = float((w - a).sum() / var.sum().sqrt())
    t = time.perf_counter()
    for _ in range(20):
        graph.replay()
    torch.cuda.synchronize()
    replay_ms = (time.perf_counter() - t) / 20 * 1e3
    ok = fresh and finite and on_sphere and abs(zscore) < 6
    return {
        "fresh_samples_each_replay": fresh,
        "finite": finite,
        "on_sphere": on_sphere,
        "w_mean_zscore": zscore,
        "replay_ms": replay_ms,
        "n": n,
        "d": d,
        "ok": ok,
    }


# --- bench ----------------------------------------------------------------------------------------------


def _time(fn, device, reps):
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def stage_bench(args) -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import baselines

    from hvae_ext import VonMisesFisher

    dev = args.device
    n = 2**12 if args.small else 2**20
    reps = 2 if args.small else 10
    rows = []
    ok = True
    for d in (3, 16, 64, 256):
        loc = _unit(n, d, dev).requires_grad_(True)
        kappa = (torch.rand(n, device=dev) * 100 + 1).requires_grad_(True)
        gz = torch.randn(n, d, device=dev)

        def fwd():
            with torch.no_grad():
                VonMisesFisher(loc, kappa, validate_args=False).rsample()

        def fwd_bwd():
            loc.grad = kappa.grad = None
            z = VonMisesFisher(loc, kappa, validate_args=False).rsample()
            z.backward(gz)

        def randn():
            torch.randn(n, d, device=dev)

        def wood_fwd_bwd():
            loc.grad = kappa.grad = None
            baselines.wood_rsample(loc, kappa).backward(gz)

        row = {
            "d": d,
            "n": n,
            "randn_s": _time(randn, dev, reps),
            "rsample_fwd_s": _time(fwd, dev, reps),
            "rsample_fwd_bwd_s": _time(fwd_bwd, dev, reps),
        }
        row["fwd_over_randn"] = row["rsample_fwd_s"] / row["randn_s"]
        row["fwd_bwd_over_randn"] = row["rsample_fwd_bwd_s"] / row["randn_s"]
        try:
            row["wood_pytorch_fwd_bwd_s"] = _time(wood_fwd_bwd, dev, max(1, reps // 5))
        except Exception as e:  # noqa: BLE001
            row["wood_pytorch_fwd_bwd_s"] = f"failed: {e}"
        if baselines.HAVE_POWER_SPHERICAL:

            def ps_fwd_bwd():
                loc.grad = kappa.grad = None
                baselines.power_spherical_rsample(loc, kappa).backward(gz)

            row["power_spherical_fwd_bwd_s"] = _time(ps_fwd_bwd, dev, reps)
        if d == 64:
            row["target_fwd_within_2x_randn"] = row["fwd_over_randn"] <= 2.0
            row["target_fwd_bwd_within_4x_randn"] = row["fwd_bwd_over_randn"] <= 4.0
            if torch.device(dev).type == "cuda":
                ok &= row["target_fwd_within_2x_randn"] and row["target_fwd_bwd_within_4x_randn"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"rows": rows, "power_spherical": baselines.HAVE_POWER_SPHERICAL, "ok": ok}


# --- sanitize -------------------------------------------------------------------------------------------


def stage_sanitize(args) -> dict:
    """Every kernel once on small inputs (forward, backward, each special op with its backward, an empty
    batch, broadcasting, a single-element operand, float32 and float64), for compute-sanitizer."""
    from torch.distributions import kl_divergence

    from hvae_ext import HypersphericalUniform, VonMisesFisher, special

    dev = args.device
    for dtype in (torch.float32, torch.float64):
        for n, d in ((37, 3), (5, 70), (0, 4), (33, 2)):
            loc = _unit(max(n, 1), d, dev, dtype)[:n].requires_grad_(True)
            kappa = (torch.rand(n, device=dev, dtype=dtype) * 30 + 0.5).requires_grad_(True)
            q = VonMisesFisher(loc, kappa, validate_args=False)
            z = q.rsample((2,))
            loss = z.sum() + kl_divergence(q, HypersphericalUniform(d, device=dev, dtype=dtype)).sum()
            loss = loss + q.log_prob(z.detach()).sum() + q.entropy().sum()
            loss.backward()
        x = torch.linspace(0.01, 50, 101, device=dev, dtype=dtype).requires_grad_(True)
        v = torch.linspace(0.5, 20, 101, device=dev, dtype=dtype)[:, None]
        out = special.log_bessel_iv(v, x) + special.bessel_iv_ratio(v + 1, x)
        out = out + special.vmf_log_normalizer(x, 7) + special.vmf_mean_resultant(x, 7)
        out.sum().backward()
    _sync(dev)
    return {"ok": True}


# --- emulation ------------------------------------------------------------------------------------------


def stage_emulation(args) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from cuda_emulation import build, checks, grid

    t = time.perf_counter()
    m = build.build("plain")
    t_build = time.perf_counter() - t
    backends = {"cpu": (grid._cpu, "cpu"), "emulation": (lambda n: build.op(m, n), "cpu")}
    if args.device != "cpu":
        backends["gpu"] = (grid._cpu, args.device)  # hvae_ext's own ops on device tensors: the CUDA kernels
    dtypes = (torch.float64,) if args.small else grid.DTYPES
    results = grid.run(
        backends, build.emulated_ops(m), dtypes=dtypes, quick=args.small, configure=lambda sms: m.configure(sms, 0, 0)
    )
    rec = {"build_seconds": round(t_build, 1), "comparisons": len(results), "pairs": {}}
    ok = True
    for pair in sorted({r.pair for r in results}):
        bad = checks.failures(results, pair=pair)
        ok &= not bad
        summary = {
            f"{op}/{dtype}/{out}": {"max_abs": v[0], "max_rel": v[1], "nonfinite_equal": v[2], "n": v[3]}
            for (p, op, dtype, out), v in grid.summarize(results).items()
            if p == pair
        }
        rec["pairs"][pair] = {"outside_tolerance": bad, "summary": summary}
    rec["ok"] = ok
    return rec


STAGES = {
    "info": stage_info,
    "emulation": stage_emulation,
    "sync": stage_sync,
    "agree": stage_agree,
    "graph": stage_graph,
    "bench": stage_bench,
    "sanitize": stage_sanitize,
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=sorted(STAGES))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=None, help="folder for <stage>.json (default: print only)")
    ap.add_argument("--small", action="store_true", help="small sizes (a dry run on the CPU)")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check.py: no CUDA device (use --device cpu for a dry run)", file=sys.stderr)
        return 2
    t = time.perf_counter()
    try:
        rec = STAGES[args.stage](args)
    except Exception as e:  # noqa: BLE001  (recorded, exit status 2)
        rec = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        status = 2
    else:
        status = 0 if rec.get("ok") else 1
    rec.update(stage=args.stage, device=args.device, seconds=round(time.perf_counter() - t, 3))
    text = json.dumps(rec, indent=1, default=str)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        Path(args.out, f"{args.stage}.json").write_text(text + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
