"""The link-prediction experiment (experiments.link_prediction): an end-to-end run on Cora, offline and read-only
data folders, argument errors, the chosen defaults, the posterior option (``--posterior``), and the report's
latent-dimension and Power Spherical tables."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("torch_geometric", reason="the experiment needs torch_geometric (the 'experiments' extra)")
pytest.importorskip("sklearn", reason="the experiment needs scikit-learn (the 'experiments' extra)")
pytest.importorskip("tqdm", reason="the experiment needs tqdm (the 'experiments' extra)")

from experiments import link_prediction as lp  # noqa: E402
from experiments.data import DatasetUnavailableError, prepare_root, raw_file_names  # noqa: E402
from hvae_ext.testing import data_root  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = data_root()  # read only: Planetoid writes into the per-test cache


def _raw_dir(name: str) -> Path | None:
    for folder in (SHARED_DATA / "planetoid" / name / "raw", SHARED_DATA / name / "raw"):
        if all((folder / f).is_file() for f in raw_file_names(name)):
            return folder
    return None


requires_cora = pytest.mark.skipif(
    _raw_dir("Cora") is None,
    reason=f"offline Planetoid raw files for Cora not found under {SHARED_DATA} (planetoid/Cora/raw/ind.cora.*)",
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """The default cache (where Planetoid writes) is a temporary folder of the test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.is_dir() else []


@requires_cora
def test_end_to_end_two_epochs_on_cora(tmp_path):
    out = tmp_path / "runs"
    data_before = _tree(SHARED_DATA)
    records = lp.main(
        [
            "--dataset",
            "Cora",
            "--model",
            "n-vgae,s-vgae",
            "--epochs",
            "2",
            "--seeds",
            "0",
            "--data-root",
            str(SHARED_DATA),
            "--out",
            str(out),
            "--no-progress",
            "--no-download",
        ]
    )
    assert len(records) == 2
    files = sorted(p.name for p in out.glob("*.json"))
    assert files == ["Cora_n-vgae_d16_seed0.json", "Cora_s-vgae_d16_seed0.json"]
    for f in files:
        rec = json.loads((out / f).read_text())
        assert rec["config"]["dataset"] == "Cora" and rec["config"]["epochs"] == 2
        assert rec["config"]["latent_dim"] == 16
        # the posterior family: the default (vMF) for the S-VGAE, the Gaussian for the N-VGAE
        assert rec["posterior"] == rec["config"]["posterior"] == ("vmf" if "s-vgae" in f else "normal")
        for key in ("torch", "torch_geometric", "hvae_ext", "python"):
            assert key in rec["versions"]
        assert rec["device"]["device"] == "cpu" or rec["device"]["device"].startswith("cuda")
        assert 0.0 <= rec["test_auc"] <= 1.0 and 0.0 <= rec["test_ap"] <= 1.0
        hist = rec["history"]
        for key in ("loss", "val_auc", "val_ap", "epoch_time_s", "train_time_s"):
            assert len(hist[key]) == 2 and all(v == v for v in hist[key])  # no NaN
        assert rec["num_nodes"] == 2708
        # 85/5/10 split of Cora's 5278 undirected edges
        assert rec["num_test_edges"] == 527 and rec["num_val_edges"] == 263
        # provenance without paths of this machine: the git commit and the compiled library's hash
        assert len(rec["provenance"]["library_sha256"]) == 64
        assert "commit" in rec["provenance"]["git"]
        text = (out / f).read_text()
        assert str(REPO) not in text and str(tmp_path) not in text and str(SHARED_DATA) not in text
    # the raw files were copied to the cache and processed there; the data folder got nothing new
    assert (tmp_path / "xdg" / "hvae_ext" / "planetoid" / "Cora" / "processed").is_dir()
    assert _tree(SHARED_DATA) == data_before

    # the report command on these runs
    from experiments import report

    pytest.importorskip("matplotlib")
    report.main([str(out)])
    text = (out / "report.md").read_text()
    # the main table shows what the run files hold: seeds, test AUC / AP (%) of each model's one seed as "mean ± std"
    for f in files:
        rec = json.loads((out / f).read_text())
        label = "S-VGAE" if "s-vgae" in f else "N-VGAE"
        row = next(line for line in text.splitlines() if line.startswith(f"| Cora | {label} |"))
        cells = [c.strip() for c in row.split("|")]
        assert cells[3] == "1" and cells[4] == f"{100 * rec['test_auc']:.1f} ± 0.0", (row, rec["test_auc"])
        assert cells[5] == f"{100 * rec['test_ap']:.1f} ± 0.0", (row, rec["test_ap"])
    assert (out / "curves_Cora.png").is_file()


def test_missing_dataset_offline_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetUnavailableError, match="--data-root"):
        prepare_root("Cora", empty, tmp_path / "cache", download=False)
    with pytest.raises(SystemExit) as exc:
        lp.main(
            [
                "--dataset",
                "Cora",
                "--epochs",
                "1",
                "--data-root",
                str(empty),
                "--no-download",
                "--out",
                str(tmp_path / "o"),
                "--no-progress",
            ]
        )
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Cora" in err and "--data-root" in err


def test_pubmed_offline():
    if _raw_dir("PubMed") is None:
        pytest.skip(
            f"PubMed is not available offline (no raw files under {SHARED_DATA}); "
            "the experiment downloads it when online"
        )
    assert prepare_root("PubMed", SHARED_DATA, download=False).is_dir()


def test_writable_data_folder_is_not_written(tmp_path, monkeypatch):
    """A writable data folder (a fresh clone's ../shared/data) is only read: the raw files are copied to the
    cache, where Planetoid writes processed/."""
    data = tmp_path / "data" / "planetoid" / "Cora" / "raw"
    data.mkdir(parents=True)
    for f in raw_file_names("Cora"):
        (data / f).write_bytes(b"x")
    before = _tree(tmp_path / "data")
    root = prepare_root("Cora", tmp_path / "data", tmp_path / "cache", download=False)
    assert root == tmp_path / "cache"
    assert sorted(p.name for p in (root / "Cora" / "raw").iterdir()) == sorted(raw_file_names("Cora"))
    assert _tree(tmp_path / "data") == before
    # the default cache is not the data folder, also when $HVAE_EXT_DATA names the data folder
    monkeypatch.setenv("HVAE_EXT_DATA", str(tmp_path / "data"))
    assert prepare_root("Cora", None, download=False) == tmp_path / "xdg" / "hvae_ext" / "planetoid"
    assert _tree(tmp_path / "data") == before


def test_raw_files_copied_from_read_only_folder(tmp_path):
    src = tmp_path / "ro" / "Cora" / "raw"
    src.mkdir(parents=True)
    for f in raw_file_names("Cora"):
        (src / f).write_bytes(b"x")
    os.chmod(src.parent, 0o555)
    try:
        if os.access(src.parent, os.W_OK):
            pytest.skip("running as a user who can write read-only folders")
        root = prepare_root("Cora", tmp_path / "ro", tmp_path / "cache", download=False)
    finally:
        os.chmod(src.parent, 0o755)
    assert root == tmp_path / "cache"
    assert sorted(p.name for p in (root / "Cora" / "raw").iterdir()) == sorted(raw_file_names("Cora"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "Reddit"], "unknown dataset"),
        (["--dataset", "Cora", "--model", "beta-vgae"], "unknown model"),
        (["--dataset", "Cora", "--model", "s-vgae", "--latent-dim", "1"], "latent-dim must be >= 2"),
        (["--dataset", "Cora", "--epochs", "-3"], "--epochs must be a positive integer"),
        (["--dataset", "Cora", "--epochs", "0"], "--epochs must be a positive integer"),
        (["--dataset", "Cora", "--seeds", "5-2"], "--seeds"),
        (["--dataset", "Cora", "--lr", "-1"], "--lr"),
        (["--dataset", "Cora", "--dropout", "1.0"], "--dropout must be in [0, 1)"),
        (["--dataset", "Cora", "--decoder-scale", "0"], "--decoder-scale must be > 0"),
        (["--dataset", "Cora", "--neg-ratio", "0"], "--neg-ratio must be a positive integer"),
        (
            ["--dataset", "Cora", "--model", "n-vgae", "--posterior", "power-spherical"],
            "--posterior power-spherical applies to s-vgae only",
        ),
        (
            ["--dataset", "Cora", "--model", "n-vgae,s-vgae", "--posterior", "power-spherical"],
            "--posterior power-spherical applies to s-vgae only",
        ),
        (["--dataset", "Cora", "--posterior", "gaussian"], "argument --posterior: invalid choice: 'gaussian'"),
    ],
)
def test_bad_arguments(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        lp.main(argv + ["--out", str(tmp_path / "o"), "--no-download"])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_defaults_are_the_chosen_configuration():
    """`--seeds 0-9` with the defaults reproduces the main table (configuration chosen on the validation
    split; experiments/results/link_prediction/notes.md)."""
    parser = lp.build_parser()
    args = parser.parse_args(["--dataset", "cora", "--model", "n-vgae,s-vgae"])
    lp.validate_args(parser, args)
    assert args.dataset == "Cora" and args.models == ["n-vgae", "s-vgae"]
    assert (args.lr, args.latent_dim, args.hidden_dim, args.kl_weight, args.neg_ratio) == (0.005, 16, 32, 1.0, 1)
    assert (lp.model_dropout("n-vgae", args), lp.model_epochs("n-vgae", args)) == (0.5, 600)
    assert (lp.model_dropout("s-vgae", args), lp.model_epochs("s-vgae", args)) == (0.2, 400)
    args = parser.parse_args(["--dataset", "cora", "--epochs", "7", "--dropout", "0.1"])
    lp.validate_args(parser, args)
    assert lp.model_epochs("n-vgae", args) == lp.model_epochs("s-vgae", args) == 7
    assert lp.model_dropout("n-vgae", args) == lp.model_dropout("s-vgae", args) == 0.1
    assert (args.decoder_scale, args.kappa_floor, args.fixed_scale) == (10.0, 1.0, False)  # S-VGAE only
    assert not args.normalize_features


def test_posterior_option():
    """--posterior takes vmf (the default) and power-spherical, reaches the S-VGAE and names the run file."""
    from hvae_ext import PowerSpherical, VonMisesFisher

    parser = lp.build_parser()
    for argv, family, cls in (
        ([], "vmf", VonMisesFisher),
        (["--posterior", "vmf"], "vmf", VonMisesFisher),
        (["--posterior", "power-spherical"], "power-spherical", PowerSpherical),
    ):
        args = parser.parse_args(["--dataset", "Cora", "--model", "s-vgae", *argv])
        lp.validate_args(parser, args)
        assert lp.model_posterior("s-vgae", args) == family and lp.model_posterior("n-vgae", args) == "normal"
        assert lp.build_model("s-vgae", 20, args).posterior_family is cls
    # N-VGAE with the default is fine (its posterior is the Gaussian)
    args = parser.parse_args(["--dataset", "Cora", "--model", "n-vgae,s-vgae", "--posterior", "vmf"])
    lp.validate_args(parser, args)
    assert lp.run_file_name("Cora", "s-vgae", 16, 0) == "Cora_s-vgae_d16_seed0.json"
    assert lp.run_file_name("Cora", "s-vgae", 16, 0, posterior="vmf") == "Cora_s-vgae_d16_seed0.json"
    assert lp.run_file_name("Cora", "n-vgae", 16, 0, posterior="normal") == "Cora_n-vgae_d16_seed0.json"
    assert lp.run_file_name("Cora", "s-vgae", 16, 0, posterior="power-spherical") == "Cora_s-vgae_d16_ps_seed0.json"
    assert lp.run_file_name("CiteSeer", "s-vgae", 20, 3, "t", 4, "power-spherical") == (
        "CiteSeer_s-vgae_d20_k4_ps_t_seed3.json"
    )


@requires_cora
def test_power_spherical_run_on_cora(tmp_path, capsys):
    """A two-epoch Power Spherical S-VGAE run: its file (``_ps``), its recorded posterior, its start-up line."""
    out = tmp_path / "runs"
    records = lp.main(
        [
            "--dataset",
            "Cora",
            "--model",
            "s-vgae",
            "--posterior",
            "power-spherical",
            "--epochs",
            "2",
            "--seeds",
            "1",
            "--data-root",
            str(SHARED_DATA),
            "--out",
            str(out),
            "--no-progress",
            "--no-download",
            "--threads",
            "1",
        ]
    )
    printed = capsys.readouterr().out
    assert "s-vgae (Power Spherical posterior)" in printed.splitlines()[0]
    assert sorted(p.name for p in out.glob("*.json")) == ["Cora_s-vgae_d16_ps_seed1.json"]
    rec = json.loads((out / "Cora_s-vgae_d16_ps_seed1.json").read_text())
    assert rec["posterior"] == rec["config"]["posterior"] == records[0]["posterior"] == "power-spherical"
    assert rec["spheres"] == 1 and rec["ambient_dim"] == 16
    assert 0.0 <= rec["test_auc"] <= 1.0 and all(v == v for v in rec["history"]["loss"])


def test_parse_seeds():
    assert lp.parse_seeds("0-9") == list(range(10))
    assert lp.parse_seeds("3") == [3]
    assert lp.parse_seeds("0-2,7") == [0, 1, 2, 7]
    with pytest.raises(ValueError):
        lp.parse_seeds("")


def test_latent_table_at_equal_degrees_of_freedom():
    """The paper-convention study pairs the N-VGAE on R^d with the S-VGAE on S^d in R^(d+1) (run files
    record the size of z), seeds 0-4 only, S − N per seed."""
    from experiments import report

    def run(model, ambient, seed, auc):
        return {"config": {"model": model, "latent_dim": ambient, "seed": seed, "dataset": "Cora"}, "test_auc": auc}

    groups = {
        ("Cora", "n-vgae", 2): [run("n-vgae", 2, s, 0.80 + 0.01 * s) for s in range(5)],
        ("Cora", "s-vgae", 3): [run("s-vgae", 3, s, 0.85 + 0.01 * s) for s in range(7)],  # seeds 5, 6 left out
        ("Cora", "s-vgae", 2): [run("s-vgae", 2, s, 0.10) for s in range(5)],  # S^1: d = 1, not in the study
    }
    lines = report.paper_latent_table(groups)
    row = next(line for line in lines if line.startswith("| 2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "82.0 ± 1.6 (5)" and cells[2] == "87.0 ± 1.6 (5)"
    assert cells[3] == "+5.0 ± 0.0 (5/5)"
    assert next(line for line in lines if line.startswith("| 3 |")).count("—") == 3


def test_power_spherical_table():
    """The Power Spherical section: N-VGAE, vMF and Power Spherical S-VGAE on the Power Spherical runs' seeds
    (equal size of z at 16, equal degrees of freedom elsewhere); those runs stay out of the other tables."""
    from experiments import report

    def run(model, ambient, seed, auc, ap, t, posterior=None, latent=None):
        rec = {
            "config": {"model": model, "latent_dim": latent or ambient, "seed": seed, "dataset": "Cora"},
            "ambient_dim": ambient,
            "test_auc": auc,
            "test_ap": ap,
            "median_epoch_time_s": t,
        }
        if posterior:
            rec["posterior"] = posterior
        return rec

    runs = (
        [run("n-vgae", 16, s, 0.90 + 0.01 * s, 0.91, 0.010 * (s + 1)) for s in range(5)]
        + [run("s-vgae", 16, s, 0.93 + 0.01 * s, 0.94, 0.020) for s in range(5)]  # older files: no posterior
        + [run("s-vgae", 16, s, 0.94 + 0.02 * s, 0.95, 0.030, "power-spherical") for s in range(3)]
        + [run("n-vgae", 2, s, 0.80, 0.81, 0.005, "normal") for s in range(3)]
        + [run("s-vgae", 3, s, 0.85, 0.86, 0.006, "vmf") for s in range(3)]
        + [run("s-vgae", 3, s, 0.84 + 0.02 * s, 0.85, 0.007, "power-spherical", latent=2) for s in range(3)]
    )
    groups = report.group(runs, tagged=False)
    assert all(report.default_family(r) for rs in groups.values() for r in rs)
    assert [len(groups[k]) for k in (("Cora", "n-vgae", 16), ("Cora", "s-vgae", 16), ("Cora", "s-vgae", 3))] == [
        5,
        5,
        3,
    ]
    lines = report.posterior_table(runs, groups)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [r[1] for r in rows] == ["z of size 16 (R^16 / S^15)", "d = 2 (R^2 / S^2)"]
    main = rows[0]
    assert main[2:4] == ["91.0 ± 1.0 (3)", "91.0 ± 0.0 (3)"]  # N-VGAE on seeds 0-2 only
    assert main[4:6] == ["94.0 ± 1.0 (3)", "94.0 ± 0.0 (3)"]
    assert main[6:8] == ["96.0 ± 2.0 (3)", "95.0 ± 0.0 (3)"]
    assert main[8] == "+2.0 ± 1.0 (3/3)"
    assert main[9:] == ["—"] * 5  # times only from an interleaved timing file (tests/integration/test_epoch_timing.py)
    assert rows[1][2] == "80.0 ± 0.0 (3)" and rows[1][4] == "85.0 ± 0.0 (3)" and rows[1][6] == "86.0 ± 2.0 (3)"
    assert rows[1][8] == "+1.0 ± 2.0 (2/3)"
    assert report.posterior_table([r for r in runs if report.default_family(r)], groups) == []
