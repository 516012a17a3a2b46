"""Clustering a real set of unit vectors with a mixture of von Mises-Fisher distributions
(:func:`hvae_ext.fit_mixture`, soft EM) against spherical k-means (Dhillon and Modha, 2001), on the
L2-normalized bag-of-words features of Cora (2708 papers, d = 1433, 7 classes).

Both methods start from the same seeded k-means++ centers (cosine distance) per seed; the clusters are
compared with the paper classes by normalized mutual information and the adjusted Rand index
(scikit-learn). Writes a JSON of the results and a picture::

    python -m experiments.vmf_clustering --data-root ../shared/data/planetoid --cache-root .cache/planetoid \\
        --out experiments/results/clustering/cora.json --figure docs/figures/cora_vmf_clustering.png

(``--data-root``: a folder holding ``Cora/raw/`` with the Planetoid raw files; see
``experiments/data.py``.) docs/fitting.md reports the JSON (benchmarks/fit_report.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from hvae_ext.distributions.fit import _kmeans_pp_centers, fit_mixture


def load_cora_unit_features(data_root=None, cache_root=None) -> tuple[torch.Tensor, np.ndarray]:
    """(x, labels): Cora's binary word features, each row divided by its Euclidean norm (float64)."""
    from .data import load_planetoid

    ds = load_planetoid("Cora", data_root=data_root, cache_root=cache_root, download=False)
    data = ds[0]
    x = data.x.to(torch.float64)
    norms = x.norm(dim=-1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("a Cora feature row is all zeros and has no direction")
    return x / norms, data.y.numpy()


def spherical_kmeans(x: torch.Tensor, centers: torch.Tensor, max_iter: int = 100):
    """Spherical k-means: assign each point to the center of largest cosine, recenter at the normalized mean.
    Returns (labels, centers, objective per iteration = sum of the cosines to the assigned centers)."""
    objective = []
    labels = None
    for _ in range(max_iter):
        sim = x @ centers.T
        new = sim.argmax(-1)
        objective.append(float(sim.gather(1, new[:, None]).sum()))
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        sums = torch.zeros_like(centers).index_add_(0, labels, x)
        norms = sums.norm(dim=-1, keepdim=True)
        centers = torch.where(norms > 0, sums / norms.clamp(min=1e-300), centers)  # an empty cluster keeps its center
    return labels, centers, objective


def run(x: torch.Tensor, y: np.ndarray, k: int, seeds: list[int], max_iter: int, tol: float) -> dict:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    out = {"movmf": [], "spkmeans": []}
    n, d = x.shape
    w = torch.ones(n, dtype=x.dtype)
    for seed in seeds:
        centers = _kmeans_pp_centers(x, w, k, torch.Generator().manual_seed(seed))
        t0 = time.perf_counter()
        res = fit_mixture(x, k, init_centers=centers, max_iter=max_iter, tol=tol)
        t_em = time.perf_counter() - t0
        labels = res.responsibilities.argmax(-1).numpy()
        ll = res.log_likelihood
        comp = res.mixture.component_distribution
        out["movmf"].append(
            {
                "seed": seed,
                "nmi": normalized_mutual_info_score(y, labels),
                "ari": adjusted_rand_score(y, labels),
                "log_likelihood": ll.tolist(),
                "iterations": len(ll) - 1,
                "converged": res.converged,
                "min_log_likelihood_step": float(torch.diff(ll).min()) if len(ll) > 1 else 0.0,
                "concentration": comp.concentration.tolist(),
                "mixing": res.mixture.mixture_distribution.probs.tolist(),
                "cluster_sizes": np.bincount(labels, minlength=k).tolist(),
                "seconds": t_em,
                "contingency": _contingency(y, labels, k).tolist(),
            }
        )
        t0 = time.perf_counter()
        sk_labels, _, objective = spherical_kmeans(x, centers, max_iter=max_iter)
        t_sk = time.perf_counter() - t0
        sk_labels = sk_labels.numpy()
        out["spkmeans"].append(
            {
                "seed": seed,
                "nmi": normalized_mutual_info_score(y, sk_labels),
                "ari": adjusted_rand_score(y, sk_labels),
                "objective": objective,
                "iterations": len(objective),
                "cluster_sizes": np.bincount(sk_labels, minlength=k).tolist(),
                "seconds": t_sk,
                "contingency": _contingency(y, sk_labels, k).tolist(),
            }
        )
        print(
            f"seed {seed}: movMF NMI {out['movmf'][-1]['nmi']:.3f} ARI {out['movmf'][-1]['ari']:.3f} "
            f"({len(ll) - 1} it, LL {ll[-1]:.1f}); spkmeans NMI {out['spkmeans'][-1]['nmi']:.3f} "
            f"ARI {out['spkmeans'][-1]['ari']:.3f}",
            flush=True,
        )
    return out


def _contingency(y, labels, k):
    classes = int(y.max()) + 1
    table = np.zeros((classes, k), dtype=int)
    np.add.at(table, (y, labels), 1)
    return table


def figure(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    ax = axes[0]
    for r in result["movmf"]:
        ll = np.asarray(r["log_likelihood"])
        ax.plot(np.arange(len(ll)), ll, lw=1)
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("log-likelihood (nats)")
    ax.set_title("mixture of vMFs: EM log-likelihood, one line per seed")
    ax = axes[1]
    for j, (key, _name) in enumerate((("movmf", "vMF mixture (EM)"), ("spkmeans", "spherical k-means"))):
        for metric, marker, off in (("nmi", "o", -0.12), ("ari", "s", 0.12)):
            vals = [r[metric] for r in result[key]]
            ax.scatter(
                np.full(len(vals), j + off),
                vals,
                marker=marker,
                alpha=0.7,
                color="C0" if metric == "nmi" else "C1",
                label=metric.upper() if j == 0 else None,
            )
    ax.set_xticks([0, 1], ["vMF mixture (EM)", "spherical k-means"])
    ax.set_ylabel("agreement with the 7 Cora classes")
    ax.set_title(f"per seed ({len(result['movmf'])} seeds, same k-means++ starts)")
    ax.legend()
    ax = axes[2]
    best = max(result["movmf"], key=lambda r: r["log_likelihood"][-1])
    table = np.asarray(best["contingency"], dtype=float)
    order = np.argsort(table.argmax(0) * 10000 - table.max(0))
    im = ax.imshow(table[:, order] / table.sum(1, keepdims=True), cmap="viridis", aspect="auto")
    ax.set_xlabel("vMF mixture cluster")
    ax.set_ylabel("Cora class")
    ax.set_title(f"best-likelihood seed ({best['seed']}): fraction of each class per cluster")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None, help="folder with Cora/raw/ (Planetoid raw files)")
    p.add_argument("--cache-root", default=None, help="writable folder for the processed dataset")
    p.add_argument("--seeds", default="0-9", help="seeds, e.g. 0-9 or 0,3,5")
    p.add_argument("--k", type=int, default=7)
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--tol", type=float, default=1e-10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="experiments/results/clustering/cora.json")
    p.add_argument("--figure", default="docs/figures/cora_vmf_clustering.png")
    args = p.parse_args(argv)
    from .common import parse_seeds

    torch.set_num_threads(args.threads)
    seeds = parse_seeds(args.seeds)
    x, y = load_cora_unit_features(args.data_root, args.cache_root)
    result = run(x, y, args.k, seeds, args.max_iter, args.tol)
    result["config"] = {
        "dataset": "Cora",
        "n": int(x.shape[0]),
        "d": int(x.shape[1]),
        "k": args.k,
        "seeds": seeds,
        "max_iter": args.max_iter,
        "tol": args.tol,
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "command": "python -m experiments.vmf_clustering "
        + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1)
        fh.write("\n")
    figure(result, args.figure)
    print(f"wrote {args.out} and {args.figure}")


if __name__ == "__main__":
    main()
