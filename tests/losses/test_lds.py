"""LDS: kernel windows, bins, histogram smoothing and sample weights, against brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hetreg.losses import mse_loss
from hetreg.losses.lds import (
    assign_bins,
    bin_index,
    kernel_window,
    lds_weights,
    resolve_kernel,
    smooth_histogram,
)

# ----------------------------------------------------------------------------- brute-force helpers


def reflect_index(i: int, n: int) -> int:
    """scipy.ndimage 'reflect' (d c b a | a b c d | d c b a) index mapping."""
    m = i % (2 * n)
    return 2 * n - 1 - m if m >= n else m


def brute_gaussian_window(size: int, sigma: float) -> np.ndarray:
    """A delta of length ``size`` filtered by a truncated (4σ) Gaussian with reflected boundaries."""
    radius = int(4 * sigma + 0.5)
    taps = {k: math.exp(-(k * k) / (2 * sigma * sigma)) for k in range(-radius, radius + 1)}
    total = sum(taps.values())
    delta = [0.0] * size
    delta[size // 2] = 1.0
    out = []
    for i in range(size):
        out.append(sum(w / total * delta[reflect_index(i + k, size)] for k, w in taps.items()))
    out_arr = np.array(out)
    return out_arr / out_arr.max()


def brute_smooth(values: list[float], window: list[float], mode: str) -> list[float]:
    n, half = len(values), len(window) // 2
    out = []
    for b in range(n):
        acc = 0.0
        for j in range(-half, half + 1):
            idx = b + j
            if mode == "constant":
                v = values[idx] if 0 <= idx < n else 0.0
            else:
                v = values[reflect_index(idx, n)]
            acc += window[j + half] * v
        out.append(acc)
    return out


def brute_age_weights(labels, scheme, window, max_target=121, clip=(5, 1000)):
    """The age-benchmark recipe written as loops: integer bins 0..120, ages >= 120 in the last bin."""
    counts = {b: 0 for b in range(max_target)}
    for y in labels:
        counts[min(max_target - 1, int(y))] += 1
    if scheme == "sqrt_inv":
        values = [math.sqrt(counts[b]) for b in range(max_target)]
    else:
        values = [min(max(counts[b], clip[0]), clip[1]) for b in range(max_target)]
    if window is not None:
        values = brute_smooth(values, list(window), "constant")
    w = [1.0 / values[min(max_target - 1, int(y))] for y in labels]
    scale = len(w) / sum(w)
    return np.array([x * scale for x in w])


# ----------------------------------------------------------------------------- kernel windows


def test_gaussian_window_reference_vectors():
    np.testing.assert_allclose(
        kernel_window("gaussian", 5, 2.0), [0.8583, 0.9458, 1.0, 0.9458, 0.8583], atol=1e-4
    )
    np.testing.assert_allclose(
        kernel_window("gaussian", 5, 2.0, normalize="sum"), [0.1863, 0.2052, 0.2170, 0.2052, 0.1863], atol=1e-4
    )
    np.testing.assert_allclose(kernel_window("gaussian", 5, 1.0)[:3], [0.146, 0.607, 1.0], atol=1e-3)
    np.testing.assert_allclose(kernel_window("gaussian", 9, 1.0)[:5], [0.0003, 0.011, 0.135, 0.607, 1.0], atol=1e-3)


@pytest.mark.parametrize("size,sigma", [(5, 2.0), (5, 1.0), (9, 1.0), (7, 3.0), (3, 0.5)])
def test_gaussian_window_matches_brute_force_reflection(size, sigma):
    np.testing.assert_allclose(kernel_window("gaussian", size, sigma), brute_gaussian_window(size, sigma), rtol=1e-12)


def test_triang_and_laplace_windows():
    np.testing.assert_allclose(kernel_window("triang", 5), [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3], rtol=1e-12)
    np.testing.assert_allclose(kernel_window("laplace", 5, 2.0), [0.368, 0.607, 1.0, 0.607, 0.368], atol=1e-3)
    lap = kernel_window("laplace", 5, 2.0, normalize="sum")
    assert lap.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(lap, np.exp(-np.abs(np.arange(-2, 3)) / 2) / np.exp(-np.abs(np.arange(-2, 3)) / 2).sum())


def test_resolve_kernel_forms():
    np.testing.assert_array_equal(resolve_kernel("gaussian"), kernel_window("gaussian", 5, 2.0))
    np.testing.assert_array_equal(
        resolve_kernel({"kind": "laplace", "size": 7}), kernel_window("laplace", 7, 2.0)
    )
    np.testing.assert_array_equal(
        resolve_kernel({"sigma": 1.0}, normalize="sum"), kernel_window("gaussian", 5, 1.0, normalize="sum")
    )
    window = np.array([1.0, 3.0, 1.0])
    np.testing.assert_array_equal(resolve_kernel(window), window)
    np.testing.assert_allclose(resolve_kernel(window, normalize="sum"), window / 5)


@pytest.mark.parametrize(
    "kernel",
    ["box", {"kind": "gaussian", "width": 3}, {"size": 4}, {"size": 5.5}, np.ones(4), np.array([1.0, -1.0, 1.0]),
     np.zeros(3), np.array([1.0, np.nan, 1.0]), np.ones((3, 3))],
)
def test_resolve_kernel_rejects_bad_kernels(kernel):
    with pytest.raises(ValueError):
        resolve_kernel(kernel)


# ----------------------------------------------------------------------------- bins


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=60),
    st.integers(1, 12),
)
def test_bin_index_agrees_with_numpy_histogram(values, n):
    labels = np.array(values)
    edges = np.histogram_bin_edges(labels, bins=n)
    ids = bin_index(labels, edges=edges)
    np.testing.assert_array_equal(np.bincount(ids, minlength=n), np.histogram(labels, bins=edges)[0])
    ids2, num = assign_bins(labels, n)
    assert num == n
    np.testing.assert_array_equal(ids2, ids)


def test_bin_index_edges_clip_and_right_edge():
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(bin_index([-5, 0, 0.99, 1, 2.5, 3, 40], edges=edges), [0, 0, 0, 1, 2, 2, 2])
    with pytest.raises(ValueError, match="outside the edges"):
        bin_index([-5, 1], edges=edges, clip=False)
    np.testing.assert_array_equal(bin_index([0, 3], edges=edges, clip=False), [0, 2])


def test_bin_index_width_grid():
    rng = np.random.default_rng(0)
    y = rng.uniform(-20, 20, 500)
    np.testing.assert_array_equal(bin_index(y, bin_width=1.0), np.floor(y).astype(int))
    np.testing.assert_array_equal(bin_index(y, bin_width=2.5), np.floor(y / 2.5).astype(int))
    # decimal labels on the edges of a 0.1 grid land in their own bin despite floating point
    grid = np.round(np.arange(51) * 0.1, 1)
    np.testing.assert_array_equal(bin_index(grid, bin_width=0.1), np.arange(51))
    assert bin_index([0.3], bin_width=0.1)[0] == 3
    assert bin_index([-0.05], bin_width=0.1)[0] == -1
    np.testing.assert_array_equal(bin_index(torch.tensor([[1.5], [2.0]]), bin_width=1.0), [1, 2])


def test_bin_index_single_precision_labels_on_edges():
    # float32(0.7) < 0.7 in float64: compared in the labels' precision it lies on the edge
    grid32 = torch.arange(51, dtype=torch.float64).mul(0.1).float()
    np.testing.assert_array_equal(bin_index(grid32, bin_width=0.1), np.arange(51))
    np.testing.assert_array_equal(bin_index(grid32.numpy(), bin_width=0.1), np.arange(51))
    edges = np.round(np.arange(0, 11) * 0.1, 1)
    np.testing.assert_array_equal(bin_index(grid32[:10], edges=edges), np.arange(10))
    assert bin_index(torch.tensor([0.7]), edges=[0.0, 0.7, 1.0])[0] == 1
    assert bin_index(np.array([0.69999999]), edges=[0.0, 0.7, 1.0])[0] == 0  # float64: exact comparison


def test_assign_bins_width_and_edges():
    ids, num = assign_bins([2.2, 5.9, 3.1], 1.0)
    assert num == 4
    np.testing.assert_array_equal(ids, [0, 3, 1])
    # test labels binned against training labels: out-of-range cells merged into the edge cells
    ids, num = assign_bins([0.0, 4.5, 9.0], 1.0, reference=[2.2, 5.9])
    np.testing.assert_array_equal(ids, [0, 2, 3])
    ids, num = assign_bins([0.5, 1.5, 9.0], np.array([0.0, 1.0, 2.0]))
    assert num == 2
    np.testing.assert_array_equal(ids, [0, 1, 1])


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"edges": [0, 1], "bin_width": 1.0},
        {"bin_width": 0.0},
        {"bin_width": -1.0},
        {"bin_width": float("nan")},
        {"edges": [0.0, 0.0, 1.0]},
        {"edges": [1.0]},
        {"edges": [[0.0, 1.0]]},
    ],
)
def test_bin_index_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        bin_index([0.5, 1.5], **kwargs)


@pytest.mark.parametrize("labels", [[], [1.0, np.nan], [1.0, np.inf], np.ones((3, 2))])
def test_bin_index_rejects_bad_labels(labels):
    with pytest.raises(ValueError):
        bin_index(labels, bin_width=1.0)


@pytest.mark.parametrize("bins", [0, -3, True])
def test_assign_bins_rejects_bad_bin_counts(bins):
    with pytest.raises(ValueError):
        assign_bins([1.0, 2.0], bins)


# ----------------------------------------------------------------------------- smoothing


@pytest.mark.parametrize("mode", ["constant", "reflect"])
@pytest.mark.parametrize("kernel", ["gaussian", "triang", {"kind": "laplace", "size": 3, "sigma": 1.0}])
def test_smooth_histogram_matches_brute_force(mode, kernel):
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 50, size=17).astype(float)
    window = resolve_kernel(kernel)
    expected = brute_smooth(list(counts), list(window), mode)
    np.testing.assert_allclose(smooth_histogram(counts, kernel, mode=mode), expected, rtol=1e-12)


def test_smooth_histogram_explicit_window_is_used_as_given():
    # a convolution: out[b] = sum_j w[h + j] c[b - j] (an asymmetric window is flipped)
    counts = np.array([0.0, 10.0, 0.0, 0.0])
    np.testing.assert_allclose(smooth_histogram(counts, np.array([1.0, 2.0, 3.0])), [10.0, 20.0, 30.0, 0.0])


@pytest.mark.parametrize("counts,mode", [([], "constant"), ([[1.0]], "constant"), ([1.0, np.nan], "constant"), ([1.0], "edge")])
def test_smooth_histogram_rejects_bad_input(counts, mode):
    with pytest.raises(ValueError):
        smooth_histogram(counts, mode=mode)


# ----------------------------------------------------------------------------- weights


def age_like_labels(seed: int, n: int = 600) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ages = np.clip(rng.gamma(6.0, 6.0, n), 0, 150).astype(int).astype(float)
    ages[:3] = [120.0, 125.0, 150.0]  # beyond the last bin: merged into it
    return ages


@pytest.mark.parametrize("scheme", ["sqrt_inv", "inverse"])
@pytest.mark.parametrize(
    "kernel", [None, {"kind": "gaussian", "size": 5, "sigma": 2.0}, {"kind": "triang", "size": 5}, {"kind": "laplace", "size": 9, "sigma": 1.0}]
)
def test_lds_weights_match_brute_force_age_recipe(scheme, kernel):
    labels = age_like_labels(3)
    window = None if kernel is None else resolve_kernel(kernel)
    expected = brute_age_weights(labels, scheme, window)
    weights = lds_weights(labels, np.arange(0, 122), scheme=scheme, kernel=kernel)
    np.testing.assert_allclose(weights, expected, rtol=1e-12)
    assert weights.mean() == pytest.approx(1.0, abs=1e-12)
    assert (weights > 0).all()


def test_lds_weights_transform_before_smoothing():
    labels = np.repeat([0.0, 1.0, 2.0, 3.0], [100, 4, 1, 30])
    window = resolve_kernel("gaussian")
    ids = labels.astype(int)
    counts = np.bincount(ids).astype(float)
    original_order = 1 / smooth_histogram(np.sqrt(counts), window)[ids]
    other_order = 1 / np.sqrt(smooth_histogram(counts, window))[ids]
    weights = lds_weights(labels, 1.0, kernel="gaussian")
    np.testing.assert_allclose(weights, original_order * len(labels) / original_order.sum(), rtol=1e-12)
    assert not np.allclose(weights, other_order * len(labels) / other_order.sum(), rtol=1e-3)


def test_lds_weights_inverse_clip():
    labels = np.repeat([0.0, 1.0, 2.0, 3.0], [2000, 1500, 1, 3])
    w = lds_weights(labels, 1.0, scheme="inverse")
    assert w[0] == pytest.approx(w[2000])  # 2000 and 1500 both clipped to 1000
    assert w[3500] == pytest.approx(w[3501])  # 1 and 3 both clipped to 5
    assert w[3500] / w[0] == pytest.approx(200.0)
    w = lds_weights(labels, 1.0, scheme="inverse", inverse_clip=None)
    assert w[3500] / w[3501] == pytest.approx(3.0)
    assert w[3500] / w[0] == pytest.approx(2000.0)


def test_lds_weights_sqrt_inv_without_kernel_is_inverse_sqrt_count():
    labels = np.repeat([1.0, 2.0, 5.0], [4, 16, 1])
    w = lds_weights(labels, 1.0)
    raw = np.repeat([1 / 2, 1 / 4, 1.0], [4, 16, 1])
    np.testing.assert_allclose(w, raw * 21 / raw.sum())


def test_lds_weights_width_bins_equal_wide_edges_for_sqrt_inv():
    labels = age_like_labels(5)
    labels = labels[labels < 120]
    by_width = lds_weights(labels, 1.0, kernel="gaussian")
    by_edges = lds_weights(labels, np.arange(0, 122), kernel="gaussian")
    np.testing.assert_allclose(by_width, by_edges, rtol=1e-12)


def test_lds_weights_count_bins_and_none():
    rng = np.random.default_rng(2)
    labels = rng.uniform(0, 5, 300)
    edges = np.histogram_bin_edges(labels, 50)
    np.testing.assert_allclose(
        lds_weights(labels, 50, scheme="inverse", inverse_clip=None, kernel="gaussian"),
        lds_weights(labels, edges, scheme="inverse", inverse_clip=None, kernel="gaussian"),
    )
    np.testing.assert_array_equal(lds_weights(labels, 50, scheme="none"), np.ones(300))


def test_lds_weights_accept_torch_and_work_as_loss_weights():
    labels = torch.tensor([[1.0], [1.0], [2.0], [4.0]])
    w = lds_weights(labels, 1.0, kernel="triang")
    assert w.shape == (4,)
    pred = torch.zeros(4, 1, dtype=torch.float64)
    loss = mse_loss(pred, labels.double(), weight=torch.as_tensor(w))
    assert loss.item() == pytest.approx(float(np.mean(w * labels.numpy()[:, 0] ** 2)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scheme": "log"},
        {"scheme": "none", "kernel": "gaussian"},
        {"scheme": "inverse", "inverse_clip": (10, 5)},
        {"scheme": "inverse", "inverse_clip": (-1, 5)},
        {"kernel": np.array([1.0, 0.0, 1.0])},  # zero density at an isolated bin
        {"mode": "edge", "kernel": "gaussian"},
    ],
)
def test_lds_weights_reject_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        lds_weights([1.0, 3.0, 3.0, 5.0], 1.0, **kwargs)
