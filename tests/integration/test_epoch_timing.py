"""The interleaved epoch timing (experiments.epoch_timing): model list, rotation of the order, file names, the
recorded medians and ratios (three models, and the two-model fields the report reads), argument errors and a
short run on Cora; the report's use of the timing files (the epoch-time and the Power Spherical sections)."""

from __future__ import annotations

import json
import re
import statistics

import pytest

pytest.importorskip("torch_geometric", reason="the experiment needs torch_geometric (the 'experiments' extra)")
pytest.importorskip("sklearn", reason="the experiment needs scikit-learn (the 'experiments' extra)")

from experiments import epoch_timing as et  # noqa: E402
from experiments import report  # noqa: E402
from experiments.data import raw_file_names  # noqa: E402
from hvae_ext.testing import data_root  # noqa: E402

SHARED_DATA = data_root()  # read only: Planetoid writes into the test's cache

requires_cora = pytest.mark.skipif(
    not all((SHARED_DATA / "planetoid" / "Cora" / "raw" / f).is_file() for f in raw_file_names("Cora")),
    reason=f"offline Planetoid raw files for Cora not found under {SHARED_DATA}/planetoid/Cora/raw",
)


def test_models_and_rotation():
    assert et.parse_models("n-vgae, S-VGAE,s-vgae-ps") == ("n-vgae", "s-vgae", "s-vgae-ps")
    for text, message in (
        ("n-vgae,p-vgae", "unknown model(s) p-vgae"),
        ("s-vgae,s-vgae", "each model at most once"),
        ("s-vgae-ps", "at least two models"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            et.parse_models(text)
    three = ("n-vgae", "s-vgae", "s-vgae-ps")
    rounds = [et.rotation(three, i) for i in range(6)]
    assert rounds[:3] == [three, ("s-vgae", "s-vgae-ps", "n-vgae"), ("s-vgae-ps", "n-vgae", "s-vgae")]
    assert rounds[3:] == rounds[:3]
    for position in range(3):  # each model at each position equally often
        assert sorted(r[position] for r in rounds) == sorted(three * 2)
    # two models: N, S, S, N, ... as before
    assert [et.rotation(("n-vgae", "s-vgae"), i) for i in range(3)] == [
        ("n-vgae", "s-vgae"),
        ("s-vgae", "n-vgae"),
        ("n-vgae", "s-vgae"),
    ]


def test_file_names():
    assert et.timing_file_name("Cora", ("n-vgae", "s-vgae"), 16, 16) == "timing_Cora.json"
    assert et.timing_file_name("Cora", et.DEFAULT_MODELS, 16, 16) == "timing_Cora_n-s-ps.json"
    assert et.timing_file_name("CiteSeer", et.DEFAULT_MODELS, 3, 2) == "timing_CiteSeer_d3_n2_n-s-ps.json"
    assert et.timing_file_name("Cora", ("n-vgae", "s-vgae"), 8, 8) == "timing_Cora_d8.json"
    assert et.timing_file_name("Cora", ("s-vgae-ps", "s-vgae"), 16, 16) == "timing_Cora_ps-s.json"


def test_summary_medians_and_ratios():
    times = {"n-vgae": [1.0, 2.0, 4.0], "s-vgae": [2.0, 2.0, 2.0], "s-vgae-ps": [3.0, 8.0, 4.0]}
    epochs = {m: [2 * t for t in ts] for m, ts in times.items()}
    rec = et.summarize(times, epochs)
    assert (rec["median_n_s"], rec["median_s_s"], rec["median_ps_s"]) == (2.0, 2.0, 4.0)
    assert rec["median_epoch_ps_s"] == 8.0 and rec["mean_ps_s"] == statistics.fmean(times["s-vgae-ps"])
    assert rec["ratio_median"] == 1.0 and rec["median_of_pairwise_ratios"] == 1.0  # S/N per round: 2, 1, 0.5
    assert rec["ratio_ps_s_median"] == 2.0 and rec["epoch_ratio_ps_s_median"] == 2.0
    assert rec["pairwise_ratio_ps_s"] == 2.0  # PS/S per round: 1.5, 4, 2
    assert rec["pairwise_ratio_ps_n"] == 3.0  # PS/N per round: 3, 4, 1
    assert rec["epoch_pairwise_ratio_ps_n"] == 3.0 and rec["ratio_ps_n_median"] == 2.0
    assert rec["times_ps_s"] == times["s-vgae-ps"] and rec["epoch_times_n_s"] == epochs["n-vgae"]
    # the two-model record: the fields of the first version, nothing about Power Spherical
    two = et.summarize({m: times[m] for m in ("n-vgae", "s-vgae")}, {m: epochs[m] for m in ("n-vgae", "s-vgae")})
    assert not [k for k in two if "_ps" in k]
    assert {"ratio_median", "median_of_pairwise_ratios", "epoch_ratio_median", "times_n_s", "times_s_s"} <= set(two)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--models", "n-vgae"], "--models: at least two models"),
        (["--models", "n-vgae,x"], "--models: unknown model(s) x"),
        (["--steps", "0"], "--steps must be positive"),
        (["--warmup", "-1"], "--warmup must be >= 0"),
        (["--threads", "-2"], "--threads must be >= 0"),
        (["--n-latent-dim", "0"], "--n-latent-dim must be >= 1"),
    ],
)
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        et.main(argv)
    assert message in capsys.readouterr().err


@requires_cora
def test_three_models_and_two_on_cora(tmp_path):
    """Two rounds of the three models at d = 2 degrees of freedom (N on R^2, both S-VGAE on S^2 in R^3), then
    the two-model measurement at size 16 into the same folder: separate files, the report reads both."""
    out, cache = tmp_path / "timing", tmp_path / "cache"
    common = ["--dataset", "Cora", "--data-root", str(SHARED_DATA), "--cache-root", str(cache), "--no-download"]
    common += ["--threads", "1", "--out", str(out)]
    rec = et.main(["--steps", "2", "--warmup", "1", "--latent-dim", "3", "--n-latent-dim", "2"] + common)
    saved = json.loads((out / "timing_Cora_d3_n2_n-s-ps.json").read_text())
    assert saved["models"] == ["n-vgae", "s-vgae", "s-vgae-ps"] and saved["steps"] == 2
    assert saved["ambient_dims"] == {"n-vgae": 2, "s-vgae": 3, "s-vgae-ps": 3}
    assert saved["dropout"] == {"n-vgae": 0.5, "s-vgae": 0.2, "s-vgae-ps": 0.2}  # the experiment's defaults
    for k in ("n", "s", "ps"):
        assert len(saved[f"times_{k}_s"]) == len(saved[f"epoch_times_{k}_s"]) == 2
        assert all(0 < t < te for t, te in zip(saved[f"times_{k}_s"], saved[f"epoch_times_{k}_s"]))
        assert saved[f"median_{k}_s"] == statistics.median(saved[f"times_{k}_s"]) == rec[f"median_{k}_s"]
    assert saved["ratio_ps_s_median"] == pytest.approx(saved["median_ps_s"] / saved["median_s_s"])
    assert str(tmp_path) not in (out / "timing_Cora_d3_n2_n-s-ps.json").read_text()

    et.main(["--steps", "1", "--warmup", "0", "--models", "n-vgae,s-vgae"] + common)
    two = json.loads((out / "timing_Cora.json").read_text())
    assert two["models"] == ["n-vgae", "s-vgae"] and not [k for k in two if "_ps" in k]
    assert len(two["times_n_s"]) == len(two["times_s_s"]) == 1
    timings = report.load_timings(tmp_path)
    assert [t["_path"] for t in timings if report.is_n_s_timing(t)] == ["timing/timing_Cora.json"]
    found = report.posterior_timing(timings, "Cora", 3, 2)
    assert found is not None and found["_path"] == "timing/timing_Cora_d3_n2_n-s-ps.json"
    assert report.posterior_timing(timings, "Cora", 3, 3) is None


def test_report_sections_use_their_timing_files():
    """The epoch-time section reads the N / S files at size 16 only; the Power Spherical section reads the
    three-model file of its dataset and sizes (equal size of z at 16, equal degrees of freedom elsewhere)."""

    def run(model, ambient, seed, auc, posterior=None):
        rec = {
            "config": {"model": model, "latent_dim": ambient, "seed": seed, "dataset": "Cora"},
            "test_auc": auc,
            "test_ap": auc,
            "median_epoch_time_s": 9.0,  # not shown any more
            "median_train_time_s": 9.0,
        }
        if posterior:
            rec["posterior"] = posterior
        return rec

    def timing(path, models, latent, n_latent, scale):
        t = {"dataset": "Cora", "models": models, "latent_dim": latent, "n_latent_dim": n_latent, "_path": path}
        t.update({"steps": 10, "device": "cpu", "threads": 1, "versions": {}})
        for i, k in enumerate(("n", "s", "ps")[: len(models)]):
            t[f"median_{k}_s"] = scale * (i + 1) / 1000
            t[f"median_epoch_{k}_s"] = scale * (i + 2) / 1000
            t[f"times_{k}_s"] = t[f"epoch_times_{k}_s"] = [1.0]
        t.update(ratio_median=2.0, epoch_ratio_median=1.5, ratio_ps_s_median=1.5, epoch_ratio_ps_s_median=4 / 3)
        t.update(pairwise_ratio_ps_s=1.25, epoch_pairwise_ratio_ps_s=1.125)
        return t

    three = ["n-vgae", "s-vgae", "s-vgae-ps"]
    timings = [
        timing("timing/timing_Cora.json", ["n-vgae", "s-vgae"], 16, 16, 10),
        timing("ps/timing_Cora_n-s-ps.json", three, 16, 16, 20),
        timing("ps/timing_Cora_d3_n2_n-s-ps.json", three, 3, 2, 10),
        timing("ps/timing_Cora_d3_n-s-ps.json", three, 3, 3, 99),  # equal size of z at 3: no row of the section
    ]
    runs = [run("n-vgae", 16, s, 0.9) for s in range(2)] + [run("s-vgae", 16, s, 0.93) for s in range(2)]
    runs += [run("s-vgae", 16, s, 0.94, "power-spherical") for s in range(2)]
    runs += [run("n-vgae", 2, s, 0.8) for s in range(2)] + [run("s-vgae", 3, s, 0.85) for s in range(2)]
    runs += [run("s-vgae", 3, s, 0.86, "power-spherical") for s in range(2)]
    runs += [run("s-vgae", 5, s, 0.87, "power-spherical") for s in range(2)]  # no timing file at d = 4
    groups = report.group(runs, tagged=False)
    tt = report.timing_table(groups, timings)
    assert [line for line in tt if "interleaved" in line] == [line for line in tt if "timing/timing_Cora.json" in line]
    assert len([line for line in tt if "interleaved" in line]) == 1
    lines = report.posterior_table(runs, groups, timings=timings)
    assert "step (ms): N / vMF / PS" in lines[0] and "timing file" in lines[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [r[1] for r in rows] == ["z of size 16 (R^16 / S^15)", "d = 2 (R^2 / S^2)", "d = 4 (R^4 / S^4)"]
    assert rows[0][9:] == ["20.0 / 40.0 / 60.0", "40.0 / 60.0 / 80.0", "1.50 / 1.33", "1.25 / 1.12"] + [
        "`ps/timing_Cora_n-s-ps.json`"
    ]
    assert rows[1][9:11] == ["10.0 / 20.0 / 30.0", "20.0 / 30.0 / 40.0"]
    assert rows[1][13] == "`ps/timing_Cora_d3_n2_n-s-ps.json`"
    assert rows[2][9:] == ["—"] * 5
    without = [[c.strip() for c in line.strip("|").split("|")] for line in report.posterior_table(runs, groups)[2:]]
    assert [r[9:] for r in without] == [["—"] * 5] * 3 and [r[:9] for r in without] == [r[:9] for r in rows]
