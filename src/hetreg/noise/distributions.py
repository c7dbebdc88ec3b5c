"""Distributions of the label-noise variance σ² and the constructors of the BIV experiments.

Each label k gets its own noise variance :math:`\\sigma_k^2` drawn from a
:class:`VarianceDistribution`; the label noise is then :math:`N(0, \\sigma_k^2)`
(:func:`hetreg.noise.add_label_noise`). Four families cover the original BIV code
(Mai et al., arXiv:2107.04497):

* :class:`Uniform` ``U(low, high)``, with ``low == high`` a point mass;
* :class:`Constant`, a point mass;
* :class:`Gamma` ``Gamma(shape, rate)`` (rate parametrisation, as ``torch.distributions.Gamma``);
* :class:`Mixture`, a finite mixture of the above (the ``binary_uniform`` noise is a two-uniform mixture).

Units: every parameter, sample, mean and variance here is in the units of the label variance, i.e.
**squared raw label units** (years² for UTKFace) unless the caller chose to describe the
distribution directly in normalised units. Note that ``variance`` of a distribution is the
variance *of σ²* (units⁴), not a label variance.

All samplers are vectorised (no per-sample Python loop), return float64 tensors and are
reproducible from the ``torch.Generator`` they are given: the same generator state gives the same
draws. Generators must live on the CPU.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

#: Allowed deviation of the sum of mixture weights from 1.
WEIGHT_SUM_TOLERANCE = 1e-6


# ---------------------------------------------------------------------------------------------
# Boundary helpers
# ---------------------------------------------------------------------------------------------


def _as_float(value: object, name: str) -> float:
    """``float(value)``, refusing booleans, non-numbers, NaN and ±inf with a message naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        else:
            raise ValueError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    out = float(value)  # type: ignore[arg-type]
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


def _check_sample_args(n: object, generator: object) -> int:
    if isinstance(n, bool) or not isinstance(n, (numbers.Integral, np.integer)) or int(n) < 0:
        raise ValueError(f"n must be a non-negative integer (the number of draws), got {n!r}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator, got {type(generator).__name__}; "
            "create one with torch.Generator().manual_seed(seed)"
        )
    if generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")
    return int(n)


def _check_probability(p: object, name: str = "p") -> float:
    value = _as_float(p, name)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} is a probability and must lie in [0, 1], got {value}")
    return value


def numpy_rng_from(generator: torch.Generator) -> np.random.Generator:
    """A numpy ``Generator`` seeded reproducibly from a torch generator.

    Four 32-bit integers are drawn from ``generator`` (advancing it) and used as the entropy of a
    ``numpy.random.SeedSequence``; the returned PCG64 generator is therefore a deterministic
    function of the torch generator's state. Used for samplers torch cannot seed (Gamma).
    """
    words = torch.randint(0, 2**32, (4,), generator=generator, dtype=torch.int64)
    return np.random.default_rng(np.random.SeedSequence([int(w) for w in words.tolist()]))


# ---------------------------------------------------------------------------------------------
# Base class
# ---------------------------------------------------------------------------------------------


class VarianceDistribution(ABC):
    """A distribution of the label-noise variance σ² (support within [0, ∞)).

    Subclasses are frozen dataclasses. They implement :meth:`_sample` (vectorised), the exact
    moments :attr:`mean` and :attr:`variance`, the :attr:`support` and :meth:`to_dict`;
    :meth:`sample` validates its arguments once, here.
    """

    kind: ClassVar[str]

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """Draw ``n`` variances.

        Args:
            n: number of draws, >= 0.
            generator: CPU ``torch.Generator``; the draws are a deterministic function of its state,
                which is advanced.

        Returns:
            float64 tensor of shape (n,), every value >= 0, in the units of the parameters.
        """
        n = _check_sample_args(n, generator)
        return self._sample(n, generator)

    @abstractmethod
    def _sample(self, n: int, generator: torch.Generator) -> Tensor:
        """Vectorised draws; arguments already validated."""

    @property
    @abstractmethod
    def mean(self) -> float:
        """Exact mean E[σ²]."""

    @property
    @abstractmethod
    def variance(self) -> float:
        """Exact variance Var[σ²] (of the noise variance itself)."""

    @property
    def std(self) -> float:
        """Exact standard deviation of σ²."""
        return math.sqrt(self.variance)

    @property
    @abstractmethod
    def support(self) -> tuple[float, float]:
        """Smallest closed interval holding the draws: (min, max), max may be ``inf``."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description; :func:`distribution_from_dict` inverts it."""


# ---------------------------------------------------------------------------------------------
# Families
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Uniform(VarianceDistribution):
    """σ² ~ U(low, high), with 0 <= low <= high.

    ``low == high`` is a point mass at ``low`` (the original code crashed on modern torch there).

    Mean :math:`(a+b)/2`, variance :math:`(b-a)^2/12`.
    """

    low: float
    high: float
    kind: ClassVar[str] = "uniform"

    def __post_init__(self) -> None:
        low = _as_float(self.low, "low")
        high = _as_float(self.high, "high")
        if low < 0:
            raise ValueError(f"low must be >= 0 (a variance cannot be negative), got low={low}")
        if low > high:
            raise ValueError(
                f"low must be <= high, got low={low} > high={high}; swap them (low == high is a point mass)"
            )
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def is_point_mass(self) -> bool:
        return self.low == self.high

    def _sample(self, n: int, generator: torch.Generator) -> Tensor:
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        return self.low + (self.high - self.low) * u

    @property
    def mean(self) -> float:
        return 0.5 * (self.low + self.high)

    @property
    def variance(self) -> float:
        return (self.high - self.low) ** 2 / 12.0

    @property
    def support(self) -> tuple[float, float]:
        return (self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Constant(VarianceDistribution):
    """σ² = ``value`` for every label (a point mass, value >= 0). Mean ``value``, variance 0.

    Sampling does not use (nor advance) the generator.
    """

    value: float
    kind: ClassVar[str] = "constant"

    def __post_init__(self) -> None:
        value = _as_float(self.value, "value")
        if value < 0:
            raise ValueError(f"value must be >= 0 (a variance cannot be negative), got {value}")
        object.__setattr__(self, "value", value)

    def _sample(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.full((n,), self.value, dtype=torch.float64)

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0

    @property
    def support(self) -> tuple[float, float]:
        return (self.value, self.value)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value}


@dataclass(frozen=True)
class Gamma(VarianceDistribution):
    """σ² ~ Gamma(shape k, rate β), density :math:`\\beta^k x^{k-1} e^{-\\beta x} / \\Gamma(k)`.

    Rate parametrisation, as ``torch.distributions.Gamma(concentration=k, rate=β)``.
    Mean :math:`k/\\beta`, variance :math:`k/\\beta^2`; rate is in 1/(variance units).

    Sampling: torch's gamma sampler takes no generator, so the draws come from a numpy PCG64
    generator seeded from ``generator`` (:func:`numpy_rng_from`, which advances it by four 32-bit
    draws). The result is reproducible from the torch generator's state (for a given numpy
    version: numpy keeps its ``Generator.gamma`` stream stable in practice but does not promise it).
    """

    shape: float
    rate: float
    kind: ClassVar[str] = "gamma"

    def __post_init__(self) -> None:
        shape = _as_float(self.shape, "shape")
        rate = _as_float(self.rate, "rate")
        if shape <= 0:
            raise ValueError(f"shape must be > 0, got {shape}")
        if rate <= 0:
            raise ValueError(f"rate must be > 0 (rate parametrisation: mean = shape / rate), got {rate}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "rate", rate)

    def _sample(self, n: int, generator: torch.Generator) -> Tensor:
        rng = numpy_rng_from(generator)
        draws = rng.gamma(self.shape, 1.0 / self.rate, size=n)  # numpy uses scale = 1/rate
        return torch.from_numpy(np.asarray(draws, dtype=np.float64))

    @property
    def mean(self) -> float:
        return self.shape / self.rate

    @property
    def variance(self) -> float:
        return self.shape / self.rate**2

    @property
    def support(self) -> tuple[float, float]:
        return (0.0, math.inf)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "shape": self.shape, "rate": self.rate}


@dataclass(frozen=True)
class Mixture(VarianceDistribution):
    """Finite mixture: component i is chosen with probability ``weights[i]``, then σ² is drawn from it.

    Weights are non-negative and sum to 1 (within :data:`WEIGHT_SUM_TOLERANCE`; they are
    renormalised internally). By the law of total variance, with component means μᵢ and
    variances vᵢ:

    .. math:: E[\\sigma^2] = \\sum_i w_i \\mu_i, \\qquad
              \\mathrm{Var}[\\sigma^2] = \\sum_i w_i v_i + \\sum_i w_i (\\mu_i - E[\\sigma^2])^2

    Sampling draws one uniform per label to pick its component (inverse CDF over the cumulative
    weights), then draws each component's labels in one vectorised call, components in order.
    """

    components: tuple[VarianceDistribution, ...]
    weights: tuple[float, ...]
    kind: ClassVar[str] = "mixture"

    def __post_init__(self) -> None:
        if isinstance(self.components, VarianceDistribution) or not isinstance(self.components, Sequence):
            raise ValueError("components must be a sequence of VarianceDistribution objects")
        components = tuple(self.components)
        if len(components) == 0:
            raise ValueError("a mixture needs at least one component")
        for i, c in enumerate(components):
            if not isinstance(c, VarianceDistribution):
                raise ValueError(
                    f"components[{i}] must be a VarianceDistribution (Uniform, Constant, Gamma, Mixture), "
                    f"got {type(c).__name__}"
                )
        if not isinstance(self.weights, (Sequence, np.ndarray, Tensor)) or isinstance(self.weights, str):
            raise ValueError(f"weights must be a sequence of floats, got {self.weights!r}")
        weights = tuple(_as_float(w, f"weights[{i}]") for i, w in enumerate(self.weights))
        if len(weights) != len(components):
            raise ValueError(
                f"weights has {len(weights)} entries but there are {len(components)} components; "
                "give one weight per component"
            )
        if any(w < 0 for w in weights):
            raise ValueError(f"weights must be >= 0, got {weights}")
        total = math.fsum(weights)
        if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
            raise ValueError(f"weights must sum to 1, got {weights} (sum {total!r}); divide them by their sum")
        object.__setattr__(self, "components", components)
        object.__setattr__(self, "weights", weights)

    @property
    def probabilities(self) -> tuple[float, ...]:
        """The weights renormalised to sum to exactly 1 (up to rounding)."""
        total = math.fsum(self.weights)
        return tuple(w / total for w in self.weights)

    def _sample(self, n: int, generator: torch.Generator) -> Tensor:
        probs = torch.tensor(self.probabilities, dtype=torch.float64)
        cum = torch.cumsum(probs, 0)
        last = int(torch.nonzero(probs > 0).max())
        cum[last:] = 1.0  # rounding can leave the total a hair below 1; never pick a zero-weight tail
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        index = torch.searchsorted(cum, u, right=True)  # first i with u < cum[i]
        out = torch.empty(n, dtype=torch.float64)
        for i, component in enumerate(self.components):
            mask = index == i
            count = int(mask.sum())
            if count:
                out[mask] = component._sample(count, generator)
        return out

    @property
    def mean(self) -> float:
        return math.fsum(w * c.mean for w, c in zip(self.probabilities, self.components))

    @property
    def variance(self) -> float:
        m = self.mean
        within = math.fsum(w * c.variance for w, c in zip(self.probabilities, self.components))
        between = math.fsum(w * (c.mean - m) ** 2 for w, c in zip(self.probabilities, self.components))
        return within + between

    @property
    def support(self) -> tuple[float, float]:
        active = [c.support for w, c in zip(self.weights, self.components) if w > 0]
        return (min(lo for lo, _ in active), max(hi for _, hi in active))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "weights": list(self.weights),
            "components": [c.to_dict() for c in self.components],
        }


# ---------------------------------------------------------------------------------------------
# Serialisation
# ---------------------------------------------------------------------------------------------

_KINDS: dict[str, tuple[type[VarianceDistribution], tuple[str, ...]]] = {
    "uniform": (Uniform, ("low", "high")),
    "constant": (Constant, ("value",)),
    "gamma": (Gamma, ("shape", "rate")),
    "mixture": (Mixture, ("weights", "components")),
}


def distribution_from_dict(d: Mapping[str, Any]) -> VarianceDistribution:
    """Rebuild a distribution from :meth:`VarianceDistribution.to_dict` output (recursive for mixtures).

    Raises:
        ValueError: not a mapping, unknown ``kind``, or missing/unexpected keys.
    """
    if not isinstance(d, Mapping):
        raise ValueError(f"a distribution description must be a dict, got {type(d).__name__}")
    kind = d.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown distribution kind {kind!r}; valid kinds: {', '.join(_KINDS)}")
    cls, keys = _KINDS[kind]
    given = set(d) - {"kind"}
    missing = [k for k in keys if k not in given]
    extra = sorted(given - set(keys))
    if missing or extra:
        raise ValueError(
            f"a {kind!r} distribution takes exactly the keys {', '.join(keys)}"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unexpected: {', '.join(extra)}" if extra else "")
        )
    if kind == "mixture":
        comps = d["components"]
        if isinstance(comps, (str, Mapping)) or not isinstance(comps, Sequence):
            raise ValueError("a mixture's 'components' must be a list of distribution dicts")
        return Mixture(tuple(distribution_from_dict(c) for c in comps), tuple(d["weights"]))
    return cls(**{k: d[k] for k in keys})


# ---------------------------------------------------------------------------------------------
# Constructors for every parameterisation of the original BIV code
# ---------------------------------------------------------------------------------------------


def uniform_from_bounds(low: float, high: float) -> Uniform:
    """``boundaries`` mode: σ² ~ U(low, high) given directly (0 <= low <= high; equal bounds = point mass)."""
    return Uniform(low, high)


def uniform_from_mean_var(mean: float, var: float) -> Uniform:
    """``meanvar`` mode: the uniform with mean μ and variance v, bounds :math:`\\mu \\pm \\sqrt{3v}`.

    Args:
        mean: μ, the mean noise variance (variance units).
        var: v >= 0, the variance of σ² (variance units²). v = 0 gives a point mass at μ.

    Raises:
        ValueError: v < 0, or μ < √(3v) (the lower bound would be a negative variance); the
            message states the smallest valid μ. A relative shortfall below 1e-12 (rounding of
            v = μ²/3) is accepted and gives a lower bound of exactly 0.
    """
    mu = _as_float(mean, "mean")
    v = _as_float(var, "var")
    if v < 0:
        raise ValueError(f"var must be >= 0, got {v}")
    half_width = math.sqrt(3.0 * v)
    if mu < half_width * (1.0 - 1e-12):  # tolerance: v = mu**2/3 computed in floats may round up
        raise ValueError(
            f"mean={mu} with var={v} gives a negative lower bound mean - sqrt(3*var) = {mu - half_width:.6g}; "
            f"the smallest valid mean for this var is sqrt(3*var) = {half_width:.6g} "
            f"(or lower var to at most mean**2/3 = {max(mu, 0.0) ** 2 / 3:.6g})"
        )
    return Uniform(max(mu - half_width, 0.0), mu + half_width)


def uniform_max_variance(mean: float) -> float:
    """:math:`V_{max}(\\mu) = (2\\mu)^2/12 = \\mu^2/3`: the largest variance of a uniform on [0, ∞) with mean μ (U(0, 2μ))."""
    mu = _as_float(mean, "mean")
    return mu * mu / 3.0


def uniform_max_heteroscedastic(mean: float, scale: float) -> Uniform:
    """``meanvar`` with ``var_scale=True``: variance :math:`s \\cdot V_{max}(\\mu) = s\\mu^2/3`.

    The bounds are :math:`\\mu(1 \\pm \\sqrt{s})`: s = 1 gives U(0, 2μ), the most spread
    possible; s = 0 a point mass at μ.

    Args:
        mean: μ >= 0 (variance units).
        scale: heteroscedasticity scale s in [0, 1].
    """
    mu = _as_float(mean, "mean")
    s = _as_float(scale, "scale")
    if mu < 0:
        raise ValueError(f"mean must be >= 0 (it is a mean variance), got {mu}")
    if not 0.0 <= s <= 1.0:
        raise ValueError(
            f"scale is the heteroscedasticity scale s (variance = s * mean**2 / 3) and must lie in [0, 1], got {s}"
        )
    root = math.sqrt(s)
    return Uniform(max(mu * (1.0 - root), 0.0), mu * (1.0 + root))


def binary_uniform(p: float, first: VarianceDistribution, second: VarianceDistribution) -> Mixture:
    """``binary_uniform`` noise: ``first`` with probability p, ``second`` with probability 1 − p.

    In the original code both components are uniforms and ``first`` is by convention the
    low-noise one; any :class:`VarianceDistribution` is accepted here.
    """
    prob = _check_probability(p)
    return Mixture((first, second), (prob, 1.0 - prob))


def mixture_mean_target(p: float, mu1: float, target_mean: float) -> float:
    """``meanvar_avg`` mode: the mean μ₂ of the second component that makes the mixture mean X.

    .. math:: \\mu_2 = \\frac{X - p\\,\\mu_1}{1 - p}

    Example: p = 0.5, μ₁ = 0.5, X = 3000 gives μ₂ = 5999.5.

    Raises:
        ValueError: p outside [0, 1), p = 1 (no weight on the second component: the original
            divided by zero), μ₁ < 0, or a negative μ₂ (X < p·μ₁).
    """
    prob = _check_probability(p)
    m1 = _as_float(mu1, "mu1")
    x = _as_float(target_mean, "target_mean")
    if prob == 1.0:
        raise ValueError(
            "p = 1 puts no weight on the second component, so its mean cannot be solved for; "
            "use p < 1, or a single distribution with mean target_mean"
        )
    if m1 < 0:
        raise ValueError(f"mu1 must be >= 0 (it is a mean variance), got {m1}")
    mu2 = (x - prob * m1) / (1.0 - prob)
    if mu2 < 0:
        raise ValueError(
            f"target_mean={x} is below p*mu1 = {prob * m1:.6g}, so the second mean would be negative "
            f"({mu2:.6g}); raise target_mean to at least {prob * m1:.6g} or lower mu1"
        )
    return mu2


def gamma_from_shape_rate(shape: float, rate: float) -> Gamma:
    """``alphabeta`` mode: σ² ~ Gamma(shape, rate) given directly (rate parametrisation)."""
    return Gamma(shape, rate)


def gamma_from_mean_var(mean: float, var: float) -> Gamma:
    """Gamma ``meanvar`` mode: shape :math:`k = \\mu^2/v`, rate :math:`\\beta = \\mu/v`.

    Unlike the original code, any μ > 0 and v > 0 is accepted: the original required v >= μ²
    (shape <= 1) for no stated reason; shapes above 1 (less dispersed variances) are valid gammas.

    Raises:
        ValueError: μ <= 0 or v <= 0 (for v = 0 use ``Constant(mean)``).
    """
    mu = _as_float(mean, "mean")
    v = _as_float(var, "var")
    if mu <= 0:
        raise ValueError(f"mean must be > 0 for a gamma distribution, got {mu}")
    if v <= 0:
        raise ValueError(f"var must be > 0 for a gamma distribution, got {v}; for var = 0 use Constant(mean)")
    return Gamma(mu * mu / v, mu / v)
