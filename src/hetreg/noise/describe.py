"""Summaries of a variance distribution for ``hetreg noise describe``.

:func:`describe_distribution` returns a JSON-friendly dict: the exact moments, the support, sample
quantiles, a histogram and the expected effective batch size (EBS) of BIV weights
:math:`w_k = 1/(\\sigma_k^2 + \\varepsilon)` at a given batch size and ε,

.. math:: \\mathrm{EBS} = \\frac{(\\sum_k w_k)^2}{\\sum_k w_k^2},

estimated by Monte Carlo over sampled batches. :func:`format_description` renders it as plain text.
Units: all values are in the units of the distribution (squared raw label units unless it was
given in normalised units); ε must be in the same units.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch

from hetreg.losses import effective_batch_size
from hetreg.noise.distributions import VarianceDistribution, _as_float

#: Probabilities of the reported sample quantiles.
QUANTILE_LEVELS = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def describe_distribution(
    dist: VarianceDistribution,
    batch_size: int = 256,
    eps: float = 0.0,
    n_batches: int = 1000,
    seed: int = 0,
    bins: int = 20,
) -> dict[str, Any]:
    """Describe a noise-variance distribution and the BIV weights it produces.

    Args:
        dist: the distribution of σ².
        batch_size: K, the mini-batch size at which the EBS is evaluated (>= 1).
        eps: ε >= 0 of the BIV weights, in the units of ``dist``.
        n_batches: number of sampled batches (>= 1); ``n_batches * batch_size`` draws are used for
            the quantiles and histogram as well.
        seed: seed of the ``torch.Generator`` used for the draws.
        bins: number of histogram bins (>= 1).

    Returns:
        dict with keys ``distribution`` (its ``to_dict()``), ``mean``, ``variance``, ``std`` (exact),
        ``support`` ([min, max], ``None`` for an unbounded side), ``n_samples``, ``sample_mean``,
        ``sample_std``, ``quantiles`` ({level as str: value}), ``ebs`` ({``batch_size``, ``eps``,
        ``n_batches``, ``mean``, ``std``, ``stderr``, ``fraction``: mean / batch_size}),
        ``histogram`` ({``counts``, ``edges``}) and ``seed``.
    """
    if not isinstance(dist, VarianceDistribution):
        raise TypeError(f"dist must be a VarianceDistribution, got {type(dist).__name__}")
    k = _positive_int(batch_size, "batch_size")
    nb = _positive_int(n_batches, "n_batches")
    nbins = _positive_int(bins, "bins")
    e = _as_float(eps, "eps")
    if e < 0:
        raise ValueError(f"eps must be >= 0 (it is added to every variance), got {e}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")

    generator = torch.Generator().manual_seed(int(seed))
    draws = dist.sample(nb * k, generator)
    values = draws.numpy()
    # With ε = 0 and zero variances, effective_batch_size takes its limit (the number of zeros).
    ebs = effective_batch_size(draws.view(nb, k), e).numpy()
    low, high = dist.support
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:  # numpy would centre a unit range on the value: keep it at variances >= 0
        lo, hi = max(0.0, lo - 0.5), hi + 0.5
    counts, edges = np.histogram(values, bins=nbins, range=(lo, hi))
    zero_weights = e == 0 and bool((values == 0).any())
    ebs_std = float(ebs.std(ddof=1)) if nb > 1 else 0.0
    return {
        "distribution": dist.to_dict(),
        "mean": dist.mean,
        "variance": dist.variance,
        "std": dist.std,
        "support": [low, high if math.isfinite(high) else None],
        "n_samples": int(values.size),
        "sample_mean": float(values.mean()),
        "sample_std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
        "quantiles": {str(q): float(v) for q, v in zip(QUANTILE_LEVELS, np.quantile(values, QUANTILE_LEVELS))},
        "ebs": {
            "batch_size": k,
            "eps": e,
            "n_batches": nb,
            "mean": float(ebs.mean()),
            "std": ebs_std,
            "stderr": ebs_std / math.sqrt(nb),
            "fraction": float(ebs.mean()) / k,
            "note": (
                "some variances are 0 and eps is 0: their weights are infinite, and the IV and BIV "
                "losses refuse such batches; the EBS shown is its limit (the number of zero "
                "variances per batch). Use eps > 0."
            )
            if zero_weights
            else None,
        },
        "histogram": {"counts": [int(c) for c in counts], "edges": [float(x) for x in edges]},
        "seed": int(seed),
    }


def _summary(d: Mapping[str, Any]) -> str:
    """One-line name of a distribution dict, e.g. ``0.5*U(0.226, 0.774) + 0.5*U(2713, 9286)``."""
    kind = d.get("kind")
    if kind == "uniform":
        if d["low"] == d["high"]:
            return f"U({d['low']:.6g}, {d['high']:.6g}) (point mass)"
        return f"U({d['low']:.6g}, {d['high']:.6g})"
    if kind == "constant":
        return f"Constant({d['value']:.6g})"
    if kind == "gamma":
        return f"Gamma(shape={d['shape']:.6g}, rate={d['rate']:.6g})"
    if kind == "mixture":
        return " + ".join(f"{w:.4g}*[{_summary(c)}]" for w, c in zip(d["weights"], d["components"]))
    return str(d)


def format_description(d: Mapping[str, Any], width: int = 40) -> str:
    """Plain-text rendering of :func:`describe_distribution`'s output (for terminals).

    Args:
        d: the dict returned by :func:`describe_distribution`.
        width: length in characters of the longest histogram bar.
    """
    low, high = d["support"]
    ebs = d["ebs"]
    lines = [
        f"variance distribution: {_summary(d['distribution'])}",
        "exact moments of the noise variance (variance units):",
        f"  mean      {d['mean']:.6g}",
        f"  variance  {d['variance']:.6g}",
        f"  std       {d['std']:.6g}",
        f"  support   [{low:.6g}, {'inf' if high is None else format(high, '.6g')}]",
        f"from {d['n_samples']} draws (seed {d['seed']}): mean {d['sample_mean']:.6g}, std {d['sample_std']:.6g}",
        "  quantiles " + "  ".join(f"{float(q) * 100:g}%: {v:.4g}" for q, v in d["quantiles"].items()),
        (
            f"effective batch size of BIV weights 1/(var + eps), batch {ebs['batch_size']}, eps {ebs['eps']:.6g}: "
            f"{ebs['mean']:.4g} +- {ebs['stderr']:.2g} (std {ebs['std']:.3g}, "
            f"{100 * ebs['fraction']:.1f}% of the batch, {ebs['n_batches']} batches)"
        ),
    ]
    if ebs.get("note"):
        lines.append(f"  note: {ebs['note']}")
    lines.append("histogram:")
    counts = d["histogram"]["counts"]
    edges = d["histogram"]["edges"]
    top = max(counts) if counts else 0
    for c, a, b in zip(counts, edges[:-1], edges[1:]):
        bar = "#" * (round(width * c / top) if top else 0)
        lines.append(f"  [{a:>11.4g}, {b:>11.4g})  {bar} {c}")
    return "\n".join(lines)
