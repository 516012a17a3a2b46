"""Makes committed result files portable and small; rerun it on new run files before committing them.

    python scripts/clean_results.py                  # experiments/results/ and benchmarks/results/, in place
    python scripts/clean_results.py experiments/results/mnist    # only these folders (or files)
    python scripts/clean_results.py --check          # report what would change, change nothing (exit 1 if any)

* Every absolute path in JSON, markdown, text and log files becomes portable
  (experiments.common.portable_path): relative to the repository where it points into a checkout,
  ``<data>/...`` under the data root, ``<external>/name`` elsewhere.
* Per-epoch histories of the link-prediction studies under ``tuning/``, ``latent_dim/`` and ``products/`` (the
  hyperparameter search, the latent-dimension and the product-of-spheres studies, whose reports use only the
  scalar results) are condensed to the first epoch, the last and the epoch of best validation AUC; the run file
  records this under ``history_pruned`` together with the number of NaN values the full history had
  (``history_nan_count``). This is what keeps the results tree under its size limit as studies accumulate
  (experiments/results/README.md states the policy; tests/repository/test_results_hygiene.py enforces it).
  In the main-table link-prediction runs (``experiments/results/link_prediction/runs``) the series that the report plots
  and checks (epoch, loss, val_auc) are kept whole and the others (recon_loss, kl_loss, val_ap, times) move to
  ``history_sparse``, pruned the same way. In the MNIST run files (``experiments/results/mnist/{paper,runs,e15,pilot}``)
  the series the MNIST report reads (epoch, val_elbo, val_kappa_median) are kept whole and the others move to
  ``history_sparse`` (the best epoch by validation ELBO instead of AUC).
* Floats of histories are rounded to 7 significant digits; JSON is written with one line per list of numbers.
  Scalars (test scores, timings) are kept exactly.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from experiments.common import portable  # noqa: E402

RESULTS = ("experiments", "results")  # the results tree, relative to the repository
PRUNE_IN = ("tuning", "latent_dim", "products")  # studies condensed to first, best and last epoch
# folder -> the series kept whole (what that folder's report reads); the others go to history_sparse
SPARSE_IN = {RESULTS + ("link_prediction", "runs"): ("epoch", "loss", "val_auc")}
SPARSE_IN.update(
    {RESULTS + ("mnist", sub): ("epoch", "val_elbo", "val_kappa_median") for sub in ("paper", "runs", "e15", "pilot")}
)
# the validation series whose best epoch a pruned history keeps, and its name
BEST_KEYS = {"val_auc": "validation AUC", "val_elbo": "validation ELBO"}
EVERY = 10
TEXT_EXT = (".md", ".txt", ".log")  # not scripts: "#!/usr/bin/env" is a path they need


def _round(x, digits=7):
    if isinstance(x, float) and math.isfinite(x) and x != 0.0:
        return float(f"{x:.{digits}g}")
    return x


def prune_history(rec: dict, whole: tuple = (), condense: bool = False) -> dict:
    """Every history series pruned, except the keys in ``whole``: then the pruned ones move to history_sparse.
    ``condense``: only the first, the last and the best epoch are kept (also of a history pruned before)."""
    hist = rec.get("history")
    if not isinstance(hist, dict):
        return rec
    previous = rec.get("history_pruned")
    if previous is not None and not (condense and previous.get("kept", "").startswith("every")):
        return rec
    lists = {k: v for k, v in hist.items() if isinstance(v, list)}
    n = max((len(v) for v in lists.values()), default=0)
    if n <= (3 if condense else EVERY):
        return rec
    keep = {0, n - 1} | (set() if condense else set(range(EVERY - 1, n, EVERY)))
    val = next((lists[k] for k in BEST_KEYS if k in lists), None)
    if val and len(val) == n:
        finite = [i for i, v in enumerate(val) if isinstance(v, float) and math.isfinite(v)]
        if finite:
            keep.add(max(finite, key=lambda i: val[i]))
    keep = sorted(keep)
    nan = sum(1 for v in lists.values() for x in v if isinstance(x, float) and not math.isfinite(x))
    out = dict(rec)
    pruned = {k: ([v[i] for i in keep if i < len(v)] if k in lists else v) for k, v in hist.items()}
    best = next((name for k, name in BEST_KEYS.items() if k in lists), "validation score")
    kept = (
        f"the first, the last and the best {best}"
        if condense
        else f"every {EVERY}th epoch, the first, the last and the best {best}"
    )
    if whole:
        out["history"] = {k: v for k, v in hist.items() if k in whole or k not in lists}
        out["history_sparse"] = {k: v for k, v in pruned.items() if k == "epoch" or (k in lists and k not in whole)}
        out["history_pruned"] = {"history_sparse": kept, "epochs": n, "by": "scripts/clean_results.py"}
    else:
        out["history"] = pruned
        out["history_pruned"] = {
            "kept": kept,
            "epochs_before": previous["epochs_before"] if previous else n,
            "by": "scripts/clean_results.py",
        }
    if previous is None:  # a history pruned before had its NaN values counted then
        out["history_nan_count"] = nan
    return out


def round_histories(rec):
    rec = dict(rec)
    for key in ("history", "history_sparse"):
        if isinstance(rec.get(key), dict):
            rec[key] = {k: [_round(x) for x in v] if isinstance(v, list) else v for k, v in rec[key].items()}
    return rec


def dumps(obj, indent=0) -> str:
    """JSON with one line per list of scalars (the histories), one key per line elsewhere."""
    pad, pad1 = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad1}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        return "[\n" + ",\n".join(pad1 + dumps(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, separators=(", ", ": "))


def clean_file(path: str, check: bool) -> bool:
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    rel = os.path.relpath(path, ROOT).split(os.sep)
    if path.endswith(".json"):
        obj = json.loads(text)
        obj = portable(obj, ROOT)
        if isinstance(obj, dict) and "history" in obj:
            if any(part in PRUNE_IN for part in rel[:-1]) and tuple(rel[:2]) == RESULTS:
                obj = prune_history(obj, condense=True)
            elif tuple(rel[:-1]) in SPARSE_IN:
                obj = prune_history(obj, whole=SPARSE_IN[tuple(rel[:-1])])
            obj = round_histories(obj)
        new = dumps(obj) + "\n"
    else:
        new = portable(text, ROOT)
    if new == text:
        return False
    if not check:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(new)
        os.replace(tmp, path)
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "paths", nargs="*", default=[os.path.join(ROOT, *RESULTS), os.path.join(ROOT, "benchmarks", "results")]
    )
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file would change")
    a = p.parse_args(argv)
    changed = []
    for top in a.paths:
        files = [top] if os.path.isfile(top) else [os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs]
        for f in sorted(files):
            if f.endswith(".json") or f.endswith(TEXT_EXT):
                if clean_file(f, a.check):
                    changed.append(os.path.relpath(f, ROOT))
    verb = "would change" if a.check else "changed"
    print(
        f"{verb} {len(changed)} file(s)"
        + "".join(f"\n  {c}" for c in changed[:20])
        + ("\n  ..." if len(changed) > 20 else "")
    )
    return 1 if (a.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
