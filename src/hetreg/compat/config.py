"""From a resolved original command line to a hetreg :class:`ExperimentConfig`, and running it.

The mapping (see ``docs/compat.md``):

* ``data``: the dataset, ``normalize``, ``train_size`` from the command line, the original test
  size, no validation split (the original had none), ``root`` from ``--data-dir``;
* ``noise``: the variance distribution (raw label units) and the variance disturbance d;
* ``model``: ``cnn``, ``resnet18`` or ``mlp`` with the ``wine``/``bike`` preset;
* ``loss``: ``mse``, ``cutoff`` (threshold in raw units; the trainer divides it by s_y² when
  normalising), ``iv`` or ``biv`` with ε;
* ``optimizer``: Adam with the command-line learning rate;
* ``train``: epochs, batch size, evaluation once per epoch in eval mode, batches in a fixed
  order without dropping the last one (the paper-era data loaders).
"""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from hetreg.compat._common import ResolvedExperiment, RunOptions, fail, one_line


#: Loader options that reproduce the original inputs: UTKFace images at their full 200x200 size.
DATA_OPTIONS: dict[str, dict[str, Any]] = {"utkface": {"image_size": 200}}


def experiment_config_dict(resolved: ResolvedExperiment, options: RunOptions) -> dict[str, Any]:
    """The ``hetreg train`` configuration of a resolved command line, as plain data (before ``--set``)."""
    loss: dict[str, Any] = {"name": resolved.loss}
    if resolved.eps is not None:
        loss["eps"] = resolved.eps
    if resolved.threshold is not None:
        loss["threshold"] = resolved.threshold
    return {
        "name": resolved.tag or resolved.source,
        "seed": resolved.seed,
        "data": {
            "name": resolved.dataset,
            "root": options.data_dir,
            "options": dict(DATA_OPTIONS.get(resolved.dataset, {})),
            "normalize": resolved.normalize,
            "val_fraction": 0.0,
            "train_size": resolved.train_size,
            "test_size": resolved.test_size,
        },
        "noise": {
            "distribution": None if resolved.noise is None else resolved.noise.to_dict(),
            "disturbance": resolved.variance_disturbance,
        },
        "model": {"name": resolved.model, "options": dict(resolved.model_options)},
        "loss": loss,
        "optimizer": {"name": "adam", "lr": resolved.lr},
        "train": {
            "epochs": resolved.epochs,
            "batch_size": resolved.batch_size,
            "eval_every": "epoch",
            "shuffle": False,
            "drop_last": False,
        },
    }


def to_experiment_config(resolved: ResolvedExperiment, options: RunOptions) -> Any:
    """The validated :class:`hetreg.experiments.config.ExperimentConfig` of a resolved command line,
    with the ``--set KEY=VALUE`` overrides applied.

    Raises:
        CompatError: the configuration is refused by the schema or an override is invalid (the
            message names the key).
    """
    from pydantic import ValidationError

    from hetreg.experiments.config import ConfigError, ExperimentConfig, apply_overrides, format_validation_error

    try:
        cfg = ExperimentConfig.model_validate(experiment_config_dict(resolved, options))
    except ValidationError as exc:
        fail(f"the translated configuration is not valid: {one_line(format_validation_error(exc))}")
    if not options.overrides:
        return cfg
    try:
        return apply_overrides(cfg, list(options.overrides))
    except ConfigError as exc:
        fail(f"--set: {one_line(str(exc))}")


def config_yaml(resolved: ResolvedExperiment, options: RunOptions) -> str:
    """The equivalent ``hetreg train`` configuration as YAML text (validated first)."""
    from hetreg.experiments.config import config_to_dict

    cfg = to_experiment_config(resolved, options)
    header = f"# hetreg train configuration translated from the original {resolved.source.upper()} command line\n"
    return header + yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False, allow_unicode=True)


def _new_run_dir(tag: str) -> Path:
    """A new folder ``./hetreg-runs/<tag>_<6 hex digits>`` (the original used ``<tag>_<uuid>``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", tag).strip("._") or "run"
    root = Path.cwd() / "hetreg-runs"
    while True:
        candidate = root / f"{safe}_{uuid.uuid4().hex[:6]}"
        if not candidate.exists():
            return candidate


UNITS = {"utkface": "years²", "wine": "quality points²", "bike": "counts²"}


def run_resolved(resolved: ResolvedExperiment, options: RunOptions) -> int:
    """Train the experiment; print the final test MSE (normalised and raw) and the run folder.

    Returns:
        0 when the run completed, 1 when it failed (missing data, a diverging loss), 2 for a
        run folder that already holds a run.
    """
    from hetreg.train import RunExistsError, run_experiment

    cfg = to_experiment_config(resolved, options)
    run_dir = Path(options.out) if options.out else _new_run_dir(resolved.tag)
    try:
        summary = run_experiment(cfg, run_dir)
    except RunExistsError as exc:
        fail(f"--out: {one_line(str(exc))}")
    except (OSError, ValueError) as exc:  # missing data files, data that do not fit the loss
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    final = summary.get("final") or {}
    units = UNITS.get(resolved.dataset, "label units²")
    if summary.get("status") != "completed":
        print(f"error: the run did not complete ({summary.get('status')}): {one_line(str(summary.get('message')))}",
              file=sys.stderr)
    if final.get("test_mse") is not None:
        print(f"final test MSE (normalised labels): {final['test_mse']:.6g}")
    if final.get("test_mse_raw") is not None:
        print(f"final test MSE ({units}): {final['test_mse_raw']:.6g}")
    print(f"run folder: {run_dir}")
    return 0 if summary.get("status") == "completed" else 1
