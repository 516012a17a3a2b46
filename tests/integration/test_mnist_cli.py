"""The MNIST experiment (experiments.mnist): the idx reader, the command's run files, checkpoints and resume,
its argument errors, the KL warm-up and dimension convention, the posterior option (``--posterior``) with
converge.sh's cells, the MNIST report (with its Power Spherical section), and the product of spheres: the layout
chosen on product_sweep.sh's validation sweep, the cells it gives and the report's product section."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments import mnist as mx
from experiments.mnist_data import ENV_VAR, MNISTUnavailableError, find_mnist_dir, read_idx

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread(restore_threads):
    torch.set_num_threads(1)


# ---------------------------------------------------------------- idx reader


def _write_idx(path: Path, arr: np.ndarray, code: int = 0x08) -> None:
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">i4").tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + arr.astype(arr.dtype.newbyteorder(">")).tobytes())


def test_read_idx_round_trip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a-idx3-ubyte.gz", arr)
    _write_idx(tmp_path / "b-idx1-ubyte", arr[0, 0])
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "b-idx1-ubyte"), arr[0, 0])
    ints = np.array([[1, -2], [300000, 4]], dtype=np.int32)
    _write_idx(tmp_path / "c-idx2-int", ints, code=0x0C)
    np.testing.assert_array_equal(read_idx(tmp_path / "c-idx2-int"), ints)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01" + b"\0" * 8)
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + np.array([10], dtype=">i4").tobytes() + b"\0" * 3)
    with pytest.raises(ValueError, match="10 bytes"):
        read_idx(tmp_path / "short")


def test_reads_the_mnist_idx_files(mnist, mnist_dir):
    assert mnist["train_images"].shape == (60000, 784) and mnist["train_images"].dtype == np.uint8
    assert mnist["test_images"].shape == (10000, 784)
    assert mnist["train_labels"].shape == (60000,) and mnist["test_labels"].shape == (10000,)
    assert set(np.unique(mnist["test_labels"])) == set(range(10))
    assert mnist["train_images"].max() == 255 and mnist["train_images"].min() == 0
    # the well-known first labels of the training set
    assert mnist["train_labels"][:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]
    # found from the parent folder too (DIR/MNIST/raw)
    assert find_mnist_dir(mnist_dir.parent.parent) == mnist_dir


def test_missing_mnist_names_the_flag(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(MNISTUnavailableError, match="--data-root"):
        find_mnist_dir(tmp_path)
    with pytest.raises(MNISTUnavailableError, match="--data-root"):
        find_mnist_dir(None)


# ---------------------------------------------------------------- command line


def _error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        mx.main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--model", "x-vae", "--latent-dim", "2"], "unknown model 'x-vae'; choose one of n-vae, s-vae"),
        (
            ["--model", "s-vae", "--latent-dim", "1", "--dim-convention", "ambient"],
            "--latent-dim must be >= 2 for s-vae",
        ),
        (["--model", "s-vae", "--latent-dim", "0"], "--latent-dim must be >= 1"),
        (["--model", "n-vae", "--latent-dim", "2", "--warmup-epochs", "-1"], "--warmup-epochs must be >= 0"),
        (["--model", "n-vae", "--latent-dim", "2", "--time-budget", "-1"], "--time-budget must be >= 0"),
        (["--model", "n-vae", "--latent-dim", "2", "--resume"], "--resume needs --checkpoint-dir"),
        (["--model", "n-vae", "--latent-dim", "0"], "--latent-dim must be >= 1"),
        (["--model", "n-vae", "--latent-dim", "2", "--epochs", "0"], "--epochs must be a positive integer"),
        (["--model", "n-vae", "--latent-dim", "2", "--epochs", "-3"], "--epochs must be a positive integer"),
        (["--model", "n-vae", "--latent-dim", "2", "--patience", "0"], "--patience must be a positive integer"),
        (["--model", "n-vae", "--latent-dim", "2", "--seeds", "3-1"], "--seeds"),
        (["--model", "n-vae", "--latent-dim", "2", "--is-samples", "0"], "--is-samples must be a positive integer"),
        (
            ["--model", "n-vae", "--latent-dim", "2", "--posterior", "power-spherical"],
            "--posterior power-spherical applies to s-vae only (the family of the spherical posterior), got --posterior "
            "power-spherical for n-vae",
        ),
        (
            ["--model", "s-vae", "--latent-dim", "2", "--posterior", "gaussian"],
            "argument --posterior: invalid choice: 'gaussian'",
        ),
    ],
)
def test_bad_arguments_give_clear_errors(argv, message, tmp_path, capsys):
    err = _error(argv + ["--data-root", str(tmp_path)], capsys)
    assert message in err


def test_missing_data_root_names_what_to_pass(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    err = _error(["--model", "s-vae", "--latent-dim", "2"], capsys)
    assert "--data-root is required" in err and "train-images-idx3-ubyte.gz" in err
    err = _error(["--model", "s-vae", "--latent-dim", "2", "--data-root", str(tmp_path / "nope")], capsys)
    assert "is not a folder" in err and "train-images-idx3-ubyte.gz" in err
    # a folder without the files: exit 2 with the folders looked in and the flag to pass
    err = _error(
        ["--model", "s-vae", "--latent-dim", "2", "--data-root", str(tmp_path), "--out", str(tmp_path / "out")], capsys
    )
    assert "MNIST idx files not found" in err and "--data-root" in err and "t10k-labels-idx1-ubyte" in err


def test_command_writes_run_files_and_report(tmp_path, mnist_dir):
    out = tmp_path / "runs"
    common = [
        "--data-root",
        str(mnist_dir),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--patience",
        "1",
        "--train-images",
        "500",
        "--test-images",
        "100",
        "--is-samples",
        "500",
        "--no-progress",
        "--warmup-epochs",
        "1",
    ]
    recs = mx.main(["--model", "s-vae", "--latent-dim", "2", "--seeds", "0-1", "--batch-seeds"] + common)
    recs += mx.main(["--model", "n-vae", "--latent-dim", "2", "--seeds", "0"] + common)
    assert len(recs) == 3
    files = sorted(p.name for p in out.glob("*.json"))
    assert files == ["mnist_n-vae_d2_seed0.json", "mnist_s-vae_d2_seed0.json", "mnist_s-vae_d2_seed1.json"]
    rec = json.loads((out / "mnist_s-vae_d2_seed1.json").read_text())
    c = rec["config"]
    assert c["model"] == "s-vae" and c["latent_dim"] == 2 and c["seed"] == 1 and c["experiment"] == "mnist"
    # the default posterior families: vMF for the S-VAE, the Gaussian for the N-VAE
    assert rec["posterior"] == c["posterior"] == "vmf" and recs[2]["posterior"] == "normal"
    # the paper's convention: d = 2 degrees of freedom is the S-VAE on S^2 in R^3, the N-VAE on R^2
    assert rec["latent_dim"] == 2 and rec["ambient_dim"] == 3 and rec["dim_convention"] == "paper"
    assert recs[2]["ambient_dim"] == 2
    # the Table 1 protocol's defaults, recorded
    assert c["hidden"] == [256, 128] and c["batch_size"] == 64 and c["lr"] == 1e-3 and c["patience"] == 1
    assert c["warmup_epochs"] == 1 and c["batch_seeds"] is True
    assert mx.build_parser().parse_args(["--model", "s-vae", "--latent-dim", "2"]).warmup_epochs == 100
    assert mx.build_parser().parse_args(["--model", "s-vae", "--latent-dim", "2"]).patience == 50
    assert mx.build_parser().parse_args(["--model", "s-vae", "--latent-dim", "2"]).epochs == 500
    # no absolute paths of this machine in the record
    assert str(tmp_path) not in json.dumps(rec) and str(REPO) not in json.dumps(rec)
    for key in ("torch", "hvae_ext", "python", "numpy", "hvae_ext_library"):
        assert key in rec["versions"]
    # provenance: the source tree's commit (None outside a git checkout) and the compiled library's hash
    assert set(rec["provenance"]["git"]) == {"commit", "dirty"}
    assert len(rec["provenance"]["library_sha256"]) == 64
    assert rec["device"]["device"] in ("cpu", "cuda") and rec["device"]["torch_threads"] == 1
    h = rec["history"]
    assert 1 <= len(h["train_elbo"]) <= 2 and len(h["val_elbo"]) == len(h["train_elbo"])
    # warm-up over one epoch of 8 steps (7 of 64 images, one of 52): the KL weight i / 8 at step i,
    # averaged over the epoch's images; 1 in the second epoch
    first = (sum(i / 8 * 64 for i in range(7)) + 7 / 8 * 52) / 500
    assert h["kl_weight"][0] == pytest.approx(first) and h["kl_weight"][1:] in ([], [1.0])
    assert rec["num_test_images"] == 100 and rec["is_samples"] == 500
    assert rec["test_ll"] >= rec["test_elbo_mc"]
    assert rec["test_elbo"] == pytest.approx(rec["test_recon"] - rec["test_kl"])
    for key in ("test_ll", "test_elbo", "test_recon", "test_kl", "best_val_elbo", "median_epoch_time_s", "is_time_s"):
        assert np.isfinite(rec[key])
    lat = np.load(out / rec["latent_means_file"])
    assert lat["means"].shape == (100, 3) and lat["labels"].shape == (100,)
    np.testing.assert_allclose(np.linalg.norm(lat["means"].astype(np.float32), axis=1), 1.0, atol=2e-3)
    # no temporary files left behind
    assert not list(out.glob("*.tmp*"))

    pytest.importorskip("matplotlib")
    from experiments import report

    report.main([str(out)])
    text = (out / "report.md").read_text()
    # the d = 2 row shows the run files' test LL (mean ± std over the seeds), not only the paper's numbers
    import statistics

    lls = {
        m: [json.loads((out / f).read_text())["test_ll"] for f in files if f"_{m}_" in f] for m in ("n-vae", "s-vae")
    }
    row = next(line for line in text.splitlines() if line.startswith("| 2 |"))
    for m, v in lls.items():
        s = statistics.stdev(v) if len(v) > 1 else 0.0
        assert f"{statistics.fmean(v):.2f} ± {s:.2f}".replace("-", "−") in row, (m, v, row)
    assert (out / "ll_vs_dim.png").is_file() and (out / "latent_d2.png").is_file()


def test_kl_warmup_and_dimension_convention():
    assert mx.kl_weight(0, 10, 2) == 0.0 and mx.kl_weight(10, 10, 2) == 0.5 and mx.kl_weight(25, 10, 2) == 1.0
    assert mx.kl_weight(0, 10, 0) == 1.0
    assert mx.ambient_dim("s-vae", 2) == 3 and mx.ambient_dim("n-vae", 2) == 2
    assert mx.ambient_dim("s-vae", 2, "ambient") == 2
    with pytest.raises(ValueError, match="convention"):
        mx.ambient_dim("s-vae", 2, "manifold")


def test_resume_continues_a_stopped_run(tmp_path, mnist_dir):
    """A run stopped by its time budget and resumed from its checkpoint reaches the same epoch count and
    keeps the history of both parts."""
    common = [
        "--model",
        "n-vae",
        "--latent-dim",
        "2",
        "--seeds",
        "0",
        "--data-root",
        str(mnist_dir),
        "--epochs",
        "3",
        "--train-images",
        "300",
        "--test-images",
        "50",
        "--is-samples",
        "10",
        "--no-progress",
        "--warmup-epochs",
        "1",
        "--checkpoint-dir",
        str(tmp_path / "ck"),
    ]
    first = mx.main(common + ["--out", str(tmp_path / "a"), "--time-budget", "1e-6"])[0]
    assert first["epochs_run"] == 1 and first["stopped"].startswith("time budget")
    assert first["under_trained"]
    second = mx.main(common + ["--out", str(tmp_path / "b"), "--resume"])[0]
    assert second["epochs_run"] == 3 and second["stopped"] == "max epochs"
    assert second["history"]["epoch"] == [1, 2, 3]
    assert second["history"]["val_elbo"][0] == first["history"]["val_elbo"][0]


# ---------------------------------------------------------------- posterior family


def test_posterior_option_reaches_the_model():
    """--posterior takes vmf (the default) and power-spherical; the S-VAE gets that family, the file name a _ps."""
    from hvae_ext import PowerSpherical, VonMisesFisher

    p = mx.build_parser()
    for argv, family, cls in (
        ([], "vmf", VonMisesFisher),
        (["--posterior", "vmf"], "vmf", VonMisesFisher),
        (["--posterior", "power-spherical"], "power-spherical", PowerSpherical),
    ):
        args = p.parse_args(["--model", "s-vae", "--latent-dim", "4", "--data-root", ".", *argv])
        mx.validate_args(p, args)
        assert mx.posterior_of(args) == family
        model = mx.build_model(args)
        assert model.posterior_family is cls
        assert type(model.posterior(torch.rand(3, 784))) is cls
    args = p.parse_args(["--model", "n-vae", "--latent-dim", "4", "--data-root", "."])
    mx.validate_args(p, args)
    assert mx.posterior_of(args) == "normal"
    assert (
        mx.run_file_name("s-vae", 10, 0) == mx.run_file_name("s-vae", 10, 0, posterior="vmf") == "mnist_s-vae_d10_seed0"
    )
    assert mx.run_file_name("n-vae", 10, 0, posterior="normal") == "mnist_n-vae_d10_seed0"
    assert mx.run_file_name("s-vae", 10, 0, posterior="power-spherical") == "mnist_s-vae_d10_ps_seed0"
    assert mx.run_file_name("s-vae", 20, 2, "x", 4, "power-spherical") == "mnist_s-vae_d20_k4_ps_x_seed2"


def test_power_spherical_run_file(tmp_path, mnist_dir, capsys):
    """A one-epoch Power Spherical S-VAE run: the start-up line, the file name, the recorded posterior."""
    recs = mx.main(
        [
            "--model",
            "s-vae",
            "--posterior",
            "power-spherical",
            "--latent-dim",
            "4",
            "--seeds",
            "0",
            "--data-root",
            str(mnist_dir),
            "--out",
            str(tmp_path),
            "--epochs",
            "1",
            "--train-images",
            "200",
            "--test-images",
            "50",
            "--is-samples",
            "5",
            "--no-progress",
        ]
    )
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith("-> z on S^4 in R^5, Power Spherical posterior"), first
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["mnist_s-vae_d4_ps_seed0.json"]
    rec = json.loads((tmp_path / "mnist_s-vae_d4_ps_seed0.json").read_text())
    assert rec["posterior"] == rec["config"]["posterior"] == recs[0]["posterior"] == "power-spherical"
    assert rec["config"]["argv"][:4] == ["--model", "s-vae", "--posterior", "power-spherical"]
    assert np.isfinite(rec["test_ll"]) and rec["test_ll"] >= rec["test_elbo_mc"]


def test_converge_cells_name_the_posterior(tmp_path):
    """converge.sh's cells "model d seed [spheres [posterior]]": the command it runs for each cell (a stand-in
    that records its arguments instead of training) and the run file it looks for, named as the CLI names it."""
    import os
    import subprocess
    import sys

    log = tmp_path / "calls.txt"
    fake = tmp_path / "fake_mnist.py"
    fake.write_text(f"import sys\nopen({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n")
    out = tmp_path / "out"
    out.mkdir()
    # a converged Power Spherical run file: its cell is skipped
    (out / f"{mx.run_file_name('s-vae', 5, 3, posterior='power-spherical')}.json").write_text(
        json.dumps({"config": {}, "stopped": "early stopping: no better validation ELBO", "epochs_run": 80})
    )
    cells = "s-vae 10 0 1 power-spherical,s-vae 20 1 4 power-spherical,s-vae 10 2 1 vmf,n-vae 5 0,s-vae 5 3 1 power-spherical"
    env = dict(
        os.environ, CELLS=cells, OUT=str(out), CKPT=str(tmp_path / "ck"), JOBS="1", MNIST_CMD=f"{sys.executable} {fake}"
    )
    subprocess.run(
        ["bash", str(REPO / "experiments/results/mnist/converge.sh"), str(tmp_path)], check=True, env=env, cwd=REPO
    )
    calls = log.read_text().splitlines()
    assert len(calls) == 4, calls
    assert (
        calls[0].startswith("--model s-vae --latent-dim 10 --seeds 0 --data-root")
        and calls[0].count("--posterior power-spherical") == 1
    )
    assert "--spheres 4 --posterior power-spherical" in calls[1]
    assert "--posterior" not in calls[2] and "--spheres" not in calls[2]
    assert calls[3].startswith("--model n-vae --latent-dim 5 --seeds 0") and "--posterior" not in calls[3]
    assert "skip s-vae 5 3 1 power-spherical" in (out / "converge_1.log").read_text()


# ---------------------------------------------------------------- report: the Power Spherical section


def _synthetic_run(model, d, seed, ll, posterior=None, t=1.0):
    """A run record with the fields the MNIST report reads (values made up for the test)."""
    rec = {
        "config": {
            "experiment": "mnist",
            "model": model,
            "latent_dim": d,
            "seed": seed,
            "tag": "",
            "lr": 1e-3,
            "batch_size": 64,
            "epochs": 500,
            "patience": 50,
            "warmup_epochs": 20.0,
            "time_budget": 0.0,
        },
        "versions": {"torch": "2.x", "hvae_ext": "0"},
        "device": {"device": "cpu", "torch_threads": 1},
        "latent_dim": d,
        "ambient_dim": d + (model == "s-vae"),
        "spheres": 1,
        "dim_convention": "paper",
        "test_ll": ll,
        "test_elbo": ll - 4.0,
        "test_recon": ll - 2.0,
        "test_kl": 2.0,
        "test_elbo_mc": ll - 4.0,
        "best_val_elbo": ll - 5.0,
        "best_epoch": 90,
        "epochs_run": 140,
        "stopped": "early stopping: no better validation ELBO for 50 epochs",
        "under_trained": False,
        "median_epoch_time_s": t,
        "is_time_s": 10.0,
        "total_time_s": 1000.0,
        "train_time_s": 990.0,
        "is_samples": 500,
        "num_test_images": 10000,
        "history": {"epoch": [1, 2], "val_elbo": [ll - 9.0, ll - 5.0], "val_kappa_median": [10.0, 20.0]},
    }
    if posterior is not None:
        rec["posterior"] = posterior
    return rec


def test_report_power_spherical_section(tmp_path):
    """Absent without Power Spherical runs (and the report otherwise the same); with them, a row per d with the
    N-VAE, vMF and Power Spherical test LL on the Power Spherical seeds, PS − vMF per seed and the epoch times."""
    pytest.importorskip("matplotlib")
    from experiments import report_mnist

    runs = [_synthetic_run("n-vae", 5, s, -110.0 + s, "normal" if s else None, t=2.0) for s in range(4)]
    runs += [_synthetic_run("s-vae", 5, s, -109.0 + s, None if s % 2 else "vmf", t=3.0) for s in range(4)]
    ps = [_synthetic_run("s-vae", 5, s, -108.5 + 2 * s, "power-spherical", t=4.0 + s) for s in range(3)]
    ps.append(_synthetic_run("s-vae", 10, 0, -95.0, "power-spherical", t=5.0))  # no vMF / N-VAE beside it
    for folder, recs in ((tmp_path / "vmf", runs), (tmp_path / "ps", runs + ps)):
        folder.mkdir()
        for i, r in enumerate(recs):
            (folder / f"run{i}.json").write_text(json.dumps(r))
    without = report_mnist.write_report(tmp_path / "vmf").read_text()
    assert "Power Spherical" not in without
    text = report_mnist.write_report(tmp_path / "ps").read_text()
    head, section = text.split("\n## Power Spherical posterior\n")
    # the other sections are those of the report without the Power Spherical runs (apart from the run count)
    assert head.split("\n", 3)[3] == without.split("\n", 3)[3]
    rows = [line for line in section.splitlines() if line.startswith("| paper |")]
    assert len(rows) == 2
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[:3] == ["paper", "5", "S^5 ⊂ R^6"]
    assert cells[3] == "−109.00 ± 1.00 (3)"  # N-VAE on seeds 0-2 (seed 3 has no Power Spherical run)
    assert cells[4] == "−108.00 ± 1.00 (3)"
    assert cells[5] == "−106.50 ± 2.00 (3)"
    assert cells[6] == "+1.50 ± 1.00 (3/3)"  # PS − vMF per seed: 0.5, 1.5, 2.5
    assert cells[7:10] == ["−113.00 ± 1.00 (3)", "−112.00 ± 1.00 (3)", "−110.50 ± 2.00 (3)"]
    assert cells[10] == "2.0 / 3.0 / 5.0"
    cells = [c.strip() for c in rows[1].strip("|").split("|")]
    assert cells[:6] == ["paper", "10", "S^10 ⊂ R^11", "—", "—", "−95.00 ± 0.00 (1)"] and cells[6] == "—"
    assert "†" not in section
    # a vMF run that stopped on a time budget marks its cells and the paired difference, with a footnote
    budget = tmp_path / "budget"
    budget.mkdir()
    for i, r in enumerate(runs + ps):
        if r["config"]["model"] == "s-vae" and r["config"]["seed"] == 1 and r.get("posterior") != "power-spherical":
            r = dict(r, config=dict(r["config"], time_budget=24.0), stopped="time budget: 24 min of training")
        (budget / f"run{i}.json").write_text(json.dumps(r))
    section = report_mnist.write_report(budget).read_text().split("\n## Power Spherical posterior\n")[1]
    cells = [
        c.strip()
        for c in [ln for ln in section.splitlines() if ln.startswith("| paper | 5 |")][0].strip("|").split("|")
    ]
    assert cells[3:7] == ["−109.00 ± 1.00 (3)", "−108.00 ± 1.00 (3)†", "−106.50 ± 2.00 (3)", "+1.50 ± 1.00 (3/3)†"]
    assert report_mnist.UNFINISHED_NOTE in section


def test_report_marks_unfinished_cells_and_reads_the_crossover_from_finished_ones(tmp_path):
    """A cell of the main table with a run that did not end by the protocol is marked (and its S − N), with the
    footnote; the crossover line is read from the finished cells only and names the others."""
    pytest.importorskip("matplotlib")
    from experiments import report_mnist

    runs = [_synthetic_run("n-vae", 5, s, -110.0) for s in range(3)]
    runs += [_synthetic_run("s-vae", 5, s, -109.0) for s in range(3)]
    runs += [_synthetic_run("s-vae", 20, s, -95.0) for s in range(3)]  # S ahead at d = 20, but N unfinished
    for s in range(3):
        r = _synthetic_run("n-vae", 20, s, -96.0)
        if s == 2:
            r = dict(r, config=dict(r["config"], time_budget=3.0), stopped="time budget: 3 min of training")
        runs.append(r)
    text = report_mnist.write_report(_write_runs(tmp_path / "runs", runs)).read_text()
    main = text.split("\n### Acceptance\n")[0]
    row = {
        ln.split("|")[1].strip(): [c.strip() for c in ln.strip("|").split("|")]
        for ln in main.splitlines()
        if ln.startswith("| ") and ln.split("|")[1].strip().isdigit()
    }
    assert row["5"][1] == "−110.00 ± 0.00" and row["5"][7] == "1.00"
    assert row["20"][1] == "−96.00 ± 0.00†" and row["20"][4] == "−95.00 ± 0.00" and row["20"][7] == "1.00†"
    assert report_mnist.UNFINISHED_NOTE in main
    assert "* Left out of the crossover: d ∈ {20}" in text
    assert "* Crossover: S-VAE better at d ∈ {5}, N-VAE better at d ∈ {—}" in text
    finished = [r for r in runs if r["stopped"].startswith("early")]
    text = report_mnist.write_report(_write_runs(tmp_path / "finished", finished)).read_text()
    assert "†" not in text.split("\n### Acceptance\n")[0] and "Left out of the crossover" not in text


# ---------------------------------------------------------------- product of spheres: the sweep and its section


def _product_run(d, k, seed, ll, val, tag="", epochs_run=100, stopped="max epochs", time_budget=0.0):
    """A vMF S-VAE run on k spheres under the paper's convention (values made up for the test)."""
    rec = _synthetic_run("s-vae", d, seed, ll, "vmf")
    rec["config"].update(tag=tag, time_budget=time_budget, epochs=100 if tag else 500)
    rec.update(spheres=k, ambient_dim=d + k, best_val_elbo=val, epochs_run=epochs_run, stopped=stopped)
    return rec


def _sweep(vals, tests=None, **kw):
    """Sweep runs at d = 20, seed 0, tag sweep100: best validation ELBO vals[m] (test LL tests[m])."""
    tests = tests or {}
    return [_product_run(20, 20 // m, 0, tests.get(m, -100.0), v, tag="sweep100", **kw) for m, v in vals.items()]


def _write_runs(folder: Path, recs) -> Path:
    folder.mkdir(parents=True)
    for i, r in enumerate(recs):
        (folder / f"run{i}.json").write_text(json.dumps(r))
    return folder


def test_ended_by_protocol():
    """A run ended by the protocol: early stopping (patience at least 50), also in a call that had a time budget
    which early stopping beat, or the maximum number of epochs; not a time budget, not fewer epochs, not a shorter
    patience."""
    from experiments.report_mnist import converged, ended_by_protocol

    def run(stopped, epochs_run, **config):
        return {"stopped": stopped, "epochs_run": epochs_run, "config": {"patience": 50, "time_budget": 0.0, **config}}

    early = "early stopping: no better validation ELBO for 50 epochs"
    assert converged(run(early, 344))
    assert converged(run(early, 368, time_budget=150.0))  # the budget did not bind
    assert not converged(run(early, 120, patience=10))
    assert converged(run("max epochs", 500))
    assert not converged(run("max epochs", 120))  # a call with --epochs 120
    assert not converged(run("time budget: 24 min of training", 110, time_budget=24.0))
    assert ended_by_protocol(run("max epochs", 100), 100) and not ended_by_protocol(run("max epochs", 99), 100)


def test_product_layout_chosen_on_validation_only():
    """The chosen m: the highest best validation ELBO (to 0.01 nats, a tie going to the larger m), whatever the
    test LL says; none until every m of the sweep has trained its 100 epochs (or stopped early) without a budget;
    untagged product runs or another seed or d do not count."""
    from experiments import report_mnist as rm

    vals = {1: -111.0, 2: -110.0, 4: -108.5, 5: -109.0, 10: -112.0}
    tests = {
        1: -92.0,
        2: -90.0,
        4: -99.0,
        5: -95.0,
        10: -91.0,
    }  # the best test LL (m = 2) is not the best on validation
    assert rm.chosen_factor_size(_sweep(vals, tests)) == 4
    assert rm.chosen_factor_size(_sweep({**vals, 10: -108.504})) == 10  # equal to 0.01 nats: the larger m
    assert rm.chosen_factor_size(_sweep({**vals, 10: -108.49})) == 10  # better by 0.01
    assert rm.chosen_factor_size(_sweep({**vals, 2: -108.0})) == 2
    # an untagged product run with a better validation ELBO, another seed, another d: not part of the sweep
    extra = [
        _product_run(20, 10, 0, -80.0, -50.0, epochs_run=400, stopped="early stopping"),
        _product_run(20, 10, 1, -80.0, -50.0, tag="sweep100"),
        _product_run(40, 20, 0, -80.0, -50.0, tag="sweep100"),
    ]
    assert rm.chosen_factor_size(_sweep(vals) + extra) == 4
    # incomplete sweeps: a layout missing, one on a time budget, one still short of 100 epochs
    assert rm.chosen_factor_size(_sweep({m: v for m, v in vals.items() if m != 5})) is None
    budget = _sweep({5: -109.0}, time_budget=3.0, stopped="time budget: 3 min of training")
    assert rm.chosen_factor_size(_sweep({m: v for m, v in vals.items() if m != 5}) + budget) is None
    short = _sweep({5: -109.0}, epochs_run=60)
    assert rm.chosen_factor_size(_sweep({m: v for m, v in vals.items() if m != 5}) + short) is None
    early = _sweep({5: -109.0}, epochs_run=70, stopped="early stopping: no better validation ELBO for 50 epochs")
    assert rm.chosen_factor_size(_sweep({m: v for m, v in vals.items() if m != 5}) + early) == 4


def test_product_layout_at_each_dimension():
    """The same m where it divides d with k >= 2, otherwise the divisor of d below d nearest to m (a tie: the
    larger); the converge.sh cells "s-vae d seed k" for d = 10, 20, 40 and seeds 0-2."""
    from experiments import report_mnist as rm

    assert [rm.factor_size_at(m, 10) for m in (1, 2, 4, 5, 10)] == [1, 2, 5, 5, 5]
    assert [rm.factor_size_at(m, 20) for m in (1, 2, 4, 5, 10)] == [1, 2, 4, 5, 10]
    assert [rm.factor_size_at(m, 40) for m in (1, 2, 4, 5, 10)] == [1, 2, 4, 5, 10]
    assert rm.factor_size_at(3, 8) == 4 and rm.factor_size_at(3, 9) == 3 and rm.factor_size_at(6, 8) == 4
    with pytest.raises(ValueError, match="factor size m must be >= 1"):
        rm.factor_size_at(0, 10)
    assert rm.product_cells(4) == [f"s-vae {d} {s} {k}" for d, k in ((10, 2), (20, 5), (40, 10)) for s in (0, 1, 2)]


def test_report_product_section(tmp_path):
    """Absent without product runs (and the rest of the report unchanged by them); with them, the sweep table
    (the chosen layout marked, no test scores) and per d the N-VAE, single-sphere and product S-VAE test LL on
    seeds 0-2, whether each run converged, the per-seed product − S and product − N differences, the mean test KLs
    and Table 1's figures."""
    pytest.importorskip("matplotlib")
    from experiments import report_mnist as rm

    runs = [_synthetic_run("n-vae", 20, s, -90.0 - s) for s in range(3)]
    runs += [_synthetic_run("s-vae", 20, s, -91.0 - s) for s in range(3)]
    runs[3]["stopped"], runs[3]["epochs_run"] = "max epochs", 500  # converged at the maximum
    runs[4]["config"]["time_budget"], runs[4]["stopped"] = 3.0, "time budget: 3 min of training"
    runs[4]["epochs_run"] = 40
    sweep = _sweep(
        {10: -112.0, 1: -111.0, 2: -110.0, 4: -108.5, 5: -109.0}, {10: -71.0, 1: -72.0, 2: -70.0, 4: -99.0, 5: -95.0}
    )
    prod = [_product_run(20, 5, s, -89.0 - 2 * s, -95.0, epochs_run=300, stopped="early stopping") for s in (0, 1)]
    prod.append(_product_run(20, 5, 3, -80.0, -95.0, epochs_run=300, stopped="early stopping"))  # seed 3: left out
    prod.append(_product_run(10, 5, 0, -92.0, -97.0, epochs_run=500, stopped="max epochs"))  # not the chosen layout
    without = rm.write_report(_write_runs(tmp_path / "plain", runs)).read_text()
    assert "Product of spheres" not in without
    text = rm.write_report(_write_runs(tmp_path / "prod", runs + sweep + prod)).read_text()
    head, section = text.split("\n## Across latent dimensions\n")[0].split("\n## Product of spheres\n")
    assert head.split("\n", 3)[3] == without.split("\n## Across latent dimensions\n")[0].split("\n", 3)[3]
    assert "sweep100" not in head  # the product runs stay out of the other sections
    table = [line for line in section.splitlines() if line.startswith("|")]
    sweep_rows = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:7]]
    assert sweep_rows == [
        ["1", "20", "20 × S^1", "R^40", "−111.00", "90", "100", "max epochs", ""],
        ["2", "10", "10 × S^2", "R^30", "−110.00", "90", "100", "max epochs", ""],
        ["4", "5", "5 × S^4", "R^25", "−108.50", "90", "100", "max epochs", "✓"],
        ["5", "4", "4 × S^5", "R^24", "−109.00", "90", "100", "max epochs", ""],
        ["10", "2", "2 × S^10", "R^22", "−112.00", "90", "100", "max epochs", ""],
    ]
    assert "−70.00" not in section and "−72.00" not in section  # the sweep's test LL is not shown
    rows = {line.split("|")[1].strip() + line.split("|")[2].strip(): line for line in table[9:]}
    # the chosen m = 4 gives 2 × S^5 at d = 10 (4 does not divide 10), 5 × S^4 at d = 20, 10 × S^4 at d = 40
    assert list(rows) == ["102 × S^5", "105 × S^2 (not the chosen layout)", "205 × S^4", "4010 × S^4"]
    cells = [c.strip() for c in rows["205 × S^4"].strip("|").split("|")]
    assert cells[2:] == [
        "−91.00 ± 1.00 (3)",
        "3/3: early 140, early 140, early 140",
        "−92.00 ± 1.00 (3)",
        "2/3: max 500, open 40, early 140",
        "−90.00 ± 1.41 (2)",
        "2/2: early 300, early 300",
        "+1.50 ± 0.71 (2/2)",  # product − S on seeds 0, 1: −89 − (−91) and −91 − (−92)
        "+0.50 ± 0.71 (1/2)",  # product − N on seeds 0, 1: −89 − (−90) and −91 − (−91)
        "2.00 / 2.00 / 2.00",  # mean test KL of N, S and the product
        "−88.90",
        "−89.02",
    ]
    cells = [c.strip() for c in rows["105 × S^2 (not the chosen layout)"].strip("|").split("|")]
    assert cells[2:] == ["—", "—", "—", "—", "−92.00 ± 0.00 (1)", "1/1: max 500", "—", "—", "— / — / 2.00"] + [
        "−93.84",
        "−93.16",
    ]
    assert rows["102 × S^5"].split("|")[7].strip() == "—"  # no run of the chosen layout at d = 10
    notes = section.split("Cells with fewer than 3 converged seeds:")[1]
    assert "* d = 20, S-VAE: 2 of 3 seeds converged." in notes
    assert "* d = 20, product 5 × S^4: 2 of 3 seeds converged (2 run files)." in notes
    assert "* d = 10, product 2 × S^5: 0 of 3 seeds converged (0 run files)." in notes
    assert "* d = 10, product 5 × S^2: 1 of 3 seeds converged (1 run file)." in notes
    assert "d = 20, N-VAE" not in notes and "* d = 40, product 10 × S^4: 0 of 3 seeds converged (0 run files)." in notes
    # an incomplete sweep: no layout chosen, the untagged product runs listed as such
    text = rm.write_report(_write_runs(tmp_path / "part", runs + sweep[1:] + prod)).read_text()
    assert "No layout chosen yet: no finished sweep run for m = 10." in text and "✓" not in text.split("Product")[1]
    assert "| 20 | 5 × S^4 (not the chosen layout) |" in text
    assert "the seed-0 runs at d = 20 of the main table: N-VAE −95.00, S-VAE (S^d) −96.00." in text
    text = rm.write_report(_write_runs(tmp_path / "sweep_only", runs + sweep[1:])).read_text()
    assert "No product cells yet: they are trained once the sweep has chosen the layout." in text
    assert "| d | layout | N-VAE test LL |" not in text


def _summary_rows(folder: Path) -> dict[str, list[str]]:
    """The cells of the five rows of the table across dimensions that the report wrote into ``folder``, by d."""
    from experiments.report_mnist import SUMMARY_FILE

    lines = (folder / SUMMARY_FILE).read_text().splitlines()[2:7]
    return {ln.split("|")[1].strip(): [c.strip() for c in ln.strip("|").split("|")] for ln in lines}


def test_dimension_summary(tmp_path):
    """The table across d (also written to dimensions.md): N-VAE, single and product S-VAE on seeds 0-2; a model
    ahead only where every cell of the row has three runs ended by the protocol (else "open", with the finished
    cells' verdict so far); the product's layout from the sweep; the product learning curves drawn."""
    pytest.importorskip("matplotlib")
    from experiments import report_mnist as rm

    runs = [_synthetic_run("n-vae", 5, s, -110.0 + s) for s in range(3)]
    runs += [_synthetic_run("s-vae", 5, s, -109.0 + (s == 2) * 1.5) for s in range(3)]  # ahead by 1/3 + 0.5
    runs += [_synthetic_run(m, 20, s, ll - s) for m, ll in (("n-vae", -90.0), ("s-vae", -91.0)) for s in range(3)]
    runs += [_synthetic_run("n-vae", 10, s, -93.0) for s in range(3)]
    budget = _synthetic_run("s-vae", 10, 2, -92.0)
    budget.update(stopped="time budget: 3 min of training", epochs_run=40)
    runs += [_synthetic_run("s-vae", 10, s, -92.0) for s in range(2)] + [budget]
    sweep = _sweep({1: -111.0, 2: -110.0, 4: -108.5, 5: -109.0, 10: -112.0})
    prod = [
        _product_run(20, 5, s, -89.5 - s + (s == 1), -95.0, epochs_run=300, stopped="early stopping") for s in range(3)
    ]
    folder = _write_runs(tmp_path / "runs", runs + sweep)
    rm.write_report(folder)
    rows = _summary_rows(folder)
    assert rows["5"][1:] == [
        "−109.00 ± 1.00",
        "−108.50 ± 0.87",
        "—",
        "S-VAE: +0.50 over N-VAE (2/3)",
        "−110.21 / −108.43",
    ]
    assert rows["10"][2:5] == ["−92.00 ± 0.00†", "no run yet (2 × S^5)†", "open"]  # 2 × S^5 at d = 10 for m = 4
    assert rows["20"][3:5] == ["no run yet (5 × S^4)†", "open; N-VAE: +1.00 over S-VAE (3/3)"]
    assert rows["2"][1:4] == ["no run yet†", "no run yet†", "—"] and rows["40"][4] == "open"
    assert (folder / "curves_products.png").is_file() and (folder / "ll_across_dims.png").is_file()
    folder = _write_runs(tmp_path / "done", runs + sweep + prod)
    text = rm.write_report(folder).read_text()
    rows = _summary_rows(folder)
    assert rows["20"][3:5] == ["−90.17 ± 1.15 (5 × S^4)", "product 5 × S^4: +0.83 over N-VAE (3/3)"]
    assert (folder / rm.SUMMARY_FILE).read_text() in text
    folder = _write_runs(tmp_path / "one", runs + sweep + prod[:1])
    rm.write_report(folder)
    rows = _summary_rows(folder)
    assert rows["20"][3] == "−89.50 (5 × S^4, 1 of 3 seeds)†"  # one seed: its value, no spread
    plain = _write_runs(tmp_path / "plain", runs[:6])
    rm.write_report(plain)
    rows = _summary_rows(plain)
    assert rows["20"][3] == "layout open†" and not (plain / "curves_products.png").exists()


def test_product_sweep_script(tmp_path):
    """product_sweep.sh: the five layouts at d = 20 with the sweep's options (a stand-in that records its
    arguments and writes a run file), a finished layout skipped, one on a time budget trained again; then the
    chosen m and the converge.sh cells of the product at d = 10, 20, 40."""
    import os
    import subprocess
    import sys

    log = tmp_path / "calls.txt"
    fake = tmp_path / "fake_mnist.py"
    vals = {
        20: -110.0,
        10: -109.0,
        5: -108.0,
        4: -107.0,
        2: -111.0,
    }  # by k; k = 4 (m = 5) is written below, better still
    fake.write_text(
        "import json, sys\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "a = dict(zip(sys.argv[1::2], sys.argv[2::2]))\n"
        "k = int(a['--spheres'])\n"
        f"run = json.loads({json.dumps(json.dumps(_product_run(20, 1, 0, -90.0, 0.0, tag='sweep100')))})\n"
        f"run.update(spheres=k, ambient_dim=20 + k, best_val_elbo={vals!r}[k])\n"
        "open(f\"{a['--out']}/mnist_s-vae_d20_k{k}_sweep100_seed0.json\", 'w').write(json.dumps(run))\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{mx.run_file_name('s-vae', 20, 0, 'sweep100', 4)}.json").write_text(
        json.dumps(_product_run(20, 4, 0, -90.0, -106.0, tag="sweep100"))
    )
    budget = _product_run(20, 5, 0, -90.0, -100.0, tag="sweep100", epochs_run=30, time_budget=3.0)
    (out / f"{mx.run_file_name('s-vae', 20, 0, 'sweep100', 5)}.json").write_text(json.dumps(budget))
    env = dict(os.environ, OUT=str(out), CKPT=str(tmp_path / "ck"), JOBS="1", MNIST_CMD=f"{sys.executable} {fake}")
    script = str(REPO / "experiments/results/mnist/product_sweep.sh")
    before = subprocess.run(["bash", script, "--cells"], env=env, cwd=REPO, capture_output=True, text=True)
    assert before.returncode == 1 and "no layout chosen" in before.stdout
    assert (
        "m = 1 (k = 20): no run file" in before.stdout
        and "m = 2 (k = 10): no run file" in before.stdout
        and "(not finished)" in before.stdout
    )
    res = subprocess.run(["bash", script, str(tmp_path)], check=True, env=env, cwd=REPO, capture_output=True, text=True)
    calls = log.read_text().splitlines()
    assert [c.split("--spheres ")[1].split()[0] for c in calls] == ["20", "10", "5", "2"]
    for c in calls:
        assert c.startswith(f"--model s-vae --latent-dim 20 --spheres {c.split()[5]} --seeds 0 --data-root {tmp_path}")
        for opt in ("--epochs 100", "--warmup-epochs 20", "--time-budget 0", "--tag sweep100", "--resume"):
            assert opt in c
    assert "skip m=5 k=4" in (out / "product_sweep_1.log").read_text()
    assert "chosen m = 5" in res.stdout
    assert "d = 10: 2 × S^5" in res.stdout and "d = 40: 8 × S^5" in res.stdout
    cells = ",".join(f"s-vae {d} {s} {d // 5}" for d in (10, 20, 40) for s in (0, 1, 2))
    assert f'CELLS="{cells}" bash experiments/results/mnist/converge.sh [MNIST_DIR]' in res.stdout
