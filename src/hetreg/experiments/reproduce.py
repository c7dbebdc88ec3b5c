"""Reproduction studies: the claims of the BIV and Balanced MSE papers, rerun with confidence intervals.

A study is a YAML file in ``hetreg/experiments/reproductions/`` (package data). It holds one base
experiment configuration, the parts to sweep over it (each part a list of losses, optionally
crossed with the study's label-noise settings), the number of seeds, the metrics to tabulate,
the claims to check and a ``quick`` variant. :func:`reproduce` runs every part as a sweep
(:func:`hetreg.experiments.sweep.run_sweep`) into ``OUT/<part>/`` and writes one Markdown report,
``OUT/<name>.md``, with its figures ``OUT/<name>-*.png`` and the table ``OUT/<name>.csv``::

    from hetreg.experiments.reproduce import reproduce, list_reproductions
    list_reproductions()                      # ['biv-bike', 'biv-epsilon', ...]
    reproduce("biv-wine", workers=2)          # OUT = hetreg-runs/reproduce-biv-wine

or ``python -m hetreg.experiments.reproduce biv-wine --workers 2`` (``--report-only`` rewrites the
report of an existing folder, :func:`rewrite_report`). Running it again with the
same ``OUT`` skips the completed runs (the sweeps resume), so an interrupted study continues.
With the default ``OUT`` (and not ``quick``) the report is also copied to ``docs/results/`` of the
hetreg checkout this code runs from (:func:`default_docs_dir`; not with an installed package).

Label noise of the BIV studies (:class:`NoiseSettings`). The original settings were given for
UTKFace in years² (``binary_uniform`` variances, ``meanvar_avg`` mixture means 2000 and 3000
years²; README: p = 0.5, clean mean 0.5 years², ``var_scale`` 0.3). For another dataset with label
variance :math:`V` (raw units², over all rows of the release) every variance of a setting is
multiplied by :math:`V / V_{ref}`, :math:`V_{ref} = 395.46` years² (UTKFace ages): a setting keeps
the same noise-to-label variance ratios :math:`\\sigma^2/s_y^2`, hence the same normalised
variances, ε and weights as seen by the loss. A setting with mixture mean :math:`X` (reference
units) is

.. math::
    \\sigma^2 \\sim p\\,U\\big(\\mu_1(1-\\sqrt s), \\mu_1(1+\\sqrt s)\\big)
    + (1-p)\\,U\\big(\\mu_2(1-\\sqrt s), \\mu_2(1+\\sqrt s)\\big),\\quad
    \\mu_1 = c\\,\\tfrac{V}{V_{ref}},\\ \\mu_2 = \\frac{X V/V_{ref} - p\\mu_1}{1-p}

(raw units²), with :math:`p` = ``p_clean``, :math:`c` = ``clean_mean``, :math:`s` = ``var_scale``.

Balanced / shot metrics (studies with an ``imbalanced`` section): the trainer logs the test MSE
only, so after the sweep every completed run's final model (``last.pt``) is evaluated again on
the test split and :func:`hetreg.metrics.balanced_mse`, :func:`~hetreg.metrics.balanced_mae` and
:func:`~hetreg.metrics.shot_metrics` are written to ``runs/<id>/imbalanced_metrics.json``
(checked against the trainer's own final test MSE).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import yaml

from hetreg.experiments import runstore
from hetreg.experiments.grid import GridAxis, format_value, get_dotted, set_dotted, value_label
from hetreg.experiments.report import (
    GroupSummary,
    ResultSet,
    RunRow,
    learning_curves,
    paired_differences,
    summarize,
)
from hetreg.experiments.stats import Estimate, format_estimate, mean_ci
from hetreg.experiments.sweep import ExperimentBackend, SweepSpec, plan_sweep, run_sweep

__all__ = [
    "Claim",
    "MetricSpec",
    "NoiseSettings",
    "QuickSpec",
    "Study",
    "StudyPart",
    "collect_results",
    "default_out_dir",
    "imbalanced_metrics",
    "list_reproductions",
    "load_study",
    "reproduce",
    "rewrite_report",
    "study_from_dict",
    "validate_study",
    "write_study_report",
]

STUDIES_DIR = "reproductions"
STUDY_FILE = "study.json"
IMBALANCED_FILE = "imbalanced_metrics.json"
IMBALANCED_PREFIX = "imb."
DEFAULT_RUNS_DIR = Path("hetreg-runs")
#: The checkout this module runs from (``src/hetreg/experiments/`` -> the repository root).
_CHECKOUT = Path(__file__).resolve().parents[3]
SETTING_KEY = "setting"
LOSS_KEY = "loss"
SEED_KEY = "seed"
#: Relative tolerance between the recomputed and the logged final test MSE.
RECOMPUTE_RTOL = 1e-4
_CLAIM_KINDS = ("paired", "trend", "auto_ebs")


# ---------------------------------------------------------------------------------------------
# Study definitions
# ---------------------------------------------------------------------------------------------


def _check_keys(d: Mapping[str, Any], allowed: Sequence[str], where: str, required: Sequence[str] = ()) -> None:
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(allowed)}")
    missing = [k for k in required if k not in d]
    if missing:
        raise ValueError(f"{where}: missing required key(s) {', '.join(missing)}")


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class NoiseSettings:
    """Binary-uniform noise-variance settings of the BIV paper, scaled to a dataset (module docstring).

    Attributes:
        reference_variance: label variance of the dataset the settings were given for
            (UTKFace ages, 395.46 years²).
        label_variance: label variance V of this dataset over all rows (raw units²).
        mixture_means: mixture means X of the settings, in reference units (years²).
        p_clean: probability p of the near-clean component.
        clean_mean: mean variance c of the near-clean component, reference units.
        var_scale: heteroscedasticity scale s of both uniforms (variance s·μ²/3).
        reference_units, label_units: names of the squared units, for the report.
    """

    reference_variance: float
    label_variance: float
    mixture_means: tuple[float, ...]
    p_clean: float = 0.5
    clean_mean: float = 0.5
    var_scale: float = 0.3
    reference_units: str = "years²"
    label_units: str = "label units²"

    def __post_init__(self) -> None:
        _positive(self.reference_variance, "noise.reference_variance")
        _positive(self.label_variance, "noise.label_variance")
        if not self.mixture_means:
            raise ValueError("noise.mixture_means must list at least one mixture mean (reference units)")
        for m in self.mixture_means:
            _positive(m, "each of noise.mixture_means")
        if not 0.0 < self.p_clean < 1.0:
            raise ValueError(f"noise.p_clean must lie in (0, 1), got {self.p_clean!r}")
        if isinstance(self.clean_mean, bool) or not isinstance(self.clean_mean, (int, float)) or self.clean_mean < 0:
            raise ValueError(f"noise.clean_mean must be a number >= 0, got {self.clean_mean!r}")
        if not 0.0 <= self.var_scale <= 1.0:
            raise ValueError(f"noise.var_scale must lie in [0, 1], got {self.var_scale!r}")

    @property
    def scale(self) -> float:
        """:math:`V / V_{ref}`: raw units² of this dataset per reference unit²."""
        return self.label_variance / self.reference_variance

    def components(self, mixture_mean: float) -> tuple[Any, Any]:
        """The near-clean and the noisy uniform (raw units²) of the setting with mixture mean X."""
        from hetreg.noise import mixture_mean_target, uniform_max_heteroscedastic

        mu1 = self.clean_mean * self.scale
        mu2 = mixture_mean_target(self.p_clean, mu1, mixture_mean * self.scale)
        return uniform_max_heteroscedastic(mu1, self.var_scale), uniform_max_heteroscedastic(mu2, self.var_scale)

    def distribution(self, mixture_mean: float) -> dict[str, Any]:
        """The noise-variance distribution (``noise.distribution``) of the setting with mixture mean X."""
        from hetreg.noise import binary_uniform

        clean, noisy = self.components(mixture_mean)
        return binary_uniform(self.p_clean, clean, noisy).to_dict()

    def ratio(self, mixture_mean: float) -> float:
        """Mixture mean over the label variance, :math:`X / V_{ref}` (= mean σ² / s_y²)."""
        return mixture_mean / self.reference_variance

    def label(self, mixture_mean: float) -> str:
        """Short name of a setting: its mean noise variance in label-variance units."""
        return f"mean σ² = {self.ratio(mixture_mean):.3g}·s_y²"

    def settings(self, means: Sequence[float] | None = None) -> list[tuple[str, dict[str, Any]]]:
        """``(label, distribution)`` of every setting (or of the mixture means ``means``)."""
        return [(self.label(m), self.distribution(m)) for m in (self.mixture_means if means is None else means)]

    def axis(self, means: Sequence[float] | None = None) -> GridAxis:
        return GridAxis("noise.distribution", tuple(d for _, d in self.settings(means)))

    def table(self, means: Sequence[float] | None = None) -> tuple[list[str], list[list[str]]]:
        """Markdown table rows describing each setting in reference, raw and normalised units."""
        header = [
            "setting",
            f"mixture mean (reference, {self.reference_units})",
            f"mixture mean (raw, {self.label_units})",
            "near-clean σ² (raw)",
            "noisy σ² (raw)",
            "near-clean σ²/s_y²",
            "noisy σ²/s_y²",
        ]
        rows = []
        v = self.label_variance
        for m in self.mixture_means if means is None else means:
            clean, noisy = self.components(m)
            rows.append(
                [
                    self.label(m),
                    f"{m:g}",
                    f"{m * self.scale:.4g}",
                    f"U({clean.low:.3g}, {clean.high:.3g})",
                    f"U({noisy.low:.4g}, {noisy.high:.4g})",
                    f"U({clean.low / v:.3g}, {clean.high / v:.3g})",
                    f"U({noisy.low / v:.3g}, {noisy.high / v:.3g})",
                ]
            )
        return header, rows

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "noise") -> "NoiseSettings":
        fields_ = (
            "reference_variance",
            "label_variance",
            "mixture_means",
            "p_clean",
            "clean_mean",
            "var_scale",
            "reference_units",
            "label_units",
        )
        _check_keys(d, fields_, where, required=("reference_variance", "label_variance", "mixture_means"))
        kwargs = dict(d)
        kwargs["mixture_means"] = tuple(d["mixture_means"])
        return cls(**kwargs)


@dataclass(frozen=True)
class StudyPart:
    """One sweep of a study: losses (a grid axis over the ``loss`` section), optionally crossed
    with the noise settings, over the study's seeds.

    Attributes:
        name: folder name of the sweep, ``OUT/<name>``.
        losses: values of the ``loss`` section (each a mapping with ``name``); empty: the loss of
            the base configuration. In the YAML file a loss may carry a ``label`` (its name in
            the report), kept apart in ``labels``.
        overrides: dotted keys set on the base configuration for this part only.
        noise: cross the losses with the study's noise settings.
        setting: the row label of this part in the tables when ``noise`` is false.
    """

    name: str
    losses: tuple[dict[str, Any], ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)
    noise: bool = False
    setting: str = "default"
    labels: tuple[str | None, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> "StudyPart":
        _check_keys(d, ("name", "losses", "set", "noise", "setting"), where, required=("name",))
        losses, labels = [], []
        for v in d.get("losses") or ():
            if not isinstance(v, Mapping) or "name" not in v:
                raise ValueError(f"{where}.losses: every loss is a mapping with a 'name', got {v!r}")
            entry = dict(v)
            label = entry.pop("label", None)
            losses.append(entry)
            labels.append(None if label is None else str(label))
        return cls(
            name=str(d["name"]),
            losses=tuple(losses),
            labels=tuple(labels),
            overrides=dict(d.get("set") or {}),
            noise=bool(d.get("noise", False)),
            setting=str(d.get("setting", "default")),
        )


@dataclass(frozen=True)
class MetricSpec:
    """A metric tabulated by the report: summary name (``test_mse_raw`` = ``final.test_mse_raw``,
    ``best.test_mse_raw``, ``final.ebs``, ``imb.few.mse``, ...), a label, and whether the paired
    difference to the baseline is shown."""

    name: str
    label: str
    paired: bool = True

    @classmethod
    def from_value(cls, v: Any, where: str) -> "MetricSpec":
        if isinstance(v, str):
            return cls(v, v)
        if not isinstance(v, Mapping):
            raise ValueError(f"{where}: a metric is a name or a mapping with name/label/paired, got {v!r}")
        _check_keys(v, ("name", "label", "paired"), where, required=("name",))
        return cls(str(v["name"]), str(v.get("label", v["name"])), bool(v.get("paired", True)))


@dataclass(frozen=True)
class Claim:
    """A claim of a paper and how the report checks it.

    Kinds:

    * ``paired``: for every metric, every loss of ``groups`` against every loss of ``against``
      and every setting in scope, the seed-paired difference (group − against) and its 95 %
      interval; *lower* when the interval lies below 0, *higher* when above 0.
    * ``trend``: among the losses named ``among`` with a numeric ``loss.<x>``, the Spearman rank
      correlation between ``x`` and the mean of the first metric (ε and the logged EBS).
    * ``auto_ebs``: for the losses with ``eps: auto``, the mean logged EBS against the
      requested ``min_ebs`` times the batch size.

    Losses are named by their report label (``biv (eps=0.5)``) or by their ``name`` (``biv``).
    ``mixture_means`` restricts a claim to the noise settings with these means (reference units).
    """

    text: str
    source: str
    kind: str
    metrics: tuple[str, ...]
    groups: tuple[str, ...] = ()
    against: tuple[str, ...] = ()
    mixture_means: tuple[float, ...] | None = None
    among: str = "biv"
    x: str = "eps"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> "Claim":
        _check_keys(
            d,
            ("text", "source", "kind", "metrics", "groups", "against", "mixture_means", "among", "x"),
            where,
            required=("text", "source", "kind", "metrics"),
        )
        kind = str(d["kind"])
        if kind not in _CLAIM_KINDS:
            raise ValueError(f"{where}.kind: unknown claim kind {kind!r}; valid kinds: {', '.join(_CLAIM_KINDS)}")
        claim = cls(
            text=str(d["text"]),
            source=str(d["source"]),
            kind=kind,
            metrics=tuple(str(m) for m in d["metrics"]),
            groups=tuple(str(g) for g in d.get("groups") or ()),
            against=tuple(str(g) for g in d.get("against") or ()),
            mixture_means=tuple(float(m) for m in d["mixture_means"]) if d.get("mixture_means") else None,
            among=str(d.get("among", "biv")),
            x=str(d.get("x", "eps")),
        )
        if kind == "paired" and (not claim.groups or not claim.against):
            raise ValueError(f"{where}: a paired claim needs 'groups' and 'against' (loss labels or names)")
        if not claim.metrics:
            raise ValueError(f"{where}.metrics: list at least one metric")
        return claim


@dataclass(frozen=True)
class QuickSpec:
    """How ``quick=True`` shrinks a study: fewer seeds, fewer noise settings, base overrides,
    and optionally a subset of each part's losses (by label or name)."""

    seeds: int = 2
    mixture_means: tuple[float, ...] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    losses: tuple[str, ...] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "quick") -> "QuickSpec":
        _check_keys(d, ("seeds", "mixture_means", "set", "losses"), where)
        seeds = d.get("seeds", 2)
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ValueError(f"{where}.seeds must be an integer >= 1, got {seeds!r}")
        means = d.get("mixture_means")
        losses = d.get("losses")
        return cls(
            seeds=seeds,
            mixture_means=tuple(float(m) for m in means) if means else None,
            overrides=dict(d.get("set") or {}),
            losses=tuple(str(x) for x in losses) if losses else None,
        )


@dataclass(frozen=True)
class Study:
    """A reproduction study (see the module docstring and any file in ``reproductions/``).

    Attributes:
        name: the study's name (the file name without ``.yaml``).
        title: one line.
        description: what the study reproduces (Markdown).
        protocol: what was run and how it differs from the original (Markdown).
        base: the base experiment configuration (plain data).
        parts: the sweeps.
        seeds: seeds 0 .. seeds−1 of every grid point.
        noise: the noise settings (parts with ``noise: true`` sweep them).
        metrics: the report's metrics; the first is the primary one.
        baseline: the loss name paired differences are taken against.
        claims: the claims checked in the report.
        quick: the ``quick`` variant.
        imbalanced: options of the balanced / shot metrics (``bins``, ``many_threshold``,
            ``few_threshold``), or ``None``.
        curve_losses: losses drawn in the learning-curve figure (default all).
        datasets: datasets that must be available before running (files in the data folder).
    """

    name: str
    title: str
    description: str
    protocol: str
    base: dict[str, Any]
    parts: tuple[StudyPart, ...]
    seeds: int
    metrics: tuple[MetricSpec, ...]
    noise: NoiseSettings | None = None
    baseline: str = "mse"
    claims: tuple[Claim, ...] = ()
    quick: QuickSpec = field(default_factory=QuickSpec)
    imbalanced: dict[str, Any] | None = None
    curve_losses: tuple[str, ...] | None = None
    datasets: tuple[str, ...] = ()

    @property
    def primary(self) -> MetricSpec:
        return self.metrics[0]

    def seed_count(self, quick: bool = False) -> int:
        return self.quick.seeds if quick else self.seeds

    def mixture_means(self, quick: bool = False) -> tuple[float, ...]:
        if self.noise is None:
            return ()
        if quick and self.quick.mixture_means is not None:
            return self.quick.mixture_means
        return self.noise.mixture_means

    def loss_label(self, loss: Any) -> str:
        """The report name of a loss section: its ``label`` in the study file, else e.g. ``biv (eps=0.5)``."""
        key = format_value(loss)
        for part in self.parts:
            for value, label in zip(part.losses, part.labels):
                if label is not None and format_value(value) == key:
                    return label
        return value_label(loss)

    def matches(self, loss: Any, names: Sequence[str]) -> bool:
        """Whether ``loss`` is one of ``names``: its report label, its default label or its ``name``."""
        name = loss.get("name") if isinstance(loss, Mapping) else loss
        return self.loss_label(loss) in names or value_label(loss) in names or str(name) in names

    def part_losses(self, part: StudyPart, quick: bool = False) -> tuple[dict[str, Any], ...]:
        losses = part.losses
        if quick and self.quick.losses is not None and losses:
            losses = tuple(v for v in losses if self.matches(v, self.quick.losses))
        return losses

    def part_base(self, part: StudyPart, quick: bool = False) -> dict[str, Any]:
        """The base configuration of ``part``: the study base with the part's (and quick) overrides."""
        config: dict[str, Any] = dict(self.base)
        items = dict(part.overrides)
        if quick:
            items.update(self.quick.overrides)
        for key, value in items.items():
            config = set_dotted(config, key, value)
        return config

    def sweep_specs(self, quick: bool = False, seeds: int | None = None) -> dict[str, SweepSpec]:
        """One :class:`SweepSpec` per part: noise axis (if swept), loss axis, seed axis
        (seeds 0 .. n−1, ``n`` = ``seeds`` or the study's count)."""
        specs: dict[str, SweepSpec] = {}
        for part in self.parts:
            axes: list[GridAxis] = []
            if part.noise:
                assert self.noise is not None
                axes.append(self.noise.axis(self.mixture_means(quick)))
            losses = self.part_losses(part, quick)
            if losses:
                axes.append(GridAxis(LOSS_KEY, losses))
            axes.append(GridAxis(SEED_KEY, tuple(range(seeds if seeds is not None else self.seed_count(quick)))))
            specs[part.name] = SweepSpec(base=self.part_base(part, quick), grid=tuple(axes))
        return specs

    def setting_labels(self, quick: bool = False) -> dict[str, str]:
        """``format_value(distribution) -> label`` of the swept noise settings."""
        if self.noise is None:
            return {}
        return {format_value(d): label for label, d in self.noise.settings(self.mixture_means(quick))}

    def run_count(self, quick: bool = False) -> int:
        n = 0
        for spec in self.sweep_specs(quick).values():
            count = 1
            for axis in spec.grid:
                count *= len(axis.values)
            n += count
        return n


def study_from_dict(d: Mapping[str, Any], source: str = "study") -> Study:
    """Build a :class:`Study` from its YAML data; ``ValueError`` names the bad key."""
    if not isinstance(d, Mapping):
        raise ValueError(f"{source}: a study must be a mapping, got {type(d).__name__}")
    allowed = (
        "name",
        "title",
        "description",
        "protocol",
        "base",
        "parts",
        "seeds",
        "noise",
        "metrics",
        "baseline",
        "claims",
        "quick",
        "imbalanced",
        "curve_losses",
        "datasets",
    )
    _check_keys(d, allowed, source, required=("name", "title", "base", "parts", "seeds", "metrics"))
    seeds = d["seeds"]
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"{source}.seeds must be an integer >= 1, got {seeds!r}")
    parts = tuple(StudyPart.from_dict(p, f"{source}.parts[{i}]") for i, p in enumerate(d["parts"] or ()))
    if not parts:
        raise ValueError(f"{source}.parts: a study needs at least one part")
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        raise ValueError(f"{source}.parts: part names must be unique, got {names}")
    noise = NoiseSettings.from_dict(d["noise"], f"{source}.noise") if d.get("noise") else None
    if noise is None and any(p.noise for p in parts):
        raise ValueError(f"{source}: a part sweeps the noise settings (noise: true) but the study has no 'noise' section")
    metrics = tuple(MetricSpec.from_value(m, f"{source}.metrics[{i}]") for i, m in enumerate(d["metrics"] or ()))
    if not metrics:
        raise ValueError(f"{source}.metrics: list at least one metric")
    imbalanced = d.get("imbalanced")
    if imbalanced is not None:
        _check_keys(imbalanced, ("bins", "many_threshold", "few_threshold"), f"{source}.imbalanced")
        imbalanced = dict(imbalanced)
    return Study(
        name=str(d["name"]),
        title=str(d["title"]),
        description=str(d.get("description", "")).strip(),
        protocol=str(d.get("protocol", "")).strip(),
        base=dict(d["base"]),
        parts=parts,
        seeds=seeds,
        metrics=metrics,
        noise=noise,
        baseline=str(d.get("baseline", "mse")),
        claims=tuple(Claim.from_dict(c, f"{source}.claims[{i}]") for i, c in enumerate(d.get("claims") or ())),
        quick=QuickSpec.from_dict(d.get("quick") or {}, f"{source}.quick"),
        imbalanced=imbalanced,
        curve_losses=tuple(str(x) for x in d["curve_losses"]) if d.get("curve_losses") else None,
        datasets=tuple(str(x) for x in d.get("datasets") or ()),
    )


def _studies_folder() -> Any:
    return resources.files("hetreg.experiments") / STUDIES_DIR


def list_reproductions() -> list[str]:
    """Names of the shipped studies (files ``hetreg/experiments/reproductions/*.yaml``), sorted."""
    folder = _studies_folder()
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_study(name: str) -> Study:
    """Read and check the study ``name``; ``ValueError`` lists the valid names."""
    names = list_reproductions()
    if name not in names:
        raise ValueError(f"unknown reproduction {name!r}; valid names: {', '.join(names) or '(none shipped)'}")
    text = (_studies_folder() / f"{name}.yaml").read_text(encoding="utf-8")
    from hetreg.experiments.config import _Loader

    data = yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass with YAML 1.2 floats
    study = study_from_dict(data, f"{name}.yaml")
    if study.name != name:
        raise ValueError(f"{name}.yaml: its 'name' is {study.name!r}; it must equal the file name {name!r}")
    return study


def _cutoff_thresholds(study: Study, quick: bool) -> list[float]:
    out = []
    for part in study.parts:
        for loss in study.part_losses(part, quick):
            if loss.get("name") == "cutoff" and "threshold" in loss:
                out.append(float(loss["threshold"]))
    return out


def validate_study(study: Study, quick: bool = False) -> int:
    """Resolve every grid point of every part with the experiment schema; return the run count.

    Each point is resolved with seed 0 only: the seed (an integer >= 0) never makes a
    configuration invalid, and different seeds always give different run ids.

    Also checks that a cutoff threshold (raw units) separates the two noise components of every
    setting (above the near-clean upper bound, below the noisy lower bound), as in the original
    settings where the cutoff keeps exactly the near-clean labels.

    Raises:
        ValueError: naming the part and the grid point of an invalid configuration.
    """
    backend = ExperimentBackend()
    nowhere = Path(os.devnull) / "nonexistent-sweep"
    for part, spec in study.sweep_specs(quick, seeds=1).items():
        try:
            plan_sweep(spec, nowhere / part, backend)
        except ValueError as exc:
            raise ValueError(f"study {study.name}, part {part}: {exc}") from None
    total = study.run_count(quick)
    if study.noise is not None:
        for threshold in _cutoff_thresholds(study, quick):
            for m in study.mixture_means(quick):
                clean, noisy = study.noise.components(m)
                if not clean.high < threshold < noisy.low:
                    raise ValueError(
                        f"study {study.name}: cutoff threshold {threshold:g} does not separate the noise components "
                        f"of the setting with mixture mean {m:g} (near-clean up to {clean.high:.4g}, noisy from "
                        f"{noisy.low:.4g}); choose a threshold between them"
                    )
    losses = [v for part in study.parts for v in part.losses]
    names = {m.name for m in study.metrics}
    references: list[tuple[str, Sequence[str]]] = [("quick.losses", study.quick.losses or ()), ("curve_losses", study.curve_losses or ())]
    for i, claim in enumerate(study.claims):
        for metric in claim.metrics:
            if metric not in names:
                raise ValueError(f"study {study.name}: claim metric {metric!r} is not one of the study's metrics")
        references += [(f"claims[{i}].groups", claim.groups), (f"claims[{i}].against", claim.against)]
    for where, wanted in references:
        for item in wanted:
            if not any(study.matches(v, [item]) for v in losses):
                valid = ", ".join(sorted({study.loss_label(v) for v in losses}))
                raise ValueError(f"study {study.name}: {where} names the loss {item!r}, which no part runs; valid: {valid}")
    return total


# ---------------------------------------------------------------------------------------------
# Balanced and shot metrics from the final model
# ---------------------------------------------------------------------------------------------


def imbalanced_metrics(run_dir: Path, options: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Balanced and many/medium/few-shot test errors of the final model of a run (raw label units).

    Rebuilds the test split from the run's configuration (same data seed), the model from
    ``last.pt`` and the normalisation from ``standardizer.json``, predicts the test labels and
    returns ``{"bmse", "bmae", "<group>.mse", "<group>.mae", "<group>.count"}`` with
    ``group`` in many / medium / few / all (:func:`hetreg.metrics.shot_metrics`, sample-averaged
    within a group; shots from the training labels of the dataset). ``bmse`` is the mean over
    label bins of the per-bin MSE (:func:`hetreg.metrics.balanced_mse`).

    Raises:
        ValueError: the recomputed test MSE differs from the run's logged final ``test_mse_raw``
            (by more than :data:`RECOMPUTE_RTOL`), i.e. the run could not be rebuilt faithfully.
    """
    from hetreg.data import Standardizer, load_dataset
    from hetreg.experiments.config import load_config
    from hetreg.metrics import balanced_mae, balanced_mse, mse, shot_metrics
    from hetreg.models import build_model
    from hetreg.train.evaluation import predict
    from hetreg.train.files import load_checkpoint

    opts = dict(options or {})
    bins = opts.get("bins", 1.0)
    many = int(opts.get("many_threshold", 100))
    few = int(opts.get("few_threshold", 20))
    run_dir = Path(run_dir)
    cfg = load_config(run_dir / runstore.CONFIG_FILE)
    data = load_dataset(cfg.data.name, root=cfg.data.root, seed=cfg.seed_for("data"), **cfg.data.loader_options())
    std = Standardizer.from_dict(runstore.read_json(run_dir / "standardizer.json"))
    model = build_model(cfg.model.name, data.input_shape, head=cfg.model.head, out_dim=1, **cfg.model.options)
    model.load_state_dict(load_checkpoint(run_dir / runstore.CHECKPOINT_FILE)["model"])
    if data.kind == "image":
        x, transform = data.test.x, std.transform_x
    else:
        x, transform = std.transform_x(data.test.x), None
    pred, _ = predict(model, x, batch_size=cfg.train.eval_batch_size or 1024, transform=transform)
    pred_raw = std.inverse_y(pred).double()
    target = data.test.y.double()
    logged = runstore.summary_metrics(runstore.read_json(run_dir / runstore.SUMMARY_FILE)).get("final.test_mse_raw")
    recomputed = float(mse(pred_raw, target))
    if logged is None or not math.isclose(recomputed, logged, rel_tol=RECOMPUTE_RTOL, abs_tol=1e-12):
        raise ValueError(
            f"{run_dir}: the rebuilt final model gives test MSE {recomputed:.6g}, the run logged {logged}; "
            "the run cannot be evaluated again faithfully (changed data or code?)"
        )
    out: dict[str, float] = {
        "bmse": float(balanced_mse(pred_raw, target, bins)),
        "bmae": float(balanced_mae(pred_raw, target, bins)),
    }
    shots = shot_metrics(
        pred_raw, target, data.train.y.double(), bins, many_threshold=many, few_threshold=few, metrics=("mse", "mae")
    )
    for group, values in shots.items():
        for key in ("mse", "mae", "count"):
            out[f"{group}.{key}"] = float(values[key])
    return out


def _add_imbalanced_metrics(study: Study, out: Path, quick: bool, say: Callable[[str], None]) -> int:
    """Write ``imbalanced_metrics.json`` for the completed runs without one; returns how many."""
    assert study.imbalanced is not None
    done = 0
    for part in study.sweep_specs(quick):
        for record in runstore.scan_runs(out / part):
            target = record.run_dir / IMBALANCED_FILE
            if record.status != "completed" or target.exists():
                continue
            runstore.write_json(target, imbalanced_metrics(record.run_dir, study.imbalanced))
            done += 1
    if done:
        say(f"balanced and shot metrics computed for {done} runs")
    return done


# ---------------------------------------------------------------------------------------------
# Results across parts
# ---------------------------------------------------------------------------------------------


def collect_results(study: Study, out: Path, quick: bool = False) -> ResultSet:
    """The runs of every part as one :class:`ResultSet` keyed by ``setting``, ``loss``, ``seed``.

    ``setting`` is the noise-setting label (parts sweeping the noise) or the part's ``setting``;
    ``loss`` the loss section as swept (or the part's base loss). Balanced / shot metrics of
    ``imbalanced_metrics.json`` join the run's metrics as ``imb.<name>``.
    """
    from hetreg.experiments.report import load_results

    labels = study.setting_labels(quick)
    specs = study.sweep_specs(quick)
    backend = ExperimentBackend()
    rows: list[RunRow] = []
    setting_order: list[str] = []
    loss_order: list[Any] = []
    for part in study.parts:
        folder = Path(out) / part.name
        if not folder.is_dir():
            continue
        try:
            res = load_results(folder)
        except FileNotFoundError:
            continue
        # the swept values as given in the study (not the resolved sections, which carry every default)
        swept = {p.run_id: p.overrides for p in plan_sweep(specs[part.name], folder, backend)}
        base_loss = dict(get_dotted(study.part_base(part, quick), LOSS_KEY) or {"name": "mse"})
        if part.noise:
            for _, d in study.noise.settings(study.mixture_means(quick)) if study.noise else ():
                if labels[format_value(d)] not in setting_order:
                    setting_order.append(labels[format_value(d)])
        elif part.setting not in setting_order:
            setting_order.append(part.setting)
        for loss in study.part_losses(part, quick) or (base_loss,):
            if all(format_value(loss) != format_value(x) for x in loss_order):
                loss_order.append(loss)
        for row in res.rows:
            if row.run_id not in swept:
                continue  # a run of another grid (e.g. the quick variant in the same folder)
            values = swept[row.run_id]
            setting = labels.get(format_value(values.get("noise.distribution")), "other noise") if part.noise else part.setting
            loss = values.get(LOSS_KEY, base_loss)
            metrics = dict(row.metrics)
            if row.record is not None:
                extra = runstore.read_json(row.record.run_dir / IMBALANCED_FILE)
                metrics.update({f"{IMBALANCED_PREFIX}{k}": float(v) for k, v in extra.items()})
            rows.append(
                RunRow(
                    run_id=row.run_id,
                    status=row.status,
                    values={SETTING_KEY: setting, LOSS_KEY: loss, SEED_KEY: values.get(SEED_KEY)},
                    metrics=metrics,
                    record=row.record,
                    error=row.error,
                )
            )
    return ResultSet(
        Path(out),
        [SETTING_KEY, LOSS_KEY, SEED_KEY],
        rows,
        {SETTING_KEY: setting_order, LOSS_KEY: loss_order},
    )


@dataclass
class _Tables:
    """Summaries and paired differences of every metric of a study."""

    results: ResultSet
    summaries: dict[str, list[GroupSummary]]
    diffs: dict[str, dict[tuple[str, str], Estimate]]
    missing: list[str]


def _compute_tables(study: Study, results: ResultSet) -> _Tables:
    summaries: dict[str, list[GroupSummary]] = {}
    diffs: dict[str, dict[tuple[str, str], Estimate]] = {}
    missing: list[str] = []
    for spec in study.metrics:
        try:
            groups = summarize(results, spec.name)
        except ValueError:
            missing.append(spec.name)
            continue
        summaries[spec.name] = groups
        table: dict[tuple[str, str], Estimate] = {}
        if spec.paired:
            has_baseline = any(study.matches(g.values[LOSS_KEY], [study.baseline]) for g in groups)
            if has_baseline:
                for d in paired_differences(groups, f"{LOSS_KEY}.name", study.baseline):
                    table[(str(d.values[SETTING_KEY]), format_value(d.values[LOSS_KEY]))] = d.estimate
        diffs[spec.name] = table
    return _Tables(results, summaries, diffs, missing)


def _paired(groups: Sequence[GroupSummary], setting: str, a: Any, b: Any) -> Estimate | None:
    """Seed-paired difference a − b within one setting (``None`` when either group is missing)."""
    ga = next((g for g in groups if g.values[SETTING_KEY] == setting and format_value(g.values[LOSS_KEY]) == format_value(a)), None)
    gb = next((g for g in groups if g.values[SETTING_KEY] == setting and format_value(g.values[LOSS_KEY]) == format_value(b)), None)
    if ga is None or gb is None:
        return None
    seeds = sorted(set(ga.per_seed) & set(gb.per_seed))
    return mean_ci([ga.per_seed[s] - gb.per_seed[s] for s in seeds])


# ---------------------------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------------------------


def _direction(e: Estimate) -> str:
    if e.n < 2 or not math.isfinite(e.half_width):
        return "undetermined"
    if e.high < 0:
        return "lower"
    if e.low > 0:
        return "higher"
    return "no significant difference"


def _metric_label(study: Study, name: str) -> str:
    return next((m.label for m in study.metrics if m.name == name), name)


def _claim_settings(study: Study, claim: Claim, present: Sequence[str]) -> list[str]:
    if claim.mixture_means is None or study.noise is None:
        return list(present)
    wanted = {study.noise.label(m) for m in claim.mixture_means}
    return [s for s in present if s in wanted]


def _verdict(lower: int, higher: int, total: int) -> str:
    if total == 0:
        return "**Not tested** (no completed comparison)."
    if lower == total:
        return "**Agrees**: the difference is significant in the claimed direction in every comparison."
    if lower and not higher:
        return f"**Agrees partly**: significant in the claimed direction in {lower} of {total} comparisons, not significant in the others."
    if lower and higher:
        return f"**Mixed**: significant in the claimed direction in {lower} of {total} comparisons and in the opposite direction in {higher}."
    if higher:
        return f"**Disagrees**: significant in the opposite direction in {higher} of {total} comparisons, never in the claimed direction."
    return f"**Not confirmed**: no significant difference in any of the {total} comparisons."


def _check_paired(study: Study, claim: Claim, tables: _Tables) -> list[str]:
    lines: list[str] = []
    lower = higher = total = 0
    for metric in claim.metrics:
        groups = tables.summaries.get(metric)
        if not groups:
            lines.append(f"- {_metric_label(study, metric)}: no completed runs.")
            continue
        settings = _claim_settings(study, claim, list(dict.fromkeys(str(g.values[SETTING_KEY]) for g in groups)))
        losses = list({format_value(g.values[LOSS_KEY]): g.values[LOSS_KEY] for g in groups}.values())
        for a in [v for v in losses if study.matches(v, claim.groups)]:
            for b in [v for v in losses if study.matches(v, claim.against) and format_value(v) != format_value(a)]:
                parts = []
                for setting in settings:
                    e = _paired(groups, setting, a, b)
                    if e is None or e.n == 0:
                        continue
                    direction = _direction(e)
                    total += 1
                    lower += direction == "lower"
                    higher += direction == "higher"
                    where = f"{setting}: " if len(settings) > 1 else ""
                    parts.append(f"{where}Δ = {format_estimate(e)} ({direction}, {e.n} pairs)")
                if parts:
                    lines.append(
                        f"- {_metric_label(study, metric)}, **{study.loss_label(a)} − {study.loss_label(b)}**: " + "; ".join(parts) + "."
                    )
    return [_verdict(lower, higher, total), "", *lines]


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy import stats

    if len(x) < 3:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def _check_trend(study: Study, claim: Claim, tables: _Tables) -> list[str]:
    metric = claim.metrics[0]
    groups = tables.summaries.get(metric) or []
    points = []
    for g in groups:
        loss = g.values[LOSS_KEY]
        if not isinstance(loss, Mapping) or loss.get("name") != claim.among:
            continue
        xv = loss.get(claim.x)
        if isinstance(xv, bool) or not isinstance(xv, (int, float)) or g.estimate.n == 0:
            continue
        points.append((float(xv), g.estimate))
    if len(points) < 3:
        return ["**Not tested** (fewer than 3 completed values)."]
    points.sort(key=lambda p: p[0])
    rho = _spearman([p[0] for p in points], [p[1].mean for p in points])
    values = ", ".join(f"{claim.x}={x:g}: {format_estimate(e)}" for x, e in points)
    if rho >= 0.9:
        verdict = f"**Agrees**: {_metric_label(study, metric)} rises with {claim.x} (Spearman ρ = {rho:.2f} over {len(points)} values)."
    elif rho <= -0.9:
        verdict = f"**Disagrees**: {_metric_label(study, metric)} falls as {claim.x} grows (Spearman ρ = {rho:.2f})."
    else:
        verdict = f"**Not confirmed**: no monotone relation (Spearman ρ = {rho:.2f} over {len(points)} values)."
    return [verdict, "", f"- {claim.among}: {values}."]


def _check_auto_ebs(study: Study, claim: Claim, tables: _Tables) -> list[str]:
    metric = claim.metrics[0]
    groups = tables.summaries.get(metric) or []
    batch = int(get_dotted(study.base, "train.batch_size", 256) or 256)
    lines, met, total = [], 0, 0
    for g in groups:
        loss = g.values[LOSS_KEY]
        if not isinstance(loss, Mapping) or loss.get("eps") != "auto" or g.estimate.n == 0:
            continue
        target = loss.get("min_ebs")
        if isinstance(target, float) and target <= 1.0:
            target_ebs = target * batch
        else:
            target_ebs = float(target)
        total += 1
        ok = g.estimate.mean >= 0.95 * target_ebs
        met += ok
        lines.append(
            f"- {study.loss_label(loss)}: logged EBS {format_estimate(g.estimate)} for a requested minimum of "
            f"{target_ebs:g} (batch {batch}){'' if ok else ' — below the target'}."
        )
    if not total:
        return ["**Not tested** (no completed run with eps: auto)."]
    if met == total:
        verdict = "**Agrees**: the mean logged EBS reaches at least 95 % of the requested minimum in every case."
    else:
        verdict = f"**Agrees partly**: the requested minimum is reached in {met} of {total} cases."
    return [verdict, "", *lines]


def check_claims(study: Study, tables: _Tables) -> list[str]:
    """Markdown lines: for every claim, the verdict and the measured comparisons behind it."""
    lines: list[str] = []
    for claim in study.claims:
        lines += [f"### {claim.text}", "", f"_Source: {claim.source}._", ""]
        if claim.kind == "paired":
            lines += _check_paired(study, claim, tables)
        elif claim.kind == "trend":
            lines += _check_trend(study, claim, tables)
        else:
            lines += _check_auto_ebs(study, claim, tables)
        lines.append("")
    return lines


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = [[str(c).replace("|", "\\|") for c in row] for row in [list(header), *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines)


def _cell(e: Estimate | None) -> str:
    if e is None or e.n == 0:
        return "–"
    return f"{format_estimate(e)} (n={e.n})"


def _diff_cell(e: Estimate | None, baseline_mean: float | None = None) -> str:
    if e is None or e.n == 0:
        return "–"
    text = format_estimate(e)
    if baseline_mean and math.isfinite(baseline_mean):
        text += f" ({100 * e.mean / baseline_mean:+.1f} %)"
    direction = _direction(e)
    if direction in ("lower", "higher"):
        text = f"**{text}**"
    return text


def _settings_and_losses(groups: Sequence[GroupSummary]) -> tuple[list[str], list[Any]]:
    settings = list(dict.fromkeys(str(g.values[SETTING_KEY]) for g in groups))
    losses = list({format_value(g.values[LOSS_KEY]): g.values[LOSS_KEY] for g in groups}.values())
    return settings, losses


def _find(groups: Sequence[GroupSummary], setting: str, loss: Any) -> GroupSummary | None:
    return next(
        (g for g in groups if g.values[SETTING_KEY] == setting and format_value(g.values[LOSS_KEY]) == format_value(loss)),
        None,
    )


def _baseline_mean(study: Study, groups: Sequence[GroupSummary], setting: str, baseline: str) -> float | None:
    g = next((g for g in groups if g.values[SETTING_KEY] == setting and study.matches(g.values[LOSS_KEY], [baseline])), None)
    return g.estimate.mean if g is not None else None


def _tables_by_setting(study: Study, tables: _Tables) -> list[str]:
    """Per metric: settings × losses (mean ± 95 % CI), and the paired difference to the baseline."""
    lines: list[str] = []
    for spec in study.metrics:
        groups = tables.summaries.get(spec.name)
        if not groups:
            continue
        settings, losses = _settings_and_losses(groups)
        header = ["setting", *(study.loss_label(v) for v in losses)]
        rows = [[s, *(_cell(g.estimate if (g := _find(groups, s, v)) else None) for v in losses)] for s in settings]
        lines += [f"### {spec.label}", "", "Mean ± 95 % t-interval half-width over seeds (n = seeds).", "", _md_table(header, rows), ""]
        diffs = tables.diffs.get(spec.name) or {}
        if diffs:
            others = [v for v in losses if not study.matches(v, [study.baseline])]
            drows = []
            for s in settings:
                cells = [_diff_cell(diffs.get((s, format_value(v))), _baseline_mean(study, groups, s, study.baseline)) for v in others]
                if any(c != "–" for c in cells):
                    drows.append([s, *cells])
            lines += [
                f"Paired difference to {study.baseline} (same seed, same setting): Δ ± 95 % half-width "
                "(relative to the baseline mean). **Bold**: the interval excludes 0; negative = lower than the baseline.",
                "",
                _md_table(["setting", *(study.loss_label(v) for v in others)], drows),
                "",
            ]
    return lines


def _tables_by_loss(study: Study, tables: _Tables) -> list[str]:
    """One setting: rows = losses, columns = metrics (mean ± CI), then the paired differences."""
    specs = [s for s in study.metrics if tables.summaries.get(s.name)]
    if not specs:
        return []
    first = tables.summaries[specs[0].name]
    settings, losses = _settings_and_losses(first)
    lines: list[str] = []
    for setting in settings:
        if len(settings) > 1:
            lines += [f"#### {setting}", ""]
        rows = []
        for v in losses:
            cells = []
            for spec in specs:
                g = _find(tables.summaries[spec.name], setting, v)
                cells.append(_cell(g.estimate if g else None))
            rows.append([study.loss_label(v), *cells])
        lines += [
            "Mean ± 95 % t-interval half-width over seeds (n = seeds).",
            "",
            _md_table(["loss", *(s.label for s in specs)], rows),
            "",
        ]
        paired_specs = [s for s in specs if tables.diffs.get(s.name)]
        if paired_specs:
            drows = []
            for v in losses:
                if study.matches(v, [study.baseline]):
                    continue
                cells = [
                    _diff_cell(
                        tables.diffs[s.name].get((setting, format_value(v))),
                        _baseline_mean(study, tables.summaries[s.name], setting, study.baseline),
                    )
                    for s in paired_specs
                ]
                drows.append([study.loss_label(v), *cells])
            lines += [
                f"Paired difference to {study.baseline} (same seed): Δ ± 95 % half-width (relative to the baseline "
                "mean). **Bold**: the interval excludes 0; negative = lower than the baseline.",
                "",
                _md_table(["loss", *(s.label for s in paired_specs)], drows),
                "",
            ]
    return lines


def _results_csv(study: Study, tables: _Tables) -> str:
    import pandas as pd

    records = []
    for spec in study.metrics:
        for g in tables.summaries.get(spec.name) or []:
            e = g.estimate
            d = (tables.diffs.get(spec.name) or {}).get((str(g.values[SETTING_KEY]), format_value(g.values[LOSS_KEY])))
            records.append(
                {
                    "metric": spec.name,
                    "setting": g.values[SETTING_KEY],
                    "loss": study.loss_label(g.values[LOSS_KEY]),
                    "n": e.n,
                    "mean": e.mean,
                    "ci_low": e.low,
                    "ci_high": e.high,
                    "std": e.std,
                    f"diff_vs_{study.baseline}": d.mean if d else None,
                    "diff_ci_low": d.low if d else None,
                    "diff_ci_high": d.high if d else None,
                    "diff_n": d.n if d else None,
                }
            )
    return pd.DataFrame(records).to_csv(index=False)


# -- figures -------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    from hetreg.experiments.report import new_figure

    return new_figure(width, height)


def _save_figure(fig: Any, path: Path) -> Path:
    from hetreg.experiments.report import save_figure

    return save_figure(fig, path)


_COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac", "#eeca3b")


def _log_floor(low: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Lower band edges for a log axis: a t-interval of a positive, skewed quantity can reach
    below 0; such edges are drawn at a tenth of the mean (stated in the figure captions)."""
    return np.where(low > 0, low, np.abs(mean) / 10.0)


def _plot_settings(study: Study, tables: _Tables, out: Path, name: str) -> list[tuple[str, str]]:
    """Mean ± CI per setting and loss (left) and the paired difference to the baseline (right)."""
    spec = study.primary
    groups = tables.summaries.get(spec.name)
    if not groups:
        return []
    settings, losses = _settings_and_losses(groups)
    diffs = tables.diffs.get(spec.name) or {}
    fig = _figure(12.0, 4.4)
    ax = fig.add_subplot(1, 2, 1)
    width = 0.8 / max(len(losses), 1)
    for i, v in enumerate(losses):
        xs, ys, es = [], [], []
        for j, s in enumerate(settings):
            g = _find(groups, s, v)
            if g is None or g.estimate.n == 0:
                continue
            xs.append(j + (i - (len(losses) - 1) / 2) * width)
            ys.append(g.estimate.mean)
            es.append(g.estimate.half_width if math.isfinite(g.estimate.half_width) else 0.0)
        ax.errorbar(xs, ys, yerr=es, fmt="o", capsize=3, color=_COLOURS[i % len(_COLOURS)], label=study.loss_label(v))
    ax.set_xticks(range(len(settings)))
    ax.set_xticklabels(settings, fontsize=8, rotation=15)
    ax.set_yscale("log")
    ax.set_ylabel(f"{spec.label} (mean, 95 % CI)")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax2 = fig.add_subplot(1, 2, 2)
    others = [v for v in losses if not study.matches(v, [study.baseline])]
    for i, v in enumerate(others):
        xs, ys, es = [], [], []
        for j, s in enumerate(settings):
            e = diffs.get((s, format_value(v)))
            if e is None or e.n == 0:
                continue
            xs.append(j + (i - (len(others) - 1) / 2) * width)
            ys.append(e.mean)
            es.append(e.half_width if math.isfinite(e.half_width) else 0.0)
        colour = _COLOURS[(losses.index(v)) % len(_COLOURS)]
        ax2.errorbar(xs, ys, yerr=es, fmt="o", capsize=3, color=colour, label=study.loss_label(v))
    ax2.axhline(0.0, color="black", lw=0.8)
    ax2.set_xticks(range(len(settings)))
    ax2.set_xticklabels(settings, fontsize=8, rotation=15)
    ax2.set_ylabel(f"Δ vs {study.baseline} (paired, 95 % CI)")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8)
    path = _save_figure(fig, out / f"{name}-settings.png")
    return [(f"{spec.label}: mean per setting (left) and paired difference to {study.baseline} (right)", path.name)]


def _plot_curves(study: Study, tables: _Tables, out: Path, name: str) -> list[tuple[str, str]]:
    """Learning curves of the primary metric (mean over seeds, 95 % band), one panel per setting."""
    metric = study.primary.name
    curve_metric = metric.split(".", 1)[1] if metric.startswith(("final.", "best.")) else metric
    if curve_metric.startswith(IMBALANCED_PREFIX):
        curve_metric = "test_mse_raw"
    curves = learning_curves(tables.results, curve_metric)
    if study.curve_losses is not None:
        curves = [c for c in curves if study.matches(c.values[LOSS_KEY], study.curve_losses)]
    if not curves:
        return []
    settings = list(dict.fromkeys(str(c.values[SETTING_KEY]) for c in curves))
    losses = list({format_value(c.values[LOSS_KEY]): c.values[LOSS_KEY] for c in curves}.values())
    cols = min(len(settings), 3)
    rows = math.ceil(len(settings) / cols)
    fig = _figure(4.6 * cols, 3.6 * rows)
    for k, setting in enumerate(settings):
        ax = fig.add_subplot(rows, cols, k + 1)
        for c in curves:
            if c.values[SETTING_KEY] != setting:
                continue
            i = [format_value(v) for v in losses].index(format_value(c.values[LOSS_KEY]))
            colour = _COLOURS[i % len(_COLOURS)]
            ax.plot(c.x, c.mean, color=colour, lw=1.4, label=study.loss_label(c.values[LOSS_KEY]))
            band = np.isfinite(c.low) & np.isfinite(c.high)
            if band.any():
                low = _log_floor(c.low[band], c.mean[band])
                ax.fill_between(c.x[band], low, c.high[band], color=colour, alpha=0.18, lw=0)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(curve_metric)
        ax.set_title(setting, fontsize=9)
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=7)
    path = _save_figure(fig, out / f"{name}-curves.png")
    return [
        (
            f"Learning curves of {curve_metric} (mean over seeds, 95 % band; log axis, band edges below 0 drawn at a tenth of the mean)",
            path.name,
        )
    ]


def _plot_epsilon(study: Study, tables: _Tables, out: Path, name: str) -> list[tuple[str, str]]:
    """Primary metric and logged EBS against ε for each loss family with a numeric ε."""
    groups = tables.summaries.get(study.primary.name)
    ebs_groups = tables.summaries.get("final.ebs")
    eps_groups = tables.summaries.get("final.eps")
    if not groups:
        return []
    families: dict[str, list[tuple[float, Estimate, Estimate | None]]] = {}
    autos: list[tuple[Any, Estimate, Estimate | None, Estimate | None]] = []
    baseline: Estimate | None = None
    for g in groups:
        loss = g.values[LOSS_KEY]
        if not isinstance(loss, Mapping):
            continue
        ebs = _find(ebs_groups, g.values[SETTING_KEY], loss) if ebs_groups else None
        eps = loss.get("eps")
        if isinstance(eps, (int, float)) and not isinstance(eps, bool):
            families.setdefault(str(loss["name"]), []).append((float(eps), g.estimate, ebs.estimate if ebs else None))
        elif eps == "auto":
            chosen = _find(eps_groups, g.values[SETTING_KEY], loss) if eps_groups else None
            autos.append((loss, g.estimate, ebs.estimate if ebs else None, chosen.estimate if chosen else None))
        elif study.matches(loss, [study.baseline]):
            baseline = g.estimate
    if not any(len({p[0] for p in pts}) >= 3 for pts in families.values()):
        return []  # an ε sweep needs at least three values of ε
    fig = _figure(12.0, 4.4)
    ax = fig.add_subplot(1, 2, 1)
    ax2 = fig.add_subplot(1, 2, 2)
    for i, (family, pts) in enumerate(sorted(families.items())):
        pts.sort(key=lambda p: p[0])
        colour = _COLOURS[i % len(_COLOURS)]
        xs = np.array([p[0] for p in pts])
        m = np.array([p[1].mean for p in pts])
        lo = np.array([p[1].low for p in pts])
        hi = np.array([p[1].high for p in pts])
        ax.plot(xs, m, "o-", color=colour, label=family)
        ax.fill_between(xs, _log_floor(lo, m), hi, color=colour, alpha=0.18, lw=0)
        e = [(p[0], p[2]) for p in pts if p[2] is not None and p[2].n > 0]
        if e:
            ax2.errorbar(
                [p[0] for p in e],
                [p[1].mean for p in e],
                yerr=[p[1].half_width if math.isfinite(p[1].half_width) else 0.0 for p in e],
                fmt="o-",
                capsize=3,
                color=colour,
                label=family,
            )
    for j, (loss, est, ebs, chosen) in enumerate(autos):
        if chosen is None or not math.isfinite(chosen.mean) or chosen.mean <= 0:
            continue
        marker = ("s", "^", "D", "v", "P")[j % 5]
        label = f"auto, min_ebs={format_value(loss.get('min_ebs'))}"
        ax.errorbar([chosen.mean], [est.mean], yerr=[[est.half_width if math.isfinite(est.half_width) else 0.0]], fmt=marker, color="black", capsize=3, label=label)
        if ebs is not None:
            ax2.plot([chosen.mean], [ebs.mean], marker, color="black", label=label)
    if baseline is not None and baseline.n:
        ax.axhline(baseline.mean, color="grey", ls="--", lw=1, label=f"{study.baseline}")
        if math.isfinite(baseline.half_width):
            ax.axhspan(baseline.low, baseline.high, color="grey", alpha=0.12)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ε (normalised variance units; auto: mean chosen ε)")
    ax.set_ylabel(f"{study.primary.label} (mean, 95 % CI)")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax2.set_xscale("log")
    ax2.set_xlabel("ε")
    ax2.set_ylabel("effective batch size (last epoch, mean over steps)")
    ax2.grid(True, alpha=0.3, which="both")
    ax2.legend(fontsize=7)
    path = _save_figure(fig, out / f"{name}-epsilon.png")
    return [("Test error (left) and logged effective batch size (right) against ε", path.name)]


def _plot_metrics(study: Study, tables: _Tables, out: Path, name: str) -> list[tuple[str, str]]:
    """Grouped bars: every error metric (x; metrics without paired differences, such as σ, are
    left out) and loss (colour), mean ± 95 % CI."""
    specs = [s for s in study.metrics if s.paired and tables.summaries.get(s.name)]
    if len(specs) < 2:
        return []
    _, losses = _settings_and_losses(tables.summaries[specs[0].name])
    setting = str(tables.summaries[specs[0].name][0].values[SETTING_KEY])
    fig = _figure(max(7.0, 1.3 * len(specs) + 2), 4.4)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(losses), 1)
    for i, v in enumerate(losses):
        xs, ys, es = [], [], []
        for j, spec in enumerate(specs):
            g = _find(tables.summaries[spec.name], setting, v)
            if g is None or g.estimate.n == 0:
                continue
            xs.append(j + (i - (len(losses) - 1) / 2) * width)
            ys.append(g.estimate.mean)
            es.append(g.estimate.half_width if math.isfinite(g.estimate.half_width) else 0.0)
        ax.bar(xs, ys, width=width, yerr=es, capsize=2, color=_COLOURS[i % len(_COLOURS)], label=study.loss_label(v))
    ax.set_xticks(range(len(specs)))
    ax.set_xticklabels([s.label for s in specs], fontsize=8, rotation=15)
    ax.set_yscale("log")
    ax.set_ylabel("mean over seeds, 95 % CI")
    ax.grid(True, axis="y", alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    path = _save_figure(fig, out / f"{name}-metrics.png")
    return [("Every metric per loss (mean over seeds, 95 % CI)", path.name)]


# -- study folder, sessions, machine --------------------------------------------------------------


def default_out_dir(name: str, quick: bool = False) -> Path:
    """``hetreg-runs/reproduce-<name>`` (``-quick`` appended for quick runs), relative to the working folder."""
    return DEFAULT_RUNS_DIR / (f"reproduce-{name}" + ("-quick" if quick else ""))


def _prepare_study_dir(out: Path, study: Study, quick: bool) -> dict[str, Any]:
    """Create ``out`` or check that it holds this study (same name and quick flag); return study.json."""
    path = out / STUDY_FILE
    if path.exists():
        data = runstore.read_json(path)
        if data.get("name") != study.name or bool(data.get("quick")) != quick:
            raise FileExistsError(
                f"{out} holds the study {data.get('name')!r} (quick={data.get('quick')}); choose another out_dir "
                f"for {study.name!r} (quick={quick})"
            )
        return data
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not a study folder; choose a new out_dir (nothing was written)")
    out.mkdir(parents=True, exist_ok=True)
    data = {"name": study.name, "quick": quick, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "sessions": []}
    runstore.write_json(path, data)
    return data


def machine_info() -> dict[str, Any]:
    """CPU count, load average, torch / Python / hetreg versions, platform and git commit."""
    from hetreg.train.environment import environment_info

    info = dict(environment_info())
    info["cpu_count"] = os.cpu_count()
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        info["load_average"] = None
    return info


def _check_data(study: Study) -> None:
    if not study.datasets:
        return
    from hetreg.data.status import data_folder_description, dataset_status

    status = {r["name"]: r for r in dataset_status()}
    for name in study.datasets:
        record = status.get(name)
        if record is not None and record.get("available") is False:
            raise FileNotFoundError(
                f"study {study.name!r} needs the dataset {name!r}, which is not available in "
                f"{data_folder_description()} ({record.get('detail')}); set HETREG_DATA to the data folder "
                f"or fetch it with: python -m hetreg.data.download {name}"
            )


def _command(name: str, out: Path | None, quick: bool, workers: int | None, executor: str) -> str:
    parts = ["hetreg", "reproduce", name]
    if out is not None:
        parts += ["--out", str(out)]
    if quick:
        parts.append("--quick")
    if workers is not None:
        parts += ["--workers", str(workers)]
    if executor != "local":
        parts += ["--executor", executor]
    return " ".join(parts)


def _fmt_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def _session_text(session: Mapping[str, Any]) -> str:
    workers = session.get("workers") or "default"
    return f"{_fmt_seconds(float(session.get('elapsed', 0.0)))} with {workers} worker(s), started {session.get('started')}"


def write_study_report(
    study: Study,
    out: Path,
    *,
    quick: bool = False,
    command: str | None = None,
    sessions: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Write ``OUT/<name>.md``, ``OUT/<name>.csv`` and the figures ``OUT/<name>-*.png``; return the .md path."""
    out = Path(out)
    results = collect_results(study, out, quick)
    tables = _compute_tables(study, results)
    name = study.name
    for old in out.glob(f"{name}-*.png"):
        old.unlink()
    figures: list[tuple[str, str]] = []
    if tables.summaries:
        settings = {str(r.values[SETTING_KEY]) for r in results.rows}
        if len(settings) > 1:
            figures += _plot_settings(study, tables, out, name)
        figures += _plot_epsilon(study, tables, out, name)
        if study.imbalanced is not None:
            figures += _plot_metrics(study, tables, out, name)
        figures += _plot_curves(study, tables, out, name)
    runstore.atomic_write_text(out / f"{name}.csv", _results_csv(study, tables))

    counts: dict[str, int] = {}
    for r in results.rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    wall = sum(float(s.get("elapsed", 0.0)) for s in sessions)
    machine = dict(sessions[-1].get("machine", {})) if sessions else machine_info()
    lines = [f"# {study.title}", ""]
    if quick:
        lines += ["> **Quick run** (few seeds, short training): a smoke test of the pipeline, not a result.", ""]
    if study.description:
        lines += [study.description, ""]
    lines += ["## How this was run", "", "```", command or _command(name, None, quick, None, "local"), "```", ""]
    lines += [
        f"- Runs: {len(results.rows)} ({', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'none'}), "
        f"{study.seed_count(quick)} seeds per grid point (seed = data split, noise draw, initialisation and batch order).",
        f"- Wall time: {_fmt_seconds(wall)} over {len(sessions)} session(s)"
        + (f" ({', '.join(_session_text(s) for s in sessions)})" if sessions else "")
        + ".",
        f"- Machine: {machine.get('cpu_count')} CPU cores (shared with other jobs; load average at the start "
        f"{machine.get('load_average')}), torch {machine.get('torch')}, Python {machine.get('python')}, "
        f"{machine.get('platform')}, hetreg {machine.get('hetreg')} (commit {machine.get('git_commit')}).",
        f"- Study definition: `src/hetreg/experiments/reproductions/{name}.yaml`; runs in `{out}`.",
        "",
    ]
    if study.protocol:
        lines += ["### Protocol", "", study.protocol, ""]
    if study.noise is not None:
        header, rows = study.noise.table(study.mixture_means(quick))
        lines += [
            "### Noise settings",
            "",
            f"Binary-uniform noise variances (p = {study.noise.p_clean:g} near-clean, var_scale s = "
            f"{study.noise.var_scale:g}), scaled from the reference settings by V/V_ref = "
            f"{study.noise.label_variance:g}/{study.noise.reference_variance:g} = {study.noise.scale:.4g} "
            f"({study.noise.label_units} per {study.noise.reference_units}); s_y² below is the label variance V.",
            "",
            _md_table(header, rows),
            "",
        ]
    lines += ["## Results", ""]
    if tables.missing:
        lines += [f"No completed run reported: {', '.join(tables.missing)}.", ""]
    n_settings = len({str(r.values[SETTING_KEY]) for r in results.rows})
    lines += _tables_by_setting(study, tables) if n_settings > 1 else _tables_by_loss(study, tables)
    problems = [r for r in results.rows if r.status != "completed"]
    if problems:
        lines += ["### Runs not completed", ""]
        lines.append(
            _md_table(
                ["run", "status", "setting", "loss", "seed", "error"],
                [[r.run_id, r.status, str(r.values[SETTING_KEY]), study.loss_label(r.values[LOSS_KEY]), str(r.values[SEED_KEY]), r.error or "–"] for r in problems],
            )
        )
        lines.append("")
    if figures:
        lines += ["## Figures", ""]
        for title, file in figures:
            lines += [f"![{title}]({file})", "", f"_{title}._", ""]
    if study.claims:
        lines += [
            "## Claims of the papers against our measurements",
            "",
            "Each verdict is computed from the tables above: a difference counts when its 95 % "
            "seed-paired t-interval excludes 0.",
            "",
        ]
        lines += check_claims(study, tables)
    lines += [f"_Generated {time.strftime('%Y-%m-%d %H:%M:%S')}; table: [{name}.csv]({name}.csv)._", ""]
    md = out / f"{name}.md"
    runstore.atomic_write_text(md, "\n".join(lines))
    return md


def default_docs_dir() -> Path | None:
    """Where a default-folder report is copied: ``docs/results/`` of the hetreg checkout this
    code runs from (an editable install), or ``None`` for an installed package. Never a folder
    relative to the current directory, which may be the user's own ``docs/results``."""
    docs = _CHECKOUT / "docs" / "results"
    pyproject = _CHECKOUT / "pyproject.toml"
    if docs.is_dir() and pyproject.is_file() and 'name = "hetreg"' in pyproject.read_text(encoding="utf-8"):
        return docs
    return None


def _copy_to_docs(out: Path, name: str, docs_dir: str | Path | None, say: Callable[[str], None]) -> None:
    docs = Path(docs_dir) if docs_dir is not None else default_docs_dir()
    if docs is None:
        say("report not copied to docs/results: this is not a hetreg checkout")
        return
    say(f"report copied to {_copy_report(out, name, docs)}")


def _copy_report(out: Path, name: str, docs: Path) -> Path:
    docs.mkdir(parents=True, exist_ok=True)
    for old in docs.glob(f"{name}-*.png"):
        old.unlink()
    for path in [out / f"{name}.md", out / f"{name}.csv", *sorted(out.glob(f"{name}-*.png"))]:
        if path.exists():
            shutil.copy2(path, docs / path.name)
    return docs / f"{name}.md"


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def reproduce(
    name: str,
    out_dir: str | Path | None = None,
    *,
    quick: bool = False,
    workers: int | None = None,
    executor: str = "local",
    quiet: bool = False,
    docs_dir: str | Path | None = None,
) -> Path:
    """Run the reproduction study ``name`` and write its report; return the path of ``<name>.md``.

    Args:
        name: a study of :func:`list_reproductions`.
        out_dir: the study folder (created; a rerun with the same folder skips completed runs).
            Default: :func:`default_out_dir`, and then (unless ``quick``) the report, its table
            and figures are also copied to ``docs_dir``.
        quick: the study's ``quick`` variant (few seeds, short training), for smoke tests.
        workers: runs in parallel (default: the executor's default, all cores).
        executor: a registered executor (``local``).
        quiet: print nothing.
        docs_dir: where the default-folder report is copied (default :func:`default_docs_dir`:
            ``docs/results/`` of the hetreg checkout, never one relative to the current folder).

    Raises:
        ValueError: unknown study or invalid study definition.
        FileNotFoundError: a dataset the study needs is not available.
        FileExistsError: ``out_dir`` holds something else.
    """
    from hetreg.experiments.executor import build_executor

    study = load_study(name)
    validate_study(study, quick)
    _check_data(study)
    default = out_dir is None
    out = default_out_dir(name, quick) if default else Path(out_dir)  # type: ignore[arg-type]
    state = _prepare_study_dir(out, study, quick)

    def say(message: str) -> None:
        if not quiet:
            print(f"[{name}] {message}", file=sys.stderr, flush=True)

    start = time.monotonic()
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    machine = machine_info()
    runner = build_executor(executor, workers=workers)
    say(f"{study.run_count(quick)} runs in {out} ({getattr(runner, 'workers', '?')} workers)")
    for part, spec in study.sweep_specs(quick).items():
        progress = {"done": 0, "failed": 0, "todo": 0}

        def on_plan(planned: list[Any], part: str = part, progress: dict[str, int] = progress) -> None:
            progress["todo"] = sum(1 for p in planned if p.action != "skip")
            say(f"part {part}: {len(planned)} runs, {len(planned) - progress['todo']} already completed")

        def on_result(result: Any, part: str = part, progress: dict[str, int] = progress) -> None:
            progress["done"] += 1
            if result.status != "completed":
                progress["failed"] += 1
                say(f"part {part}: run {result.run_id} {result.status}: {result.error}")
            step = max(1, progress["todo"] // 10)
            if progress["done"] % step == 0 or progress["done"] == progress["todo"]:
                say(f"part {part}: {progress['done']}/{progress['todo']} runs done ({time.monotonic() - start:.0f} s)")

        run_sweep(spec, out / part, executor=runner, on_plan=on_plan, on_result=on_result)
    if study.imbalanced is not None:
        _add_imbalanced_metrics(study, out, quick, say)
    session = {
        "started": started,
        "elapsed": round(time.monotonic() - start, 1),
        "workers": workers,
        "executor": executor,
        "command": _command(name, None if default else out, quick, workers, executor),
        "machine": machine,
    }
    state = {**runstore.read_json(out / STUDY_FILE), "sessions": [*state.get("sessions", []), session]}
    runstore.write_json(out / STUDY_FILE, state)
    report = write_study_report(study, out, quick=quick, command=session["command"], sessions=state["sessions"])
    say(f"report: {report} (wall time {session['elapsed']:.0f} s)")
    if default and not quick:
        _copy_to_docs(out, name, docs_dir, say)
    return report


def rewrite_report(
    name: str, out_dir: str | Path | None = None, *, quick: bool = False, docs_dir: str | Path | None = None
) -> Path:
    """Write the report of an existing study folder again (e.g. after a change of the report code),
    without running anything; with the default folder (not ``quick``) copy it to ``docs_dir`` too."""
    study = load_study(name)
    default = out_dir is None
    out = default_out_dir(name, quick) if default else Path(out_dir)  # type: ignore[arg-type]
    state = runstore.read_json(out / STUDY_FILE)
    if state.get("name") != name or bool(state.get("quick")) != quick:
        raise FileNotFoundError(f"{out} does not hold the study {name!r} (quick={quick}); run it with reproduce() first")
    sessions = state.get("sessions") or []
    last = sessions[-1] if sessions else {}
    command = last.get("command") or _command(name, None if default else out, quick, last.get("workers"), last.get("executor", "local"))
    report = write_study_report(study, out, quick=quick, command=command, sessions=sessions)
    if default and not quick:
        _copy_to_docs(out, name, docs_dir, lambda message: None)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hetreg.experiments.reproduce NAME [--out DIR] [--quick] [--workers N]``."""
    parser = argparse.ArgumentParser(prog="python -m hetreg.experiments.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="study name (see --list)")
    parser.add_argument("--out", type=Path, default=None, help="study folder (default hetreg-runs/reproduce-NAME)")
    parser.add_argument("--quick", action="store_true", help="few seeds and short training: a smoke test")
    parser.add_argument("--workers", type=int, default=None, help="runs in parallel (default: all cores)")
    parser.add_argument("--executor", default="local", help="executor (default local)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but the report path")
    parser.add_argument("--list", action="store_true", help="list the studies and exit")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report of the study folder, run nothing")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for study_name in list_reproductions():
            print(f"{study_name}: {load_study(study_name).title}")
        return 0
    try:
        if args.report_only:
            path = rewrite_report(args.name, args.out, quick=args.quick)
        else:
            path = reproduce(args.name, args.out, quick=args.quick, workers=args.workers, executor=args.executor, quiet=args.quiet)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
