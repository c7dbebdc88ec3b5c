"""Train K runs of the same MLP experiment at once, as one batched model.

Runs that differ only in their seeds (data split, noise draw, model initialisation, batch order),
in their label noise and in their loss among ``mse``, ``iv``, ``biv`` (fixed ε) and ``cutoff``
(any ε / threshold) perform the same computation at every step, on different numbers. They are
trained here as one model whose parameters are the K runs' parameters stacked on a leading axis:

* every run's model is built exactly as the plain trainer builds it (same seed, same code), then
  its parameters and buffers are stacked (:class:`BatchedMLP`): a Linear weight becomes
  ``(K, out, in)``, a BatchNorm running mean ``(K, C)``;
* every run draws its batch order from its own generator, as the plain trainer does, and gathers
  its batch from its own (noisy, standardised) training tensors, giving ``(K, B, d)`` inputs;
* the forward pass is :func:`hetreg.models.mlp.stacked_mlp_forward`, feature-major on
  ``(K, C, B)`` activations: one ``F.batch_norm`` over K·C channels per BatchNorm layer (per-run
  batch statistics, per-run running statistics updated in place), one ReLU, one bias-gradient
  reduction for all runs, and for each Linear layer one batched matrix product for all runs
  where it rounds like each run's own product, else one product per run
  (:class:`hetreg.models.mlp.StackedLinear`, :func:`hetreg.models.mlp.batched_products`);
* every run's loss is computed at once by :func:`member_losses` with the operations of the plain
  loss functions; the objective is :math:`\\sum_k L_k`, and since the runs' parameters are
  disjoint, the gradient with respect to run k's parameters is that of :math:`L_k` alone;
* one optimizer (Adam, AdamW or SGD: elementwise updates, a step count shared by all runs) steps
  the stacked parameters, which equals K separate optimizers stepping their own.

The plain trainer runs an MLP through the same function with K = 1 (:class:`hetreg.models.mlp.MLPBody`),
so a run's numbers are the same bit for bit whether it is trained alone or in a group of any
size. That matters: in the MLP presets a Linear bias feeds a BatchNorm, so its gradient is zero
up to rounding, and Adam turns that rounding into steps of size lr; the BatchNorm running means
follow, and eval-mode metrics move by percents with any change of rounding (the plain trainer
itself gives different test metrics at one and at two threads, so a group and its runs alone
must use the same thread count). One condition keeps it exact (:meth:`BatchedMLP.fused`):
batches whose per-run activation blocks start on 64-byte boundaries (B a multiple of 16 in
float32). A batched BLAS call (``torch.bmm``) rounds like the runs' own products only with one
thread, such blocks and more than one input and output feature, so it is used only then. Other
training batches (a short last batch) are computed run after run on each run's own tensors;
evaluation chunks are padded to whole blocks, in the plain trainer too
(:func:`hetreg.models.mlp.padded_rows`), and go in one pass.

What is saved against K separate runs is all the per-step work that is not arithmetic:
module calls, BatchNorm, ReLU and loss kernels, loss checks, one optimizer instead of K, one
synchronisation per step instead of several, and the run store's checkpoint writes (see below).

Everything else is the plain trainer's own code (:mod:`hetreg.train.runner`): each run keeps a
``TrainingRun`` object that prepares its data and noise, builds its model, loss and optimizer,
evaluates (:func:`hetreg.train.evaluation.predict` on its own model, loaded with its slice of the stacked
state), logs ``metrics.jsonl``, writes ``best.pt``, ``last.pt`` (the plain checkpoint format, so
``run_experiment(..., resume=True)`` continues a batched run) and ``summary.json``.

Differences from the plain trainer, by design:

* ``last.pt`` is written at the end of an epoch when ``checkpoint_interval`` seconds have passed
  since the last write, at the end, and (from an in-memory copy of the last epoch end) when a run
  fails or the group is interrupted; writing K checkpoints every epoch would cost more than the
  training of tabular runs. A batched run killed hard therefore resumes from an earlier epoch
  than a plain one would, with the same final result.
* ``summary.json``'s ``elapsed`` is the wall-clock time of the whole group (the runs trained
  together), and ``environment.json`` has a ``training`` entry naming the group size.
* An error in one run (setup, non-finite loss) is recorded in its ``summary.json`` (status
  ``failed``) and does not stop the others; :func:`run_batched` does not raise it.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hetreg.experiments.config import ExperimentConfig, config_to_dict, save_config
from hetreg.losses.cutoff import cutoff_mask
from hetreg.losses import biv_factors
from hetreg.models.mlp import ALIGN_BYTES, MLPLayer, mlp_layers, padded_rows, stacked_mlp_forward
from hetreg.train.allocator import retain_freed_memory
from hetreg.train.environment import environment_info
from hetreg.train.files import save_checkpoint, write_json
from hetreg.train.runner import (
    RunExistsError,
    RunState,
    TrainingRun,
    build_optimizer,
    coerce_config,
    finish_run,
    run_experiment,
    run_status,
)
from hetreg.train.schedule import apply_schedule
from hetreg.train.trackers import JsonlTracker, build_trackers

__all__ = [
    "ALIGN_BYTES",
    "BATCHED_LOSSES",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "BatchedMLP",
    "batch_groups",
    "batching_problem",
    "member_losses",
    "member_records",
    "run_batched",
    "supports_batching",
]

#: Losses a batched group can mix, with their code in :func:`member_losses`.
BATCHED_LOSSES = {"mse": 0, "iv": 1, "biv": 2, "cutoff": 3}
_MSE, _IV, _BIV, _CUTOFF = 0, 1, 2, 3

#: Default seconds between two writes of the runs' ``last.pt`` during training.
DEFAULT_CHECKPOINT_INTERVAL = 300.0

# Configuration sections that must be equal in every run of a group (train.num_threads aside).
_SHARED_SECTIONS = ("data", "model", "optimizer", "schedule", "train")


# ---------------------------------------------------------------------------------------------
# Which configurations batch together
# ---------------------------------------------------------------------------------------------


def _resolved(config: ExperimentConfig | Mapping[str, Any] | str | Path) -> ExperimentConfig:
    return coerce_config(config).resolved()


def _single_problem(cfg: ExperimentConfig) -> str | None:
    """Why one (resolved) configuration cannot be trained batched, or ``None``."""
    if cfg.model.name != "mlp":
        return f"model {cfg.model.name!r} is not batched (only 'mlp' is)"
    if cfg.model.head != "mean":
        return f"model head {cfg.model.head!r} is not batched (only 'mean' is)"
    from hetreg.models.mlp import mlp_config

    opts = cfg.model.options
    try:
        mlp = mlp_config(**{k: opts[k] for k in ("preset", "hidden", "batchnorm", "dropout") if k in opts})
    except (TypeError, ValueError) as exc:
        return f"invalid mlp options: {exc}"
    if mlp.dropout > 0:
        return "dropout draws from the global random stream, which a batched group cannot reproduce run by run"
    if cfg.loss.name not in BATCHED_LOSSES:
        return f"loss {cfg.loss.name!r} is not batched (batched losses: {', '.join(BATCHED_LOSSES)})"
    if cfg.loss.eps == "auto":
        return "loss.eps='auto' solves eps per batch and is not batched; give a number"
    if cfg.train.augment != "none":
        return "augmentation is not batched"
    if cfg.fds is not None:
        return "fds is not batched"
    return None


def _group_key(cfg: ExperimentConfig) -> str:
    data = config_to_dict(cfg)
    shared = {k: data[k] for k in _SHARED_SECTIONS}
    shared["train"] = {k: v for k, v in shared["train"].items() if k != "num_threads"}
    return json.dumps(shared, sort_keys=True)


def batching_problem(configs: Sequence[ExperimentConfig | Mapping[str, Any] | str | Path]) -> str | None:
    """Why ``configs`` cannot be trained as one batched group, or ``None`` when they can.

    A group needs MLP models (mean head, no dropout), losses among :data:`BATCHED_LOSSES` with a
    numeric ε, and equal ``data``, ``model``, ``optimizer``, ``schedule`` and ``train`` sections
    (``train.num_threads`` aside: the first run's is used). Seeds, label noise, the loss and its
    parameters, LDS and tracking may differ.
    """
    if len(configs) == 0:
        return "no configuration given"
    try:
        resolved = [_resolved(c) for c in configs]
    except (ValueError, FileNotFoundError) as exc:
        return f"invalid configuration: {exc}"
    for i, cfg in enumerate(resolved):
        problem = _single_problem(cfg)
        if problem is not None:
            return f"run {i} ({cfg.name}): {problem}"
    first = _group_key(resolved[0])
    for i, cfg in enumerate(resolved[1:], start=1):
        if _group_key(cfg) != first:
            a, b = config_to_dict(resolved[0]), config_to_dict(cfg)
            diff = [s for s in _SHARED_SECTIONS if a[s] != b[s]]
            return f"run {i} ({cfg.name}) differs from run 0 in {', '.join(diff)}; a group shares these sections"
    return None


def supports_batching(configs: Sequence[ExperimentConfig | Mapping[str, Any] | str | Path]) -> bool:
    """Whether ``configs`` can be trained together by :func:`run_batched` (see :func:`batching_problem`)."""
    return batching_problem(configs) is None


def batch_groups(
    configs: Sequence[ExperimentConfig | Mapping[str, Any] | str | Path],
    *,
    max_size: int | None = None,
) -> list[list[int]]:
    """Partition ``configs`` (by index) into groups that :func:`run_batched` can train together.

    Configurations that cannot be batched get a group of their own (train them with
    :func:`hetreg.train.run_experiment`). Groups keep the input order and hold at most
    ``max_size`` runs (``None``: no limit); a group of the same shared sections larger than
    ``max_size`` is cut into near-equal parts.
    """
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be >= 1 or None, got {max_size}")
    buckets: dict[str, list[int]] = {}
    groups: list[list[int]] = []
    for i, config in enumerate(configs):
        try:
            cfg = _resolved(config)
        except (ValueError, FileNotFoundError):
            groups.append([i])
            continue
        if _single_problem(cfg) is not None:
            groups.append([i])
            continue
        key = _group_key(cfg)
        if key not in buckets:
            buckets[key] = []
            groups.append(buckets[key])
        buckets[key].append(i)
    out: list[list[int]] = []
    for group in groups:
        if max_size is None or len(group) <= max_size:
            out.append(group)
            continue
        parts = math.ceil(len(group) / max_size)
        size, extra = divmod(len(group), parts)
        start = 0
        for p in range(parts):
            stop = start + size + (1 if p < extra else 0)
            out.append(group[start:stop])
            start = stop
    return out


# ---------------------------------------------------------------------------------------------
# Losses of K runs at once (pure functions)
# ---------------------------------------------------------------------------------------------


def member_losses(
    pred: Tensor,
    target: Tensor,
    variance: Tensor,
    *,
    kind: Tensor,
    eps: Tensor,
    threshold: Tensor,
    weight: Tensor | None = None,
) -> Tensor:
    """The loss of each of K runs on its own batch of B samples, shape (K,).

    With :math:`e = \\hat y - y`, label variance :math:`\\sigma^2`, LDS weight :math:`u` (none when
    ``weight`` is ``None``), and run k's ε and threshold τ:

    * mse (code 0): :math:`\\frac1B \\sum_i u_i e_i^2`;
    * iv (1): :math:`\\frac1B \\sum_i u_i e_i^2 / (\\sigma_i^2 + \\varepsilon)`;
    * biv (2): :math:`\\sum_i w_i e_i^2 / \\sum_j w_j`, :math:`w_i = u_i / (\\sigma_i^2 + \\varepsilon)`;
    * cutoff (3): :math:`\\sum_{i: \\sigma_i^2 < \\tau} u_i e_i^2 / \\max(1, \\#\\{i: \\sigma_i^2 < \\tau\\})`,

    i.e. :func:`hetreg.losses.mse_loss`, :func:`~hetreg.losses.iv_loss`,
    :func:`~hetreg.losses.biv_loss` and :func:`~hetreg.losses.cutoff_mse_loss` with reduction
    ``"mean"``, computed with their operations in their order, row by row, so that values and
    gradients equal theirs bit for bit.

    Args:
        pred, target: (K, B).
        variance: (K, B) label-noise variances in the loss's units (1 as a filler for mse runs).
        kind: (K,) integer codes of :data:`BATCHED_LOSSES`.
        eps: (K, 1) float64 ε of the iv/biv runs (0 elsewhere): the loss's own ε, which the plain
            IV loss rounds to the dtype of ``variance`` and BIV uses in float64; σ² + ε must be
            > 0 for the iv/biv runs.
        threshold: (K, 1) cutoff τ (any positive filler elsewhere), dtype of ``variance``.
        weight: optional (K, B) per-sample weights.
    """
    kind = kind.unsqueeze(1)
    present = set(kind.unique().tolist())
    e2 = (pred - target).pow(2)
    zero = torch.zeros((), dtype=pred.dtype)
    n = pred.shape[1]
    terms = e2
    denom = torch.full_like(pred[:, :1], float(n))
    w = torch.where(kind == _IV, torch.reciprocal(variance + eps.to(variance.dtype)), 1.0) if _IV in present else None
    if _IV in present:
        assert w is not None
        terms = torch.where(kind == _IV, w * e2, terms)
    if _CUTOFF in present:
        keep = cutoff_mask(variance, threshold)
        terms = torch.where(kind == _CUTOFF, torch.where(keep, e2, zero), terms)
        count = keep.sum(1, keepdim=True).clamp_min(1).to(pred.dtype)
        denom = torch.where(kind == _CUTOFF, count, denom)
    if weight is not None:
        terms = torch.where(kind == _BIV, terms, terms * weight)
    if _BIV in present:  # the factors of biv_loss, in float64 (hetreg.losses.biv_factors)
        rows = (kind[:, 0] == _BIV).nonzero()[:, 0]
        u64 = weight.detach()[rows].double().numpy() if weight is not None else None
        v64 = variance.detach()[rows].double().numpy()
        factors = torch.ones_like(pred, dtype=torch.float64)
        factors[rows] = torch.from_numpy(biv_factors(v64, eps[rows].double().numpy(), u64))
        terms = torch.where(kind == _BIV, factors.to(pred.dtype) * e2, terms)
    sums = terms.sum(1, keepdim=True)
    return torch.where(kind == _BIV, sums, sums / denom)[:, 0]


def member_records(
    variance: Tensor,
    *,
    kind: Tensor,
    eps: Tensor,
    threshold: Tensor,
    weight: Tensor | None = None,
) -> dict[str, Tensor]:
    """The per-call diagnostics the plain losses record, for K runs at once (float64, shape (K,)).

    * ``ebs`` (BIV): effective batch size :math:`(\\sum_i w_i)^2 / \\sum_i w_i^2` of
      :math:`w_i = u_i / (\\sigma_i^2 + \\varepsilon)`, in float64 (``eps`` given in float64);
    * ``kept_fraction`` (cutoff): :math:`\\frac1B \\sum_i [\\sigma_i^2 < \\tau]`.

    An entry is computed when some run has that loss, for every run; a run only records those of
    its own loss.
    """
    out: dict[str, Tensor] = {}
    if bool((kind == _BIV).any()):
        w = 1.0 / (variance.to(torch.float64) + eps.to(torch.float64))
        if weight is not None:
            w = w * weight.to(torch.float64)
        out["ebs"] = w.sum(1) ** 2 / (w**2).sum(1)
    if bool((kind == _CUTOFF).any()):
        out["kept_fraction"] = cutoff_mask(variance, threshold).to(torch.float64).mean(1)
    return out


# ---------------------------------------------------------------------------------------------
# The stacked model
# ---------------------------------------------------------------------------------------------


def _mlp_layers(model: nn.Module) -> tuple[MLPLayer, ...]:
    """The layer plan of a :class:`~hetreg.models.RegressionNet` MLP, or ``ValueError`` naming what is not batched."""
    body, head = getattr(model, "body", None), getattr(model, "head", None)
    if not isinstance(body, nn.Sequential) or head is None or getattr(model, "fds", None) is not None:
        raise ValueError("a batched model needs a RegressionNet with a Sequential body, a head and no FDS module")
    if getattr(head, "kind", None) != "mean" or not isinstance(getattr(head, "linear", None), nn.Linear):
        raise ValueError("a batched model needs a mean head")
    layers = mlp_layers(body)
    if layers is None:
        for name, module in body.named_children():
            if mlp_layers(nn.Sequential(module)) is None:
                raise ValueError(f"layer body.{name} ({type(module).__name__}) is not batched")
        raise ValueError("this MLP body is not batched")
    return layers




def _padded_stack(tensors: Sequence[Tensor], *, pad: bool = True) -> Tensor:
    """(K, m): row k holds ``tensors[k]`` flattened, then zeros up to ``m``, the smallest multiple
    of :data:`ALIGN_BYTES` bytes that holds it (``pad=False``: m is the size of one tensor)."""
    n = tensors[0].numel()
    per = max(1, ALIGN_BYTES // tensors[0].element_size()) if pad else 1
    out = torch.zeros(len(tensors), max(per, -(-n // per) * per), dtype=tensors[0].dtype)
    out[:, :n] = torch.stack([t.detach().reshape(-1) for t in tensors])
    return out


class BatchedMLP(nn.Module):
    """K MLPs of the same architecture with their parameters and buffers stacked on axis 0.

    Built from the K run models (``hetreg.models.build_model("mlp", ...)``, mean head), whose
    state is copied (the run models are left untouched). Each stacked tensor is stored as a
    (K, m) parameter whose rows start on :data:`ALIGN_BYTES` boundaries (the padding stays zero:
    its gradient is zero), each buffer as a contiguous (K, *shape) tensor (BatchNorm updates the
    K runs' running statistics in place through one view); :meth:`stacked` gives the
    (K, *shape) view. Parameters are registered in the order of ``models[0].parameters()``, so an
    optimizer over :meth:`parameters` has the same parameter indices as one over a run's model,
    and an elementwise optimizer step on the stacked tensors is the K runs' steps.

    ``forward(xs)`` maps K inputs (N, d) (a list, or a (K, N, d) tensor) to (K, N) predictions in
    the current mode, with :func:`~hetreg.models.mlp.stacked_mlp_forward`: all K runs at once
    when :meth:`fused` allows it or in eval mode (rows padded as a run's own model pads them),
    else run after run on each run's slice of the stacked tensors and its own input tensor. Either way run k's numbers are those of its own ``nn.Module``
    (which computes with the same function at K = 1) bit for bit; see the module docstring.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(models) == 0:
            raise ValueError("BatchedMLP needs at least one model")
        self.layers = _mlp_layers(models[0])
        states = [m.state_dict() for m in models]
        self.shapes = {key: t.shape for key, t in states[0].items()}
        for m, state in zip(models[1:], states[1:]):
            if _mlp_layers(m) != self.layers or {key: t.shape for key, t in state.items()} != self.shapes:
                raise ValueError("the models of a BatchedMLP must share one architecture")
        self.size = len(models)
        self.param_keys = [key for key, _ in models[0].named_parameters()]
        for key in self.param_keys:  # parameters first, in the order of the run models' parameters()
            self.register_parameter(key.replace(".", "__"), nn.Parameter(_padded_stack([s[key] for s in states])))
        for key in states[0]:
            if key not in self.param_keys:
                # contiguous (K, C), so that batch normalisation updates them in place
                self.register_buffer(key.replace(".", "__"), _padded_stack([s[key] for s in states], pad=False))
        self.keys = list(states[0])  # the run models' state-dict keys, in their order

    def _storage(self, key: str) -> Tensor:
        return getattr(self, key.replace(".", "__"))

    def stacked(self, key: str) -> Tensor:
        """The (K, *shape) view of the stacked tensor of a run state-dict key."""
        shape = self.shapes[key]
        return self._storage(key)[:, : shape.numel()].view(self.size, *shape)

    def stacked_grad(self, key: str) -> Tensor | None:
        """The (K, *shape) gradient of a stacked parameter (``None`` before a backward pass)."""
        grad = self._storage(key).grad
        shape = self.shapes[key]
        return None if grad is None else grad[:, : shape.numel()].view(self.size, *shape)

    def member_slice(self, index: int, tensor: Tensor, k: int) -> Tensor:
        """Run k's part, shaped like its parameter, of a tensor shaped like the storage of
        parameter number ``index`` (e.g. an optimizer state); a copy."""
        shape = self.shapes[self.param_keys[index]]
        return tensor[k, : shape.numel()].reshape(shape).clone()

    def forward(self, xs: Tensor | Sequence[Tensor]) -> Tensor:
        if len(xs) != self.size or any(x.dim() != 2 for x in xs):
            shape = tuple(xs.shape) if isinstance(xs, Tensor) else [tuple(x.shape) for x in xs]
            raise ValueError(f"give K={self.size} inputs of shape (N, d) (a list, or a (K, N, d) tensor), got {shape}")
        layers = []
        for layer in self.layers:
            if layer.kind == "batchnorm" and self.training:
                tracked = self.stacked(layer.prefix + "num_batches_tracked")
                tracked.add_(1)
                if layer.momentum is None:  # cumulative moving average, as nn.BatchNorm1d
                    layer = MLPLayer(layer.kind, layer.prefix, 1.0 / float(tracked[0]), layer.eps)
            layers.append(layer)
        tensors = {key: self.stacked(key) for key in self.keys if not key.endswith("num_batches_tracked")}
        n = xs[0].shape[0]
        if not self.training and not self.fused(n, xs[0].element_size()):
            # eval mode: rows padded as a run's own model pads them (padded_rows), in one pass
            x = xs[0].new_zeros(len(xs), padded_rows(n, xs[0].element_size()), xs[0].shape[1])
            x[:, :n] = xs if isinstance(xs, Tensor) else torch.stack(list(xs))
            return stacked_mlp_forward(layers, tensors, x, training=False)[:, 0, :n]
        if self.fused(n, xs[0].element_size()):
            x = xs if isinstance(xs, Tensor) else torch.stack(list(xs))
            return stacked_mlp_forward(layers, tensors, x, training=self.training)[:, 0, :]
        outs = []
        for k, x in enumerate(xs):
            # a run's own tensors: parameters are aligned slices of their padded storage, the
            # running statistics (contiguous for the fused path) are copied out and back
            member = {key: t[k : k + 1] if t.requires_grad else t[k : k + 1].clone() for key, t in tensors.items()}
            outs.append(stacked_mlp_forward(layers, member, x.unsqueeze(0), training=self.training))
            if self.training:
                for key, t in tensors.items():
                    if not t.requires_grad:
                        t[k : k + 1].copy_(member[key])
        return torch.cat(outs)[:, 0, :]

    @staticmethod
    def fused(batch_size: int, element_size: int) -> bool:
        """Whether batches of ``batch_size`` rows run as one pass for all K runs.

        The condition that keeps each run's numbers those of the run alone: every run's block of
        a stacked (K, C, B) activation starts on an :data:`ALIGN_BYTES` boundary, as the run's
        own tensors do (BLAS was seen to round differently for operands off such a boundary).
        Other batch sizes (a short last batch, the last evaluation chunk) are computed run after
        run on each run's own tensors. Any number of torch threads: each run's matrix products
        are its own calls, and the other kernels split their work by channel or element.
        """
        return (batch_size * element_size) % ALIGN_BYTES == 0

    def member_state(self, k: int) -> dict[str, Tensor]:
        """Run k's ``state_dict`` (views into the stacked tensors: copy before keeping them)."""
        return {key: self.stacked(key)[k].detach() for key in self.keys}

    def stacked_state(self) -> dict[str, Tensor]:
        """A copy of every stacked tensor, keyed by the run models' state-dict keys."""
        return {key: self.stacked(key).detach().clone() for key in self.keys}


# ---------------------------------------------------------------------------------------------
# One run of a group
# ---------------------------------------------------------------------------------------------


class _Replay(nn.Module):
    """Stands in for a run's model while the plain trainer's ``metrics`` evaluates it: returns,
    batch after batch, the predictions the batched model computed for that run (the same
    kernels on the same batches, so the same numbers), and checks that the batches match."""

    def __init__(self, outputs: Sequence[Tensor]) -> None:
        super().__init__()
        self.outputs = list(outputs)

    def forward(self, x: Tensor) -> Tensor:
        if not self.outputs or self.outputs[0].shape[0] != x.shape[0]:
            raise RuntimeError("batched evaluation out of step with the trainer's evaluation batches")
        return self.outputs.pop(0)


class _Member(TrainingRun):
    """A run of a batched group: the plain trainer's setup, evaluation, files and summary."""

    torch_rng: Tensor
    saved_epoch: int = -1  # epoch of the last.pt on disk (-1: none)
    active: bool = False
    record_keys: tuple[str, ...] = ()
    predictions: list[Tensor] | None = None  # evaluation outputs from the group, test then val

    def metrics(self) -> dict[str, float]:
        if self.predictions is None:
            return super().metrics()
        model, self.model = self.model, _Replay(self.predictions)
        try:
            return super().metrics()
        finally:
            self.model, self.predictions = model, None

    def setup(self, checkpoint: Mapping[str, Any] | None) -> None:
        super().setup(checkpoint)
        # the plain trainer's global random state during training (nothing batched draws from it)
        self.torch_rng = torch.get_rng_state()
        self.record_keys = {"biv": ("ebs", "eps"), "cutoff": ("kept_fraction",)}.get(self.cfg.loss.name, ())

    def checkpoint(self) -> dict[str, Any]:
        ckpt = super().checkpoint()
        ckpt["rng"]["torch"] = self.torch_rng
        return ckpt


@dataclass
class _Snapshot:
    """The group at the end of an epoch, to write any run's ``last.pt`` later."""

    epoch: int
    model: dict[str, Tensor]
    optimizer: dict[int, dict[str, Any]]
    param_groups: list[dict[str, Any]]
    shuffle: dict[int, Tensor]
    states: dict[int, dict[str, Any]]


def _copy_state(state: RunState) -> dict[str, Any]:
    d = state.to_dict()
    d["history"] = list(d["history"])
    d["record_sums"] = {k: list(v) for k, v in d["record_sums"].items()}
    return d


def _slice_optimizer_state(stacked: Mapping[int, Mapping[str, Any]], model: BatchedMLP, k: int) -> dict[int, dict[str, Any]]:
    """Run k's optimizer state from the stacked one: per-parameter tensors sliced, the rest copied."""
    storage = [p.shape for p in model.parameters()]
    out: dict[int, dict[str, Any]] = {}
    for i, entry in stacked.items():
        out[i] = {}
        for key, value in entry.items():
            if isinstance(value, Tensor):
                value = model.member_slice(i, value, k) if value.shape == storage[i] else value.clone()
            out[i][key] = value
    return out


_NONFINITE_LOSS = (
    # the message of hetreg.train.runner.TrainingRun.train, for the same event
    "training loss became {value} at epoch {epoch}, step {step} (loss {loss!r}, lr {lr:.3g}); the run was "
    "stopped and {kept}. Try a smaller optimizer.lr or check the labels and variances."
)


class _Group:
    """K members trained in lock step as one :class:`BatchedMLP`."""

    def __init__(self, members: list[_Member], checkpoint_interval: float) -> None:
        self.members = members
        self.cfg = members[0].cfg
        self.checkpoint_interval = checkpoint_interval
        self.model = BatchedMLP([m.model for m in members])
        self.model.train()
        self.optimizer = build_optimizer(self.cfg, self.model, members[0].loss_fn)
        self.member_tensors = [list(m.model.state_dict(keep_vars=True).items()) for m in members]
        self.x = torch.cat([m.prep.x_train for m in members])  # (K·N, d): run k's rows from k·N
        self.offsets = torch.arange(len(members)).unsqueeze(1) * members[0].prep.x_train.shape[0]
        self.y = torch.stack([m.prep.y_train.reshape(-1) for m in members])
        n = self.y.shape[1]
        ones = torch.ones(n)
        self.var = torch.stack([m.var_for_loss if m.var_for_loss is not None else ones for m in members])
        weights = [m.prep.w_train for m in members]
        self.weight = None if all(w is None for w in weights) else torch.stack([w if w is not None else ones for w in weights])
        kinds, eps, thresholds = [], [], []
        for m in members:
            kinds.append(BATCHED_LOSSES[m.cfg.loss.name])
            eps.append(float(getattr(m.loss_fn, "eps", 0.0)))
            thresholds.append(float(getattr(m.loss_fn, "threshold", 1.0)))
        self.kind = torch.tensor(kinds)
        self.eps64 = torch.tensor(eps, dtype=torch.float64).unsqueeze(1)
        self.threshold = torch.tensor(thresholds, dtype=torch.float32).unsqueeze(1)
        self.step = 0
        self.last_eval_step = -1
        self._reset_sums()
        self.snapshot: _Snapshot | None = None
        self.last_write = time.monotonic()

    # -- bookkeeping ---------------------------------------------------------------------------

    def _reset_sums(self) -> None:
        k = len(self.members)
        self.loss_sum = torch.zeros(k, dtype=torch.float64)
        self.loss_count = 0
        self.record_sums: dict[str, Tensor] = {}

    def active(self) -> list[tuple[int, _Member]]:
        return [(k, m) for k, m in enumerate(self.members) if m.active]

    def sync(self, k: int, m: _Member) -> None:
        """Write the group's counters for run k into its plain-trainer state."""
        st = m.state
        st.step = self.step
        st.loss_sum = float(self.loss_sum[k])
        st.loss_count = self.loss_count
        st.record_sums = {}
        if self.loss_count:
            for key in m.record_keys:
                st.record_sums[key] = [float(self.record_sums[key][k]), self.loss_count]

    def load_member(self, k: int, m: _Member, stacked: Mapping[str, Tensor] | None = None) -> None:
        """Copy run k's slice of the stacked state (default: the live one) into its own model."""
        with torch.no_grad():
            for key, tensor in self.member_tensors[k]:
                source = stacked[key] if stacked is not None else self.model.stacked(key)
                tensor.copy_(source[k])

    def take_snapshot(self, epoch: int) -> None:
        stacked = self.optimizer.state_dict()
        self.snapshot = _Snapshot(
            epoch=epoch,
            model=self.model.stacked_state(),
            optimizer={
                i: {key: (v.clone() if isinstance(v, Tensor) else copy.deepcopy(v)) for key, v in entry.items()}
                for i, entry in stacked["state"].items()
            },
            param_groups=copy.deepcopy(self.members[0].optimizer.state_dict()["param_groups"]),
            shuffle={k: m.shuffle_gen.get_state() for k, m in self.active()},
            states={k: _copy_state(m.state) for k, m in self.active()},
        )

    def write_last(self, k: int, m: _Member) -> None:
        """Write run k's ``last.pt`` from the snapshot, in the plain trainer's format."""
        snap = self.snapshot
        if snap is None or k not in snap.states or m.saved_epoch >= snap.epoch:
            return
        self.load_member(k, m, snap.model)
        m.optimizer.load_state_dict(
            {"state": _slice_optimizer_state(snap.optimizer, self.model, k), "param_groups": copy.deepcopy(snap.param_groups)}
        )
        live_gen, live_state = m.shuffle_gen.get_state(), m.state
        m.shuffle_gen.set_state(snap.shuffle[k])
        m.state = RunState.from_dict(snap.states[k])
        try:
            ckpt = m.checkpoint()
        finally:
            m.shuffle_gen.set_state(live_gen)
            m.state = live_state
        save_checkpoint(m.path("last.pt"), ckpt)
        m.saved_epoch = snap.epoch

    def stop(self, k: int, m: _Member, status: str, message: str | None) -> None:
        """End run k: keep its last good checkpoint on disk, write its summary."""
        m.active = False
        self.write_last(k, m)
        finish_run(m, status, message)
        if message:
            m.say(f"[{m.cfg.name}] {status}: {message}")

    # -- training ------------------------------------------------------------------------------

    def predict_all(self) -> list[list[Tensor]] | None:
        """Every run's eval-mode outputs on its test then validation split, in the trainer's
        evaluation batches (``None`` when the runs' splits differ in size)."""
        splits = [[m.prep.test.x for m in self.members], [m.prep.val.x for m in self.members]]
        if any(len({tuple(x.shape) for x in xs}) != 1 for xs in splits):
            return None
        bs = self.members[0].eval_batch_size  # the plain trainer's evaluation batches
        outputs: list[list[Tensor]] = [[] for _ in self.members]
        self.model.eval()
        try:
            with torch.no_grad():
                for xs in splits:
                    for start in range(0, xs[0].shape[0], bs):
                        out = self.model([x[start : start + bs] for x in xs]).unsqueeze(-1)
                        for k in range(len(self.members)):
                            outputs[k].append(out[k])
        finally:
            self.model.train()
        return outputs

    def evaluate(self, epoch: int, epoch_end: bool) -> None:
        outputs = self.predict_all()
        for k, m in self.active():
            self.sync(k, m)
            if outputs is None or len(m.prep.val) > 0:  # its own model evaluates, or goes to best.pt
                self.load_member(k, m)
            m.predictions = outputs[k] if outputs is not None else None
            record = m.evaluate(epoch, epoch_end)
            if not m.finite(record):
                self.stop(k, m, "failed", m.nonfinite_message(record))
        self._reset_sums()
        self.last_eval_step = self.step

    def fail_nonfinite(self, values: Tensor, epoch: int) -> None:
        for k, m in self.active():
            value = float(values[k])
            if math.isfinite(value):
                continue
            self.sync(k, m)
            st = m.state
            kept = (
                f"the last good checkpoint (end of epoch {st.epoch}) is kept in last.pt"
                if st.epoch > 0
                else "no checkpoint was written (it failed in the first epoch)"
            )
            message = _NONFINITE_LOSS.format(
                value=value,
                epoch=epoch + 1,
                step=st.step + 1,
                loss=m.cfg.loss.name,
                lr=m.optimizer.param_groups[0]["lr"],
                kept=kept,
            )
            self.stop(k, m, "failed", message)

    def train(self) -> None:
        cfg = self.cfg
        epochs = cfg.train.epochs
        n = self.y.shape[1]
        eval_steps = cfg.train.eval_every if isinstance(cfg.train.eval_every, int) else None
        bounds = self.members[0].bounds
        for epoch in range(epochs):
            if not any(m.active for m in self.members):
                return
            apply_schedule(self.optimizer, epoch, epochs, cfg.schedule)
            for m in self.members:
                apply_schedule(m.optimizer, epoch, epochs, cfg.schedule)
            if cfg.train.shuffle:
                order = torch.stack([torch.randperm(n, generator=m.shuffle_gen) for m in self.members])
            else:
                order = torch.arange(n).expand(len(self.members), n)
            for b, (start, stop) in enumerate(bounds):
                idx = order[:, start:stop]
                if BatchedMLP.fused(idx.shape[1], self.x.element_size()):
                    rows = (idx + self.offsets).reshape(-1)
                    pred = self.model(self.x.index_select(0, rows).view(idx.shape[0], idx.shape[1], -1))
                else:  # each run's batch gathered on its own, as the plain trainer does
                    pred = self.model([m.prep.x_train[i] for m, i in zip(self.members, idx)])
                var = self.var.gather(1, idx)
                weight = self.weight.gather(1, idx) if self.weight is not None else None
                losses = member_losses(
                    pred, self.y.gather(1, idx), var, kind=self.kind, eps=self.eps64, threshold=self.threshold, weight=weight
                )
                values = losses.detach()
                if not bool(torch.isfinite(values).all()):
                    self.fail_nonfinite(values, epoch)
                    if not any(m.active for m in self.members):
                        return
                self.optimizer.zero_grad(set_to_none=True)
                losses.sum().backward()
                self.optimizer.step()
                self.step += 1
                self.loss_sum += values.to(torch.float64)
                self.loss_count += 1
                records = member_records(var, kind=self.kind, eps=self.eps64, threshold=self.threshold, weight=weight)
                records["eps"] = self.eps64[:, 0]
                for key, value in records.items():
                    if key in self.record_sums:
                        self.record_sums[key] += value
                    else:
                        self.record_sums[key] = value.clone()
                last_batch = b == len(bounds) - 1
                if eval_steps is not None and not last_batch and self.step % eval_steps == 0:
                    self.evaluate(epoch + 1, epoch_end=False)
            final_epoch = epoch == epochs - 1
            if eval_steps is None or self.step % eval_steps == 0 or (final_epoch and self.last_eval_step != self.step):
                self.evaluate(epoch + 1, epoch_end=True)
            for k, m in self.active():
                m.state.epoch = epoch + 1
                self.sync(k, m)
            self.take_snapshot(epoch + 1)
            if final_epoch or time.monotonic() - self.last_write >= self.checkpoint_interval:
                for k, m in self.active():
                    self.write_last(k, m)
                self.last_write = time.monotonic()


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def _start_member(m: _Member, environment: Mapping[str, Any]) -> None:
    """Create the run directory as ``run_experiment`` does (config, environment)."""
    m.run_dir.mkdir(parents=True, exist_ok=True)
    save_config(m.cfg, m.run_dir / "config.yaml")
    write_json(m.run_dir / "environment.json", dict(environment))


def _open_member(m: _Member) -> None:
    """The start of the plain trainer's ``_execute`` for a fresh run: standardizer and trackers."""
    write_json(m.run_dir / "standardizer.json", m.prep.standardizer.to_dict())
    m.trackers = [JsonlTracker(m.run_dir / "metrics.jsonl", history=None)]
    m.trackers += build_trackers(m.cfg.tracking.trackers, m.run_dir, project=m.cfg.tracking.project, run_name=m.cfg.name)
    for tracker in m.trackers:
        tracker.start(config_to_dict(m.cfg))


def _needs_plain_run(m: _Member, first: _Member) -> bool:
    """Runs whose plain behaviour the group does not reproduce: a zero variance with ε = 0 (the
    plain losses raise on it) or a training set shaped unlike the group's."""
    eps = getattr(m.loss_fn, "eps", None)
    if m.var_for_loss is not None and eps == 0 and bool((m.var_for_loss == 0).any()):
        return True
    return m.prep.x_train.shape != first.prep.x_train.shape or m.bounds != first.bounds


def _read_summary(run_dir: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((run_dir / "summary.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {"status": "failed", "message": f"no readable summary.json in {run_dir}"}


def run_batched(
    configs: Sequence[ExperimentConfig | Mapping[str, Any] | str | Path],
    run_dirs: Sequence[str | Path],
    *,
    quiet: bool = True,
    checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
) -> list[dict[str, Any]]:
    """Train ``configs`` as one batched group; write each run's store in its ``run_dirs`` entry.

    Each run directory gets the files :func:`hetreg.train.run_experiment` writes (config.yaml,
    environment.json, standardizer.json, metrics.jsonl, last.pt, best.pt with a validation split,
    summary.json), with the same metrics up to float32 rounding, and can be resumed or reported
    like a plain run. Runs the group cannot reproduce exactly (an IV/BIV run with ε = 0 and a zero
    label variance) are trained with ``run_experiment`` after the group.

    Args:
        configs: configurations that :func:`supports_batching` accepts together.
        run_dirs: one new run directory per configuration.
        quiet: print nothing (otherwise each run's evaluation lines, as the plain trainer).
        checkpoint_interval: least seconds between two writes of the runs' ``last.pt`` during
            training (0: every epoch); they are always written at the end.

    Returns:
        The summaries, in the order of ``configs`` (also in each ``summary.json``). A run whose
        setup or training fails has status ``"failed"`` and a ``message``; it does not stop the
        others and is not raised.

    Raises:
        ValueError: the configurations cannot be batched together (the message says why), or
            ``run_dirs`` does not have one entry per configuration.
        RunExistsError: a run directory already holds a run (nothing is written anywhere).
        KeyboardInterrupt: after writing every unfinished run's last good ``last.pt`` and its
            summary with status ``"interrupted"``; resume them with ``run_experiment(resume=True)``.
    """
    if len(run_dirs) != len(configs):
        raise ValueError(f"give one run directory per configuration: {len(configs)} configurations, {len(run_dirs)} run_dirs")
    problem = batching_problem(configs)
    if problem is not None:
        raise ValueError(f"these runs cannot be trained as one batched group: {problem}")
    if checkpoint_interval < 0 or math.isnan(checkpoint_interval):
        raise ValueError(f"checkpoint_interval must be >= 0 seconds, got {checkpoint_interval}")
    cfgs = [_resolved(c) for c in configs]
    dirs = [Path(d) for d in run_dirs]
    if len(set(d.resolve() for d in dirs)) != len(dirs):
        raise ValueError("run_dirs must be distinct directories")
    for d in dirs:
        status = run_status(d)
        if status is not None:
            raise RunExistsError(
                f"{d} already holds a run (status: {status}); resume it with run_experiment(resume=True), "
                "or choose a new run directory. Nothing was written."
            )

    retain_freed_memory()
    previous_threads = torch.get_num_threads()
    if cfgs[0].train.num_threads is not None:
        torch.set_num_threads(cfgs[0].train.num_threads)
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's global RNG state is left as it was
            return _run_group(cfgs, dirs, quiet=quiet, checkpoint_interval=checkpoint_interval)
    finally:
        torch.set_num_threads(previous_threads)


@contextmanager
def _shared_datasets() -> Iterator[None]:
    """While the runs of a group are set up, load each (dataset, root, seed, options) only once.

    The plain trainer's ``_prepare`` loads its dataset through ``hetreg.data.load_dataset``, read
    at call time; runs of a group that share a data seed get the same (unmodified) dataset object
    instead of parsing the files again. (A ``data`` argument to ``_prepare`` would make this
    wrapper unnecessary.)
    """
    import hetreg.data as data_module

    original = data_module.load_dataset
    cache: dict[str, Any] = {}

    def load_once(name: str, root: str | None = None, **options: Any) -> Any:
        key = json.dumps([name, root, options], sort_keys=True, default=repr)
        if key not in cache:
            cache[key] = original(name, root=root, **options)
        return cache[key]

    data_module.load_dataset = load_once  # type: ignore[assignment]
    try:
        yield
    finally:
        data_module.load_dataset = original  # type: ignore[assignment]


def _run_group(cfgs: list[ExperimentConfig], dirs: list[Path], *, quiet: bool, checkpoint_interval: float) -> list[dict[str, Any]]:
    members = [_Member(cfg, d, quiet=quiet, callbacks=()) for cfg, d in zip(cfgs, dirs)]
    environment = environment_info()
    failed: dict[int, str] = {}
    with _shared_datasets():
        for k, m in enumerate(members):
            try:
                m.setup(None)
            except Exception as exc:  # noqa: BLE001 - recorded in the run's summary, as run_experiment does
                failed[k] = f"{type(exc).__name__}: {exc}"
    ready = [k for k in range(len(members)) if k not in failed]
    plain = [k for k in ready if _needs_plain_run(members[k], members[ready[0]])]
    batched = [k for k in ready if k not in plain]
    group_env = {**environment, "training": {"batched": True, "group_size": len(batched)}}
    for k in batched:
        _start_member(members[k], group_env)
        try:
            _open_member(members[k])
        except Exception as exc:  # noqa: BLE001 - e.g. a tracker whose package is missing
            failed[k] = f"{type(exc).__name__}: {exc}"
    for k, message in failed.items():
        if k not in batched:
            _start_member(members[k], environment)
        finish_run(members[k], "failed", message)
    batched = [k for k in batched if k not in failed]

    if batched:
        group = _Group([members[k] for k in batched], checkpoint_interval)
        for m in group.members:
            m.active = True
        try:
            group.train()
        except KeyboardInterrupt:
            for k, m in group.active():
                group.sync(k, m)
                group.stop(
                    k,
                    m,
                    "interrupted",
                    f"interrupted after {m.state.epoch} completed epochs; resume with --resume (resume=True) "
                    "to continue from the last checkpoint",
                )
            raise
        except Exception as exc:
            for k, m in group.active():
                group.stop(k, m, "failed", f"{type(exc).__name__}: {exc}")
            raise
        for k, m in group.active():
            group.stop(k, m, "completed", None)

    for k in plain:
        try:
            run_experiment(cfgs[k], dirs[k], quiet=quiet)
        except Exception:  # noqa: BLE001 - run_experiment has written the failed summary
            pass
    return [_read_summary(d) for d in dirs]
