"""Run one experiment end to end and keep everything it produced in a run directory.

Run directory layout (the run store)::

    config.yaml         resolved configuration (derived seeds, model head and loss defaults written out)
    environment.json    python / torch / numpy / hetreg versions, platform, git commit
    standardizer.json   normalisation statistics of the training split (Standardizer.to_dict)
    metrics.jsonl       one JSON object per evaluation (see ``run_experiment``)
    last.pt             checkpoint at the end of the last completed epoch (atomic writes)
    best.pt             model (and loss) state at the best validation MSE
    summary.json        status ("completed", "failed", "interrupted"), final and best metrics; written last

Pipeline (``run_experiment``):

1. load the dataset with the data seed (raw inputs, clean labels);
2. add label noise to the training labels (and the validation labels unless
   ``noise.noisy_val: false``) in raw units, with generators seeded from the noise seed;
3. fit the :class:`~hetreg.data.Standardizer` on the training split when ``data.normalize``: labels
   are z-scored with the clean training-label mean and std, variances divided by s_y², the cutoff
   threshold (raw units in the config) divided by s_y²; tabular inputs are normalised once,
   image batches on the fly;
4. build the model with the model seed, the loss and the optimizer (plus the loss's own
   parameter groups, e.g. the σ of Balanced MSE, which the LR schedule leaves alone);
5. train on batches sliced from in-memory tensors in a seeded permutation, evaluating in eval
   mode on the clean test labels and the (noisy) validation labels every epoch or every N steps.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hetreg.experiments.config import (
    DEFAULT_SIGMA_LR,
    ExperimentConfig,
    config_hash,
    config_to_dict,
    derive_seed,
    load_config,
    save_config,
)
from hetreg.train.evaluation import EvalSet, predict, predictive_metrics, split_out, squared_error_metrics
from hetreg.train.allocator import retain_freed_memory
from hetreg.train.environment import environment_info
from hetreg.train.files import load_checkpoint, save_checkpoint, write_json
from hetreg.train.schedule import apply_schedule
from hetreg.train.trackers import JsonlTracker, Tracker, build_trackers

__all__ = [
    "RUN_FILES",
    "Callback",
    "RunExistsError",
    "RunState",
    "TrainingRun",
    "build_optimizer",
    "coerce_config",
    "finish_run",
    "run_experiment",
    "run_status",
    "batch_bounds",
]

RUN_FILES = (
    "config.yaml",
    "environment.json",
    "standardizer.json",
    "metrics.jsonl",
    "last.pt",
    "best.pt",
    "summary.json",
)
CHECKPOINT_FORMAT = 1

Callback = Callable[[dict[str, Any]], None]
"""Called with a copy of every evaluation record, after it is logged (and, at an epoch end, after
``last.pt`` is written, so a callback that raises ``KeyboardInterrupt`` leaves a run resumable
from exactly that point)."""


class RunExistsError(FileExistsError):
    """A new run was asked for in a directory that already holds one."""


def run_status(run_dir: str | Path) -> str | None:
    """Status of the run in ``run_dir``: the ``summary.json`` status, ``"incomplete"`` when a run
    was started but has no summary (still running, or killed hard), ``None`` when there is no run."""
    run_dir = Path(run_dir)
    summary = run_dir / "summary.json"
    if summary.is_file():
        import json

        try:
            return str(json.loads(summary.read_text(encoding="utf-8")).get("status"))
        except (ValueError, OSError):
            return "incomplete"
    if any((run_dir / name).exists() for name in RUN_FILES):
        return "incomplete"
    return None


def batch_bounds(n: int, batch_size: int, *, drop_last: bool, drop_singleton: bool = False) -> list[tuple[int, int]]:
    """``(start, stop)`` of the batches of one epoch over ``n`` samples.

    The last, partial batch is dropped with ``drop_last``; with ``drop_singleton`` a last batch
    of a single sample is dropped too (BatchNorm cannot train on one sample).
    """
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if bounds and bounds[-1][1] - bounds[-1][0] < batch_size and (
        drop_last or (drop_singleton and bounds[-1][1] - bounds[-1][0] == 1)
    ):
        bounds.pop()
    return bounds


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


@dataclass
class _Prepared:
    kind: str
    input_shape: tuple[int, ...]
    x_train: Tensor
    y_train: Tensor  # (n, 1), units of the loss
    y_train_raw: Tensor  # (n,), raw units (noisy)
    var_train: Tensor | None  # (n,), units of the loss
    w_train: Tensor | None  # (n,)
    transform: Callable[[Tensor], Tensor] | None
    val: EvalSet
    test: EvalSet
    standardizer: Any
    info: dict[str, Any] = field(default_factory=dict)


def _noise(cfg: ExperimentConfig, y: Tensor, stream: str) -> Any:
    from hetreg.noise import add_label_noise, distribution_from_dict

    dist = distribution_from_dict(dict(cfg.noise.distribution or {}))
    generator = torch.Generator().manual_seed(derive_seed(cfg.seed_for("noise"), stream))
    return add_label_noise(y, dist, generator, disturbance=cfg.noise.disturbance)


def _lds_weights(cfg: ExperimentConfig, labels: Tensor) -> Tensor:
    from hetreg.losses.lds import lds_weights

    assert cfg.lds is not None
    w = lds_weights(labels, cfg.lds.bin_spec(), cfg.lds.scheme, cfg.lds.kernel_spec())
    return torch.as_tensor(w, dtype=torch.float32).reshape(-1)


def _prepare(cfg: ExperimentConfig) -> _Prepared:
    from hetreg.data import Standardizer, load_dataset

    data = load_dataset(cfg.data.name, root=cfg.data.root, seed=cfg.seed_for("data"), **cfg.data.loader_options())
    if len(data.train) == 0:
        raise ValueError(f"dataset {cfg.data.name!r} has an empty training split")
    std = Standardizer.fit(data) if cfg.data.normalize else Standardizer.identity(data)

    y_train_raw = data.train.y.float()
    var_train_raw = data.train.variance
    y_val_raw = data.val.y.float()
    info: dict[str, Any] = {
        "dataset": data.name,
        "kind": data.kind,
        "n_train": len(data.train),
        "n_val": len(data.val),
        "n_test": len(data.test),
        "y_mean": std.y_mean,
        "y_std": std.y_std,
    }
    if cfg.noise.distribution is not None:
        noisy = _noise(cfg, data.train.y, "train")
        y_train_raw, var_train_raw = noisy.labels.float(), noisy.variance
        info["noise_variance_mean"] = float(noisy.true_variance.double().mean())
        if cfg.noise.noisy_val and len(data.val) > 0:
            y_val_raw = _noise(cfg, data.val.y, "val").labels.float()

    if data.kind == "image":
        transform: Callable[[Tensor], Tensor] | None = std.transform_x
        x_train, x_val, x_test = data.train.x, data.val.x, data.test.x
    else:
        transform = None
        x_train, x_val, x_test = (std.transform_x(s.x) for s in (data.train, data.val, data.test))

    var_train = None
    if var_train_raw is not None:
        var_train = torch.as_tensor(std.transform_variance(var_train_raw.double())).float()

    w_train = _lds_weights(cfg, y_train_raw) if cfg.lds is not None else None
    test_raw = data.test.y.float()
    return _Prepared(
        kind=data.kind,
        input_shape=tuple(data.input_shape),
        x_train=x_train.contiguous(),
        y_train=std.transform_y(y_train_raw).float().reshape(-1, 1).contiguous(),
        y_train_raw=y_train_raw,
        var_train=var_train,
        w_train=w_train,
        transform=transform,
        val=EvalSet(x=x_val, y=std.transform_y(y_val_raw).float(), y_raw=y_val_raw),
        test=EvalSet(x=x_test, y=std.transform_y(test_raw).float(), y_raw=test_raw),
        standardizer=std,
        info=info,
    )


# ---------------------------------------------------------------------------------------------
# Model, loss, optimizer
# ---------------------------------------------------------------------------------------------


def _build_model(cfg: ExperimentConfig, input_shape: tuple[int, ...]) -> nn.Module:
    from hetreg import models

    torch.manual_seed(cfg.seed_for("model"))
    return models.build_model(cfg.model.name, input_shape, head=cfg.model.head, out_dim=1, **cfg.model.options)


def _bucket_ids(ids: Tensor) -> Tensor:
    """FDS's bucket function in the trainer: it is given the precomputed bucket ids themselves."""
    return ids


def _build_fds(cfg: ExperimentConfig, model: nn.Module, y_train_raw: Tensor) -> tuple[nn.Module, Tensor]:
    """The FDS module of ``cfg.fds`` attached to ``model``, and the bucket id of every training
    sample (bins of the raw, noisy training labels, as :class:`~hetreg.experiments.config.FDSConfig`
    says)."""
    from hetreg.losses.lds import assign_bins
    from hetreg.models.fds import FDS

    spec = cfg.fds
    assert spec is not None
    if not hasattr(model, "attach_fds"):
        raise ValueError(f"fds needs a model with penultimate features; model {cfg.model.name!r} has none")
    ids, num = assign_bins(y_train_raw.double().numpy(), spec.bin_spec())
    fds = FDS(
        model.num_features,
        bucket_num=num,
        bucket_fn=_bucket_ids,
        kernel=spec.kernel_spec() or [1.0],
        clip=spec.clip,
        momentum=spec.momentum,
        start_update=spec.start_update,
        start_smooth=spec.start_smooth,
    )
    model.attach_fds(fds)
    return fds, torch.from_numpy(ids)


def _label_prior(cfg: ExperimentConfig, prep: "_Prepared") -> Any:
    """The label prior of BNI / GAI, from the (noisy) training labels in the units the loss sees.

    BNI: a histogram with bins of ``loss.prior_bin_width`` **raw** label units (centred on the
    multiples of the width, so integer labels are bin centres), its centres then mapped to the
    loss's units. GAI: a Gaussian mixture of ``loss.prior_components`` components fitted to the
    labels the loss sees, seeded from the training seed.
    """
    from hetreg.experiments.config import PRIOR_LOSSES
    from hetreg.losses import GMMPrior, HistogramPrior

    std = prep.standardizer
    kind = PRIOR_LOSSES[cfg.loss.name]
    if kind == "histogram":
        raw = HistogramPrior.from_labels(prep.y_train_raw, bin_width=cfg.loss.prior_bin_width)
        return HistogramPrior(std.transform_y(raw.centers), raw.weights)
    labels = prep.y_train.reshape(-1).double()
    k = min(int(cfg.loss.prior_components or 8), labels.shape[0])
    return GMMPrior.fit(labels.numpy(), n_components=k, seed=derive_seed(cfg.seed_for("train"), "prior"))


def _build_loss(cfg: ExperimentConfig, prep: "_Prepared") -> Any:
    """The loss module; the cutoff threshold (raw units in the config) is divided by s_y²."""
    from hetreg.experiments.config import PRIOR_LOSSES
    from hetreg.losses import build_loss

    params = cfg.loss.loss_params()
    if "threshold" in params and cfg.data.normalize:
        params["threshold"] = float(prep.standardizer.transform_variance(float(params["threshold"])))
    if cfg.loss.name in PRIOR_LOSSES:
        params["prior"] = _label_prior(cfg, prep)
    return build_loss(cfg.loss.name, **params)


def build_optimizer(cfg: ExperimentConfig, model: nn.Module, loss_fn: nn.Module) -> torch.optim.Optimizer:
    """The run's optimizer (``cfg.optimizer``) over the model's parameters, plus the loss's own
    parameter groups (e.g. a learned Balanced MSE noise scale, at ``cfg.loss.sigma_lr``)."""
    lr = cfg.optimizer.lr
    groups: list[dict[str, Any]] = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    loss_lr = cfg.loss.sigma_lr if cfg.loss.sigma_lr is not None else DEFAULT_SIGMA_LR
    if hasattr(loss_fn, "param_groups"):
        extra = [dict(g) for g in loss_fn.param_groups(loss_lr)]
    else:
        learnable = [p for p in loss_fn.parameters() if p.requires_grad]
        extra = [{"params": learnable, "lr": loss_lr, "no_schedule": True}] if learnable else []
    for group in extra:
        group.setdefault("weight_decay", 0.0)  # never decay a noise scale towards 0
        group["params"] = [p for p in group["params"] if p.requires_grad]
        if group["params"]:
            groups.append(group)
    opt = cfg.optimizer
    if opt.name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=opt.weight_decay, foreach=True)
    if opt.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=opt.weight_decay, foreach=True)
    return torch.optim.SGD(groups, lr=lr, momentum=opt.momentum, weight_decay=opt.weight_decay, foreach=True)


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


# ---------------------------------------------------------------------------------------------
# Training state
# ---------------------------------------------------------------------------------------------


@dataclass
class RunState:
    """The counters and history of a run that its checkpoints carry."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val: float = math.inf
    best: dict[str, Any] | None = None
    loss_sum: float = 0.0  # since the last evaluation
    loss_count: int = 0
    record_sums: dict[str, list[float]] = field(default_factory=dict)
    elapsed: float = 0.0  # seconds of earlier sessions
    last_eval_step: int = -1

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "best_val": self.best_val,
            "best": self.best,
            "loss_sum": self.loss_sum,
            "loss_count": self.loss_count,
            "record_sums": self.record_sums,
            "elapsed": self.elapsed,
            "last_eval_step": self.last_eval_step,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunState":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class TrainingRun:
    """One training session (fresh or resumed) of an experiment."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        run_dir: Path,
        *,
        quiet: bool,
        callbacks: Sequence[Callback],
    ) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.quiet = quiet
        self.callbacks = list(callbacks)
        self.hash = config_hash(cfg)
        self.state = RunState()
        self.t0 = time.perf_counter()
        self.trackers: list[Tracker] = []

    # -- helpers ---------------------------------------------------------------------------------

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def elapsed(self) -> float:
        return self.state.elapsed + (time.perf_counter() - self.t0)

    def path(self, name: str) -> Path:
        return self.run_dir / name

    # -- setup -----------------------------------------------------------------------------------

    def setup(self, checkpoint: Mapping[str, Any] | None) -> None:
        cfg = self.cfg
        self.prep = _prepare(cfg)
        self.model = _build_model(cfg, self.prep.input_shape)
        self.fds, self.fds_buckets = (None, None) if cfg.fds is None else _build_fds(cfg, self.model, self.prep.y_train_raw)
        self.loss_fn = _build_loss(cfg, self.prep)
        needs_var = bool(getattr(self.loss_fn, "needs_label_variance", False))
        if needs_var and self.prep.var_train is None:
            raise ValueError(
                f"loss {cfg.loss.name!r} needs the noise variance of every training label, and there is none: "
                "set noise.distribution (simulated noise) or use a dataset with a variance column"
            )
        self.var_for_loss = self.prep.var_train if needs_var else None
        if cfg.train.augment != "none" and self.prep.kind != "image":
            raise ValueError(
                f"train.augment={cfg.train.augment!r} applies to image datasets only; "
                f"{cfg.data.name!r} is {self.prep.kind}: set train.augment to 'none'"
            )
        self.eval_batch_size = cfg.train.eval_batch_size or (
            cfg.train.batch_size if self.prep.kind == "image" else 4096
        )
        self.optimizer = build_optimizer(cfg, self.model, self.loss_fn)
        train_seed = cfg.seed_for("train")
        self.shuffle_gen = torch.Generator().manual_seed(derive_seed(train_seed, "shuffle"))
        self.augment_gen = torch.Generator().manual_seed(derive_seed(train_seed, "augment"))
        torch.manual_seed(derive_seed(train_seed, "torch"))
        self.bounds = batch_bounds(
            len(self.prep.y_train),
            cfg.train.batch_size,
            drop_last=cfg.train.drop_last,
            drop_singleton=_has_batchnorm(self.model),
        )
        if not self.bounds:
            raise ValueError(
                f"no training batch: {len(self.prep.y_train)} training samples with batch_size "
                f"{cfg.train.batch_size} and drop_last=true; lower train.batch_size or set train.drop_last=false"
            )
        if checkpoint is not None:
            self.restore(checkpoint)
        self.model.train()

    def restore(self, ckpt: Mapping[str, Any]) -> None:
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"unsupported checkpoint format {ckpt.get('format')!r} in {self.path('last.pt')}")
        self.model.load_state_dict(ckpt["model"])
        self.loss_fn.load_state_dict(ckpt["loss"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.shuffle_gen.set_state(ckpt["rng"]["shuffle"])
        self.augment_gen.set_state(ckpt["rng"]["augment"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.state = RunState.from_dict(ckpt["state"])

    def checkpoint(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config_hash": self.hash,
            "model": self.model.state_dict(),
            "loss": self.loss_fn.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"name": self.cfg.schedule.name, "epoch": self.state.epoch},
            "rng": {
                "shuffle": self.shuffle_gen.get_state(),
                "augment": self.augment_gen.get_state(),
                "torch": torch.get_rng_state(),
            },
            "state": {**self.state.to_dict(), "elapsed": self.elapsed()},
        }

    # -- evaluation ------------------------------------------------------------------------------

    def metrics(self) -> dict[str, float]:
        prep, std, bs = self.prep, self.prep.standardizer, self.eval_batch_size
        out: dict[str, float] = {}
        for name, split in (("test", prep.test), ("val", prep.val)):
            pred, var = predict(self.model, split.x, batch_size=bs, transform=prep.transform)
            mse, _ = squared_error_metrics(pred, split.y)
            mse_raw, mae_raw = squared_error_metrics(std.inverse_y(pred), split.y_raw)
            out[f"{name}_mse"] = mse
            out[f"{name}_mse_raw"] = mse_raw
            if name == "test":
                out["test_rmse_raw"] = math.sqrt(mse_raw) if mse_raw == mse_raw else float("nan")
                out["test_mae_raw"] = mae_raw
                if var is not None:
                    out.update(predictive_metrics(std.inverse_y(pred), var * std.y_std**2, split.y_raw, prefix="test_"))
        return out

    def evaluate(self, epoch: int, epoch_end: bool) -> dict[str, Any]:
        st = self.state
        record: dict[str, Any] = {
            "epoch": epoch,
            "step": st.step,
            "epoch_end": epoch_end,
            "train_loss": st.loss_sum / st.loss_count if st.loss_count else float("nan"),
        }
        record.update(self.metrics())
        for key, (total, count) in st.record_sums.items():
            record[key] = total / count if count else float("nan")
        record["lr"] = float(self.optimizer.param_groups[0]["lr"])
        record["elapsed"] = round(self.elapsed(), 6)
        st.loss_sum, st.loss_count, st.record_sums = 0.0, 0, {}
        st.last_eval_step = st.step
        st.history.append(record)
        for tracker in self.trackers:
            tracker.log(record, st.step)
        if len(self.prep.val) > 0 and record["val_mse"] < st.best_val:
            st.best_val = record["val_mse"]
            st.best = dict(record)
            save_checkpoint(
                self.path("best.pt"),
                {
                    "format": CHECKPOINT_FORMAT,
                    "config_hash": self.hash,
                    "model": self.model.state_dict(),
                    "loss": self.loss_fn.state_dict(),
                    "record": dict(record),
                },
            )
        self.say(
            f"[{self.cfg.name}] epoch {epoch}/{self.cfg.train.epochs} step {st.step} "
            f"train_loss {record['train_loss']:.4g} val_mse {record['val_mse']:.4g} "
            f"test_rmse_raw {record['test_rmse_raw']:.4g}"
        )
        return record

    def notify(self, record: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb(dict(record))

    # -- training --------------------------------------------------------------------------------

    def batch(self, idx: Tensor | slice, vb: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """The training batch at ``idx``: inputs, labels, label variances for the loss (``vb``
        when given: the tensor already taken for :meth:`RegressionLoss.plan`), weights."""
        prep = self.prep
        xb = prep.x_train[idx]
        if prep.transform is not None:
            xb = prep.transform(xb)
            if self.cfg.train.augment == "hflip":
                from hetreg.data.images import augment_hflip  # type: ignore[import-not-found]

                xb = augment_hflip(xb, self.augment_gen)
        if vb is None and self.var_for_loss is not None:
            vb = self.var_for_loss[idx]
        wb = prep.w_train[idx] if prep.w_train is not None else None
        return xb, prep.y_train[idx], vb, wb

    def train(self) -> tuple[str, str | None]:
        """Train to the end; return (status, message)."""
        cfg, st = self.cfg, self.state
        epochs = cfg.train.epochs
        n = len(self.prep.y_train)
        eval_steps = cfg.train.eval_every if isinstance(cfg.train.eval_every, int) else None
        model, loss_fn, opt = self.model, self.loss_fn, self.optimizer
        n_batches = len(self.bounds)
        for epoch in range(st.epoch, epochs):
            apply_schedule(opt, epoch, epochs, cfg.schedule)
            order = torch.randperm(n, generator=self.shuffle_gen) if cfg.train.shuffle else None
            indices: list[Tensor | slice] = [
                order[start:stop] if order is not None else slice(start, stop) for start, stop in self.bounds
            ]
            planned: list[Tensor] | None = None
            if getattr(loss_fn, "plans_ahead", False) and self.var_for_loss is not None:
                planned = [self.var_for_loss[idx] for idx in indices]
                loss_fn.plan(planned)
            for b, idx in enumerate(indices):
                xb, yb, vb, wb = self.batch(idx, planned[b] if planned is not None else None)
                if self.fds is None:
                    mean, var = split_out(model(xb))
                else:
                    out, z = model.forward_features(xb, self.fds_buckets[idx])
                    mean, var = split_out(out)
                    if cfg.fds.features == "batches":
                        self.fds.update(z.detach(), self.fds_buckets[idx])
                loss = loss_fn.from_batch(mean, yb, label_variance=vb, pred_variance=var, weight=wb)
                value = float(loss.detach())
                if not math.isfinite(value):
                    kept = (
                        f"the last good checkpoint (end of epoch {st.epoch}) is kept in last.pt"
                        if st.epoch > 0
                        else "no checkpoint was written (it failed in the first epoch)"
                    )
                    return "failed", (
                        f"training loss became {value} at epoch {epoch + 1}, step {st.step + 1} "
                        f"(loss {cfg.loss.name!r}, lr {opt.param_groups[0]['lr']:.3g}); the run was stopped and "
                        f"{kept}. Try a smaller optimizer.lr or check the labels and variances."
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                st.step += 1
                st.loss_sum += value
                st.loss_count += 1
                for key, rec in loss_fn.records.items():
                    acc = st.record_sums.setdefault(key, [0.0, 0])
                    acc[0] += rec
                    acc[1] += 1
                last_batch = b == n_batches - 1
                if eval_steps is not None and not last_batch and st.step % eval_steps == 0:
                    record = self.evaluate(epoch + 1, epoch_end=False)
                    if not self.finite(record):
                        return "failed", self.nonfinite_message(record)
                    self.notify(record)
            if self.fds is not None:
                self.fds_end_epoch(epoch)
            final_epoch = epoch == epochs - 1
            record = None
            if eval_steps is None or st.step % eval_steps == 0 or (final_epoch and st.last_eval_step != st.step):
                record = self.evaluate(epoch + 1, epoch_end=True)
                if not self.finite(record):
                    return "failed", self.nonfinite_message(record)
            st.epoch = epoch + 1
            save_checkpoint(self.path("last.pt"), self.checkpoint())
            if record is not None:
                self.notify(record)
        return "completed", None

    def fds_end_epoch(self, epoch: int) -> None:
        """Close an epoch of the FDS statistics: with ``fds.features="epoch_end"``, first a
        no-grad pass over the training set in its order, in training mode, in the training
        batches (as the original); then :meth:`hetreg.models.fds.FDS.end_epoch`."""
        assert self.fds is not None and self.fds_buckets is not None and self.cfg.fds is not None
        if self.cfg.fds.features == "epoch_end" and epoch >= self.cfg.fds.start_update:
            with torch.no_grad():
                for start, stop in self.bounds:
                    xb = self.batch(slice(start, stop))[0]
                    self.fds.update(self.model.features(xb), self.fds_buckets[start:stop])
        self.fds.end_epoch()

    def finite(self, record: Mapping[str, Any]) -> bool:
        """Whether the evaluated errors are finite (an empty split's NaN does not count)."""
        keys = [k for k, split in (("test_mse", self.prep.test), ("val_mse", self.prep.val)) if len(split) > 0]
        return all(math.isfinite(record[k]) for k in keys)

    def nonfinite_message(self, record: Mapping[str, Any]) -> str:
        return (
            f"the model's predictions became non-finite at epoch {record['epoch']}, step {record['step']} "
            f"(test_mse {record['test_mse']}, val_mse {record['val_mse']}); the run was stopped and the last good "
            "checkpoint is kept in last.pt. Try a smaller optimizer.lr."
        )

    # -- summary ---------------------------------------------------------------------------------

    def summary(self, status: str, message: str | None) -> dict[str, Any]:
        st = self.state
        final = st.history[-1] if st.history else None
        return {
            "status": status,
            "message": message,
            "error": message if status == "failed" else None,
            "name": self.cfg.name,
            "config_hash": self.hash,
            "epochs": st.epoch,
            "epochs_planned": self.cfg.train.epochs,
            "steps": st.step,
            "elapsed": round(self.elapsed(), 6),
            "final": final,
            "best": st.best,
            "data": getattr(getattr(self, "prep", None), "info", None),
            "seeds": {s: self.cfg.seed_for(s) for s in ("data", "noise", "model", "train")},
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def coerce_config(config: ExperimentConfig | Mapping[str, Any] | str | Path) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a config, a mapping or a YAML path (validated)."""
    if isinstance(config, ExperimentConfig):
        return config
    if isinstance(config, (str, Path)):
        return load_config(config)
    from hetreg.experiments.config import _validate

    return _validate(config)


def run_experiment(
    config: ExperimentConfig | Mapping[str, Any] | str | Path | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Train and evaluate one experiment; write the run store in ``run_dir``; return the summary.

    Args:
        config: an :class:`ExperimentConfig`, a mapping, or a YAML path. With ``resume=True`` it
            may be ``None`` (use the ``config.yaml`` stored in ``run_dir``); if given it must
            describe the same experiment (same :func:`config_hash`).
        run_dir: the run directory (created). A new run refuses a directory that already holds
            one (:class:`RunExistsError`); it never overwrites.
        resume: continue from ``last.pt`` (the end of the last completed epoch). A resumed run
            ends with the same metrics as an uninterrupted one. A completed run is not re-run:
            its summary is returned.
        quiet: print nothing (otherwise one line per evaluation on stderr).
        callbacks: ``cb(record)`` after each evaluation (see :data:`Callback`).

    Returns:
        The summary (also written to ``summary.json``): ``status`` (``"completed"`` or
        ``"failed"``; a non-finite training loss stops the run with status ``"failed"`` and a
        ``message``, keeping the last good ``last.pt``), ``message``, ``name``, ``config_hash``,
        ``epochs`` (completed), ``epochs_planned``, ``steps``, ``elapsed`` (seconds, over all
        sessions), ``final`` (last evaluation record), ``best`` (record of the best validation
        MSE, ``None`` without a validation split), ``data`` (split sizes, label mean/std),
        ``seeds``, ``finished_at``.

    Each evaluation record (one line of ``metrics.jsonl``) holds ``epoch`` (1-based epoch of the
    evaluation), ``step`` (optimizer steps so far), ``epoch_end``, ``train_loss`` (mean training
    loss over the steps since the previous evaluation), ``test_mse`` (normalised units, clean
    labels), ``test_mse_raw``, ``test_rmse_raw``, ``test_mae_raw`` (raw label units), ``val_mse``
    and ``val_mse_raw`` (validation labels, noisy unless ``noise.noisy_val`` is false), the
    loss's records averaged over the same steps (``ebs``, ``eps`` for BIV, ``kept_fraction`` for
    the cutoff, ``sigma`` for Balanced MSE, ...), ``lr`` and ``elapsed`` (seconds).

    Raises:
        RunExistsError: ``run_dir`` holds a run and ``resume`` is false.
        FileNotFoundError: ``resume`` with nothing to resume.
        ValueError: the configuration differs from the stored one on resume, or the data do not
            fit the loss (e.g. a variance-weighted loss without label variances).
        KeyboardInterrupt: re-raised after writing ``summary.json`` with status
            ``"interrupted"``; the run can be resumed.
    """
    run_dir = Path(run_dir)
    retain_freed_memory()
    checkpoint: Mapping[str, Any] | None = None
    if resume:
        stored_path = run_dir / "config.yaml"
        if not stored_path.is_file():
            raise FileNotFoundError(
                f"nothing to resume in {run_dir}: it has no config.yaml; start a new run there without --resume"
            )
        stored = load_config(stored_path)
        cfg = stored if config is None else coerce_config(config).resolved()
        if config_hash(cfg) != config_hash(stored):
            raise ValueError(
                f"the configuration differs from the one stored in {stored_path} (hash {config_hash(cfg)} vs "
                f"{config_hash(stored)}); resume with the stored configuration, or start a new run in a new directory"
            )
        if run_status(run_dir) == "completed":
            import json

            summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
            if not quiet:
                print(f"[{cfg.name}] {run_dir} is already completed; nothing to resume", file=sys.stderr)
            return summary
        if (run_dir / "last.pt").is_file():
            checkpoint = load_checkpoint(run_dir / "last.pt")
            if checkpoint.get("config_hash") != config_hash(cfg):
                raise ValueError(f"{run_dir / 'last.pt'} belongs to another configuration; start a new run")
        (run_dir / "summary.json").unlink(missing_ok=True)
    else:
        if config is None:
            raise ValueError("config is required for a new run (it may be omitted only with resume=True)")
        cfg = coerce_config(config).resolved()
        status = run_status(run_dir)
        if status is not None:
            raise RunExistsError(
                f"{run_dir} already holds a run (status: {status}); resume it with `hetreg train --resume {run_dir}` "
                "(in Python: resume=True), "
                "or choose a new run directory. Nothing was overwritten."
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        write_json(run_dir / "environment.json", environment_info())

    previous_threads = torch.get_num_threads()
    if cfg.train.num_threads is not None:
        torch.set_num_threads(cfg.train.num_threads)
    run = TrainingRun(cfg, run_dir, quiet=quiet, callbacks=callbacks)
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's global RNG state is left as it was
            return _execute(run, checkpoint)
    finally:
        if cfg.train.num_threads is not None:
            torch.set_num_threads(previous_threads)


def _execute(run: TrainingRun, checkpoint: Mapping[str, Any] | None) -> dict[str, Any]:
    run_dir, cfg = run.run_dir, run.cfg
    status, message = "failed", None
    try:
        run.setup(checkpoint)
        if checkpoint is None:
            write_json(run_dir / "standardizer.json", run.prep.standardizer.to_dict())
        history = run.state.history if checkpoint is not None else None
        run.trackers = [JsonlTracker(run_dir / "metrics.jsonl", history=history)]
        run.trackers += build_trackers(
            cfg.tracking.trackers, run_dir, project=cfg.tracking.project, run_name=cfg.name
        )
        for tracker in run.trackers:
            tracker.start(config_to_dict(cfg))
        if checkpoint is not None:
            run.say(f"[{cfg.name}] resuming {run_dir} after epoch {run.state.epoch} (step {run.state.step})")
        status, message = run.train()
    except KeyboardInterrupt:
        status = "interrupted"
        message = (
            f"interrupted after {run.state.epoch} completed epochs; resume with --resume (resume=True) "
            "to continue from the last checkpoint"
        )
        finish_run(run, status, message)
        raise
    except Exception as exc:
        finish_run(run, "failed", f"{type(exc).__name__}: {exc}")
        raise
    summary = finish_run(run, status, message)
    if message:
        run.say(f"[{cfg.name}] {status}: {message}")
    return summary


def finish_run(run: TrainingRun, status: str, message: str | None) -> dict[str, Any]:
    """Write the run's ``summary.json`` with ``status`` (and ``message``), close its trackers."""
    summary = run.summary(status, message)
    for tracker in run.trackers:
        try:
            tracker.finish(summary)
        except Exception:  # noqa: BLE001 - a tracker must not hide the run's own outcome
            if status == "completed":
                raise
    write_json(run.run_dir / "summary.json", summary)
    return summary
