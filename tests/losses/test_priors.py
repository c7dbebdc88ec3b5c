"""Label priors for Balanced MSE: histogram (with LDS) and Gaussian mixture."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from hetreg.losses import GMMPrior, HistogramPrior
from hetreg.losses.lds import kernel_window

F64 = torch.float64


# ---------------------------------------------------------------------------------------------
# HistogramPrior
# ---------------------------------------------------------------------------------------------


def test_histogram_prior_normalises_drops_empty_and_reshapes():
    prior = HistogramPrior([0.0, 1.0, 2.0, 3.0], [2.0, 0.0, 6.0, 2.0])
    assert prior.centers.shape == (3, 1)
    assert prior.centers[:, 0].tolist() == [0.0, 2.0, 3.0]
    assert prior.weights.tolist() == pytest.approx([0.2, 0.6, 0.2])
    assert prior.dim == 1 and prior.num_bins == 3
    assert prior.centers.dtype == F64


def test_histogram_prior_is_frozen_and_tensors_follow_the_input():
    prior = HistogramPrior([0.0, 1.0], [1.0, 3.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        prior.weights = torch.ones(2)  # type: ignore[misc]
    centers, log_w = prior.tensors_like(torch.zeros(3, dtype=torch.float32))
    assert centers.dtype == log_w.dtype == torch.float32
    assert log_w.tolist() == pytest.approx([math.log(0.25), math.log(0.75)])


@pytest.mark.parametrize(
    "centers, weights, match",
    [
        ([0.0, 1.0], [1.0, -1.0], "negative"),
        ([0.0, 1.0], [0.0, 0.0], "sums to 0"),
        ([0.0, 1.0], [1.0, float("nan")], "NaN"),
        ([0.0, 1.0], [1.0, 1.0, 1.0], r"shape \(2,\)"),
        ([], [], "J >= 1"),
        ([0.0, float("inf")], [1.0, 1.0], "finite"),
    ],
)
def test_histogram_prior_rejects_bad_input(centers, weights, match):
    with pytest.raises(ValueError, match=match):
        HistogramPrior(centers, weights)


def test_from_labels_integer_bins_are_the_integer_labels():
    labels = np.array([3, 3, 5, 5, 5, 9, 3, 4])
    prior = HistogramPrior.from_labels(labels, bin_width=1)
    values, counts = np.unique(labels, return_counts=True)
    assert prior.centers[:, 0].tolist() == values.tolist()
    assert prior.weights.numpy() == pytest.approx(counts / counts.sum())


def test_from_labels_regular_bins_centred_on_multiples_of_the_width():
    labels = torch.tensor([0.1, 0.2, 0.26, 0.74, 0.76, 1.9, -0.3])
    prior = HistogramPrior.from_labels(labels, bin_width=0.5)
    # brute force: bin k is [(k - 1/2) w, (k + 1/2) w)
    counts: dict[int, int] = {}
    for y in labels.tolist():
        k = math.floor(y / 0.5 + 0.5)
        counts[k] = counts.get(k, 0) + 1
    ks = sorted(counts)
    assert prior.centers[:, 0].tolist() == pytest.approx([0.5 * k for k in ks])
    assert prior.weights.tolist() == pytest.approx([counts[k] / len(labels) for k in ks])


def test_from_labels_with_edges_matches_numpy_histogram():
    rng = np.random.default_rng(0)
    labels = rng.normal(size=500)
    edges = np.linspace(-5, 5, 41)
    prior = HistogramPrior.from_labels(labels[:, None], edges=edges)
    counts, _ = np.histogram(labels, bins=edges)
    mids = 0.5 * (edges[1:] + edges[:-1])
    assert prior.centers[:, 0].numpy() == pytest.approx(mids[counts > 0])
    assert prior.weights.numpy() == pytest.approx(counts[counts > 0] / counts.sum())


def _brute_smooth(counts: list[float], window: np.ndarray) -> list[float]:
    half = len(window) // 2
    out = []
    for b in range(len(counts)):
        total = 0.0
        for k, wk in enumerate(window):
            j = b + k - half
            if 0 <= j < len(counts):
                total += wk * counts[j]
        out.append(total)
    return out


@pytest.mark.parametrize("transform", [None, "sqrt"])
@pytest.mark.parametrize("lds", [dict(kind="gaussian", size=5, sigma=2.0), dict(kind="triang", size=3), dict(kind="laplace", size=7, sigma=1.0)])
def test_from_labels_lds_smoothing_against_brute_force(lds, transform):
    labels = [10, 10, 10, 11, 14, 14, 20, 20, 20, 20, 21]
    prior = HistogramPrior.from_labels(labels, bin_width=1, lds=lds, transform=transform)
    window = kernel_window(**lds, normalize="max")
    half = len(window) // 2
    # the bin range covers the labels, widened by half the window on each side
    bins = list(range(10 - half, 21 + half + 1))
    counts = [float(labels.count(b)) for b in bins]
    if transform == "sqrt":
        counts = [math.sqrt(c) for c in counts]  # transform first, then smooth (the original order)
    smooth = _brute_smooth(counts, window)
    kept = [(b, s) for b, s in zip(bins, smooth) if s > 0]
    total = sum(s for _, s in kept)
    assert prior.centers[:, 0].tolist() == [float(b) for b, _ in kept]
    assert prior.weights.tolist() == pytest.approx([s / total for _, s in kept], rel=1e-12)
    # smoothing spreads mass into the empty neighbours of occupied bins, and not beyond
    got = set(prior.centers[:, 0].tolist())
    assert {12.0, 13.0, 15.0, 19.0}.issubset(got)
    assert (17.0 in got) == (half >= 3)  # 17 is 3 bins from the nearest label


def test_from_labels_lds_accepts_a_kind_or_an_explicit_window():
    labels = [0, 0, 4]
    by_kind = HistogramPrior.from_labels(labels, bin_width=1, lds="triang")  # size 5
    by_dict = HistogramPrior.from_labels(labels, bin_width=1, lds={"kind": "triang", "size": 5})
    torch.testing.assert_close(by_kind.weights, by_dict.weights)
    explicit = HistogramPrior.from_labels(labels, bin_width=1, lds=np.array([1.0, 2.0, 1.0]))
    # counts 2, 0, 0, 0, 1 on bins 0..4, padded by one bin each side, smoothed by [1, 2, 1]
    assert explicit.centers[:, 0].tolist() == [-1.0, 0.0, 1.0, 3.0, 4.0, 5.0]
    assert explicit.weights.tolist() == pytest.approx([2 / 12, 4 / 12, 2 / 12, 1 / 12, 2 / 12, 1 / 12])


def test_from_labels_bin_edges_go_to_the_upper_bin():
    prior = HistogramPrior.from_labels([0.25, 0.75, 0.3], bin_width=0.5)  # bins [0.25, 0.75), [0.75, 1.25)
    assert prior.centers[:, 0].tolist() == [0.5, 1.0]
    assert prior.weights.tolist() == pytest.approx([2 / 3, 1 / 3])


def test_from_labels_sqrt_without_lds():
    prior = HistogramPrior.from_labels([1, 1, 1, 1, 2], bin_width=1, transform="sqrt")
    assert prior.weights.tolist() == pytest.approx([2 / 3, 1 / 3])


def test_from_labels_errors():
    with pytest.raises(ValueError, match="exactly one"):
        HistogramPrior.from_labels([1.0, 2.0])
    with pytest.raises(ValueError, match="exactly one"):
        HistogramPrior.from_labels([1.0, 2.0], bin_width=1.0, edges=[0, 1, 2])
    with pytest.raises(ValueError, match="bin_width"):
        HistogramPrior.from_labels([1.0, 2.0], bin_width=0.0)
    with pytest.raises(ValueError, match="outside the edges"):
        HistogramPrior.from_labels([1.0, 5.0], edges=[0, 1, 2])
    with pytest.raises(ValueError, match="increasing"):
        HistogramPrior.from_labels([1.0], edges=[0, 2, 1])
    with pytest.raises(ValueError, match="1-D labels only"):
        HistogramPrior.from_labels(np.zeros((4, 2)), bin_width=1.0)
    with pytest.raises(ValueError, match="unknown keys"):
        HistogramPrior.from_labels([1.0], bin_width=1.0, lds={"kernel": "gaussian"})
    with pytest.raises(ValueError, match="transform"):
        HistogramPrior.from_labels([1.0], bin_width=1.0, transform="log")
    with pytest.raises(ValueError, match="NaN"):
        HistogramPrior.from_labels([1.0, float("nan")], bin_width=1.0)


# ---------------------------------------------------------------------------------------------
# GMMPrior
# ---------------------------------------------------------------------------------------------


def test_gmm_variance_forms_give_full_covariances():
    means = torch.zeros(2, 3, dtype=F64)
    iso = GMMPrior(means, torch.tensor([1.0, 4.0]), [1.0, 1.0])
    torch.testing.assert_close(iso.covariances, torch.stack([torch.eye(3), 4 * torch.eye(3)]).double())
    diag = GMMPrior(means, torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), [1.0, 3.0])
    torch.testing.assert_close(diag.covariances[1], torch.diag(torch.tensor([4.0, 5.0, 6.0], dtype=F64)))
    assert diag.weights.tolist() == pytest.approx([0.25, 0.75])
    one_d = GMMPrior([0.0, 1.0], [2.0, 3.0], [1.0, 1.0])
    assert one_d.means.shape == (2, 1) and one_d.covariances.shape == (2, 1, 1)
    assert (one_d.dim, one_d.n_components) == (1, 2)


@pytest.mark.parametrize(
    "variances, match",
    [
        (torch.tensor([1.0, -1.0]), "> 0"),
        (torch.tensor([[1.0, 0.0], [1.0, 1.0]]), "> 0"),
        (torch.tensor([[[1.0, 0.5], [0.0, 1.0]]] * 2), "symmetric"),
        (torch.tensor([[[1.0, 2.0], [2.0, 1.0]]] * 2), "positive definite"),
        (torch.ones(2, 2, 3), "must have shape"),
    ],
)
def test_gmm_rejects_bad_variances(variances, match):
    with pytest.raises(ValueError, match=match):
        GMMPrior(torch.zeros(2, 2), variances, [0.5, 0.5])


def test_gmm_rejects_bad_weights():
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        GMMPrior(torch.zeros(2, 1), torch.ones(2), [1.0])
    with pytest.raises(ValueError, match="negative"):
        GMMPrior(torch.zeros(2, 1), torch.ones(2), [1.0, -0.1])


def test_gmm_tensors_like_casts_and_is_frozen():
    prior = GMMPrior([0.0], [1.0], [1.0])
    means, covs, log_phi = prior.tensors_like(torch.zeros(1, dtype=torch.float32))
    assert means.dtype == covs.dtype == log_phi.dtype == torch.float32
    assert log_phi.item() == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        prior.means = torch.ones(1, 1)  # type: ignore[misc]


def test_gmm_fit_recovers_a_known_mixture():
    rng = np.random.default_rng(0)
    n = 4000
    first = rng.random(n) < 0.3
    labels = np.where(first, rng.normal(-5.0, 1.0, n), rng.normal(5.0, 2.0, n))
    prior = GMMPrior.fit(labels, n_components=2, seed=0)
    order = torch.argsort(prior.means[:, 0])
    assert prior.means[order, 0].tolist() == pytest.approx([-5.0, 5.0], abs=0.15)
    assert prior.covariances[order, 0, 0].tolist() == pytest.approx([1.0, 4.0], rel=0.1)
    assert prior.weights[order].tolist() == pytest.approx([0.3, 0.7], abs=0.03)
    # the same seed gives the same fit
    again = GMMPrior.fit(torch.from_numpy(labels), n_components=2, seed=0)
    torch.testing.assert_close(again.means, prior.means)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied"])
def test_gmm_fit_covariance_types_in_2d(covariance_type):
    rng = np.random.default_rng(1)
    labels = rng.multivariate_normal([0.0, 1.0], [[1.0, 0.5], [0.5, 2.0]], size=600)
    prior = GMMPrior.fit(labels, n_components=3, seed=0, covariance_type=covariance_type)
    assert prior.means.shape == (3, 2) and prior.covariances.shape == (3, 2, 2)
    assert prior.weights.sum().item() == pytest.approx(1.0)
    assert bool((torch.linalg.eigvalsh(prior.covariances) > 0).all())
    if covariance_type in ("diag", "spherical"):
        assert bool((prior.covariances[:, 0, 1] == 0).all())
        return
    # EM with full or tied covariances preserves the second moment: the mixture's overall
    # covariance equals the sample covariance
    mean = (prior.weights[:, None] * prior.means).sum(0)
    second = (prior.weights[:, None, None] * (prior.covariances + prior.means[:, :, None] * prior.means[:, None, :])).sum(0)
    total = second - mean[:, None] * mean[None, :]
    np.testing.assert_allclose(total.numpy(), np.cov(labels.T, bias=True), atol=1e-3)


def test_gmm_fit_errors():
    with pytest.raises(ValueError, match="n_components"):
        GMMPrior.fit([1.0, 2.0], n_components=3)
    with pytest.raises(ValueError, match="covariance_type"):
        GMMPrior.fit([1.0, 2.0, 3.0], n_components=1, covariance_type="banded")
