"""Properties of IV, BIV, the effective batch size and the automatic ε."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hetreg.losses import (
    BIVLoss,
    CutoffMSELoss,
    biv_factors,
    biv_loss,
    cutoff_mse_loss,
    effective_batch_size,
    iv_loss,
    mse_loss,
    solve_epsilon,
)

eps_values = st.one_of(st.just(0.0), st.floats(1e-8, 10.0))
variances = st.lists(st.one_of(st.just(0.0), st.floats(1e-8, 1e3)), min_size=2, max_size=40)


def _data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=torch.float64), torch.randn(n, generator=g, dtype=torch.float64)


def _ebs_brute(v, eps):
    w = [1.0 / (x + eps) for x in v]
    return sum(w) ** 2 / sum(x * x for x in w)


def test_biv_equals_mse_when_variances_equal():
    p, t = _data()
    for value in (1e-4, 0.3, 17.0):
        v = torch.full((32,), value, dtype=torch.float64)
        torch.testing.assert_close(biv_loss(p, t, v, eps=0.1), mse_loss(p, t))


def test_biv_tends_to_mse_as_eps_grows():
    p, t = _data()
    v = torch.rand(32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert abs(biv_loss(p, t, v, eps=1e9) - mse_loss(p, t)) < 1e-8


@given(st.floats(1e-3, 1e3))
@settings(max_examples=25, deadline=None)
def test_biv_invariant_to_variance_scale_when_eps_zero(scale):
    p, t = _data()
    v = torch.rand(32, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + 0.01
    torch.testing.assert_close(biv_loss(p, t, v, eps=0.0), biv_loss(p, t, v * scale, eps=0.0))


def test_biv_gradient_is_normalised_iv_gradient():
    p, t = _data(8)
    v = torch.rand(8, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) + 0.1
    x = p.clone().requires_grad_(True)
    biv_loss(x, t, v, eps=0.2).backward()
    w = 1 / (v + 0.2)
    torch.testing.assert_close(x.grad, 2 * w * (p - t) / w.sum())


def test_iv_is_unnormalised_mean():
    p, t = _data(8)
    v = torch.rand(8, dtype=torch.float64) + 0.1
    torch.testing.assert_close(iv_loss(p, t, v, eps=0.5), ((p - t) ** 2 / (v + 0.5)).mean())
    # The IV scale explodes with tiny variances; BIV does not.
    assert iv_loss(p, t, v * 1e-6, eps=0.0) > 1e4 * biv_loss(p, t, v * 1e-6, eps=0.0)


def test_zero_variance_with_zero_eps_raises_clearly():
    p, t = _data(4)
    v = torch.tensor([0.0, 1, 2, 3], dtype=torch.float64)
    for fn in (iv_loss, biv_loss):
        with pytest.raises(ValueError, match="eps"):
            fn(p, t, v, eps=0.0)
    assert torch.isfinite(biv_loss(p, t, v, eps=1e-3))


def test_negative_eps_raises():
    p, t = _data(4)
    with pytest.raises(ValueError, match="eps"):
        biv_loss(p, t, torch.ones(4, dtype=torch.float64), eps=-0.1)


@given(variances, eps_values)
@settings(max_examples=60, deadline=None)
def test_ebs_matches_brute_force_and_lies_in_1_n(v, eps):
    if eps == 0 and 0.0 in v:
        eps = 1e-3
    got = float(effective_batch_size(torch.tensor(v, dtype=torch.float64), eps))
    assert got == pytest.approx(_ebs_brute(v, eps), rel=1e-9)
    assert 1 - 1e-9 <= got <= len(v) + 1e-9


@given(variances, eps_values, eps_values)
@settings(max_examples=60, deadline=None)
def test_ebs_is_monotone_in_eps(v, a, b):
    lo, hi = sorted((a, b))
    x = torch.tensor(v, dtype=torch.float64)
    assert float(effective_batch_size(x, lo)) <= float(effective_batch_size(x, hi)) + 1e-9


def test_ebs_limit_with_exact_labels():
    v = torch.tensor([0.0, 0.0, 1.0, 2.0])
    assert float(effective_batch_size(v, 0.0)) == pytest.approx(2.0)


def test_ebs_batched_rows():
    v = torch.rand(3, 10, dtype=torch.float64)
    got = effective_batch_size(v, 0.1)
    assert got.shape == (3,)
    for i in range(3):
        assert float(got[i]) == pytest.approx(_ebs_brute(v[i].tolist(), 0.1))


@given(
    st.lists(st.floats(1e-6, 1e4, allow_nan=False), min_size=3, max_size=64),
    st.floats(0.05, 0.95),
)
@settings(max_examples=80, deadline=None)
def test_solve_epsilon_hits_its_target_and_is_the_smallest(v, fraction):
    x = torch.tensor(v, dtype=torch.float64)
    n = len(v)
    if max(v) == min(v):
        return
    target = 1 + fraction * (n - 1 - 1)  # strictly inside [1, N-1]
    eps = float(solve_epsilon(x, target))
    assert eps >= 0
    ebs_at = float(effective_batch_size(x, eps))
    assert ebs_at >= target * (1 - 1e-9)
    if eps > 0:
        # smallest: just below it the target is not reached (exact to 1e-6 relative)
        assert float(effective_batch_size(x, eps * (1 - 1e-6))) < target
        assert ebs_at == pytest.approx(target, rel=1e-6)
    else:
        assert _ebs_brute(v, 0.0) >= target * (1 - 1e-9)


def test_solve_epsilon_vectorised_rows_and_zero_when_already_met():
    v = torch.stack([torch.linspace(0.01, 5, 50), torch.ones(50), torch.logspace(-4, 3, 50)]).double()
    eps = solve_epsilon(v, 25.0)
    assert eps.shape == (3,)
    assert float(eps[1]) == 0.0
    for i in (0, 2):
        assert float(effective_batch_size(v[i], eps[i])) == pytest.approx(25.0, rel=1e-6)


def test_solve_epsilon_rejects_unreachable_targets():
    v = torch.tensor([0.1, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"\[1, 3\]"):
        solve_epsilon(v, 4.0)
    with pytest.raises(ValueError, match="all variances are equal"):
        solve_epsilon(v, 3.0)
    with pytest.raises(ValueError, match=r"\[1, 3\]"):
        solve_epsilon(v, 0.5)


def test_biv_auto_eps_module_meets_min_ebs_and_records():
    p, t = _data(64)
    v = torch.cat([torch.full((8,), 1e-5), torch.rand(56, generator=torch.Generator().manual_seed(0)) * 10]).double()
    fixed = BIVLoss(eps=0.0)
    fixed(p, t, v)
    assert fixed.last_ebs < 10  # the near-exact labels dominate
    auto = BIVLoss(eps="auto", min_ebs=0.5)
    loss = auto(p, t, v)
    assert auto.last_ebs == pytest.approx(32.0, rel=1e-5)
    torch.testing.assert_close(loss, biv_loss(p, t, v, eps=auto.last_eps))
    assert set(auto.records) == {"ebs", "eps"}
    absolute = BIVLoss(eps="auto", min_ebs=16)
    absolute(p, t, v)
    assert absolute.last_ebs == pytest.approx(16.0, rel=1e-5)


def test_biv_auto_with_exact_labels_stays_finite():
    p, t = _data(6)
    v = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 2.0], dtype=torch.float64)
    m = BIVLoss(eps="auto", min_ebs=2)
    out = m(p, t, v)
    assert torch.isfinite(out)
    # the exact labels alone reach EBS 4 >= 2: the loss is (almost exactly) their MSE
    torch.testing.assert_close(out, ((p[:4] - t[:4]) ** 2).mean(), rtol=1e-6, atol=1e-9)


def test_biv_module_argument_errors():
    with pytest.raises(ValueError, match="min_ebs"):
        BIVLoss(eps="auto")
    with pytest.raises(ValueError, match="fraction"):
        BIVLoss(eps="auto", min_ebs=1.5)
    with pytest.raises(ValueError, match=">= 1"):
        BIVLoss(eps="auto", min_ebs=0)
    with pytest.raises(ValueError, match="only with eps='auto'"):
        BIVLoss(eps=0.1, min_ebs=3)
    with pytest.raises(ValueError, match="'auto'"):
        BIVLoss(eps="automatic")


def test_biv_none_terms_sum_to_loss_for_nd():
    g = torch.Generator().manual_seed(9)
    p, t = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    v = torch.rand(5, generator=g, dtype=torch.float64)
    terms = biv_loss(p, t, v, reduction="none")
    assert terms.shape == (5, 3)
    torch.testing.assert_close(terms.sum(), biv_loss(p, t, v))
    # a per-sample variance weighs each output dimension alike: BIV of the per-sample mean errors
    per_sample = ((p - t) ** 2).mean(1)
    w = 1 / (v + 0.1)
    torch.testing.assert_close(biv_loss(p, t, v), (w * per_sample).sum() / w.sum())


def test_cutoff_keeps_strictly_below_threshold_and_empty_batch_keeps_graph():
    p, t = _data(4)
    v = torch.tensor([0.1, 0.5, 0.49, 2.0], dtype=torch.float64)
    torch.testing.assert_close(cutoff_mse_loss(p, t, v, 0.5), ((p - t)[[0, 2]] ** 2).mean())
    x = p.clone().requires_grad_(True)
    m = CutoffMSELoss(threshold=0.05)
    out = m(x, t, v)
    assert out.item() == 0.0 and out.requires_grad
    out.backward()
    assert torch.equal(x.grad, torch.zeros_like(p))
    assert m.records["kept_fraction"] == 0.0 and m.empty_batches == 1
    m(x, t, v * 0 + 0.01)
    assert m.records["kept_fraction"] == 1.0 and m.empty_batches == 1
    with pytest.raises(ValueError, match="threshold"):
        CutoffMSELoss(threshold=0)


def test_from_batch_explains_missing_inputs():
    p, t = _data(4)
    with pytest.raises(ValueError, match="variance of every label"):
        BIVLoss().from_batch(p, t)
    from hetreg.losses import GaussianNLLLoss

    with pytest.raises(ValueError, match="mean_var"):
        GaussianNLLLoss().from_batch(p, t)


def test_positive_variance_keeps_gradient_below_floor():
    from hetreg.losses import positive_variance

    raw = torch.tensor([-50.0, 0.0, 3.0], requires_grad=True)
    v = positive_variance(raw, floor=1e-6)
    assert (v > 0).all()
    v.sum().backward()
    assert (raw.grad > 0).all()  # a clamp would give exactly zero for the first entry
    with pytest.raises(ValueError, match="kind"):
        positive_variance(raw, kind="relu")
    np.testing.assert_allclose(positive_variance(torch.tensor([0.0]), kind="exp", floor=0).numpy(), [1.0])


def _biv_exact(e, v, eps):
    """BIV and its normalised weights w_k / Σw in exact rational arithmetic
    (fractions.Fraction holds subnormal floats exactly)."""
    from fractions import Fraction

    w = [1 / (Fraction(x) + Fraction(eps)) for x in v]
    total = sum(w)
    loss = sum(wi * Fraction(ei) ** 2 for wi, ei in zip(w, e)) / total
    return float(loss), [float(wi / total) for wi in w]


@pytest.mark.parametrize(
    "variances",
    [
        [1e-309, 1.0, 2.0],  # a subnormal variance: its reciprocal overflows
        [1e-308, 1e-308, 3.0],  # finite reciprocals whose sum overflows
        [5e-324, 1e-320, 1.0],  # the smallest float64 next to another subnormal
    ],
)
@pytest.mark.parametrize("grad_through_variance", [False, True])
def test_biv_with_near_zero_variances_takes_its_limit_not_nan(variances, grad_through_variance):
    e = [1.0, 2.0, -0.5]
    exact, factors = _biv_exact(e, variances, 0.0)
    pred = torch.tensor(e, dtype=torch.float64, requires_grad=True)
    var = torch.tensor(variances, dtype=torch.float64, requires_grad=grad_through_variance)
    loss = biv_loss(pred, torch.zeros(3, dtype=torch.float64), var, eps=0.0)
    assert loss.item() == pytest.approx(exact, rel=1e-15)
    loss.backward()
    assert pred.grad.tolist() == pytest.approx([2 * f * ei for f, ei in zip(factors, e)], rel=1e-15, abs=1e-300)
    assert biv_factors(np.array(variances), 0.0).tolist() == pytest.approx(factors, rel=1e-15, abs=1e-300)


def test_biv_float32_subnormal_variance_with_gradient_and_auto_eps():
    pred = torch.tensor([1.0, 2.0], requires_grad=True)
    var = torch.tensor([1e-39, 1.0], requires_grad=True)  # float32 subnormal: 1/σ² overflows
    loss = biv_loss(pred, torch.zeros(2), var, eps=0.0)
    assert loss.item() == pytest.approx(_biv_exact([1.0, 2.0], [float(var.detach()[0]), 1.0], 0.0)[0], rel=1e-6)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    v64 = torch.tensor([1e-309, 1.0], dtype=torch.float64)  # min_ebs=1 is met at ε = 0
    auto = BIVLoss("auto", min_ebs=1)(pred.detach().double(), torch.zeros(2, dtype=torch.float64), v64)
    assert auto.item() == pytest.approx(_biv_exact([1.0, 2.0], [1e-309, 1.0], 0.0)[0], rel=1e-15)


def test_biv_factors_normalise_each_row_as_a_row_alone():
    rng = np.random.default_rng(4)
    v = rng.gamma(0.5, 2.0, size=(6, 37))
    u = rng.random((6, 37)) + 0.1
    eps = np.array([[0.0], [0.1], [0.5], [1e-3], [2.0], [0.3]])
    f = biv_factors(v, eps, u)
    for k in range(6):  # a batched group's row equals the run's own 1-D computation bit for bit
        assert np.array_equal(f[k], biv_factors(v[k].copy(), float(eps[k, 0]), u[k].copy()))
        w = [u[k, i] / (v[k, i] + eps[k, 0]) for i in range(37)]  # float64 brute force
        assert f[k] == pytest.approx([wi / math.fsum(w) for wi in w], rel=1e-13)
    with pytest.raises(ValueError, match="normaliser is zero"):
        biv_factors(v[:1], 0.1, np.zeros((1, 37)))
    v[0, 5] = 1e-310  # row 0 (ε = 0) overflows and is rescaled alone, the others untouched
    f2 = biv_factors(v, eps, u)
    assert np.array_equal(f2[1:], f[1:]) and not np.array_equal(f2[0], f[0])
    assert np.array_equal(f2[0], biv_factors(v[0].copy(), 0.0, u[0].copy()))
    assert f2[0, 5] == pytest.approx(1.0, rel=1e-12)  # the near-exact label takes all the weight


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(37,), (37, 1), (37, 3)])
def test_biv_value_and_gradients_are_autograds_of_the_factor_formula(dtype, shape):
    # biv_loss sums f * e² with its gradient written out: the value and the gradients of pred and
    # target must be autograd's through the formula, bit for bit, whatever the upstream gradient
    gen = torch.Generator().manual_seed(5)
    pred = torch.randn(shape, generator=gen, dtype=dtype, requires_grad=True)
    target = torch.randn(shape, generator=gen, dtype=dtype, requires_grad=True)
    var = torch.rand(37, generator=gen, dtype=torch.float64) * 3
    loss = biv_loss(pred, target, var.to(dtype), eps=0.2)
    (loss * 1.7).backward()
    v64 = np.broadcast_to(var.to(dtype).double().numpy().reshape(37, *([1] * (len(shape) - 1))), shape)
    f = torch.from_numpy(biv_factors(v64.reshape(1, -1), 0.2)[0].reshape(shape)).to(dtype)
    p2, t2 = pred.detach().clone().requires_grad_(True), target.detach().clone().requires_grad_(True)
    ref = (f * (p2 - t2).pow(2)).sum()
    (ref * 1.7).backward()
    assert torch.equal(loss, ref)
    assert torch.equal(pred.grad, p2.grad) and torch.equal(target.grad, t2.grad)


def test_biv_auto_plan_gives_the_results_of_solving_in_each_call(monkeypatch):
    import hetreg.losses.inverse_variance as ivmod

    gen = torch.Generator().manual_seed(8)
    clean = torch.rand(6, 32, generator=gen) * 0.01
    noisy = 1 + torch.rand(6, 32, generator=gen) * 5
    variances = list(torch.where(torch.rand(6, 32, generator=gen) < 0.5, clean, noisy))
    preds = [torch.randn(32, 1, generator=gen) for _ in range(6)]
    targets = [torch.randn(32, 1, generator=gen) for _ in range(6)]
    solves = []
    real_solve = ivmod._solve_epsilon_row
    monkeypatch.setattr(ivmod, "_solve_epsilon_row", lambda *a, **k: solves.append(1) or real_solve(*a, **k))

    def run(loss: BIVLoss, calls: list[torch.Tensor]) -> list[tuple]:
        out = []
        for p, t, v in zip(preds, targets, calls):
            pred = p.clone().requires_grad_(True)
            value = loss(pred, t, v)
            value.backward()
            out.append((value.detach(), pred.grad, loss.records))
        return out

    reference = run(BIVLoss(eps="auto", min_ebs=0.5), variances)
    assert len(solves) == 6 and len({r[2]["eps"] for r in reference}) > 1

    planned = BIVLoss(eps="auto", min_ebs=0.5)
    assert planned.plans_ahead and not BIVLoss(eps=0.1).plans_ahead
    solves.clear()
    planned.plan(variances)
    assert len(solves) == 6  # solved ahead ...
    got = run(planned, variances)
    assert len(solves) == 6  # ... and not again in the calls
    for (a, ga, ra), (b, gb, rb) in zip(reference, got):
        assert torch.equal(a, b) and torch.equal(ga, gb) and ra == rb

    # another tensor than the planned one (even equal in value): solved in the call, plan dropped
    planned.plan(variances)
    solves.clear()
    got = run(planned, [variances[0], variances[1].clone(), *variances[2:]])
    assert len(solves) == 5
    for (a, ga, ra), (b, gb, rb) in zip(reference, got):
        assert torch.equal(a, b) and torch.equal(ga, gb) and ra == rb


@pytest.mark.parametrize("out_dim, per_element", [(1, False), (3, False), (3, True)])
def test_cutoff_module_records_the_fraction_of_kept_samples(out_dim, per_element):
    gen = torch.Generator().manual_seed(9)
    n = 40
    pred = torch.randn(n, out_dim, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.randn(n, out_dim, generator=gen, dtype=torch.float64)
    var = torch.rand(n, out_dim if per_element else 1, generator=gen, dtype=torch.float64) * 2
    m = CutoffMSELoss(threshold=0.7)
    loss = m(pred, target, var)
    keep = (var < 0.7).expand(n, out_dim)
    kept_terms = [(pred[i, j] - target[i, j]).item() ** 2 for i in range(n) for j in range(out_dim) if keep[i, j]]
    assert float(loss.detach()) == pytest.approx(math.fsum(kept_terms) / len(kept_terms), rel=1e-12)
    samples_kept = sum(bool(var[i, 0] < 0.7) for i in range(n))  # a sample counts by its first output
    assert m.records["kept_fraction"] == samples_kept / n


@pytest.mark.parametrize(
    "bad, message",
    [(float("nan"), "contains NaN"), (-0.5, "negative values"), (float("inf"), "contains inf")],
    ids=["nan", "negative", "inf"],
)
def test_bad_variances_are_explained_by_every_path(bad, message):
    pred, target = torch.zeros(8, 1, requires_grad=True), torch.ones(8, 1)
    var = torch.full((8,), 0.5)
    var[3] = bad
    calls = {
        "iv": lambda: iv_loss(pred, target, var, 0.1),
        "biv": lambda: BIVLoss(eps=0.1)(pred, target, var),
        "biv auto": lambda: BIVLoss(eps="auto", min_ebs=0.5)(pred, target, var),
        "biv auto plan": lambda: BIVLoss(eps="auto", min_ebs=0.5).plan([var]),
        "cutoff": lambda: CutoffMSELoss(threshold=1.0)(pred, target, var),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=message):
            call()
    # the same batch without the bad value passes
    assert BIVLoss(eps=0.1)(pred, target, torch.full((8,), 0.5)).isfinite()
