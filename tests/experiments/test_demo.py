"""The main job's design: the BIV-style two-uniform noise, the losses, 20 valid distinct runs."""

from __future__ import annotations

import math

import pytest

from hetreg.experiments import demo
from hetreg.experiments.sweep import ExperimentBackend


def test_noise_is_the_biv_meanvar_avg_recipe() -> None:
    d = demo.demo_noise()
    assert d["kind"] == "mixture" and d["weights"] == [0.5, 0.5]
    clean, noisy = d["components"]
    s = math.sqrt(0.3)
    # var_scale s: U(mu (1 - sqrt s), mu (1 + sqrt s)); mu2 = (X - p mu1) / (1 - p)
    mu2 = (7.5 - 0.5 * 1e-3) / 0.5
    assert (clean["low"], clean["high"]) == pytest.approx((1e-3 * (1 - s), 1e-3 * (1 + s)), rel=1e-12)
    assert (noisy["low"], noisy["high"]) == pytest.approx((mu2 * (1 - s), mu2 * (1 + s)), rel=1e-12)
    mixture_mean = 0.5 * (clean["low"] + clean["high"]) / 2 + 0.5 * (noisy["low"] + noisy["high"]) / 2
    assert mixture_mean == pytest.approx(7.5, rel=1e-12)
    # the cutoff threshold keeps exactly the near-clean component
    assert clean["high"] < demo.CUTOFF < noisy["low"]


def test_demo_spec_resolves_to_twenty_distinct_valid_runs() -> None:
    spec = demo.demo_spec()
    assert [axis.key for axis in spec.grid] == ["loss", "seed"]
    assert [loss["name"] for loss in spec.grid[0].values] == ["mse", "iv", "biv", "cutoff"]
    assert spec.grid[1].values == (0, 1, 2, 3, 4)
    backend = ExperimentBackend()
    ids = set()
    for loss in spec.grid[0].values:
        for seed in spec.grid[1].values:
            config = backend.resolve(spec.base, {"loss": loss, "seed": seed})
            assert config["loss"]["name"] == loss["name"] and config["seed"] == seed
            assert config["data"]["name"] == "synthetic-hetero"
            ids.add(backend.run_id(config))
    assert len(ids) == 20
    assert demo.demo_spec(quick=True).grid[1].values == (0, 1)
    assert demo.demo_spec(seeds=3).grid[1].values == (0, 1, 2)
    with pytest.raises(ValueError, match="--seeds must be >= 1"):
        demo.demo_spec(seeds=0)
