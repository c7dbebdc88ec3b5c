"""FDS from the experiment configuration: the section's checks, the trainer's wiring (buckets of
the raw noisy training labels, statistics from the end-of-epoch pass or the batches, smoothing
from ``start_smooth`` on), resume, and the batched trainer's refusal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hetreg.experiments.config import ConfigError
from hetreg.train import run_experiment
from hetreg.train.batched import batching_problem
from hetreg.train.files import load_checkpoint
from hetreg.train.runner import TrainingRun

from .conftest import NOISE, SMALL_CNN, Interrupt, make_config, read_metrics, without_elapsed

FDS = "fds={bins: 6, kernel_size: 3, kernel_sigma: 1.0}"
PLAIN_MLP = "model.options={hidden: [16, 8]}"  # no BatchNorm: the extra pass changes nothing else


@pytest.mark.parametrize(
    "override, problem",
    [
        ("fds={clip: [2.0, 1.0]}", "clip"),
        ("fds={momentum: 1.0}", "momentum"),
        ("fds={bins: 4, bin_width: 0.5}", "set only one of fds.bins, fds.bin_width, fds.edges"),
        ("fds={kernel_size: 4}", "kernel_size must be odd"),
        ("fds={features: everything}", "features"),
        ("fds={start_smooth: -1}", "start_smooth"),
    ],
)
def test_bad_fds_sections_are_refused_with_the_field_named(override, problem):
    with pytest.raises((ConfigError, ValueError)) as err:
        make_config(override)
    assert problem in str(err.value)


def test_fds_changes_the_configuration_hash():
    from hetreg.experiments.config import config_hash

    assert config_hash(make_config()) != config_hash(make_config(FDS))
    assert config_hash(make_config(FDS)) != config_hash(make_config(FDS, "fds.features=batches"))


def test_statistics_are_those_of_the_features_of_the_raw_noisy_label_buckets(tmp_path):
    """After one epoch (start_update 0, the end-of-epoch pass), each bucket's last-epoch running
    mean and variance are the mean and unbiased variance of the features of its training samples,
    the buckets being 6 equal-width bins over the raw noisy training labels."""
    cfg = make_config(NOISE, PLAIN_MLP, FDS, "train.epochs=1").resolved()
    run_experiment(cfg, tmp_path / "run", quiet=True)
    state = load_checkpoint(tmp_path / "run" / "last.pt")["model"]

    run = TrainingRun(cfg, tmp_path / "probe", quiet=True, callbacks=())
    run.setup(None)  # same data and noise (seeded); then the trained weights
    run.model.load_state_dict(state)
    raw = run.prep.y_train_raw.double().numpy().reshape(-1)
    edges = np.linspace(raw.min(), raw.max(), 7)
    ids = np.clip(np.searchsorted(edges, raw, side="right") - 1, 0, 5)
    assert np.array_equal(ids, run.fds_buckets.numpy())
    with torch.no_grad():
        z = run.model.train().features(run.prep.x_train).double().numpy()
    seen = 0
    for b in range(6):
        rows = z[ids == b]
        if len(rows) == 0:
            assert float(state["fds.num_samples_last_epoch"][b]) == 0
            continue
        seen += 1
        assert int(state["fds.num_samples_last_epoch"][b]) == len(rows)
        np.testing.assert_allclose(state["fds.running_mean_last_epoch"][b].numpy(), rows.mean(0), rtol=1e-5, atol=1e-6)
        if len(rows) > 1:
            np.testing.assert_allclose(state["fds.running_var_last_epoch"][b].numpy(), rows.var(0, ddof=1), rtol=1e-4, atol=1e-6)
    assert seen >= 3
    assert int(state["fds.epoch"]) == 1


@pytest.mark.parametrize("features", ["epoch_end", "batches"])
def test_smoothing_starts_at_start_smooth(tmp_path, features):
    """Without BatchNorm, FDS changes nothing before its first smoothed epoch: the first
    ``start_smooth`` epochs equal a run without FDS, the next ones differ."""
    plain = make_config(NOISE, PLAIN_MLP)
    smoothed = make_config(NOISE, PLAIN_MLP, FDS, f"fds.features={features}", "fds.start_smooth=2")
    run_experiment(plain, tmp_path / "plain", quiet=True)
    run_experiment(smoothed, tmp_path / "fds", quiet=True)
    a, b = read_metrics(tmp_path / "plain"), read_metrics(tmp_path / "fds")
    assert [without_elapsed(r) for r in a[:2]] == [without_elapsed(r) for r in b[:2]]
    assert a[2]["test_mse"] != b[2]["test_mse"]


def test_statistics_from_the_batches_count_every_training_sample_once_per_epoch(tmp_path):
    cfg = make_config(NOISE, PLAIN_MLP, FDS, "fds.features=batches", "train.epochs=3", "fds.start_update=1")
    run_experiment(cfg, tmp_path / "run", quiet=True)
    state = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    n_train = 96
    assert int(state["fds.num_samples_tracked"].sum()) == 2 * n_train  # epochs 1 and 2 (0-based), not 0


def test_a_killed_fds_run_resumes_to_the_same_result(tmp_path):
    cfg = make_config(NOISE, FDS, "train.epochs=4", "model.options={hidden: [16, 8], batchnorm: true}")
    straight = run_experiment(cfg, tmp_path / "straight", quiet=True)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, tmp_path / "resumed", quiet=True, callbacks=[Interrupt(6)])
    resumed = run_experiment(cfg, tmp_path / "resumed", resume=True, quiet=True)
    assert without_elapsed(resumed["final"]) == without_elapsed(straight["final"])
    a = load_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")["model"]
    assert a.keys() == b.keys() and any(k.startswith("fds.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_model_trained_with_fds_predicts_without_it(tmp_path):
    """FDS only acts in training: the trained state loads into the same model built without FDS
    (its ``fds`` slot is empty) and predicts what the run evaluated."""
    from hetreg.models import build_model
    from hetreg.train.evaluation import predict

    cfg = make_config(NOISE, FDS, "train.epochs=2").resolved()
    summary = run_experiment(cfg, tmp_path / "run", quiet=True)
    state = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    model = build_model("mlp", (4,), head="mean", hidden=[16, 8])
    model.load_state_dict(state)
    assert model.fds is None
    run = TrainingRun(cfg, tmp_path / "probe", quiet=True, callbacks=())
    run.setup(None)
    pred, _ = predict(model.eval(), run.prep.test.x, batch_size=4096)
    mse = float(((pred.reshape(-1) - run.prep.test.y.reshape(-1)) ** 2).double().mean())
    assert mse == pytest.approx(summary["final"]["test_mse"], rel=1e-5)


def test_fds_runs_are_not_batched():
    assert batching_problem([make_config(FDS), make_config(FDS, "seed=4")]) == "run 0 (tiny): fds is not batched"


def test_fds_works_with_the_cnn_augmentation_and_a_variance_head(tmp_path):
    """FDS on a CNN's flattened features, with flips in both the training and the end-of-epoch
    pass, and a mean_var head: the run completes and counts every training image once per
    epoch."""
    cfg = make_config(
        *SMALL_CNN, "loss.name=gaussian_nll", "train.epochs=3", "train.augment=hflip", "fds={bins: 5, kernel_size: 3}"
    )
    summary = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert summary["status"] == "completed"
    state = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    n_train = summary["data"]["n_train"]
    assert int(state["fds.num_samples_tracked"].sum()) == 3 * n_train
    assert int(state["fds.epoch"]) == 3
