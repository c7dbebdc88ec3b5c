"""Batched training (``hetreg.train.batched``) against the plain trainer, run by run.

Every run of a batched group must write the run store the plain trainer writes for the same
configuration, with the same numbers: metrics.jsonl line by line, summary.json, last.pt and
best.pt (model, optimizer state, random states, history). The comparison tolerance is a relative
1e-6 on floats (plus 1e-9 absolute); the batched path computes each run with the function the
plain trainer's MLP uses (at K = 1), so in practice the numbers are equal bit for bit. Equality matters
beyond rounding for BatchNorm models: a Linear bias followed by BatchNorm has a zero gradient up to
rounding, Adam turns that rounding into steps of size lr, and the eval-mode metrics then move by
percents with any change in rounding (the plain trainer itself gives different metrics at one and
two threads), so "close" would not be close.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import hetreg.train.batched as batched
from hetreg.experiments.config import apply_overrides, config_hash
from hetreg.losses import biv_loss, cutoff_mse_loss, effective_batch_size, iv_loss, mse_loss
from hetreg.models import build_model
from hetreg.train import RunExistsError, run_experiment
from hetreg.train.batched import (
    BatchedMLP,
    batch_groups,
    batching_problem,
    member_losses,
    member_records,
    run_batched,
    supports_batching,
)
from hetreg.train.files import load_checkpoint

RTOL, ATOL = 1e-6, 1e-9
VOLATILE = {"elapsed", "finished_at"}

BASE: dict[str, Any] = {
    "name": "batched",
    "seed": 0,
    "data": {"name": "synthetic-hetero", "options": {"n": 300, "d": 4}},
    "noise": {"distribution": {"kind": "uniform", "low": 0.05, "high": 2.0}},
    "model": {"name": "mlp", "options": {"hidden": [16, 8], "batchnorm": True}},
    "loss": {"name": "mse"},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 3, "batch_size": 64, "num_threads": 1},
}
MIXTURE = (
    "noise.distribution={kind: mixture, weights: [0.5, 0.5], components: "
    "[{kind: uniform, low: 0.001, high: 0.01}, {kind: uniform, low: 1.0, high: 3.0}]}"
)
GAMMA = "noise.distribution={kind: gamma, shape: 2.0, rate: 2.0}"

# Runs that differ in seed, noise and loss (with its parameters): one batched group.
MIXED = [
    ["seed=0", "loss.name=mse"],
    ["seed=1", "loss.name=iv", "loss.eps=0.05", MIXTURE],
    ["seed=2", "loss.name=biv", "loss.eps=0.5", MIXTURE],
    ["seed=3", "loss.name=biv", "loss.eps=0", GAMMA],
    ["seed=4", "loss.name=cutoff", "loss.threshold=0.5", MIXTURE],
    ["seed=5", "loss.name=mse", GAMMA, "lds.bins=10"],
]


def make(*overrides: str, base: dict[str, Any] | None = None):
    return apply_overrides(base or BASE, list(overrides))


# ---------------------------------------------------------------------------------------------
# Comparing run directories
# ---------------------------------------------------------------------------------------------


def assert_close(a: Any, b: Any, where: str) -> None:
    """Recursive comparison: floats to RTOL/ATOL, tensors likewise (integers and bools exactly)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for key in a:
            if key not in VOLATILE:
                assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype, where
        if a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL, msg=where)
        else:
            assert torch.equal(a, b), where
    elif isinstance(a, float) and not isinstance(b, bool):
        assert isinstance(b, (int, float)), f"{where}: {a!r} vs {b!r}"
        if math.isnan(a):
            assert math.isnan(b), where
        else:
            assert b == pytest.approx(a, rel=RTOL, abs=ATOL), f"{where}: {a!r} vs {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def assert_same_run(batched_dir: Path, plain_dir: Path) -> None:
    """The run stores of a batched run and of the same run trained alone hold the same results."""
    names = {p.name for p in plain_dir.iterdir() if not p.name.startswith(".")}
    assert {p.name for p in batched_dir.iterdir() if not p.name.startswith(".")} == names
    assert (batched_dir / "config.yaml").read_text() == (plain_dir / "config.yaml").read_text()
    assert (batched_dir / "standardizer.json").read_text() == (plain_dir / "standardizer.json").read_text()
    rows_b, rows_p = read_metrics(batched_dir), read_metrics(plain_dir)
    assert len(rows_b) == len(rows_p)
    for i, (rb, rp) in enumerate(zip(rows_b, rows_p)):
        assert_close(rb, rp, f"{batched_dir.name} metrics line {i}")
    sb = json.loads((batched_dir / "summary.json").read_text())
    sp = json.loads((plain_dir / "summary.json").read_text())
    assert_close(sb, sp, f"{batched_dir.name} summary")
    for name in ("last.pt", "best.pt"):
        if name in names:
            assert_close(load_checkpoint(batched_dir / name), load_checkpoint(plain_dir / name), f"{batched_dir.name} {name}")


def run_both(configs: list[Any], tmp_path: Path, **kwargs: Any) -> tuple[list[dict[str, Any]], list[Path], list[Path]]:
    bdirs = [tmp_path / f"batched-{i}" for i in range(len(configs))]
    pdirs = [tmp_path / f"plain-{i}" for i in range(len(configs))]
    summaries = run_batched(configs, bdirs, **kwargs)
    for cfg, d in zip(configs, pdirs):
        try:
            run_experiment(cfg, d, quiet=True)
        except ValueError:
            pass  # recorded in the run's summary.json, compared below
    return summaries, bdirs, pdirs


# ---------------------------------------------------------------------------------------------
# Whole runs against the plain trainer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batchnorm", [True, False], ids=["batchnorm", "no-batchnorm"])
def test_mixed_group_equals_plain_runs(tmp_path, batchnorm):
    configs = [make(*ov, f"model.options.batchnorm={str(batchnorm).lower()}") for ov in MIXED]
    assert supports_batching(configs)
    summaries, bdirs, pdirs = run_both(configs, tmp_path, checkpoint_interval=0.0)
    for summary, bdir, pdir in zip(summaries, bdirs, pdirs):
        assert summary["status"] == "completed" and summary["epochs"] == 3
        assert summary == json.loads((bdir / "summary.json").read_text())
        assert_same_run(bdir, pdir)
    rows = read_metrics(bdirs[2])  # BIV records ebs and eps, the cutoff its kept fraction
    assert rows[0]["eps"] == pytest.approx(0.5) and 1 <= rows[0]["ebs"] <= 64
    assert 0 < read_metrics(bdirs[4])[0]["kept_fraction"] < 1
    env = json.loads((bdirs[0] / "environment.json").read_text())
    assert env["training"] == {"batched": True, "group_size": len(configs)}


@pytest.mark.parametrize(
    "setup",
    [
        ["optimizer.name=sgd", "optimizer.momentum=0.9", "optimizer.weight_decay=0.01", "schedule.name=step",
         "schedule.step_size=1", "schedule.gamma=0.5", "train.eval_every=3", "train.eval_batch_size=16"],
        ["optimizer.name=adamw", "optimizer.weight_decay=0.1", "schedule.name=cosine", "train.drop_last=true",
         "train.shuffle=false", "data.val_size=0"],
    ],
    ids=["sgd-step-eval-every-3", "adamw-cosine-no-shuffle-no-val"],
)
def test_optimizers_schedules_cadence_and_data_seeds_equal_plain_runs(tmp_path, setup):
    runs = [["seed=7", "loss.name=biv", "loss.eps=0.2"], ["seed=7", "seeds.data=11", "loss.name=iv", "loss.eps=0.1"],
            ["seed=8", "loss.name=cutoff", "loss.threshold=1.0", "lds.bins=8"]]
    configs = [make(*ov, *setup) for ov in runs]
    summaries, bdirs, pdirs = run_both(configs, tmp_path, checkpoint_interval=0.0)
    assert [s["status"] for s in summaries] == ["completed"] * 3
    for bdir, pdir in zip(bdirs, pdirs):
        assert_same_run(bdir, pdir)


@pytest.mark.skipif(
    not os.environ.get("HETREG_DATA") or not (Path(os.environ.get("HETREG_DATA", ".")) / "wine-quality").is_dir(),
    reason="needs the Wine Quality files: set HETREG_DATA to the shared data folder",
)
def test_wine_preset_group_equals_plain_runs(tmp_path):
    wine = {**BASE, "data": {"name": "wine", "train_size": 300, "test_size": 200, "val_fraction": 0.1},
            "model": {"name": "mlp", "options": {"preset": "wine"}}, "train": {"epochs": 2, "batch_size": 64, "num_threads": 1}}
    configs = [make(f"seed={i}", f"loss.name={loss}", MIXTURE, base=wine) for i, loss in enumerate(["mse", "biv", "cutoff"])]
    _, bdirs, pdirs = run_both(configs, tmp_path)
    for bdir, pdir in zip(bdirs, pdirs):
        assert_same_run(bdir, pdir)


def test_sizes_that_misalign_slices_of_stacked_tensors_equal_plain_runs(tmp_path):
    # 5 features, batches of 30 and evaluation chunks of 7 rows: a run's batch or chunk inside one
    # stacked tensor would start off a 64-byte boundary, where BLAS rounds differently
    odd = ["data.options.d=5", "data.options.n=257", "train.batch_size=30", "train.eval_batch_size=7",
           "model.options.hidden=[20, 10]"]
    configs = [make(*ov, *odd) for ov in MIXED[:5]]
    _, bdirs, pdirs = run_both(configs, tmp_path)
    for bdir, pdir in zip(bdirs, pdirs):
        assert_same_run(bdir, pdir)


def test_a_group_at_two_threads_equals_the_runs_alone_at_two_threads(tmp_path):
    # with several threads too, each run's matrix products are its own calls
    configs = [make(*ov, "train.num_threads=2", "train.batch_size=32") for ov in MIXED[:4]]
    _, bdirs, pdirs = run_both(configs, tmp_path)
    for bdir, pdir in zip(bdirs, pdirs):
        assert_same_run(bdir, pdir)


def test_runs_evaluated_by_their_own_models_equal_plain_runs(tmp_path, monkeypatch):
    # the fallback when the runs' evaluation splits cannot be stacked: each run's own module predicts
    monkeypatch.setattr(batched._Group, "predict_all", lambda self: None)
    configs = [make(*ov, "train.eval_batch_size=20") for ov in MIXED[:3]]
    _, bdirs, pdirs = run_both(configs, tmp_path)
    for bdir, pdir in zip(bdirs, pdirs):
        assert_same_run(bdir, pdir)


def test_a_diverging_run_fails_alone_with_the_plain_message(tmp_path):
    # labels with noise variance 1e38 give an infinite squared error at the first step
    huge = "noise.distribution={kind: constant, value: 1.0e+38}"
    configs = [make("seed=0"), make("seed=1", huge), make("seed=2", "loss.name=biv")]
    summaries, bdirs, pdirs = run_both(configs, tmp_path)
    assert [s["status"] for s in summaries] == ["completed", "failed", "completed"]
    assert "training loss became inf at epoch 1, step 1" in summaries[1]["message"]
    assert not (bdirs[1] / "last.pt").exists()
    for bdir, pdir in zip(bdirs, pdirs):
        assert_same_run(bdir, pdir)


def test_zero_variance_with_zero_eps_is_left_to_the_plain_trainer(tmp_path):
    # the plain IV loss raises on a zero variance with eps = 0; the group hands that run to it
    zero = "noise.distribution={kind: constant, value: 0.0}"
    configs = [make("seed=0", "loss.name=iv", "loss.eps=0", zero), make("seed=1", "loss.name=biv")]
    summaries, bdirs, pdirs = run_both(configs, tmp_path)
    assert summaries[0]["status"] == "failed" and "ValueError" in summaries[0]["message"]
    assert "eps" in summaries[0]["message"]
    assert summaries[1]["status"] == "completed"
    assert "training" not in json.loads((bdirs[0] / "environment.json").read_text())
    for bdir, pdir in zip(bdirs, pdirs):
        assert_same_run(bdir, pdir)


def test_setup_error_is_recorded_and_the_others_train(tmp_path):
    # the cutoff loss needs label variances: without noise its setup fails, as in the plain trainer
    configs = [make("seed=0", "loss.name=cutoff", "noise.distribution=null"), make("seed=1")]
    summaries = run_batched(configs, [tmp_path / "a", tmp_path / "b"])
    assert summaries[0]["status"] == "failed" and "needs the noise variance" in summaries[0]["message"]
    assert summaries[1]["status"] == "completed"
    with pytest.raises(ValueError, match="needs the noise variance"):
        run_experiment(configs[0], tmp_path / "plain", quiet=True)
    plain = json.loads((tmp_path / "plain" / "summary.json").read_text())
    assert_close(summaries[0], plain, "summary")


def test_an_interrupted_group_resumes_with_the_plain_trainer(tmp_path, monkeypatch):
    configs = [make(*ov) for ov in MIXED[:3]]
    original = batched._Member.evaluate

    def interrupt_in_epoch_3(self, epoch, epoch_end):
        if epoch == 3:
            raise KeyboardInterrupt
        return original(self, epoch, epoch_end)

    monkeypatch.setattr(batched._Member, "evaluate", interrupt_in_epoch_3)
    dirs = [tmp_path / f"run-{i}" for i in range(3)]
    with pytest.raises(KeyboardInterrupt):
        run_batched(configs, dirs, checkpoint_interval=math.inf)  # last.pt comes from the epoch-2 snapshot
    monkeypatch.undo()
    for d in dirs:
        summary = json.loads((d / "summary.json").read_text())
        assert summary["status"] == "interrupted" and summary["epochs"] == 2
        assert load_checkpoint(d / "last.pt")["state"]["epoch"] == 2
    for i, (cfg, d) in enumerate(zip(configs, dirs)):
        resumed = run_experiment(None, d, resume=True, quiet=True)
        assert resumed["status"] == "completed"
        run_experiment(cfg, tmp_path / f"plain-{i}", quiet=True)
        assert_same_run(d, tmp_path / f"plain-{i}")


# ---------------------------------------------------------------------------------------------
# Which runs batch together
# ---------------------------------------------------------------------------------------------


def test_supports_batching_accepts_runs_differing_in_seed_noise_and_loss():
    assert supports_batching([make(*ov) for ov in MIXED])
    assert supports_batching([make("tracking.trackers=[jsonl]", "train.num_threads=2", "name=other"), make()])
    assert supports_batching([make()])


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (["model.options.dropout=0.1"], "dropout"),
        (["loss.name=gaussian_nll"], "not batched"),
        (["loss.name=biv", "loss.eps=auto", "loss.min_ebs=0.5"], "eps='auto'"),
        (["loss.name=bmc"], "not batched"),
        (["optimizer.lr=0.1"], "optimizer"),
        (["train.epochs=4"], "train"),
        (["model.options.hidden=[8]"], "model"),
        (["schedule.name=cosine"], "schedule"),
        (["data.options.n=310"], "data"),
    ],
)
def test_supports_batching_rejects(overrides, reason):
    configs = [make(), make(*overrides)]
    assert not supports_batching(configs)
    assert reason in batching_problem(configs)
    with pytest.raises(ValueError, match="cannot be trained as one batched group"):
        run_batched(configs, ["unused-a", "unused-b"])


def test_batch_groups_partitions_in_order_and_caps_the_size():
    configs = [make("seed=0"), make("seed=1", "optimizer.lr=0.1"), make("seed=2"), make("model.options.dropout=0.2"),
               make("seed=3", "loss.name=biv"), make("seed=4", "optimizer.lr=0.1"), make("seed=5")]
    assert batch_groups(configs) == [[0, 2, 4, 6], [1, 5], [3]]
    assert batch_groups(configs, max_size=3) == [[0, 2], [4, 6], [1, 5], [3]]
    for group in batch_groups(configs):
        assert supports_batching([configs[i] for i in group]) == (group != [3])
    with pytest.raises(ValueError, match="max_size"):
        batch_groups(configs, max_size=0)


def test_run_batched_refuses_occupied_or_mismatched_directories(tmp_path):
    run_experiment(make("train.epochs=1"), tmp_path / "taken", quiet=True)
    with pytest.raises(RunExistsError):
        run_batched([make(), make("seed=1")], [tmp_path / "free", tmp_path / "taken"])
    assert not (tmp_path / "free").exists()
    with pytest.raises(ValueError, match="one run directory per configuration"):
        run_batched([make()], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match="distinct"):
        run_batched([make(), make("seed=1")], [tmp_path / "same", tmp_path / "same"])


# ---------------------------------------------------------------------------------------------
# The pieces: stacked model, losses, records
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [32, 30], ids=["fused", "run-by-run"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", [{"preset": "wine"}, {"hidden": [6], "batchnorm": False}, {"hidden": []}])
def test_batched_mlp_equals_its_modules_in_both_modes(dtype, options, batch, threads):
    # one pass for all runs for aligned batches (at any thread count); else run by run
    assert BatchedMLP.fused(batch, torch.finfo(dtype).bits // 8) == (batch == 32)
    torch.manual_seed(0)
    models = [build_model("mlp", (5,), **options).to(dtype) for _ in range(3)]
    stacked = BatchedMLP(models)
    x = torch.randn(3, batch, 5, dtype=dtype)
    y = torch.randn(3, batch, dtype=dtype)
    stacked.train()
    out = stacked(x)
    ((out - y) ** 2).sum().backward()
    for k, m in enumerate(models):
        m.train()
        ref = m(x[k])
        assert torch.equal(out[k], ref[:, 0])
        ((ref[:, 0] - y[k]) ** 2).sum().backward()
        for key, tensor in m.state_dict().items():  # running statistics updated alike
            assert torch.equal(stacked.member_state(k)[key], tensor), key
        for name, p in m.named_parameters():
            assert torch.equal(stacked.stacked_grad(name)[k], p.grad), name
    stacked.eval()
    for m in models:
        m.eval()
    out = stacked(x)
    for k, m in enumerate(models):
        assert torch.equal(out[k], m(x[k])[:, 0])
    assert [n for n, _ in stacked.named_parameters()] == [n.replace(".", "__") for n, _ in models[0].named_parameters()]


def test_batched_mlp_rejects_what_it_cannot_stack():
    with pytest.raises(ValueError, match="mean head"):
        BatchedMLP([build_model("mlp", (3,), head="mean_var")])
    with pytest.raises(ValueError, match="Dropout"):
        BatchedMLP([build_model("mlp", (3,), dropout=0.5)])
    with pytest.raises(ValueError, match="one architecture"):
        BatchedMLP([build_model("mlp", (3,), hidden=[4]), build_model("mlp", (3,), hidden=[5])])
    with pytest.raises(ValueError, match="shape"):
        BatchedMLP([build_model("mlp", (3,))])(torch.zeros(2, 4, 3))


def _plain_loss(kind: int, pred, target, var, eps, tau, w):
    if kind == 0:
        return mse_loss(pred, target, weight=w)
    if kind == 1:
        return iv_loss(pred, target, var, eps, weight=w)
    if kind == 2:
        return biv_loss(pred, target, var, eps, weight=w)
    return cutoff_mse_loss(pred, target, var, tau, weight=w)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "lds-weights"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_member_losses_equal_the_plain_losses_and_their_gradients(weighted, dtype):
    g = torch.Generator().manual_seed(5)
    kinds = [0, 1, 2, 3, 2, 3, 1, 0]
    k, b = len(kinds), 40
    pred = torch.randn(k, b, generator=g, dtype=dtype, requires_grad=True)
    target = torch.randn(k, b, generator=g, dtype=dtype)
    var = torch.rand(k, b, generator=g, dtype=dtype) * 2
    var[5] = 5.0  # a cutoff run keeping nothing: a zero loss with zero gradients
    w = torch.rand(k, b, generator=g, dtype=dtype) + 0.5 if weighted else None
    eps = [0.0, 0.1, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0]
    tau = [1.0, 1.0, 1.0, 0.7, 1.0, 1.0, 1.0, 1.0]
    losses = member_losses(
        pred, target, var, kind=torch.tensor(kinds), eps=torch.tensor(eps, dtype=torch.float64).unsqueeze(1),
        threshold=torch.tensor(tau, dtype=dtype).unsqueeze(1), weight=w,
    )
    (grad,) = torch.autograd.grad(losses.sum(), pred)
    for i, kind in enumerate(kinds):
        p = pred[i].detach().clone().requires_grad_(True)
        ref = _plain_loss(kind, p, target[i], var[i], eps[i], tau[i], None if w is None else w[i])
        (ref_grad,) = torch.autograd.grad(ref, p)
        assert torch.equal(losses[i].detach(), ref.detach()), (i, kind)
        assert torch.equal(grad[i], ref_grad), (i, kind)
    # independent float64 formulas
    e2 = (pred.detach() - target).double() ** 2
    u = torch.ones_like(e2) if w is None else w.double()
    v = var.double()
    assert losses[2].item() == pytest.approx(((u[2] / (v[2] + 0.3)) * e2[2]).sum().item() / (u[2] / (v[2] + 0.3)).sum().item(), rel=1e-5)
    kept = v[3] < 0.7
    assert losses[3].item() == pytest.approx((u[3] * e2[3])[kept].sum().item() / kept.sum().item(), rel=1e-5)
    assert losses[5].item() == 0.0 and torch.count_nonzero(grad[5]) == 0


def test_member_records_equal_the_plain_loss_records():
    g = torch.Generator().manual_seed(2)
    var = torch.rand(4, 30, generator=g) + 0.01
    w = torch.rand(4, 30, generator=g) + 0.1
    kind = torch.tensor([2, 3, 2, 0])
    eps = torch.tensor([0.1, 0.0, 0.0, 0.0], dtype=torch.float64).unsqueeze(1)
    tau = torch.tensor([1.0, 0.4, 1.0, 1.0]).unsqueeze(1)
    rec = member_records(var, kind=kind, eps=eps, threshold=tau, weight=w)
    from hetreg.losses import BIVLoss, CutoffMSELoss

    pred, target = torch.zeros(30), torch.zeros(30)
    biv = BIVLoss(eps=0.1)
    biv(pred, target, var[0], weight=w[0])
    assert rec["ebs"][0].item() == pytest.approx(biv.records["ebs"], rel=1e-12)  # float64 sums in another order
    cutoff = CutoffMSELoss(threshold=0.4)
    cutoff(pred, target, var[1])
    assert rec["kept_fraction"][1].item() == cutoff.records["kept_fraction"]
    # independent: the EBS of unweighted inverse-variance weights with eps = 0
    plain = member_records(var, kind=kind, eps=eps, threshold=tau)
    assert plain["ebs"][2].item() == pytest.approx(float(effective_batch_size(var[2].double(), 0.0)), rel=1e-12)
    inv = 1.0 / var[2].double().numpy()
    assert plain["ebs"][2].item() == pytest.approx(inv.sum() ** 2 / (inv**2).sum(), rel=1e-12)
    assert set(member_records(var, kind=torch.tensor([0, 1, 0, 1]), eps=eps, threshold=tau)) == set()


def test_config_hash_and_yaml_are_those_of_the_plain_trainer(tmp_path):
    cfg = make("seed=9", "loss.name=biv", "loss.eps=0.25")
    (summary,) = run_batched([cfg], [tmp_path / "r"])
    assert summary["config_hash"] == config_hash(cfg)
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["seeds"]["model"] == cfg.seed_for("model")
    assert np.isfinite(summary["final"]["test_mse"])
