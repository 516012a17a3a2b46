"""MNIST VAEs (issue 8, item 5): the idx reader, N-VAE and S-VAE on a few hundred images, the experiment
command's outputs and argument errors, and the MNIST report."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments import mnist as mx
from experiments.mnist_data import ENV_VAR, MNISTUnavailableError, find_mnist_dir, load_mnist, read_idx
from hvae_ext.models.vae import NVAE, SVAE
from hvae_ext.testing import data_root

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = data_root() / "MNIST" / "raw"


def _mnist_dir() -> Path | None:
    for root in (os.environ.get(ENV_VAR), SHARED_MNIST):
        if root:
            try:
                return find_mnist_dir(root)
            except MNISTUnavailableError:
                pass
    return None


MNIST_DIR = _mnist_dir()
requires_mnist = pytest.mark.skipif(
    MNIST_DIR is None,
    reason=f"MNIST idx files not found (set ${ENV_VAR} or put train-images-idx3-ubyte.gz etc. in {SHARED_MNIST})")


@pytest.fixture(autouse=True)
def _one_thread(restore_threads):
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist(MNIST_DIR)


@pytest.fixture(scope="module")
def few_images(mnist):
    """300 training images, binarized once (seeded)."""
    x = torch.from_numpy(mnist["train_images"][:300]).float() / 255.0
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(0))


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


@requires_mnist
def test_reads_the_mnist_idx_files(mnist):
    assert mnist["train_images"].shape == (60000, 784) and mnist["train_images"].dtype == np.uint8
    assert mnist["test_images"].shape == (10000, 784)
    assert mnist["train_labels"].shape == (60000,) and mnist["test_labels"].shape == (10000,)
    assert set(np.unique(mnist["test_labels"])) == set(range(10))
    assert mnist["train_images"].max() == 255 and mnist["train_images"].min() == 0
    # the well-known first labels of the training set
    assert mnist["train_labels"][:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]
    # found from the parent folder too (DIR/MNIST/raw)
    assert find_mnist_dir(MNIST_DIR.parent.parent) == MNIST_DIR


def test_missing_mnist_names_the_flag(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(MNISTUnavailableError, match="--data-root"):
        find_mnist_dir(tmp_path)
    with pytest.raises(MNISTUnavailableError, match="--data-root"):
        find_mnist_dir(None)


# ---------------------------------------------------------------- models

@requires_mnist
@pytest.mark.parametrize("model_cls,d", [(NVAE, 2), (NVAE, 10), (SVAE, 2), (SVAE, 10)])
def test_model_shapes_loss_falls_and_is_bound(model_cls, d, few_images):
    torch.manual_seed(0)
    model = model_cls(d)
    x = few_images
    q = model.posterior(x[:7])
    assert q.loc.shape == (7, d)
    assert model.decode(q.rsample()).shape == (7, 784)
    elbo, recon, kl = model.elbo(x[:7])
    assert elbo.shape == recon.shape == kl.shape == (7,)
    assert (kl >= -1e-5).all() and (recon <= 0).all()
    mean = model.latent_mean(x[:7])
    assert mean.shape == (7, d)
    if model_cls is SVAE:
        torch.testing.assert_close(mean.norm(dim=-1), torch.ones(7))
        assert (q.concentration >= model.kappa_floor).all()

    with torch.no_grad():
        before = model.loss(x).item()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(60):
        xb = x[(step % 3) * 100:(step % 3 + 1) * 100]
        loss = model.loss(xb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        after = model.loss(x).item()
    assert after < before - 20, (before, after)  # ~543 nats at initialization

    torch.manual_seed(2)
    out = model.log_likelihood(x[:50], num_samples=500, chunk_rows=2000)
    for key in ("log_likelihood", "elbo", "recon", "kl", "elbo_mc"):
        assert out[key].shape == (50,) and torch.isfinite(out[key]).all()
    # logsumexp(log w) - log K >= mean(log w) for the same samples (Jensen), per image
    assert (out["log_likelihood"] >= out["elbo_mc"] - 1e-3).all()
    # and on average above the analytic-KL ELBO on the same images
    assert out["log_likelihood"].mean() >= out["elbo"].mean()
    assert out["log_likelihood"].mean() >= -after - 5
    # the Monte Carlo KL of the IS samples agrees with the closed form
    assert abs((out["recon"] - out["elbo_mc"]).mean() - out["kl"].mean()) < 0.5


def test_model_argument_errors():
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        SVAE(1)
    with pytest.raises(ValueError, match="latent_dim must be >= 1"):
        NVAE(0)
    with pytest.raises(ValueError, match="kappa_floor"):
        SVAE(3, kappa_floor=-1.0)
    with pytest.raises(ValueError, match="num_samples"):
        NVAE(2).log_likelihood(torch.zeros(1, 784), num_samples=0)


# ---------------------------------------------------------------- command line

def _error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        mx.main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--model", "x-vae", "--latent-dim", "2"], "unknown model 'x-vae'; choose one of n-vae, s-vae"),
    (["--model", "s-vae", "--latent-dim", "1", "--dim-convention", "ambient"], "--latent-dim must be >= 2 for s-vae"),
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
])
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
    err = _error(["--model", "s-vae", "--latent-dim", "2", "--data-root", str(tmp_path), "--out",
                  str(tmp_path / "out")], capsys)
    assert "MNIST idx files not found" in err and "--data-root" in err and "t10k-labels-idx1-ubyte" in err


@requires_mnist
def test_command_writes_run_files_and_report(tmp_path):
    out = tmp_path / "runs"
    common = ["--data-root", str(MNIST_DIR), "--out", str(out), "--epochs", "2", "--patience", "1",
              "--train-images", "500", "--test-images", "100", "--is-samples", "500", "--no-progress",
              "--warmup-epochs", "1"]
    recs = mx.main(["--model", "s-vae", "--latent-dim", "2", "--seeds", "0-1", "--batch-seeds"] + common)
    recs += mx.main(["--model", "n-vae", "--latent-dim", "2", "--seeds", "0"] + common)
    assert len(recs) == 3
    files = sorted(p.name for p in out.glob("*.json"))
    assert files == ["mnist_n-vae_d2_seed0.json", "mnist_s-vae_d2_seed0.json", "mnist_s-vae_d2_seed1.json"]
    rec = json.loads((out / "mnist_s-vae_d2_seed1.json").read_text())
    c = rec["config"]
    assert c["model"] == "s-vae" and c["latent_dim"] == 2 and c["seed"] == 1 and c["experiment"] == "mnist"
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
    for key in ("test_ll", "test_elbo", "test_recon", "test_kl", "best_val_elbo", "median_epoch_time_s",
                "is_time_s"):
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

    lls = {m: [json.loads((out / f).read_text())["test_ll"] for f in files if f"_{m}_" in f] for m in ("n-vae", "s-vae")}
    row = next(line for line in text.splitlines() if line.startswith("| 2 |"))
    for m, v in lls.items():
        s = statistics.stdev(v) if len(v) > 1 else 0.0
        assert f"{statistics.fmean(v):.2f} ± {s:.2f}".replace("-", "−") in row, (m, v, row)
    assert (out / "ll_vs_dim.png").is_file() and (out / "latent_d2.png").is_file()


# ---------------------------------------------------------------- seeds trained side by side

@pytest.mark.parametrize("model_cls,d", [(NVAE, 2), (SVAE, 3)])
def test_stacked_members_train_exactly_as_alone(model_cls, d):
    """stack_ensemble: member e's forward pass and its Adam updates are those of the model trained alone
    (deterministic parts: the posterior parameters and the decoder; the same z fed to both)."""
    from hvae_ext.models.vae import ensemble_member, stack_ensemble

    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(model_cls(d).double())
    stacked = stack_ensemble(models)
    assert stacked.members == 3
    x = torch.rand(3, 16, 784, dtype=torch.float64).bernoulli()
    z = torch.nn.functional.normalize(torch.randn(3, 16, d, dtype=torch.float64), dim=-1)
    opt_s = torch.optim.Adam(stacked.parameters(), lr=1e-2)
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in models]

    def loss(model, xx, zz):  # a loss through encoder and decoder, independent of sampling
        q = model.posterior(xx)
        return -(model.log_likelihood_given(xx, zz) - (q.loc - zz).square().sum(-1)).mean(-1).sum()

    for _ in range(3):
        opt_s.zero_grad()
        loss(stacked, x, z).backward()
        opt_s.step()
        for e, (m, o) in enumerate(zip(models, opts)):
            o.zero_grad()
            loss(m, x[e], z[e]).backward()
            o.step()
    for e, m in enumerate(models):
        member = ensemble_member(stacked, e)
        assert type(member) is type(m) and not hasattr(member, "members")
        for (name, a), (_, b) in zip(member.state_dict().items(), m.state_dict().items()):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)
    # rows shared by all members (validation) give every member's own output
    xs = x[0]
    torch.testing.assert_close(stacked.posterior(xs).loc[1], models[1].posterior(xs).loc)
    with pytest.raises(ValueError, match="EnsembleLinear with 3 members"):
        stacked.encoder(torch.zeros(2, 5, 784, dtype=torch.float64))


def test_kl_warmup_and_dimension_convention():
    assert mx.kl_weight(0, 10, 2) == 0.0 and mx.kl_weight(10, 10, 2) == 0.5 and mx.kl_weight(25, 10, 2) == 1.0
    assert mx.kl_weight(0, 10, 0) == 1.0
    assert mx.ambient_dim("s-vae", 2) == 3 and mx.ambient_dim("n-vae", 2) == 2
    assert mx.ambient_dim("s-vae", 2, "ambient") == 2
    with pytest.raises(ValueError, match="convention"):
        mx.ambient_dim("s-vae", 2, "manifold")


@requires_mnist
def test_resume_continues_a_stopped_run(tmp_path):
    """A run stopped by its time budget and resumed from its checkpoint reaches the same epoch count and
    keeps the history of both parts."""
    common = ["--model", "n-vae", "--latent-dim", "2", "--seeds", "0", "--data-root", str(MNIST_DIR),
              "--epochs", "3", "--train-images", "300", "--test-images", "50", "--is-samples", "10",
              "--no-progress", "--warmup-epochs", "1", "--checkpoint-dir", str(tmp_path / "ck")]
    first = mx.main(common + ["--out", str(tmp_path / "a"), "--time-budget", "1e-6"])[0]
    assert first["epochs_run"] == 1 and first["stopped"].startswith("time budget")
    assert first["under_trained"]
    second = mx.main(common + ["--out", str(tmp_path / "b"), "--resume"])[0]
    assert second["epochs_run"] == 3 and second["stopped"] == "max epochs"
    assert second["history"]["epoch"] == [1, 2, 3]
    assert second["history"]["val_elbo"][0] == first["history"]["val_elbo"][0]
