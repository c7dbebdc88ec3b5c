"""The main job (``hetreg run``): MSE, IV, BIV and cutoff-MSE on strongly heteroscedastic labels.

Data: ``synthetic-hetero`` (smooth nonlinear function of 8 uniform inputs, labels of unit scale).
Noise: the variance of each training label comes from a two-component uniform mixture in the
spirit of the BIV paper's ``meanvar_avg`` examples (``p = 0.5``, ``var_scale = 0.3``):

* with probability 1/2 a near-clean label, :math:`\\sigma^2 \\sim U(\\mu_1(1-\\sqrt{s}), \\mu_1(1+\\sqrt{s}))`,
  :math:`\\mu_1 = 10^{-3}`;
* with probability 1/2 a very noisy label, the same shape around :math:`\\mu_2` chosen so that
  the mixture mean is :data:`MIXTURE_MEAN` (≈ 7.5 label variances, noise std 2.6–4.8 label std),
  i.e. :math:`\\mu_2 = (X - p\\mu_1)/(1-p)`.

This mirrors the README example of the BIV code (``meanvar_avg,0.5,3000`` + ``True,0.5,1,0.3,0``
on UTKFace, whose normalised components are ≈ U(0.0006, 0.002) and U(6.9, 23.5)).

Losses (one grid axis over the ``loss`` section, so each loss keeps its own parameters):
``mse``; ``iv`` and ``biv`` with ε = 0.5 (normalised variance units, as in the BIV README);
``cutoff`` with threshold 1.0 (raw variance units: it keeps exactly the near-clean component,
the oracle filtering baseline). Five seeds each (data split, noise, initialisation).
"""

from __future__ import annotations

from typing import Any

from hetreg.experiments.grid import GridAxis
from hetreg.experiments.sweep import SweepSpec

P_CLEAN = 0.5
MU_CLEAN = 1e-3
VAR_SCALE = 0.3
MIXTURE_MEAN = 7.5
EPS = 0.5
CUTOFF = 1.0

DEMO_LOSSES: tuple[dict[str, Any], ...] = (
    {"name": "mse"},
    {"name": "iv", "eps": EPS},
    {"name": "biv", "eps": EPS},
    {"name": "cutoff", "threshold": CUTOFF},
)


def demo_noise() -> dict[str, Any]:
    """The two-uniform mixture of noise variances (see the module docstring) as a config dict."""
    from hetreg.noise import binary_uniform, mixture_mean_target, uniform_max_heteroscedastic

    mu_noisy = mixture_mean_target(P_CLEAN, MU_CLEAN, MIXTURE_MEAN)
    dist = binary_uniform(
        P_CLEAN,
        uniform_max_heteroscedastic(MU_CLEAN, VAR_SCALE),
        uniform_max_heteroscedastic(mu_noisy, VAR_SCALE),
    )
    return dist.to_dict()


def demo_base(quick: bool = False) -> dict[str, Any]:
    """The base configuration of the main job (``quick``: a smaller, faster variant for CI).

    Sized for the whole job (20 runs) to take well under 3 minutes on 2 cores: 3000 rows
    (2160 for training), an MLP 8-64-64-1, Adam with lr 2e-3, batch 64, 20 epochs.
    """
    return {
        "name": "demo",
        "seed": 0,
        "data": {"name": "synthetic-hetero", "options": {"n": 1000 if quick else 3000, "d": 8}},
        "noise": {"distribution": demo_noise()},
        "model": {"name": "mlp", "options": {"hidden": [32, 32] if quick else [64, 64]}},
        "loss": {"name": "mse"},
        "optimizer": {"name": "adam", "lr": 2e-3},
        "train": {"epochs": 3 if quick else 20, "batch_size": 64},
    }


def demo_spec(quick: bool = False, seeds: int | None = None) -> SweepSpec:
    """Sweep of the main job: the four losses times ``seeds`` seeds (default 5, quick 2)."""
    n_seeds = seeds if seeds is not None else (2 if quick else 5)
    if n_seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {n_seeds}")
    grid = (
        GridAxis("loss", DEMO_LOSSES),
        GridAxis("seed", tuple(range(n_seeds))),
    )
    return SweepSpec(base=demo_base(quick), grid=grid)
