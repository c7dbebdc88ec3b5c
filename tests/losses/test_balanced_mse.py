"""Balanced MSE (BMC, BNI, GAI): reference vectors, numerical integration, identities, σ, battery."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from hetreg import losses as L
from hetreg.losses import BalancedMSELoss, GMMPrior, HistogramPrior, bmc_loss, bni_loss, gai_loss

F64 = torch.float64


def _t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


# ---------------------------------------------------------------------------------------------
# Reference vectors (computed with the original implementation in float64)
# ---------------------------------------------------------------------------------------------

PRED_1D = [0.0, 1.0, 2.0]
TARGET_1D = [0.0, 2.0, 4.0]


@pytest.mark.parametrize("shape", [(3,), (3, 1)])
def test_reference_vectors_1d(shape):
    p, t = _t(PRED_1D).view(shape), _t(TARGET_1D).view(shape)
    assert bmc_loss(p, t, 1.0).item() == pytest.approx(2.0460210197, abs=1e-8)
    assert bmc_loss(p, t, 4.0).item() == pytest.approx(7.2302093150, abs=1e-8)
    hist = HistogramPrior(torch.arange(5, dtype=F64), torch.full((5,), 0.2, dtype=F64))
    assert bni_loss(p, t, 1.0, hist).item() == pytest.approx(0.0009374994, abs=1e-8)
    gmm = GMMPrior(_t([2.0]), _t([4.0]), _t([1.0]))
    assert gai_loss(p, t, 1.0, gmm).item() == pytest.approx(-0.2761045791, abs=1e-8)
    # a full (K, d, d) covariance and a (K, d) diagonal give the same d = 1 GAI
    gmm_full = GMMPrior(_t([[2.0]]), _t([[[4.0]]]), _t([1.0]))
    assert gai_loss(p, t, 1.0, gmm_full).item() == pytest.approx(-0.2761045791, abs=1e-8)


def test_reference_vector_2d_bmc():
    p = _t([[0, 0], [1, 1], [2, 0]])
    t = _t([[0, 1], [1, 2], [3, 0]])
    assert bmc_loss(p, t, 1.0).item() == pytest.approx(0.7607333803, abs=1e-8)


def test_reference_vectors_through_the_module():
    p, t = _t(PRED_1D), _t(TARGET_1D)
    m = BalancedMSELoss("bmc", init_noise_sigma=2.0).double()
    assert m(p, t).item() == pytest.approx(7.2302093150, abs=1e-8)
    m = BalancedMSELoss("gai", prior=GMMPrior([2.0], [4.0], [1.0])).double()
    assert m(p, t).item() == pytest.approx(-0.2761045791, abs=1e-8)


# ---------------------------------------------------------------------------------------------
# GAI against numerical integration of (★)
# ---------------------------------------------------------------------------------------------


def _star_1d(yhat: float, y: float, var: float, means, variances, weights) -> float:
    """−log N(y; ŷ, σ²) + log ∫ N(y'; ŷ, σ²) p(y') dy' by adaptive quadrature."""
    sd = math.sqrt(var)

    def integrand(u: float) -> float:
        prior = sum(w * stats.norm.pdf(u, m, math.sqrt(v)) for m, v, w in zip(means, variances, weights))
        return stats.norm.pdf(u, yhat, sd) * prior

    lo = min([yhat - 40 * sd] + [m - 40 * math.sqrt(v) for m, v in zip(means, variances)])
    hi = max([yhat + 40 * sd] + [m + 40 * math.sqrt(v) for m, v in zip(means, variances)])
    points = sorted([yhat, *means])
    integral, _ = integrate.quad(integrand, lo, hi, points=points, epsabs=0, epsrel=1e-13, limit=500)
    return -stats.norm.logpdf(y, yhat, sd) + math.log(integral)


@pytest.mark.parametrize("var", [0.3, 1.0, 4.0])
def test_gai_equals_numerical_integration_1d(var):
    means, variances, weights = [-1.0, 3.0], [0.5, 2.0], [0.3, 0.7]
    prior = GMMPrior(_t(means), _t(variances), _t(weights))
    pred = _t([-2.0, 0.0, 1.5, 3.0, 6.0])
    target = _t([-1.0, 0.5, 1.0, 4.0, 2.0])
    got = gai_loss(pred, target, var, prior, rescale=False, reduction="none")
    want = [_star_1d(p, y, var, means, variances, weights) for p, y in zip(pred.tolist(), target.tolist())]
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-9)
    scaled = gai_loss(pred, target, var, prior, reduction="none")
    np.testing.assert_allclose(scaled.numpy(), 2 * var * np.asarray(want), rtol=0, atol=1e-8)


def test_gai_equals_numerical_integration_2d_full_covariance():
    cov = np.array([[[1.0, 0.6], [0.6, 2.0]], [[0.5, -0.2], [-0.2, 0.4]]])
    means = np.array([[0.0, 1.0], [2.0, -1.0]])
    weights = np.array([0.4, 0.6])
    prior = GMMPrior(torch.from_numpy(means), torch.from_numpy(cov), torch.from_numpy(weights))
    var = 0.7
    pred = _t([[0.5, 0.2], [2.5, -2.0]])
    target = _t([[1.0, 1.0], [2.0, -1.5]])
    got = gai_loss(pred, target, var, prior, rescale=False, reduction="none")
    # 2-D numerical integration on a uniform grid: for a smooth, Gaussian-tailed integrand the
    # grid sum converges spectrally (error ~ exp(-2π² s²/h²), s the smallest integrand scale).
    h = 0.04
    axis = np.arange(-12, 12 + h / 2, h)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    prior_pdf = sum(w * stats.multivariate_normal(means[k], cov[k]).pdf(grid) for k, w in enumerate(weights))
    for i in range(2):
        yhat, y = pred[i].numpy(), target[i].numpy()
        noise = stats.multivariate_normal(yhat, var * np.eye(2))
        integral = (noise.pdf(grid) * prior_pdf).sum() * h * h
        want = -noise.logpdf(y) + math.log(integral)
        assert got[i, 0].item() == pytest.approx(want, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Identities
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("var", [0.5, 2.0])
def test_bmc_gradient_identity(d, var):
    g = torch.Generator().manual_seed(7)
    b = 6
    pred = torch.randn(b, d, generator=g, dtype=F64, requires_grad=True)
    target = torch.randn(b, d, generator=g, dtype=F64) * 2
    bmc_loss(pred, target, var).backward()
    with torch.no_grad():
        dist = ((pred[:, None, :] - target[None, :, :]) ** 2).sum(-1)
        p = torch.softmax(-dist / (2 * var), dim=1)
        want = 2 * (p @ target - target)
    torch.testing.assert_close(b * pred.grad, want, rtol=1e-12, atol=1e-12)


def test_bmc_gradient_is_sigma2_times_kde_score():
    """Σ_j p_ij y_j = ŷ_i + σ² ∂ log KDE_σ(ŷ_i): the balancing term follows the smoothed prior's score."""
    g = torch.Generator().manual_seed(3)
    var = 0.8
    pred = torch.randn(5, generator=g, dtype=F64, requires_grad=True)
    target = torch.randn(5, generator=g, dtype=F64)
    bmc_loss(pred, target, var).backward()
    y0 = pred.detach().clone().requires_grad_(True)
    kde = torch.exp(-((y0[:, None] - target[None, :]) ** 2) / (2 * var)).sum(1)
    (score,) = torch.autograd.grad(torch.log(kde).sum(), y0)
    want = 2 * (y0.detach() + var * score - target)  # 2(E_p[y] − y_i)
    torch.testing.assert_close(5 * pred.grad, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("prior_var", [4.0, 9.0, 25.0])
def test_bni_with_unit_buckets_matches_gai(prior_var):
    """Unit-width buckets weighted by the prior density: BNI = GAI up to the Riemann-sum aliasing.

    Both constants agree (the bucket weights sum to the density's integral), so the only
    difference is the unit-step sum of a Gaussian integrand, whose relative error is at most
    2·exp(-2π² s²) with s² = σ²τ²/(σ²+τ²) (Poisson summation): times 2σ² for the rescaled loss.
    """
    mu, var = 2.0, 1.0
    centers = torch.arange(-60, 65, dtype=F64)
    hist = HistogramPrior(centers, torch.exp(-((centers - mu) ** 2) / (2 * prior_var)))
    gmm = GMMPrior(_t([mu]), _t([prior_var]), _t([1.0]))
    pred = torch.linspace(-3, 7, 11, dtype=F64)
    target = pred.flip(0) * 0.5
    diff = bni_loss(pred, target, var, hist, reduction="none") - gai_loss(pred, target, var, gmm, reduction="none")
    s2 = var * prior_var / (var + prior_var)
    bound = 2 * var * 2 * math.exp(-2 * math.pi**2 * s2)
    assert diff.abs().max().item() <= 1.01 * bound + 1e-13
    if prior_var >= 9.0:
        assert diff.abs().max().item() < 1e-7


@pytest.mark.parametrize("k", [6, 7, 50])
def test_max_candidates_at_least_batch_equals_full_bmc(k):
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(6, 2, generator=g, dtype=F64)
    target = torch.randn(6, 2, generator=g, dtype=F64)
    full = bmc_loss(pred, target, 0.7, reduction="none")
    sub = bmc_loss(pred, target, 0.7, max_candidates=k, generator=torch.Generator().manual_seed(5), reduction="none")
    torch.testing.assert_close(sub, full, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_max_candidates_against_brute_force(k):
    g = torch.Generator().manual_seed(2)
    n, var = 7, 0.6
    pred = torch.randn(n, generator=g, dtype=F64)
    target = torch.randn(n, generator=g, dtype=F64)
    got = bmc_loss(pred, target, var, max_candidates=k, generator=torch.Generator().manual_seed(11), reduction="none")
    cand = torch.randperm(n, generator=torch.Generator().manual_seed(11))[:k].tolist()
    p, t = pred.tolist(), target.tolist()
    for i in range(n):
        rows = sorted(set(cand) | {i})  # the shared set, plus the own positive
        logits = [-((p[i] - t[j]) ** 2) / (2 * var) for j in rows]
        lse = max(logits) + math.log(sum(math.exp(x - max(logits)) for x in logits))
        want = 2 * var * (((p[i] - t[i]) ** 2) / (2 * var) + lse)
        assert got[i].item() == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_max_candidates_uses_the_generator():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(20, generator=g, dtype=F64), torch.randn(20, generator=g, dtype=F64)
    a = bmc_loss(pred, target, 1.0, max_candidates=3, generator=torch.Generator().manual_seed(1))
    b = bmc_loss(pred, target, 1.0, max_candidates=3, generator=torch.Generator().manual_seed(1))
    c = bmc_loss(pred, target, 1.0, max_candidates=3, generator=torch.Generator().manual_seed(2))
    assert a.item() == b.item()
    assert a.item() != c.item()


# ---------------------------------------------------------------------------------------------
# σ: gradients, learning, state
# ---------------------------------------------------------------------------------------------


def _priors(d: int, seed: int = 0) -> tuple[HistogramPrior, GMMPrior]:
    g = torch.Generator().manual_seed(100 + seed)
    hist = HistogramPrior(torch.randn(7, d, generator=g, dtype=F64) * 1.5, torch.rand(7, generator=g, dtype=F64) + 0.1)
    a = torch.randn(2, d, d, generator=g, dtype=F64)
    cov = a @ a.transpose(1, 2) + 0.5 * torch.eye(d, dtype=F64)
    gmm = GMMPrior(torch.randn(2, d, generator=g, dtype=F64), cov, _t([0.35, 0.65]))
    return hist, gmm


@pytest.mark.parametrize("method", ["bmc", "bni", "gai"])
def test_sigma_gradient_flows_with_detached_rescale(method):
    hist, gmm = _priors(1)
    g = torch.Generator().manual_seed(4)
    pred, target = torch.randn(6, generator=g, dtype=F64), torch.randn(6, generator=g, dtype=F64)
    prior = {"bmc": None, "bni": hist, "gai": gmm}[method]
    fn = {"bmc": bmc_loss, "bni": bni_loss, "gai": gai_loss}[method]
    args = () if prior is None else (prior,)
    grads = {}
    for rescale in (True, False):
        sigma = _t(1.3).requires_grad_(True)
        fn(pred, target, sigma**2, *args, rescale=rescale).backward()
        grads[rescale] = sigma.grad.item()
    assert grads[False] != 0.0
    # the factor 2σ² is detached: it scales the σ-gradient and does not differentiate itself
    assert grads[True] == pytest.approx(2 * 1.3**2 * grads[False], rel=1e-12)


def test_gai_sigma_is_a_maximum_likelihood_parameter():
    """With a very broad prior the balancing term is flat, so dL/dσ² = 0 at σ² = mean squared error."""
    g = torch.Generator().manual_seed(8)
    pred = torch.randn(200, generator=g, dtype=F64)
    target = pred + 0.5 * torch.randn(200, generator=g, dtype=F64)
    mse = ((pred - target) ** 2).mean()
    prior = GMMPrior(_t([0.0]), _t([1e8]), _t([1.0]))
    var = mse.clone().requires_grad_(True)
    gai_loss(pred, target, var, prior, rescale=False).backward()
    assert abs(var.grad.item()) < 1e-6
    var2 = (mse * 1.5).requires_grad_(True)
    gai_loss(pred, target, var2, prior, rescale=False).backward()
    assert var2.grad.item() > 1e-3  # above the optimum the loss increases with σ²


def test_module_learns_sigma_and_records_it():
    hist, _ = _priors(1)
    m = BalancedMSELoss("bni", init_noise_sigma=1.3, prior=hist).double()
    g = torch.Generator().manual_seed(4)
    pred, target = torch.randn(6, generator=g, dtype=F64), torch.randn(6, generator=g, dtype=F64)
    loss = m(pred, target)
    loss.backward()
    assert m.noise_sigma.grad is not None and m.noise_sigma.grad.item() != 0.0
    assert m.records == {"sigma": pytest.approx(1.3), "noise_var": pytest.approx(1.69)}
    opt = torch.optim.SGD(m.param_groups(0.01))
    opt.step()
    assert m.noise_sigma.item() != pytest.approx(1.3, abs=1e-12)


def test_sigma_and_prior_are_checkpointed_and_restored():
    _, gmm = _priors(2)
    m = BalancedMSELoss("gai", init_noise_sigma=2.0, prior=gmm)
    with torch.no_grad():
        m.noise_sigma.fill_(3.5)
    state = m.state_dict()
    assert set(state) == {"noise_sigma", "prior_means", "prior_covariances", "prior_weights"}
    fresh = BalancedMSELoss("gai", init_noise_sigma=2.0, prior=GMMPrior(torch.zeros(2, 2), torch.ones(2), [1.0, 1.0]))
    fresh.load_state_dict(state)
    assert fresh.noise_sigma.item() == 3.5
    torch.testing.assert_close(fresh.prior.means, gmm.means)
    torch.testing.assert_close(fresh.prior.covariances, gmm.covariances)
    pred, target = torch.randn(4, 2, dtype=F64), torch.randn(4, 2, dtype=F64)
    torch.testing.assert_close(fresh(pred, target), m(pred, target))


def test_fixed_sigma_is_still_in_state_dict():
    m = BalancedMSELoss("bmc", init_noise_sigma=8.0, learn_sigma=False)
    assert not m.noise_sigma.requires_grad
    assert m.state_dict()["noise_sigma"].item() == 8.0
    assert m.param_groups(1e-2) == []
    other = BalancedMSELoss("bmc", learn_sigma=False)
    other.load_state_dict(m.state_dict())
    assert other.noise_sigma.item() == 8.0
    pred = torch.randn(5, requires_grad=True)
    other(pred, torch.randn(5)).backward()
    assert other.noise_sigma.grad is None and pred.grad is not None


def test_param_group_is_kept_out_of_the_schedule():
    model = torch.nn.Linear(1, 1)
    m = BalancedMSELoss("bmc", init_noise_sigma=1.0)
    groups = m.param_groups(1e-2)
    assert groups == [{"params": [m.noise_sigma], "lr": 1e-2, "name": "noise_sigma", "no_schedule": True}]
    opt = torch.optim.Adam([{"params": model.parameters()}, *groups], lr=1e-3)
    decay = lambda epoch: 0.1**epoch  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, [(lambda e: 1.0) if g.get("no_schedule") else decay for g in opt.param_groups]
    )
    for _ in range(3):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-6)
    assert opt.param_groups[1]["lr"] == pytest.approx(1e-2)
    assert opt.state_dict()["param_groups"][1]["name"] == "noise_sigma"


def test_prior_buffers_follow_module_dtype_and_inputs():
    hist, _ = _priors(1)
    m = BalancedMSELoss("bni", prior=hist)
    out = m(torch.randn(4), torch.randn(4))
    assert out.dtype == torch.float32
    assert m.prior_centers.dtype == F64  # stored as given, cast at use time
    m = m.float()
    assert m.prior_centers.dtype == torch.float32
    assert m(torch.randn(4), torch.randn(4)).dtype == torch.float32


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_bmc_batch_of_one_recommends_gai():
    with pytest.raises(ValueError, match="GAI"):
        bmc_loss(torch.zeros(1), torch.ones(1), 1.0)
    gmm = GMMPrior([0.0], [1.0], [1.0])
    assert torch.isfinite(gai_loss(torch.zeros(1), torch.ones(1), 1.0, gmm))


def test_missing_or_wrong_prior_says_how_to_build_one():
    with pytest.raises(ValueError, match=r"HistogramPrior\.from_labels"):
        BalancedMSELoss("bni")
    with pytest.raises(ValueError, match=r"GMMPrior\.fit"):
        BalancedMSELoss("gai")
    with pytest.raises(ValueError, match=r"GMMPrior\.fit"):
        BalancedMSELoss("gai", prior=HistogramPrior([0.0], [1.0]))
    with pytest.raises(ValueError, match="HistogramPrior"):
        bni_loss(torch.zeros(3), torch.zeros(3), 1.0, GMMPrior([0.0], [1.0], [1.0]))
    with pytest.raises(ValueError, match="no prior"):
        BalancedMSELoss("bmc", prior=HistogramPrior([0.0], [1.0]))
    with pytest.raises(ValueError, match="BMC only"):
        BalancedMSELoss("gai", prior=GMMPrior([0.0], [1.0], [1.0]), max_candidates=4)
    with pytest.raises(ValueError, match="method"):
        BalancedMSELoss("bmse")


def test_prior_dimension_must_match():
    hist, gmm = _priors(2)
    with pytest.raises(ValueError, match="2-dimensional.*d = 1"):
        bni_loss(torch.zeros(3), torch.zeros(3), 1.0, hist)
    with pytest.raises(ValueError, match="2-dimensional.*d = 3"):
        gai_loss(torch.zeros(3, 3), torch.zeros(3, 3), 1.0, gmm)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_noise_var_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError, match="noise_var"):
        bmc_loss(torch.zeros(3), torch.ones(3), bad)
    with pytest.raises(ValueError, match="noise_var"):
        bmc_loss(torch.zeros(3), torch.ones(3), torch.tensor(bad))


def test_noise_var_must_be_a_scalar():
    with pytest.raises(ValueError, match="0-dim"):
        bmc_loss(torch.zeros(3), torch.ones(3), torch.ones(3))


def test_bad_max_candidates():
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="max_candidates"):
            bmc_loss(torch.zeros(3), torch.ones(3), 1.0, max_candidates=bad)
    with pytest.raises(ValueError, match="max_candidates"):
        BalancedMSELoss("bmc", max_candidates=0)


def test_per_element_weight_is_refused_for_multi_output():
    with pytest.raises(ValueError, match=r"one term per sample.*\(4, 3\)"):
        bmc_loss(torch.zeros(4, 3), torch.ones(4, 3), 1.0, weight=torch.ones(4, 3))


def test_bad_init_sigma():
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="init_noise_sigma"):
            BalancedMSELoss("bmc", init_noise_sigma=bad)


def test_registry_builds_each_method():
    hist, gmm = _priors(1)
    assert L.build_loss("bmc", init_noise_sigma=3.0).method == "bmc"
    assert L.build_loss("bni", prior=hist).method == "bni"
    m = L.build_loss("gai", prior=gmm, learn_sigma=False, reduction="sum")
    assert (m.method, m.learn_sigma, m.reduction) == ("gai", False, "sum")
    with pytest.raises(ValueError, match="bad parameters"):
        L.build_loss("bmc", method="gai")


# ---------------------------------------------------------------------------------------------
# The uniform battery
# ---------------------------------------------------------------------------------------------


def _lse(xs: list[float]) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _brute(method: str, p: list[list[float]], t: list[list[float]], var: float, prior) -> list[float]:
    """Per-sample rescaled terms, from the definitions, with Python floats and numpy."""
    out = []
    for i in range(len(p)):
        quad = sum((a - b) ** 2 for a, b in zip(p[i], t[i])) / (2 * var)
        if method == "bmc":
            bal = _lse([-sum((a - b) ** 2 for a, b in zip(p[i], t[j])) / (2 * var) for j in range(len(t))])
        elif method == "bni":
            c, w = prior.centers.tolist(), prior.weights.tolist()
            bal = _lse([math.log(w[j]) - sum((a - b) ** 2 for a, b in zip(p[i], c[j])) / (2 * var) for j in range(len(c))])
        else:  # (★) with all constants, via numpy's det and inverse
            d = len(p[i])
            yhat, y = np.array(p[i]), np.array(t[i])
            nll = quad + 0.5 * d * math.log(2 * math.pi * var)
            comps = []
            for mu, cov, w in zip(prior.means.numpy(), prior.covariances.numpy(), prior.weights.numpy()):
                a = cov + var * np.eye(d)
                r = yhat - mu
                comps.append(math.log(w) - 0.5 * math.log(np.linalg.det(2 * math.pi * a)) - 0.5 * r @ np.linalg.inv(a) @ r)
            out.append(2 * var * (nll + _lse(comps)))
            continue
        out.append(2 * var * (quad + bal))
    return out


@dataclass(frozen=True)
class Case:
    method: str
    fn: Callable

    def prior(self, d: int):
        hist, gmm = _priors(d)
        return {"bmc": None, "bni": hist, "gai": gmm}[self.method]

    def call(self, pred, target, var=0.8, **kw):
        prior = self.prior(1 if pred.dim() == 1 else pred.shape[1])
        args = () if prior is None else (prior,)
        return self.fn(pred, target, var, *args, **kw)

    def module(self, d: int, reduction: str = "mean") -> BalancedMSELoss:
        return BalancedMSELoss(self.method, init_noise_sigma=math.sqrt(0.8), prior=self.prior(d), reduction=reduction)


CASES = [Case("bmc", bmc_loss), Case("bni", bni_loss), Case("gai", gai_loss)]
IDS = [c.method for c in CASES]
SHAPES = [(7,), (7, 1), (7, 3)]


def _inputs(shape, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(shape, generator=g, dtype=dtype)
    target = torch.randn(shape, generator=g, dtype=dtype) * 1.5
    weight = torch.rand(shape[0], generator=g, dtype=dtype) + 0.1
    return pred, target, weight


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_smoke_and_cardinality(case, shape, reduction):
    pred, target, _ = _inputs(shape)
    out = case.call(pred, target, reduction=reduction)
    if reduction == "none":
        assert out.shape == ((7,) if len(shape) == 1 else (7, 1))
    else:
        assert out.dim() == 0
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_value_against_brute_force(case, shape):
    pred, target, weight = _inputs(shape, seed=3)
    d = 1 if len(shape) == 1 else shape[1]
    rows = lambda x: x.reshape(x.shape[0], -1).tolist()  # noqa: E731
    terms = _brute(case.method, rows(pred), rows(target), 0.8, case.prior(d))
    got = case.call(pred, target, reduction="none").reshape(-1)
    np.testing.assert_allclose(got.numpy(), terms, rtol=1e-12, atol=1e-12)
    want = sum(w * x for w, x in zip(weight.tolist(), terms)) / len(terms)
    assert case.call(pred, target, weight=weight).item() == pytest.approx(want, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("shape", [(9,), (9, 2)])
def test_reductions_are_consistent(case, shape):
    pred, target, weight = _inputs(shape, seed=5)
    none = case.call(pred, target, reduction="none", weight=weight)
    total = case.call(pred, target, reduction="sum", weight=weight)
    mean = case.call(pred, target, reduction="mean", weight=weight)
    torch.testing.assert_close(none.sum(), total)
    torch.testing.assert_close(mean, total / 9)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_weights_of_one_equal_no_weights(case, shape):
    pred, target, _ = _inputs(shape, seed=1)
    a = case.call(pred, target)
    for w in (torch.ones(7, dtype=F64), torch.ones(7, 1, dtype=F64)):
        torch.testing.assert_close(case.call(pred, target, weight=w), a, rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("shape", [(6,), (6, 2)])
def test_module_equals_function(case, shape):
    pred, target, weight = _inputs(shape, seed=2)
    d = 1 if len(shape) == 1 else shape[1]
    for reduction in ("mean", "sum", "none"):
        module = case.module(d, reduction).double()
        want = case.call(pred, target, reduction=reduction, weight=weight)
        torch.testing.assert_close(module(pred, target, weight), want)
        torch.testing.assert_close(module.from_batch(pred, target, weight=weight), want)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("shape", [(5,), (5, 2)])
def test_gradcheck_float64(case, shape):
    pred, target, weight = _inputs(shape, seed=4)
    pred.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: case.call(p, target, weight=weight), (pred,))
    # with respect to σ² too (without the detached rescale, whose factor gradcheck would perturb)
    var = _t(0.8).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, v: case.call(p, target, v, rescale=False, weight=weight), (pred, var))


def test_gradcheck_downsampled_bmc():
    pred, target, _ = _inputs((8, 2), seed=6)
    pred.requires_grad_(True)
    var = _t(0.8).requires_grad_(True)

    def f(p, v):
        return bmc_loss(p, target, v, rescale=False, max_candidates=3, generator=torch.Generator().manual_seed(0))

    assert torch.autograd.gradcheck(f, (pred, var))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_shape_mismatch_names_both_shapes(case):
    pred, target, _ = _inputs((6, 1))
    with pytest.raises(ValueError, match=r"\(6, 1\).*\(6,\)"):
        case.call(pred, target.view(6))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_weight_and_reduction_raise(case):
    pred, target, _ = _inputs((6,))
    with pytest.raises(ValueError, match="weight"):
        case.call(pred, target, weight=-torch.ones(6, dtype=F64))
    with pytest.raises(ValueError, match="weight"):
        case.call(pred, target, weight=torch.ones(5, dtype=F64))
    with pytest.raises(ValueError, match="reduction"):
        case.call(pred, target, reduction="avg")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_follows_input_dtype(case):
    pred, target, _ = _inputs((4, 1), dtype=torch.float32)
    out = case.call(pred, target)
    assert out.dtype == torch.float32
    want = case.call(pred.double(), target.double())
    assert out.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-5)
