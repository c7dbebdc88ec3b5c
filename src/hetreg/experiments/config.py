"""The typed experiment configuration: one YAML file describes one training run.

:class:`ExperimentConfig` is a pydantic v2 schema whose every section rejects unknown keys, so a
typo (``optimiser:``, ``loss.epss``) is an error naming the key and the allowed keys, and every
choice field lists its allowed values when given a wrong one. A minimal file::

    name: wine-biv
    seed: 0
    data: {name: wine}
    noise:
      distribution: {kind: uniform, low: 0.0, high: 1.0}
    model: {name: mlp}
    loss: {name: biv, eps: 0.5}
    train: {epochs: 20, batch_size: 256}

Units (the semantics of the original BIV code are kept):

* ``loss.eps`` (IV, BIV) is added to the variance **the loss sees**: in normalised label-variance
  units (raw variance / s_y²) when ``data.normalize`` is true, in raw squared label units
  otherwise. The noise-scale σ of a Balanced MSE loss is likewise in the label units the loss
  sees.
* ``loss.threshold`` (cutoff MSE) is given in **raw** label-variance units (years², quality
  points², ...) and is divided by s_y² by the trainer when labels are normalised, so the same
  threshold keeps the same samples whether or not normalisation is on.
* ``noise.distribution`` describes the per-label noise variance in raw squared label units.
* ``loss.prior_bin_width`` (BNI), the LDS bins (``lds.bin_width``, ``lds.edges``) and the FDS
  buckets (``fds.bin_width``, ``fds.edges``) are in raw label units.
* With ``data.normalize`` the labels are z-scored with the mean and (unbiased) standard
  deviation s_y of the **clean** training labels; metrics are reported both in these
  normalised units (``test_mse``) and in raw units (``test_mse_raw``, ...).

Seeds: one root ``seed`` derives independent seeds for the data split, the label noise, the
model initialisation and the training stream (batch order, dropout, augmentation); each may be
overridden in ``seeds``, so changing the model seed leaves the split and the noise unchanged.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "DEFAULT_SIGMA_LR",
    "PRIOR_LOSSES",
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "FDSConfig",
    "LDSConfig",
    "LossConfig",
    "ModelConfig",
    "NoiseConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "SeedsConfig",
    "TrackingConfig",
    "TrainConfig",
    "SEED_STREAMS",
    "TRACKERS",
    "apply_overrides",
    "config_hash",
    "config_to_dict",
    "derive_seed",
    "format_validation_error",
    "load_config",
    "parse_yaml_value",
    "save_config",
]

SEED_STREAMS = ("data", "noise", "model", "train")
TRACKERS = ("jsonl", "tensorboard", "mlflow", "wandb")

# Keys of the configuration that do not change what a run computes: left out of config_hash.
_HASH_EXCLUDED = (("name",), ("tracking",), ("data", "root"), ("train", "num_threads"))


class ConfigError(ValueError):
    """An invalid configuration, with a message naming every offending key."""


# ---------------------------------------------------------------------------------------------
# YAML with YAML 1.2 floats (``1e-3`` is a float, not the string PyYAML 1.1 makes of it)
# ---------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml_value(text: str) -> Any:
    """Parse one scalar or flow value as YAML (``0.5``, ``1e-3``, ``auto``, ``null``, ``[a, b]``)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass


# ---------------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------------


def derive_seed(seed: int, stream: str) -> int:
    """A seed for one random stream, derived from the root ``seed``:

    ``int(sha256("hetreg:{seed}:{stream}")[:8 bytes]) mod 2**31``.

    Different streams get statistically independent seeds, and the value is the same on every
    machine and Python version.
    """
    digest = hashlib.sha256(f"hetreg:{int(seed)}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 2**31


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SeedsConfig(_Section):
    """Per-stream seeds; ``None`` derives the stream's seed from the root ``seed`` (:func:`derive_seed`)."""

    data: int | None = Field(None, ge=0, description="split of the dataset into train/val/test")
    noise: int | None = Field(None, ge=0, description="label-noise variances and noise draws")
    model: int | None = Field(None, ge=0, description="model initialisation")
    train: int | None = Field(None, ge=0, description="batch order, dropout and augmentation")


def _dataset_names() -> list[str]:
    from hetreg.data import dataset_names

    return dataset_names()


_SPLIT_KEYS = ("val_fraction", "val_size", "train_size", "test_size")
_DATA_FIELDS_IN_OPTIONS = {"seed": "seeds.data (or the root seed)", "root": "data.root"}


class DataConfig(_Section):
    """Which dataset, and how it is split and normalised.

    ``val_fraction``, ``val_size``, ``train_size`` and ``test_size`` are passed to the loader only when set
    (``None`` keeps the loader's default); ``options`` holds the loader's own options
    (e.g. ``path`` and ``target`` of the ``csv`` loader).
    """

    name: str = Field(description="registered dataset name (hetreg.data.dataset_names())")
    root: str | None = Field(None, description="data folder; default $HETREG_DATA or the per-user data directory")
    options: dict[str, Any] = Field(default_factory=dict)
    normalize: bool = Field(True, description="z-score inputs and labels with training-split statistics")
    val_fraction: float | None = Field(None, ge=0.0, lt=1.0)
    val_size: int | None = Field(None, ge=0)
    train_size: int | None = Field(None, ge=1)
    test_size: int | None = Field(None, ge=1)

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        names = _dataset_names()
        if value not in names:
            raise ValueError(f"unknown dataset {value!r}; allowed values: {', '.join(names)}")
        return value

    @field_validator("options")
    @classmethod
    def _no_shadowed_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in _SPLIT_KEYS:
            if key in value:
                raise ValueError(f"set data.{key} instead of data.options.{key}")
        for key, where in _DATA_FIELDS_IN_OPTIONS.items():
            if key in value:
                raise ValueError(f"data.options.{key} is not allowed; use {where}")
        return value

    def loader_options(self) -> dict[str, Any]:
        """Keyword options for :func:`hetreg.data.load_dataset` (without ``root`` and ``seed``)."""
        opts = {k: getattr(self, k) for k in _SPLIT_KEYS if getattr(self, k) is not None}
        return {**opts, **self.options}


class NoiseConfig(_Section):
    """Simulated heteroscedastic label noise (raw label units), added before any normalisation.

    Attributes:
        distribution: the per-label noise-variance distribution as a dict understood by
            :func:`hetreg.noise.distribution_from_dict` (``{"kind": "uniform", "low": 0,
            "high": 1}``, ``gamma``, ``mixture``, ``constant``), in squared raw label units;
            ``None`` trains on the clean labels (and on a dataset variance column if any).
        disturbance: d >= 0, the variance the loss sees is
            :math:`|\\sigma^2 + \\eta|,\\ \\eta \\sim N(0, (\\sigma^2\\sqrt d/3)^2)`; the label noise uses the true σ².
        noisy_val: the validation labels get noise too (default), as a user's own validation
            labels would; model selection then uses noisy labels. The test labels stay clean.
    """

    distribution: dict[str, Any] | None = None
    disturbance: float = Field(0.0, ge=0.0)
    noisy_val: bool = True

    @field_validator("distribution")
    @classmethod
    def _valid_distribution(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if "kind" not in value:
            raise ValueError("the noise distribution needs a 'kind' (uniform, gamma, mixture, constant)")
        try:
            from hetreg.noise import distribution_from_dict
        except ImportError:  # noise module not available: checked when the run starts
            return value
        distribution_from_dict(value)  # raises ValueError naming the bad field
        return value


def _model_spec(name: str) -> tuple[list[str], tuple[str, ...]] | None:
    """(registered model names, valid options of ``name`` or ``()``), or ``None`` without a model registry."""
    try:
        from hetreg.models import model_names, model_spec
        from hetreg.models.registry import HEAD_OPTIONS
    except ImportError:
        return None
    names = list(model_names())
    options = tuple(HEAD_OPTIONS) + tuple(model_spec(name).options) if name in names else ()
    return names, options


class ModelConfig(_Section):
    """Which model: ``hetreg.models.build_model(name, input_shape, head=..., **options)``.

    ``head="auto"`` picks ``"mean_var"`` for losses that need a predicted variance (Gaussian NLL,
    β-NLL) and ``"mean"`` otherwise. ``options`` are the model's own options (e.g.
    ``preset: wine`` for ``mlp``) and the variance-head options ``variance``, ``var_floor``,
    ``init_var``.
    """

    name: str
    head: Literal["auto", "mean", "mean_var"] = "auto"
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known_model(cls, value: str) -> str:
        spec = _model_spec(value)
        if spec is not None and value not in spec[0]:
            raise ValueError(f"unknown model {value!r}; allowed values: {', '.join(spec[0])}")
        return value

    @model_validator(mode="after")
    def _known_options(self) -> "ModelConfig":
        spec = _model_spec(self.name)
        if spec is None:
            return self
        unknown = sorted(set(self.options) - set(spec[1]))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(unknown)} in model.options for model {self.name!r}; "
                f"valid options: {', '.join(spec[1])}"
            )
        return self


def _loss_factory(name: str) -> Any:
    from hetreg.losses import loss_factory

    return loss_factory(name)


def _loss_names() -> list[str]:
    from hetreg.losses import loss_names

    return loss_names()


def _number(value: Any, key: str) -> Any:
    """Accept ints, floats and numeric strings; raise ``ValueError`` for anything else."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number, got {value!r}")
    return value


# Options of the loss section read by the trainer, never passed to the loss constructor.
_TRAINER_LOSS_FIELDS = ("name", "params", "sigma_lr", "prior_bin_width", "prior_components")
# Loss constructor parameters the trainer supplies (built from the training labels).
_TRAINER_SUPPLIED = ("prior", "reduction")
# Losses whose label prior the trainer builds, and the kind of prior.
PRIOR_LOSSES = {"bni": "histogram", "gai": "gmm"}


def placeholder_prior(loss_name: str) -> Any:
    """A tiny valid prior for validating the parameters of a prior-based loss without data."""
    import torch

    from hetreg.losses import GMMPrior, HistogramPrior

    if PRIOR_LOSSES.get(loss_name) == "histogram":
        return HistogramPrior(torch.tensor([[0.0], [1.0]], dtype=torch.float64), torch.tensor([0.5, 0.5], dtype=torch.float64))
    return GMMPrior(
        torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, 1, 1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    )


class LossConfig(_Section):
    """The training loss, ``hetreg.losses.build_loss(name, **params)``.

    Only the fields that are set (not ``None``) are passed to the loss, and each must be a
    parameter of the chosen loss (the error lists the loss's parameters); ``params`` holds
    parameters of losses with no field here. Units follow the original BIV code:

    Attributes:
        name: a registered loss (``mse``, ``iv``, ``biv``, ``cutoff``, ``gaussian_nll``,
            ``beta_nll``, ``bmc``, ``bni``, ``gai``, ...).
        eps: IV/BIV ε, a number >= 0 or ``"auto"`` (BIV), **in the units of the variance the loss
            sees**: normalised label variance (raw / s_y²) when ``data.normalize``, raw otherwise.
        min_ebs: with ``eps="auto"``: an int is an absolute effective batch size, a float in
            (0, 1] a fraction of the batch size.
        threshold: cutoff τ in **raw** label-variance units; the trainer divides it by s_y² when
            labels are normalised (also the loss's default τ = 1).
        beta: β of β-NLL, in [0, 1]. ``var_floor``, ``full``: options of the Gaussian NLL losses.
        init_noise_sigma: initial σ of Balanced MSE (``bmc``, ``bni``, ``gai``), in the label
            units the loss sees (normalised when ``data.normalize``).
        learn_sigma: learn σ jointly (default) or keep it fixed. ``max_candidates``: BMC
            downsampling. ``rescale``: multiply by the detached 2σ².
        sigma_lr: learning rate of the loss's learnable parameters (σ); default 1e-2 as the
            original Balanced MSE code. Those groups are never touched by the LR schedule.
        prior_bin_width: ``bni``: width of the histogram bins of the label prior, in **raw**
            label units (default 1, i.e. integer labels such as ages or quality scores).
        prior_components: ``gai``: number of Gaussian components of the label prior (default 8).
    """

    name: str = "mse"
    eps: float | Literal["auto"] | None = None
    min_ebs: int | float | None = None
    threshold: float | None = Field(None, gt=0.0)
    beta: float | None = Field(None, ge=0.0, le=1.0)
    var_floor: float | None = Field(None, ge=0.0)
    full: bool | None = None
    init_noise_sigma: float | None = Field(None, gt=0.0)
    learn_sigma: bool | None = None
    max_candidates: int | None = Field(None, ge=1)
    rescale: bool | None = None
    sigma_lr: float | None = Field(None, gt=0.0)
    prior_bin_width: float | None = Field(None, gt=0.0)
    prior_components: int | None = Field(None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known_loss(cls, value: str) -> str:
        names = _loss_names()
        if value not in names:
            raise ValueError(f"unknown loss {value!r}; allowed values: {', '.join(names)}")
        return value

    @field_validator("eps", mode="before")
    @classmethod
    def _eps(cls, value: Any) -> Any:
        if value is None or value == "auto":
            return value
        message = f"eps must be a finite number >= 0 or 'auto', got {value!r}"
        try:
            value = _number(value, "eps")
        except ValueError:
            raise ValueError(message) from None
        if not value >= 0 or math.isinf(value):
            raise ValueError(message)
        return float(value)

    @field_validator("min_ebs", mode="before")
    @classmethod
    def _min_ebs(cls, value: Any) -> Any:
        if value is None:
            return None
        try:
            return _number(value, "min_ebs")
        except ValueError:
            raise ValueError(
                f"min_ebs must be an int (absolute effective batch size) or a float in (0, 1] "
                f"(fraction of the batch), got {value!r}"
            ) from None

    def loss_params(self) -> dict[str, Any]:
        """Constructor keywords of the loss as configured (the cutoff threshold still in raw units;
        a prior-based loss still needs its ``prior``)."""
        fields = {
            k: v
            for k, v in self.model_dump(exclude=set(_TRAINER_LOSS_FIELDS)).items()
            if v is not None
        }
        return {**fields, **self.params}

    @model_validator(mode="after")
    def _params_fit_the_loss(self) -> "LossConfig":
        clash = sorted(set(self.params) & (set(type(self).model_fields) - {"params"}))
        if clash:
            raise ValueError(f"set loss.{clash[0]} directly instead of loss.params.{clash[0]}")
        supplied = sorted(set(self.params) & set(_TRAINER_SUPPLIED))
        if supplied:
            raise ValueError(f"loss.params.{supplied[0]} is set by the trainer; remove it")
        prior_kind = PRIOR_LOSSES.get(self.name)
        if self.prior_bin_width is not None and prior_kind != "histogram":
            raise ValueError(f"loss.prior_bin_width applies to loss 'bni' only, not {self.name!r}")
        if self.prior_components is not None and prior_kind != "gmm":
            raise ValueError(f"loss.prior_components applies to loss 'gai' only, not {self.name!r}")
        params = self.loss_params()
        accepted = _factory_parameters(_loss_factory(self.name))
        if accepted is not None:
            accepted = [p for p in accepted if p not in _TRAINER_SUPPLIED]
            for key in params:
                if key not in accepted:
                    allowed = ", ".join(accepted) if accepted else "(none)"
                    where = f"loss.params.{key}" if key in self.params else f"loss.{key}"
                    raise ValueError(
                        f"{where} is not a parameter of loss {self.name!r}; its parameters are: {allowed}"
                    )
        if prior_kind is not None:
            params["prior"] = placeholder_prior(self.name)
        from hetreg.losses import build_loss

        try:
            build_loss(self.name, **params)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid parameters for loss {self.name!r}: {exc}") from None
        return self

    def with_defaults(self) -> "LossConfig":
        """A copy with every unset field that is a parameter of the loss filled with its default
        (and the trainer-side defaults: σ learning rate, prior options), so the resolved
        configuration records the ε, threshold, σ, ... actually used."""
        update: dict[str, Any] = {}
        try:
            sig = inspect.signature(_loss_factory(self.name))
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            for p in sig.parameters.values():
                if (
                    p.name in type(self).model_fields
                    and p.name not in _TRAINER_LOSS_FIELDS
                    and getattr(self, p.name) is None
                    and p.default is not inspect.Parameter.empty
                    and p.default is not None
                    and p.name not in self.params
                ):
                    update[p.name] = p.default
            has_sigma = "init_noise_sigma" in sig.parameters
            if has_sigma and self.sigma_lr is None:
                update["sigma_lr"] = DEFAULT_SIGMA_LR
        prior_kind = PRIOR_LOSSES.get(self.name)
        if prior_kind == "histogram" and self.prior_bin_width is None:
            update["prior_bin_width"] = 1.0
        if prior_kind == "gmm" and self.prior_components is None:
            update["prior_components"] = 8
        return self.model_copy(update=update) if update else self

    def loss_class(self) -> type:
        """The class the registered factory builds (to read the ``needs_*`` flags)."""
        factory = _loss_factory(self.name)
        return getattr(factory, "func", factory)  # functools.partial of a class


DEFAULT_SIGMA_LR = 1e-2


def _factory_parameters(factory: Any) -> list[str] | None:
    """Keyword names accepted by a loss factory, ``None`` when it takes ``**kwargs``."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    names = []
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.append(p.name)
    return names


class _BinnedSmoothing(_Section):
    """Label bins and a smoothing window across them (shared by :class:`LDSConfig` and
    :class:`FDSConfig`).

    Attributes:
        bins / bin_width / edges: at most one: a number of equal-width bins over the range of
            the training labels, a bin width in raw label units (a grid anchored at 0, e.g. 1 for
            integer ages), or explicit edges in raw units. Default: 100 bins.
        kernel: smoothing window across bins (``"none"``: no smoothing).
        kernel_size, kernel_sigma: odd window length and width in bins.
    """

    bins: int | None = Field(None, ge=1)
    bin_width: float | None = Field(None, gt=0.0)
    edges: list[float] | None = None
    kernel: Literal["gaussian", "triang", "laplace", "none"] = "gaussian"
    kernel_size: int = Field(5, ge=1)
    kernel_sigma: float = Field(2.0, gt=0.0)

    @field_validator("bins", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        # a float is what the library's ``bins=1.0`` means, a bin width; here it would become a
        # count of 1 bin (every weight equal), so it is refused instead of coerced
        if isinstance(value, float):
            raise ValueError(
                f"bins is a number of bins (an integer), got {value!r}; "
                f"for bins {value:g} label units wide, set bin_width: {value:g} instead"
            )
        return value

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {value}")
        return value

    @field_validator("edges")
    @classmethod
    def _increasing(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (len(value) < 2 or any(b <= a for a, b in zip(value, value[1:]))):
            raise ValueError("edges must hold at least 2 strictly increasing values")
        return value

    @model_validator(mode="after")
    def _one_binning(self) -> "_BinnedSmoothing":
        given = [k for k in ("bins", "bin_width", "edges") if getattr(self, k) is not None]
        if len(given) > 1:
            section = "lds" if isinstance(self, LDSConfig) else "fds"
            raise ValueError(f"set only one of {section}.bins, {section}.bin_width, {section}.edges (got {', '.join(given)})")
        return self

    def bin_spec(self) -> int | float | list[float]:
        """The bin specification (:func:`hetreg.losses.lds.assign_bins`) in raw label units."""
        if self.edges is not None:
            return list(self.edges)
        if self.bin_width is not None:
            return float(self.bin_width)
        return int(self.bins) if self.bins is not None else 100

    def kernel_spec(self) -> dict[str, Any] | None:
        """The kernel (:func:`hetreg.losses.lds.resolve_kernel`); ``None``: no smoothing."""
        if self.kernel == "none":
            return None
        return {"kind": self.kernel, "size": self.kernel_size, "sigma": self.kernel_sigma}


class LDSConfig(_BinnedSmoothing):
    """Label-distribution-smoothing sample weights (Yang et al. 2021) from the noisy training labels.

    Computed once by :func:`hetreg.losses.lds.lds_weights` on the raw training labels and passed
    as ``weight=`` to the loss (mean weight 1 over the training set). Bins and kernel: see
    :class:`_BinnedSmoothing`.

    Attributes:
        scheme: ``"sqrt_inv"`` (w ∝ 1/√p̃, the paper's recipe) or ``"inverse"`` (w ∝ 1/p̃, the
            counts clipped to [5, 1000] as the original).
    """

    scheme: Literal["sqrt_inv", "inverse"] = "sqrt_inv"


class FDSConfig(_BinnedSmoothing):
    """Feature distribution smoothing (Yang et al. 2021) of the model's penultimate features.

    An :class:`hetreg.models.fds.FDS` module sits between the features and the head; in
    training, from epoch ``start_smooth`` on, every feature is re-coloured with the smoothed
    statistics of its label's bucket (:func:`hetreg.models.fds.calibrate_features`). Buckets
    are the bins (``bins`` / ``bin_width`` / ``edges``, raw label units, of the noisy training
    labels; default 100 equal-width bins over their range) and the kernel smooths the per-bucket
    statistics across buckets (normalised to sum 1; ``"none"``: no smoothing, so features are
    only whitened and re-coloured with their own bucket's statistics).

    Attributes:
        clip: bounds (c_min, c_max) of the variance ratio (0.1, 10 as the age benchmarks).
        momentum: EMA momentum of the per-bucket statistics across epochs, in [0, 1);
            ``None``: the cumulative average.
        start_update: first epoch (0-based) whose features update the statistics.
        start_smooth: first epoch (0-based) in which features are calibrated.
        features: where the statistics of an epoch come from: ``"epoch_end"`` (the original's:
            a no-grad pass over the training set after the epoch, in training mode, so
            BatchNorm's running statistics see those batches too), or ``"batches"`` (the
            features of the epoch's own training batches, detached: no extra pass).
    """

    clip: tuple[float, float] = (0.1, 10.0)
    momentum: float | None = Field(0.9, ge=0.0, lt=1.0)
    start_update: int = Field(0, ge=0)
    start_smooth: int = Field(1, ge=0)
    features: Literal["epoch_end", "batches"] = "epoch_end"

    @field_validator("clip")
    @classmethod
    def _clip(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1]:
            raise ValueError(f"clip must be (c_min, c_max) with 0 < c_min <= c_max, got {list(value)}")
        return value


class OptimizerConfig(_Section):
    """Optimizer over the model parameters (plus the loss's own parameter groups, if any)."""

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="SGD only")

    @model_validator(mode="after")
    def _momentum_for_sgd(self) -> "OptimizerConfig":
        if self.momentum and self.name != "sgd":
            raise ValueError(f"momentum applies to optimizer 'sgd' only (the optimizer is {self.name!r}); remove it")
        return self


class ScheduleConfig(_Section):
    """Learning-rate schedule, applied once per epoch to every group not marked ``no_schedule``.

    * ``none``: constant lr;
    * ``step``: :math:`lr_0 \\gamma^{\\lfloor e/\\text{step\\_size}\\rfloor}` at epoch e (0-based);
    * ``cosine``: :math:`lr_{min} + (lr_0 - lr_{min})(1 + \\cos(\\pi e/E))/2` over E epochs.
    """

    name: Literal["none", "step", "cosine"] = "none"
    step_size: int = Field(10, ge=1, description="epochs between decays (step)")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="decay factor (step)")
    min_lr: float = Field(0.0, ge=0.0, description="final lr (cosine)")


class TrainConfig(_Section):
    """The training loop.

    ``eval_every`` is ``"epoch"`` (evaluate at the end of every epoch) or a number of optimizer
    steps; the final model is always evaluated. ``augment="hflip"`` flips image batches
    horizontally with probability 1/2 (images only). ``eval_batch_size`` is the chunk size of
    evaluation (default: 4096 rows for tabular data, ``batch_size`` images for image data).
    ``num_threads`` sets ``torch.set_num_threads`` for the run (restored afterwards); on a
    small shared machine 1 is often fastest for small models.
    """

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(256, ge=1)
    eval_every: Literal["epoch"] | int = "epoch"
    eval_batch_size: int | None = Field(None, ge=1, description="default: 4096 rows (tabular), batch_size (images)")
    shuffle: bool = True
    drop_last: bool = False
    augment: Literal["none", "hflip"] = "none"
    num_threads: int | None = Field(None, ge=1)
    device: Literal["cpu"] = "cpu"

    @field_validator("eval_every", mode="before")
    @classmethod
    def _eval_every(cls, value: Any) -> Any:
        if value == "epoch":
            return value
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"eval_every must be 'epoch' or a positive number of steps, got {value!r}")
        return value


class TrackingConfig(_Section):
    """Metric trackers. The JSONL run store (``metrics.jsonl``) is always written."""

    trackers: list[Literal["jsonl", "tensorboard", "mlflow", "wandb"]] = Field(default_factory=list)
    project: str = Field("hetreg", description="experiment / project name for MLflow and W&B")


class ExperimentConfig(_Section):
    """One experiment: data, noise, model, loss, optimisation, training loop and tracking."""

    name: str = "experiment"
    seed: int = Field(0, ge=0)
    seeds: SeedsConfig = Field(default_factory=SeedsConfig)
    data: DataConfig
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    model: ModelConfig
    loss: LossConfig = Field(default_factory=LossConfig)
    lds: LDSConfig | None = None
    fds: FDSConfig | None = None
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _head_fits_loss(self) -> "ExperimentConfig":
        needs_var = bool(getattr(self.loss.loss_class(), "needs_predicted_variance", False))
        if needs_var and self.model.head == "mean":
            raise ValueError(
                f"loss {self.loss.name!r} needs a predicted variance: set model.head to 'mean_var' (or 'auto')"
            )
        return self

    def seed_for(self, stream: str) -> int:
        """The seed of one stream (``data``, ``noise``, ``model``, ``train``): override or derived."""
        if stream not in SEED_STREAMS:
            raise ValueError(f"unknown seed stream {stream!r}; allowed values: {', '.join(SEED_STREAMS)}")
        explicit = getattr(self.seeds, stream)
        return derive_seed(self.seed, stream) if explicit is None else int(explicit)

    def resolved(self) -> "ExperimentConfig":
        """A copy with every derived value written out: the stream seeds and the model head."""
        head = self.model.head
        if head == "auto":
            head = "mean_var" if getattr(self.loss.loss_class(), "needs_predicted_variance", False) else "mean"
        return self.model_copy(
            update={
                "seeds": SeedsConfig(**{s: self.seed_for(s) for s in SEED_STREAMS}),
                "model": self.model.model_copy(update={"head": head}),
                "loss": self.loss.with_defaults(),
            }
        )


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel class inside an annotation like ``X``, ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _unwrap_model(arg)
            if found is not None:
                return found
    return None


def _is_free_mapping(annotation: Any) -> bool:
    """True for ``dict[...]`` fields (and optional ones): their keys are free."""
    origin = typing.get_origin(annotation)
    if origin is dict or annotation is dict:
        return True
    if origin in (Union, types.UnionType):
        return any(_is_free_mapping(a) for a in typing.get_args(annotation))
    return False


def _model_at(path: Sequence[str | int], root: type[BaseModel] = ExperimentConfig) -> type[BaseModel] | None:
    """The section class reached by following ``path`` from ``root`` (None if it leaves the schema)."""
    current: type[BaseModel] | None = root
    for part in path:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return None
        current = _unwrap_model(current.model_fields[part].annotation)
    return current


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(exc: ValidationError, root: type[BaseModel] = ExperimentConfig) -> str:
    """One readable message for a pydantic ``ValidationError``: one line per problem.

    Each line names the dotted key; unknown keys list the allowed keys of their section,
    invalid choices the allowed values, and the received value is shown.
    """
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        key = _dotted(loc)
        if kind == "extra_forbidden":
            section = _model_at(loc[:-1], root)
            allowed = ", ".join(section.model_fields) if section is not None else "?"
            where = _dotted(loc[:-1]) if loc[:-1] else "the top level"
            lines.append(f"{key}: unknown key {loc[-1]!r} in {where}; allowed keys: {allowed}")
            continue
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if kind == "missing":
            lines.append(f"{key}: required key is missing")
            continue
        got = err.get("input")
        suffix = "" if kind.startswith("value_error") or isinstance(got, (dict, list)) else f" (got {got!r})"
        lines.append(f"{key}: {msg}{suffix}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _validate(data: Any, source: str | None = None) -> ExperimentConfig:
    if not isinstance(data, Mapping):
        where = f" in {source}" if source else ""
        raise ConfigError(f"a configuration must be a mapping of keys to values{where}, got {type(data).__name__}")
    try:
        return ExperimentConfig.model_validate(dict(data))
    except ValidationError as exc:
        message = format_validation_error(exc)
        if source:
            message = message.replace("invalid configuration:", f"invalid configuration in {source}:", 1)
        raise ConfigError(message) from None


# ---------------------------------------------------------------------------------------------
# Files, overrides, hash
# ---------------------------------------------------------------------------------------------


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML (or JSON) configuration file.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: invalid YAML or an invalid configuration (the message names every bad key).
    """
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"{path} is a folder; give a configuration file (.yaml), e.g. examples/wine-biv.yaml")
    if not path.is_file():
        raise FileNotFoundError(f"configuration file not found: {path}")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if data is None:
        raise ConfigError(f"{path} is empty; a configuration needs at least data.name and model.name")
    return _validate(data, str(path))


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """The configuration as plain JSON/YAML-ready data."""
    return cfg.model_dump(mode="json")


def save_config(cfg: ExperimentConfig, path: str | Path) -> Path:
    """Write ``cfg`` as YAML (keys in schema order); :func:`load_config` reads it back equal."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False, allow_unicode=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"bad override key {key!r}: use dotted keys like loss.eps or train.epochs")
    node: dict[str, Any] = data
    section: type[BaseModel] | None = ExperimentConfig
    free = False  # inside a dict-typed field (options, params, distribution): any key goes
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if not free:
            assert section is not None
            if part not in section.model_fields:
                where = ".".join(parts[:i]) or "the top level"
                raise ConfigError(
                    f"unknown key {key!r}: {part!r} is not a key of {where}; allowed keys: "
                    f"{', '.join(section.model_fields)}"
                )
            annotation = section.model_fields[part].annotation
            child = _unwrap_model(annotation)
            if not last and child is None and not _is_free_mapping(annotation):
                raise ConfigError(f"unknown key {key!r}: {'.'.join(parts[: i + 1])} is a value, not a section")
            free = _is_free_mapping(annotation) and child is None
            section = child
        if last:
            node[part] = value
            return
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt


def apply_overrides(cfg: ExperimentConfig | Mapping[str, Any], overrides: Sequence[str]) -> ExperimentConfig:
    """Apply ``key=value`` overrides (dotted keys, YAML values) and validate the result.

    Examples: ``["loss.eps=0.5", "train.epochs=3", "loss.eps=auto", "data.root=null",
    "tracking.trackers=[tensorboard]", "noise.distribution={kind: constant, value: 1.0}"]``.

    Raises:
        ConfigError: malformed override, unknown key (naming the allowed keys) or invalid value.
    """
    data = config_to_dict(cfg) if isinstance(cfg, ExperimentConfig) else json.loads(json.dumps(dict(cfg), default=str))
    if isinstance(overrides, str):
        raise ConfigError("overrides must be a list of 'key=value' strings, not a single string")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"bad override {item!r}: expected key=value, e.g. loss.eps=0.5")
        key, _, text = item.partition("=")
        key = key.strip()
        try:
            value = parse_yaml_value(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"bad value in override {item!r}: {exc}") from None
        _set_dotted(data, key, value)
    return _validate(data, "overrides")


def _drop(data: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = data
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def config_hash(cfg: ExperimentConfig) -> str:
    """A stable 12-hex-digit id of what a run computes.

    The sha256 of the canonical JSON of the **resolved** configuration (derived seeds and the
    model head written out, so an explicit seed equal to the derived one hashes the same), with
    the keys that do not change the results left out: ``name``, ``tracking``, ``data.root`` and
    ``train.num_threads``; and ``fds`` when it is not set, so that configurations written before
    that section existed keep their hash (and their runs can still be resumed).
    """
    data = config_to_dict(cfg.resolved())
    for path in _HASH_EXCLUDED:
        _drop(data, path)
    if data.get("fds") is None:
        data.pop("fds", None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
