"""End-to-end tests of ``run_experiment`` on tiny data: run store, evaluation, resume, failures, seeds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import hetreg.train.runner as runner
from hetreg.data import Standardizer, load_dataset
from hetreg.experiments.config import config_hash, load_config
from hetreg.losses import build_loss
from hetreg.losses.base import RegressionLoss
from hetreg.models import build_model
from hetreg.train import RunExistsError, run_experiment
from hetreg.train.files import load_checkpoint

from .conftest import IMAGE, NOISE, SMALL_CNN, TABULAR, Interrupt, make_config, read_metrics, without_elapsed

METRIC_KEYS = (
    "epoch",
    "step",
    "train_loss",
    "test_mse",
    "test_mse_raw",
    "test_rmse_raw",
    "test_mae_raw",
    "val_mse",
    "val_mse_raw",
    "elapsed",
)


def rebuild_model(cfg, input_shape, state):
    model = build_model(cfg.model.name, input_shape, head=cfg.resolved().model.head, **cfg.model.options)
    model.load_state_dict(state)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Run store
# ---------------------------------------------------------------------------------------------


def test_run_writes_the_run_store(tmp_path):
    cfg = make_config()
    run_dir = tmp_path / "run"
    summary = run_experiment(cfg, run_dir, quiet=True)

    for name in ("config.yaml", "environment.json", "standardizer.json", "metrics.jsonl", "last.pt", "best.pt", "summary.json"):
        assert (run_dir / name).is_file(), name
    assert summary == json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 4 and summary["steps"] == 4 * 3
    assert load_config(run_dir / "config.yaml") == cfg.resolved()
    assert summary["config_hash"] == config_hash(cfg)
    env = json.loads((run_dir / "environment.json").read_text())
    assert {"python", "torch", "numpy", "hetreg", "platform", "git_commit"} <= set(env)

    # standardizer.json holds the clean training-label statistics (independent numpy computation)
    data = load_dataset(TABULAR, seed=cfg.seed_for("data"))
    std = json.loads((run_dir / "standardizer.json").read_text())
    y = data.train.y.numpy().astype(np.float64)
    assert std["y_mean"] == pytest.approx(y.mean(), rel=1e-12)
    assert std["y_std"] == pytest.approx(y.std(ddof=1), rel=1e-12)
    np.testing.assert_allclose(std["x_mean"], data.train.x.numpy().astype(np.float64).mean(0), rtol=1e-6, atol=1e-7)

    rows = read_metrics(run_dir)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert [r["step"] for r in rows] == [3, 6, 9, 12]
    for row in rows:
        assert set(METRIC_KEYS) <= set(row)
        assert row["test_mse_raw"] == pytest.approx(row["test_mse"] * std["y_std"] ** 2, rel=1e-5)
        assert row["test_rmse_raw"] == pytest.approx(math.sqrt(row["test_mse_raw"]), rel=1e-12)
        assert row["val_mse_raw"] == pytest.approx(row["val_mse"] * std["y_std"] ** 2, rel=1e-5)
    assert summary["final"] == rows[-1]
    best = min(rows, key=lambda r: r["val_mse"])
    assert summary["best"] == best

    # the final metrics are those of the model in last.pt, recomputed by hand (float64, numpy)
    ckpt = load_checkpoint(run_dir / "last.pt")
    model = rebuild_model(cfg, (4,), ckpt["model"])
    x_test = (data.test.x.double() - data.train.x.double().mean(0)) / data.train.x.double().std(0)
    with torch.no_grad():
        pred_z = model(x_test.float())[:, 0].double().numpy()
    pred_raw = pred_z * std["y_std"] + std["y_mean"]
    y_test = data.test.y.double().numpy()
    assert rows[-1]["test_mse_raw"] == pytest.approx(np.mean((pred_raw - y_test) ** 2), rel=1e-5)
    assert rows[-1]["test_mae_raw"] == pytest.approx(np.mean(np.abs(pred_raw - y_test)), rel=1e-5)
    # best.pt holds the model of the best validation evaluation
    best_ckpt = load_checkpoint(run_dir / "best.pt")
    assert best_ckpt["record"] == best


def test_training_reduces_the_test_error(tmp_path):
    summary = run_experiment(make_config("train.epochs=30"), tmp_path / "run", quiet=True)
    rows = read_metrics(tmp_path / "run")
    assert summary["final"]["test_mse"] < 0.2 * rows[0]["test_mse"]


def test_existing_run_directory_is_refused_and_left_alone(tmp_path):
    run_dir = tmp_path / "run"
    run_experiment(make_config("train.epochs=1"), run_dir, quiet=True)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    with pytest.raises(RunExistsError, match="already holds a run.*hetreg train --resume "):
        run_experiment(make_config("train.epochs=2"), run_dir, quiet=True)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_an_empty_existing_directory_is_accepted(tmp_path):
    (tmp_path / "run").mkdir()
    assert run_experiment(make_config("train.epochs=1"), tmp_path / "run", quiet=True)["status"] == "completed"


def test_resume_of_a_completed_run_returns_its_summary(tmp_path):
    cfg = make_config("train.epochs=1")
    summary = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert run_experiment(cfg, tmp_path / "run", resume=True, quiet=True) == summary
    assert run_experiment(None, tmp_path / "run", resume=True, quiet=True) == summary


def test_resume_refuses_another_configuration_and_an_empty_directory(tmp_path):
    run_experiment(make_config("train.epochs=1"), tmp_path / "run", quiet=True)
    with pytest.raises(ValueError, match="differs from the one stored"):
        run_experiment(make_config("train.epochs=1", "optimizer.lr=0.5"), tmp_path / "run", resume=True, quiet=True)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        run_experiment(make_config(), tmp_path / "other", resume=True, quiet=True)


def test_the_callers_global_rng_is_left_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run_experiment(make_config("train.epochs=1", "model.options={hidden: [8], dropout: 0.5}"), tmp_path / "run", quiet=True)
    assert torch.equal(torch.rand(3), expected)


def test_augmentation_of_tabular_data_is_refused(tmp_path):
    with pytest.raises(ValueError, match="applies to image datasets only"):
        run_experiment(make_config("train.augment=hflip"), tmp_path / "run", quiet=True)


def test_num_threads_is_set_during_the_run_and_restored(tmp_path):
    before = torch.get_num_threads()
    seen = []
    run_experiment(
        make_config("train.epochs=1", "train.num_threads=1"),
        tmp_path / "run",
        quiet=True,
        callbacks=[lambda record: seen.append(torch.get_num_threads())],
    )
    assert seen == [1]
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def test_evaluation_runs_in_eval_mode_without_gradients_and_keeps_batchnorm_stats(tmp_path, monkeypatch):
    calls = []
    real_predict = runner.predict

    def spy(model, x, **kwargs):
        bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
        assert bn, "the test model must contain BatchNorm"
        stats = [(m.running_mean.clone(), m.running_var.clone(), int(m.num_batches_tracked)) for m in bn]
        modes = []
        hook = model.register_forward_pre_hook(lambda mod, args: modes.append((mod.training, torch.is_grad_enabled())))
        try:
            out = real_predict(model, x, **kwargs)
        finally:
            hook.remove()
        for m, (mean, var, count) in zip(bn, stats):
            assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)
            assert int(m.num_batches_tracked) == count
        assert model.training, "train mode must be restored after evaluation"
        calls.append(modes)
        return out

    monkeypatch.setattr(runner, "predict", spy)
    cfg = make_config("train.epochs=2", "model.options={hidden: [16, 8], batchnorm: true}", "train.eval_batch_size=10")
    run_experiment(cfg, tmp_path / "run", quiet=True)
    assert len(calls) == 4  # test and validation, twice
    assert all(modes and all(mode == (False, False) for mode in modes) for modes in calls)
    assert all(len(modes) == 4 for modes in calls)  # 32 rows in batches of 10


def test_eval_every_n_steps_averages_the_training_loss_over_the_window(tmp_path):
    # lr so small that the model does not move: each step's loss is the initial model's batch MSE
    cfg = make_config("train.epochs=2", "train.eval_every=2", "train.shuffle=false", "optimizer.lr=1e-12")
    run_experiment(cfg, tmp_path / "run", quiet=True)
    rows = read_metrics(tmp_path / "run")
    # 96 training rows in batches of 32: 3 steps per epoch, 6 in all; evaluations at 2, 4, 6 (end)
    assert [(r["epoch"], r["step"], r["epoch_end"]) for r in rows] == [(1, 2, False), (2, 4, False), (2, 6, True)]

    data = load_dataset(TABULAR, seed=cfg.seed_for("data"))
    std = Standardizer.fit(data)
    torch.manual_seed(cfg.seed_for("model"))
    model = build_model("mlp", (4,), hidden=[16, 8])
    x = std.transform_x(data.train.x).double()
    y = std.transform_y(data.train.y).double()
    model = model.double()
    with torch.no_grad():
        losses = [float(((model(x[s : s + 32])[:, 0] - y[s : s + 32]) ** 2).mean()) for s in (0, 32, 64)] * 2
    expected = [np.mean(losses[0:2]), np.mean(losses[2:4]), np.mean(losses[4:6])]
    np.testing.assert_allclose([r["train_loss"] for r in rows], expected, rtol=1e-5)


def test_empty_validation_split_has_no_best_checkpoint(tmp_path):
    summary = run_experiment(make_config("train.epochs=2", "data.val_size=0"), tmp_path / "run", quiet=True)
    assert summary["status"] == "completed"
    assert summary["best"] is None and not (tmp_path / "run" / "best.pt").exists()
    assert all(r["val_mse"] is None for r in read_metrics(tmp_path / "run"))  # NaN is written as null


# ---------------------------------------------------------------------------------------------
# Kill and resume
# ---------------------------------------------------------------------------------------------


RESUME_CASES = {
    "epoch-end": ("train.eval_every=epoch", 6),  # stop after epoch 2 (3 steps per epoch)
    "mid-epoch": ("train.eval_every=2", 8),  # stop inside epoch 3: resume replays from the end of epoch 2
}


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_kill_and_resume_ends_with_the_same_metrics(tmp_path, case):
    eval_every, stop_step = RESUME_CASES[case]
    cfg = make_config(
        "train.epochs=5",
        eval_every,
        NOISE,
        "loss.name=biv",
        "loss.eps=0.3",
        "model.options={hidden: [16, 8], batchnorm: true, dropout: 0.2}",
        "schedule.name=cosine",
        "train.drop_last=false",
    )
    straight = run_experiment(cfg, tmp_path / "straight", quiet=True)

    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, tmp_path / "resumed", quiet=True, callbacks=[Interrupt(stop_step)])
    interrupted = json.loads((tmp_path / "resumed" / "summary.json").read_text())
    assert interrupted["status"] == "interrupted" and "resume" in interrupted["message"]
    assert interrupted["epochs"] == 2
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["state"]["epoch"] == 2

    resumed = run_experiment(cfg, tmp_path / "resumed", resume=True, quiet=True)
    assert resumed["status"] == "completed"
    assert without_elapsed(resumed["final"]) == without_elapsed(straight["final"])
    assert without_elapsed(resumed["best"]) == without_elapsed(straight["best"])
    assert resumed["steps"] == straight["steps"]
    rows_a = [without_elapsed(r) for r in read_metrics(tmp_path / "straight")]
    rows_b = [without_elapsed(r) for r in read_metrics(tmp_path / "resumed")]
    assert rows_a == rows_b
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_interrupt_before_the_first_checkpoint_resumes_from_scratch(tmp_path):
    cfg = make_config("train.epochs=2", "train.eval_every=1")
    straight = run_experiment(cfg, tmp_path / "a", quiet=True)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, tmp_path / "b", quiet=True, callbacks=[Interrupt(1)])
    assert not (tmp_path / "b" / "last.pt").exists()
    resumed = run_experiment(None, tmp_path / "b", resume=True, quiet=True)
    assert without_elapsed(resumed["final"]) == without_elapsed(straight["final"])


# ---------------------------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------------------------


class NanAfter(RegressionLoss):
    """Wraps a loss and returns NaN from call ``after + 1`` on."""

    def __init__(self, inner: RegressionLoss, after: int) -> None:
        super().__init__()
        self.inner = inner
        self.after = after
        self.calls = 0

    def forward(self, pred, target, weight=None):
        self.calls += 1
        loss = self.inner(pred, target, weight=weight)
        return loss * float("nan") if self.calls > self.after else loss


def test_nan_loss_stops_with_status_failed_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = make_config("train.epochs=5")
    reference = make_config("train.epochs=2")  # same seeds: its last.pt is the state after epoch 2
    run_experiment(reference, tmp_path / "ref", quiet=True)

    monkeypatch.setattr(runner, "_build_loss", lambda cfg, prep: NanAfter(build_loss("mse"), after=7))
    summary = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert summary["status"] == "failed"
    assert "nan" in summary["message"] and "epoch 3, step 8" in summary["message"] and "last.pt" in summary["message"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"
    assert summary["error"] == summary["message"]
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    ref = load_checkpoint(tmp_path / "ref" / "last.pt")
    assert ckpt["state"]["epoch"] == 2
    for key in ref["model"]:
        assert torch.equal(ckpt["model"][key], ref["model"][key]), key
    assert len(read_metrics(tmp_path / "run")) == 2


def test_a_variance_loss_without_variances_fails_clearly(tmp_path):
    with pytest.raises(ValueError, match="needs the noise variance of every training label"):
        run_experiment(make_config("loss.name=biv"), tmp_path / "run", quiet=True)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"


# ---------------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------------


def prepared(*overrides):
    return runner._prepare(make_config(NOISE, *overrides).resolved())


def test_the_model_seed_changes_neither_the_split_nor_the_noise():
    a, b = prepared("seeds.model=1"), prepared("seeds.model=2")
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert torch.equal(a.var_train, b.var_train) and torch.equal(a.val.y, b.val.y)
    cfg_a, cfg_b = make_config("seeds.model=1"), make_config("seeds.model=2")
    torch.manual_seed(0)
    m_a = runner._build_model(cfg_a.resolved(), (4,))
    m_b = runner._build_model(cfg_b.resolved(), (4,))
    assert not torch.equal(m_a.head.linear.weight, m_b.head.linear.weight)


def test_the_noise_seed_changes_only_the_noise():
    a, b = prepared("seeds.noise=1"), prepared("seeds.noise=2")
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.y_train, b.y_train) and not torch.equal(a.var_train, b.var_train)
    assert not torch.equal(a.val.y, b.val.y)


def test_the_data_seed_changes_the_split():
    a, b = prepared("seeds.data=1"), prepared("seeds.data=2")
    assert not torch.equal(a.x_train, b.x_train)


def test_noise_goes_on_train_and_validation_labels_in_raw_units_and_the_test_labels_stay_clean():
    cfg = make_config(NOISE).resolved()
    prep = runner._prepare(cfg)
    data = load_dataset(TABULAR, seed=cfg.seed_for("data"))
    std = prep.standardizer
    assert torch.allclose(prep.test.y_raw, data.test.y)
    assert not torch.allclose(prep.val.y_raw, data.val.y)
    assert not torch.allclose(prep.y_train_raw, data.train.y)
    # raw residuals have the drawn raw variances: z-scores of the noise are standard normal-ish
    resid = (prep.y_train_raw - data.train.y).double()
    raw_var = prep.var_train.double() * std.y_std**2
    assert raw_var.min() >= 0.5 - 1e-6 and raw_var.max() <= 4.0 + 1e-6
    z = resid / raw_var.sqrt()
    assert abs(float(z.mean())) < 0.5 and 0.6 < float(z.std()) < 1.4
    no_val_noise = runner._prepare(make_config(NOISE, "noise.noisy_val=false").resolved())
    assert torch.allclose(no_val_noise.val.y_raw, data.val.y)


# ---------------------------------------------------------------------------------------------
# Losses: records, units, learnable parameters, priors, LDS
# ---------------------------------------------------------------------------------------------


def full_batch(*overrides):
    return make_config("train.batch_size=96", "train.epochs=1", *overrides)


def test_biv_records_ebs_and_eps_of_the_batch(tmp_path):
    cfg = full_batch(NOISE, "loss.name=biv", "loss.eps=0.05")
    run_experiment(cfg, tmp_path / "run", quiet=True)
    (row,) = read_metrics(tmp_path / "run")
    prep = runner._prepare(cfg.resolved())
    w = 1.0 / (prep.var_train.double() + 0.05)  # eps in normalised units, as configured
    assert row["eps"] == 0.05
    assert row["ebs"] == pytest.approx(float(w.sum() ** 2 / (w**2).sum()), rel=1e-6)


def test_cutoff_threshold_is_given_in_raw_units(tmp_path):
    # raw variances 0.5 or 2.0; the raw threshold 1.0 keeps exactly the 0.5 ones. Unscaled, in
    # normalised units (s_y ≈ 3.5), it would keep everything.
    mixture = (
        "noise.distribution={kind: mixture, weights: [0.5, 0.5], "
        "components: [{kind: constant, value: 0.5}, {kind: constant, value: 2.0}]}"
    )
    cfg = full_batch(mixture, "loss.name=cutoff", "loss.threshold=1.0")
    run_experiment(cfg, tmp_path / "run", quiet=True)
    (row,) = read_metrics(tmp_path / "run")
    prep = runner._prepare(cfg.resolved())
    raw = prep.var_train.double() * prep.standardizer.y_std**2
    expected = float((raw < 1.0).double().mean())
    assert 0.2 < expected < 0.8 and prep.standardizer.y_std > 2
    assert row["kept_fraction"] == pytest.approx(expected, abs=1e-12)


def test_balanced_mse_sigma_is_learned_with_its_own_lr_outside_the_schedule(tmp_path):
    cfg = make_config(
        "train.epochs=3",
        "loss.name=bmc",
        "loss.init_noise_sigma=0.7",
        "loss.sigma_lr=0.05",
        "schedule.name=step",
        "schedule.step_size=1",
        "schedule.gamma=0.5",
    )
    run_experiment(cfg, tmp_path / "run", quiet=True)
    rows = read_metrics(tmp_path / "run")
    assert [r["lr"] for r in rows] == pytest.approx([0.01, 0.005, 0.0025])
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    groups = ckpt["optimizer"]["param_groups"]
    assert len(groups) == 2
    assert groups[1]["no_schedule"] is True and groups[1]["lr"] == 0.05
    sigma = float(ckpt["loss"]["noise_sigma"].abs())
    assert sigma != pytest.approx(0.7, abs=1e-4)  # it was learned
    assert rows[-1]["sigma"] == pytest.approx(sigma, rel=0.2)


def test_bni_prior_bins_are_raw_label_units(tmp_path):
    cfg = full_batch("loss.name=bni", "loss.prior_bin_width=2.0").resolved()
    prep = runner._prepare(cfg)
    loss = runner._build_loss(cfg, prep)
    centers_raw = prep.standardizer.inverse_y(loss.prior_centers.double())
    np.testing.assert_allclose(centers_raw.numpy() / 2.0, np.round(centers_raw.numpy() / 2.0), atol=1e-6)
    # the histogram weights count the (raw) training labels in each 2-unit bin centred on 2k
    y = prep.y_train_raw.double().numpy()
    counts = {round(float(c)): np.sum(np.floor(y / 2.0 + 0.5) * 2.0 == round(float(c))) for c in centers_raw[:, 0]}
    total = sum(counts.values())
    assert total == len(y)
    np.testing.assert_allclose(
        loss.prior_weights.double().numpy(), [counts[round(float(c))] / total for c in centers_raw[:, 0]], rtol=1e-9
    )
    assert run_experiment(cfg, tmp_path / "run", quiet=True)["status"] == "completed"


def test_gai_runs_with_a_fitted_prior(tmp_path):
    cfg = full_batch("loss.name=gai", "loss.prior_components=2")
    summary = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert summary["status"] == "completed"
    assert load_checkpoint(tmp_path / "run" / "last.pt")["loss"]["prior_means"].shape == (2, 1)


def test_lds_inverse_weights_without_smoothing_are_inverse_bin_counts():
    # two bins split at the label median (raw units): inverse weights N / (2 c_b), mean 1
    cfg0 = make_config().resolved()
    y = runner._prepare(cfg0).y_train_raw.double().numpy()
    cut = float(np.sort(y)[30]) + 1e-4
    edges = f"[{y.min() - 1:.6f}, {cut:.6f}, {y.max() + 1:.6f}]"
    cfg = make_config("lds.scheme=inverse", "lds.kernel=none", f"lds.edges={edges}").resolved()
    prep = runner._prepare(cfg)
    low = y < cut
    c_low, c_high = int(low.sum()), int((~low).sum())
    assert (c_low, c_high) == (31, 65)
    raw = np.where(low, 1.0 / c_low, 1.0 / c_high)
    np.testing.assert_allclose(prep.w_train.double().numpy(), raw * len(y) / raw.sum(), rtol=1e-6)


def test_lds_weights_reach_the_loss(tmp_path, monkeypatch):
    seen = []
    real = runner._build_loss

    def spy_build(cfg, prep):
        loss = real(cfg, prep)
        loss.register_forward_pre_hook(lambda mod, args, kwargs: seen.append(kwargs.get("weight")), with_kwargs=True)
        return loss

    monkeypatch.setattr(runner, "_build_loss", spy_build)
    cfg = full_batch("lds.bins=5")
    run_experiment(cfg, tmp_path / "run", quiet=True)
    assert len(seen) == 1 and seen[0] is not None and seen[0].shape == (96,)
    assert float(seen[0].mean()) == pytest.approx(1.0, rel=1e-5)


def test_gaussian_nll_uses_a_variance_head(tmp_path):
    summary = run_experiment(make_config("loss.name=gaussian_nll", "train.epochs=2"), tmp_path / "run", quiet=True)
    assert summary["status"] == "completed"
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["model"]["head"] == "mean_var"



def test_a_variance_head_logs_predictive_metrics_in_raw_units(tmp_path, monkeypatch):
    from scipy import stats

    predicted, passed = [], []
    real_predict, real_metrics = runner.predict, runner.predictive_metrics
    monkeypatch.setattr(runner, "predict", lambda *a, **k: predicted.append(real_predict(*a, **k)) or predicted[-1])
    monkeypatch.setattr(runner, "predictive_metrics", lambda *a, **k: passed.append(a) or real_metrics(*a, **k))
    run_experiment(make_config("loss.name=gaussian_nll", "train.epochs=2"), tmp_path / "run", quiet=True)
    record = read_metrics(tmp_path / "run")[-1]
    std = json.loads((tmp_path / "run" / "standardizer.json").read_text())
    mean, var = predicted[-2]  # the last evaluation: test split, then validation split
    m, v, t = (a.double().numpy() for a in passed[-1])
    np.testing.assert_allclose(m, mean.double().numpy() * std["y_std"] + std["y_mean"], rtol=1e-6)
    np.testing.assert_allclose(v, var.double().numpy() * std["y_std"] ** 2, rtol=1e-6)
    assert record["test_nll_raw"] == pytest.approx(-stats.norm.logpdf(t, m, np.sqrt(v)).mean(), rel=1e-9)
    inside = np.abs(t - m) <= stats.norm.ppf(0.975) * np.sqrt(v)
    assert record["test_coverage_95"] == pytest.approx(inside.mean(), abs=1e-12)
    from scipy.integrate import quad

    def crps(mi, si, yi):  # the integral of (F(z) - 1{z >= y})², split at y
        left = quad(lambda z: stats.norm.cdf(z, mi, si) ** 2, -np.inf, yi)[0]
        return left + quad(lambda z: stats.norm.sf(z, mi, si) ** 2, yi, np.inf)[0]

    expected = np.mean([crps(mi, si, yi) for mi, si, yi in zip(m, np.sqrt(v), t)])
    assert record["test_crps_raw"] == pytest.approx(expected, rel=1e-6)
    assert 0 <= record["test_calibration_error"] <= 0.5
    mse_only = run_experiment(make_config("train.epochs=1"), tmp_path / "mse", quiet=True)
    assert "test_nll_raw" not in mse_only["final"]


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def test_image_runs_normalise_batches_on_the_fly(tmp_path):
    cfg = make_config(*SMALL_CNN, "train.epochs=2", "train.augment=hflip")
    summary = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert summary["status"] == "completed" and summary["data"]["kind"] == "image"
    std = Standardizer.from_dict(json.loads((tmp_path / "run" / "standardizer.json").read_text()))
    data = load_dataset(IMAGE, seed=cfg.seed_for("data"))
    # scalar pixel statistics of the [0, 1]-scaled training images
    pixels = data.train.x.double() / 255.0
    assert float(std.x_mean) == pytest.approx(float(pixels.mean()), rel=1e-5)
    model = rebuild_model(cfg, (3, 8, 8), load_checkpoint(tmp_path / "run" / "last.pt")["model"])
    x = (data.test.x.permute(0, 3, 1, 2).double() / 255.0 - float(pixels.mean())) / float(std.x_std)
    with torch.no_grad():
        pred = model(x.float())[:, 0].double() * std.y_std + std.y_mean
    mse = float(((pred - data.test.y.double()) ** 2).mean())
    assert summary["final"]["test_mse_raw"] == pytest.approx(mse, rel=1e-4)


# ---------------------------------------------------------------------------------------------
# Real data (skipped without the shared data folder)
# ---------------------------------------------------------------------------------------------


def _wine_available() -> bool:
    import os
    from pathlib import Path

    root = os.environ.get("HETREG_DATA")
    return bool(root) and (Path(root) / "wine-quality" / "winequality-red.csv").is_file()


@pytest.mark.skipif(not _wine_available(), reason="needs HETREG_DATA pointing at the shared data folder with wine-quality/")
def test_wine_biv_run_with_the_original_model(tmp_path):
    cfg = make_config(
        "data={name: wine, train_size: 1000, val_size: 200, test_size: 500}",
        "model={name: mlp, options: {preset: wine}}",
        "noise.distribution={kind: uniform, low: 0.0, high: 2.0}",
        "loss.name=biv",
        "loss.eps=0.5",
        "train.epochs=2",
        "train.batch_size=256",
    )
    summary = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert summary["status"] == "completed"
    assert summary["data"]["n_train"] == 1000 and summary["data"]["n_test"] == 500
    # quality scores are integers 3..9 with std about 0.87: the raw test RMSE is in that range
    assert 0.3 < summary["final"]["test_rmse_raw"] < 3.0
    assert summary["final"]["ebs"] > 1


def test_biv_auto_eps_solved_per_epoch_gives_the_results_of_solving_per_step(tmp_path, monkeypatch):
    from hetreg.losses import BIVLoss

    cfg = make_config("train.epochs=3", NOISE, "loss.name=biv", "loss.eps=auto", "loss.min_ebs=0.5")
    plans = []
    real_plan = BIVLoss.plan
    monkeypatch.setattr(BIVLoss, "plan", lambda self, v: plans.append(len(v)) or real_plan(self, v))
    planned = run_experiment(cfg, tmp_path / "planned", quiet=True)
    assert len(plans) == 3 and plans[0] >= 2  # once per epoch, with every batch of the epoch
    monkeypatch.setattr(BIVLoss, "plans_ahead", property(lambda self: False))
    per_step = run_experiment(cfg, tmp_path / "per-step", quiet=True)
    assert len(plans) == 3
    assert planned["status"] == per_step["status"] == "completed"
    rows_a = [without_elapsed(r) for r in read_metrics(tmp_path / "planned")]
    rows_b = [without_elapsed(r) for r in read_metrics(tmp_path / "per-step")]
    assert rows_a == rows_b and "eps" in rows_a[0]
