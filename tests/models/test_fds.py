"""FDS: functional calibration, statistics bookkeeping (no aliasing), buckets, state, autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from hetreg.losses.lds import kernel_window
from hetreg.models.fds import FDS, bucket_moments, calibrate_features, merge_moments, smooth_bucket_stats

BOX3 = np.array([1.0, 2.0, 1.0])  # normalised by FDS to [0.25, 0.5, 0.25]


def fitted_fds(seed: int = 0, *, n: int = 400, dim: int = 3, buckets: int = 10, **kwargs) -> tuple[FDS, torch.Tensor]:
    """An FDS with one epoch of statistics; returns it and the labels it saw."""
    g = torch.Generator().manual_seed(seed)
    fds = FDS(dim, bucket_num=buckets, kernel={"kind": "gaussian", "size": 3, "sigma": 1.0}, **kwargs)
    labels = torch.randint(0, buckets, (n,), generator=g).double()
    feats = torch.randn(n, dim, generator=g) * (1 + labels[:, None] / 3) + labels[:, None]
    fds.update(feats.float(), labels)
    fds.end_epoch()
    return fds, labels


# ----------------------------------------------------------------------------- pure functions


def test_calibrate_features_formula_and_degenerate_cases():
    z = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    m1 = torch.tensor([0.5, 1.0, 1.5])
    v1 = torch.tensor([2.0, 0.0, 0.5])
    m2 = torch.tensor([1.0, 1.0, 1.0])
    v2 = torch.tensor([1.0, 4.0, 100.0])
    out = calibrate_features(z, m1, v1, m2, v2, clip=(0.1, 10.0))
    expected = z.clone()
    expected[:, 0] = (z[:, 0] - 0.5) * math.sqrt(0.5) + 1.0
    expected[:, 2] = (z[:, 2] - 1.5) * math.sqrt(10.0) + 1.0  # ratio 200 clipped to 10
    torch.testing.assert_close(out, expected)  # v1 = 0: that dimension unchanged
    # a row whose total variance is below 1e-10 is returned unchanged
    tiny = torch.full((3,), 1e-12)
    torch.testing.assert_close(calibrate_features(z, m1, tiny, m2, v2), z)


def test_smooth_bucket_stats_matches_numpy_reflect_convolution():
    rng = np.random.default_rng(0)
    stats = rng.normal(size=(8, 3))
    window = kernel_window("gaussian", 5, 2.0, normalize="sum")
    padded = np.pad(stats, ((2, 2), (0, 0)), mode="reflect")
    expected = np.stack([np.convolve(padded[:, d], window[::-1], mode="valid") for d in range(3)], axis=1)
    out = smooth_bucket_stats(torch.as_tensor(stats), torch.as_tensor(window))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)


def test_moments_merge_equals_one_pass():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 4, generator=g, dtype=torch.float64) * 3 + 10
    ids = torch.randint(0, 5, (50,), generator=g)
    whole = bucket_moments(x, ids, 6)
    merged = merge_moments(bucket_moments(x[:17], ids[:17], 6), bucket_moments(x[17:], ids[17:], 6))
    for a, b in zip(whole, merged):
        torch.testing.assert_close(a, b)
    for b in range(5):
        sel = x[ids == b]
        torch.testing.assert_close(whole[1][b], sel.mean(0))
        torch.testing.assert_close(whole[2][b], ((sel - sel.mean(0)) ** 2).sum(0))
    assert whole[0][5] == 0 and (whole[1][5] == 0).all()


# ----------------------------------------------------------------------------- hand-computed calibration


def test_two_bucket_calibration_by_hand():
    fds = FDS(1, bucket_num=2, kernel=BOX3, clip=(0.5, 2.0))
    feats = torch.tensor([[0.0], [2.0], [4.0], [8.0]])
    labels = torch.tensor([0.2, 0.7, 1.1, 1.9])  # buckets 0, 0, 1, 1
    fds.update(feats, labels)
    fds.end_epoch()
    # bucket 0: mean 1, var 2; bucket 1: mean 6, var 8 (unbiased)
    torch.testing.assert_close(fds.running_mean, torch.tensor([[1.0], [6.0]]))
    torch.testing.assert_close(fds.running_var, torch.tensor([[2.0], [8.0]]))
    # reflect padding [s1, s0, s1, s0] and window [1/4, 1/2, 1/4]: both buckets get the average
    torch.testing.assert_close(fds.smoothed_mean_last_epoch, torch.tensor([[3.5], [3.5]]))
    torch.testing.assert_close(fds.smoothed_var_last_epoch, torch.tensor([[5.0], [5.0]]))
    fds.train()
    z = torch.tensor([[3.0], [3.0]])
    out = fds(z, torch.tensor([0.5, 1.5]))
    # bucket 0: ratio 5/2 clipped to 2; bucket 1: ratio 5/8
    expected = torch.tensor([[(3 - 1) * math.sqrt(2.0) + 3.5], [(3 - 6) * math.sqrt(5 / 8) + 3.5]])
    torch.testing.assert_close(out, expected)


# ----------------------------------------------------------------------------- functional behaviour


def test_forward_leaves_input_unchanged_and_changes_output():
    fds, labels = fitted_fds()
    fds.train()
    z = torch.randn(len(labels), 3)
    before = z.clone()
    out = fds(z, labels)
    torch.testing.assert_close(z, before, rtol=0, atol=0)
    assert out.data_ptr() != z.data_ptr()
    assert not torch.allclose(out, z)


def test_autograd_after_relu_and_gradient_value():
    fds, labels = fitted_fds()
    fds.train()
    x = torch.randn(len(labels), 3, requires_grad=True)
    z = torch.relu(x)
    out = fds(z, labels)
    out.sum().backward()  # the original (in-place) version fails here
    ids = fds.bucket_index(labels)
    factor = torch.sqrt(
        torch.clamp(fds.smoothed_var_last_epoch[ids] / fds.running_var_last_epoch[ids], 0.1, 10.0)
    )
    torch.testing.assert_close(x.grad, factor * (x > 0).float())


def test_gradcheck_float64():
    fds, labels = fitted_fds(2, n=60)
    fds.double().train()
    z = torch.randn(60, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: fds(t, labels), (z,))


def test_identity_in_eval_before_start_smooth_and_without_labels():
    fds, labels = fitted_fds(start_smooth=2)
    z = torch.randn(len(labels), 3)
    fds.train()
    assert fds(z, labels) is z  # epoch 1 < start_smooth
    assert not torch.allclose(fds(z, labels, epoch=2), z)
    fds.end_epoch()  # epoch 2
    assert fds(z) is z
    assert not torch.allclose(fds(z, labels), z)
    fds.eval()
    assert fds(z, labels) is z


def test_identity_before_any_statistics():
    fds = FDS(3, bucket_num=10, start_smooth=0)
    fds.train()
    z = torch.randn(5, 3)
    assert fds(z, torch.arange(5.0)) is z


def test_unseen_and_single_sample_buckets_are_left_unchanged():
    fds = FDS(2, bucket_num=6, kernel=BOX3)
    g = torch.Generator().manual_seed(3)
    labels = torch.tensor([0.0] * 20 + [1.0] * 20 + [3.0])  # bucket 3 has one sample (variance 0)
    feats = torch.randn(41, 2, generator=g)
    fds.update(feats, labels)
    fds.end_epoch()
    fds.train()
    z = torch.randn(3, 2, generator=g)
    out = fds(z, torch.tensor([5.0, 3.0, 0.0]))  # bucket 5 never seen
    torch.testing.assert_close(out[:2], z[:2])
    assert not torch.allclose(out[2], z[2])


# ----------------------------------------------------------------------------- statistics bookkeeping


def epoch_stats(feats: torch.Tensor, labels: torch.Tensor, bucket: int) -> tuple[torch.Tensor, torch.Tensor]:
    sel = feats[labels.floor() == bucket].double()
    return sel.mean(0), sel.var(0, unbiased=True)


def test_running_and_last_epoch_stats_are_distinct_tensors_and_evolve_by_ema():
    fds = FDS(2, bucket_num=4, kernel=BOX3, momentum=0.9)
    g = torch.Generator().manual_seed(4)
    labels_a = torch.tensor([0.0, 0.5, 1.0, 1.2, 1.7, 2.0, 2.5, 3.0, 3.1])
    labels_b = torch.tensor([0.1, 0.9, 1.5, 1.1, 2.2, 2.8, 3.3, 3.9])
    feats_a = torch.randn(len(labels_a), 2, generator=g)
    feats_b = torch.randn(len(labels_b), 2, generator=g) + 5
    names = ["running_mean", "running_var", "running_mean_last_epoch", "running_var_last_epoch",
             "smoothed_mean_last_epoch", "smoothed_var_last_epoch", "epoch_mean", "epoch_m2"]

    fds.update(feats_a, labels_a)
    fds.end_epoch()
    ptrs = {getattr(fds, n).data_ptr() for n in names}
    assert len(ptrs) == len(names)
    for b in range(4):
        mean_a, var_a = epoch_stats(feats_a, labels_a, b)
        torch.testing.assert_close(fds.running_mean[b].double(), mean_a)  # alpha = 0 in the first epoch
        torch.testing.assert_close(fds.running_var[b].double(), var_a)
    torch.testing.assert_close(fds.running_mean_last_epoch, fds.running_mean)
    snapshot = fds.running_mean_last_epoch.clone()

    fds.update(feats_b[:3], labels_b[:3])  # accumulating does not touch any statistics in use
    fds.update(feats_b[3:], labels_b[3:])
    torch.testing.assert_close(fds.running_mean_last_epoch, snapshot, rtol=0, atol=0)
    torch.testing.assert_close(fds.running_mean, snapshot, rtol=0, atol=0)
    fds.end_epoch()
    for b in range(4):
        mean_a, var_a = epoch_stats(feats_a, labels_a, b)
        mean_b, var_b = epoch_stats(feats_b, labels_b, b)
        torch.testing.assert_close(fds.running_mean[b].double(), 0.1 * mean_b + 0.9 * mean_a)
        torch.testing.assert_close(fds.running_var[b].double(), 0.1 * var_b + 0.9 * var_a)
    torch.testing.assert_close(fds.running_mean_last_epoch, fds.running_mean)
    torch.testing.assert_close(
        fds.smoothed_var_last_epoch, smooth_bucket_stats(fds.running_var, torch.tensor(BOX3 / 4).float())
    )
    # writing into the running statistics does not reach the last-epoch copies
    fds.running_mean.add_(100.0)
    assert not torch.allclose(fds.running_mean_last_epoch, fds.running_mean)
    assert int(fds.epoch) == 2
    assert fds.num_samples_tracked.tolist() == [2 + 2, 3 + 2, 2 + 2, 2 + 2]


def test_cumulative_average_without_momentum():
    fds = FDS(1, bucket_num=3, kernel=BOX3, momentum=None)
    labels_a = torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0])
    labels_b = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0])
    feats_a = torch.tensor([[1.0], [3.0], [0.0], [1.0], [2.0]])
    feats_b = torch.tensor([[10.0], [11.0], [12.0], [5.0], [7.0]])
    for f, y in ((feats_a, labels_a), (feats_b, labels_b)):
        fds.update(f, y)
        fds.end_epoch()
    # bucket 0: means 2 (n=2) then 11 (n=3): 2*2/5 + 11*3/5; variances 2 and 1
    torch.testing.assert_close(fds.running_mean[:2, 0], torch.tensor([2 * 2 / 5 + 11 * 3 / 5, 1 * 3 / 5 + 6 * 2 / 5]))
    torch.testing.assert_close(fds.running_var[:2, 0], torch.tensor([2 * 2 / 5 + 1 * 3 / 5, 1 * 3 / 5 + 2 * 2 / 5]))
    # bucket 2 never seen: initial statistics kept
    assert fds.running_mean[2, 0] == 0 and fds.running_var[2, 0] == 1


def test_updates_before_start_update_are_ignored():
    fds = FDS(1, bucket_num=3, kernel=BOX3, start_update=1)
    fds.update(torch.tensor([[100.0], [200.0]]), torch.tensor([0.0, 0.0]))
    fds.end_epoch()
    assert fds.num_samples_tracked.sum() == 0
    fds.update(torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 0.0]))
    fds.end_epoch()
    torch.testing.assert_close(fds.running_mean[0], torch.tensor([2.0]))


# ----------------------------------------------------------------------------- buckets


def test_default_buckets_merge_under_and_overflow_consistently():
    fds = FDS(1, bucket_num=100, bucket_start=3)
    ids = fds.bucket_index(torch.tensor([-4.0, 0.0, 2.9, 3.0, 3.7, 50.2, 98.9, 99.0, 150.0]))
    assert ids.tolist() == [0, 0, 0, 0, 0, 47, 95, 96, 96]
    assert fds.num_buckets == 97


def test_edges_and_bucket_fn():
    fds = FDS(1, edges=[0.0, 0.7, 1.0, 2.0, 5.0], kernel=BOX3)
    assert fds.bucket_num == 4
    assert fds.bucket_index(torch.tensor([[-1.0], [0.0], [0.69], [0.7], [1.5], [5.0], [9.0]])).tolist() == [
        0, 0, 0, 1, 2, 3, 3,
    ]
    fds = FDS(1, bucket_num=50, bucket_fn=lambda y: torch.floor(y * 10).long(), kernel=BOX3)
    assert fds.bucket_index(torch.tensor([0.0, 0.25, 4.95, 7.0, -1.0])).tolist() == [0, 2, 49, 49, 0]
    with pytest.raises(ValueError, match="integer"):
        FDS(1, bucket_num=10, bucket_fn=lambda y: y * 1.5).bucket_index(torch.tensor([1.0]))


# ----------------------------------------------------------------------------- state, devices, models


def test_state_dict_round_trip():
    fds, labels = fitted_fds(5)
    state = fds.state_dict()
    assert {"running_mean", "running_var_last_epoch", "smoothed_mean_last_epoch", "epoch"} <= set(state)
    other = FDS(3, bucket_num=10, kernel={"kind": "gaussian", "size": 3, "sigma": 1.0})
    other.load_state_dict(state)
    for name, value in fds.state_dict().items():
        torch.testing.assert_close(other.state_dict()[name], value, rtol=0, atol=0)
    assert other.running_mean.data_ptr() != other.running_mean_last_epoch.data_ptr()
    fds.train()
    other.train()
    z = torch.randn(len(labels), 3)
    torch.testing.assert_close(other(z, labels), fds(z, labels))
    assert int(other.epoch) == 1


class TinyRegressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(2, 8), nn.ReLU())
        self.fds = FDS(8, bucket_num=5, kernel=BOX3)
        self.head = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.fds(self.backbone(x), labels))


def test_model_inserts_fds_before_last_layer():
    torch.manual_seed(0)
    model = TinyRegressor()
    x = torch.randn(64, 2)
    y = torch.rand(64) * 5
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(3):
        model.train()
        loss = (model(x, y).squeeze(1) - y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.fds.update(model.backbone(x), y)
        model.fds.end_epoch()
    model.train()
    smoothed = model(x, y)
    model.eval()
    plain = model(x, y)
    torch.testing.assert_close(plain, model.head(model.backbone(x)))
    assert not torch.allclose(smoothed, plain)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"feature_dim": 0},
        {"bucket_num": 5, "bucket_start": 5},
        {"edges": [0.0, 1.0, 2.0], "bucket_fn": torch.floor},
        {"edges": [0.0, 1.0, 1.0]},
        {"edges": [0.0, 1.0, 2.0], "bucket_num": 5},
        {"clip": (0.0, 10.0)},
        {"clip": (2.0, 1.0)},
        {"momentum": 1.0},
        {"start_update": -1},
        {"bucket_num": 2, "kernel": "gaussian"},  # 2 buckets, size-5 window
        {"kernel": "box"},
    ],
)
def test_constructor_rejects_bad_arguments(kwargs):
    params = {"feature_dim": 2, "bucket_num": 10, **kwargs}
    with pytest.raises(ValueError):
        FDS(**params)


def test_forward_and_update_reject_bad_shapes():
    fds, labels = fitted_fds()
    fds.train()
    with pytest.raises(ValueError, match="shape"):
        fds(torch.randn(len(labels), 4), labels)
    with pytest.raises(ValueError, match="rows"):
        fds.update(torch.randn(3, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        fds.update(torch.randn(2, 3), torch.tensor([1.0, float("nan")]))
    with pytest.raises(TypeError):
        fds.update(np.zeros((2, 3)), torch.zeros(2))
