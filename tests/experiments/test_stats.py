"""Student-t confidence intervals over seeds, checked against scipy.stats.t and hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from hetreg.experiments.stats import format_estimate, mean_ci, t_quantile


def test_t_quantile_hand_values() -> None:
    # tabulated two-sided 95 % critical values
    assert t_quantile(0.975, 4) == pytest.approx(2.7764451051977987, rel=1e-12)
    assert t_quantile(0.975, 1) == pytest.approx(12.706204736174698, rel=1e-12)
    assert t_quantile(0.975, 30) == pytest.approx(2.0422724563012373, rel=1e-12)


def test_mean_ci_by_hand() -> None:
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    est = mean_ci(x)
    s = math.sqrt(sum((v - 3.0) ** 2 for v in x) / 4)  # sqrt(2.5)
    assert est.n == 5
    assert est.mean == 3.0
    assert est.std == pytest.approx(s, rel=1e-15)
    assert est.half_width == pytest.approx(2.7764451051977987 * s / math.sqrt(5), rel=1e-12)
    assert est.low == pytest.approx(3.0 - est.half_width)
    assert est.high == pytest.approx(3.0 + est.half_width)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=30),
    st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_mean_ci_matches_scipy_interval(values: list[float], confidence: float) -> None:
    x = np.asarray(values, dtype=np.float64)
    est = mean_ci(x, confidence)
    sem = x.std(ddof=1) / math.sqrt(len(x))
    if sem == 0:
        assert est.half_width == 0
        return
    low, high = stats.t.interval(confidence, len(x) - 1, loc=x.mean(), scale=sem)
    assert est.low == pytest.approx(low, rel=1e-9, abs=1e-9)
    assert est.high == pytest.approx(high, rel=1e-9, abs=1e-9)


def test_small_samples_and_non_finite_values() -> None:
    one = mean_ci([2.5])
    assert one.n == 1 and one.mean == 2.5 and math.isnan(one.std) and math.isnan(one.half_width)
    none = mean_ci([])
    assert none.n == 0 and math.isnan(none.mean)
    dropped = mean_ci([1.0, float("nan"), 3.0, float("inf")])
    assert dropped.n == 2 and dropped.mean == 2.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="confidence must lie in"):
        mean_ci([1.0, 2.0], confidence=95)
    with pytest.raises(ValueError, match="dof must be >= 1"):
        t_quantile(0.975, 0)


def test_format_estimate() -> None:
    assert format_estimate(mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])) == "3 ± 1.96"
    assert format_estimate(mean_ci([2.5])) == "2.5"
    assert format_estimate(mean_ci([])) == "n/a"
