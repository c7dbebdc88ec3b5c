"""Pieces shared by the BIV and IV command-line compatibility layers.

* :class:`CompatError`: a user error on the original command line (exit code 2, one line).
* :class:`Fields`: one comma-separated option (``"TAG,SEED,..."``) read position by position,
  with typed readers whose messages name the option, the position and the expected format.
* :class:`ResolvedExperiment`: what a command line means, in hetreg terms, plus the dry-run
  JSON view of it.
* noise helpers: variance distributions built with :mod:`hetreg.noise` (raw label units),
  the component weights of the original interval rule, and the JSON view of a distribution.
* :func:`run_cli`: the common front end (argument parsing, ``--dry-run``, config export, run).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, NoReturn, Sequence

#: Rows in the public releases read by hetreg (UTKFace aligned & cropped, UCI red + white wine,
#: UCI hourly bike sharing). The original hard-coded 20000, 6491 and 17379.
DATASET_ROWS: dict[str, int] = {"utkface": 23708, "wine": 6497, "bike": 17379}
#: Test sizes hard-coded by the original ``settings.py`` (last rows of the data).
TEST_SIZES: dict[str, int] = {"utkface": 4000, "wine": 2491, "bike": 3379}
#: Epochs of the original ``settings.py``.
EPOCHS: dict[str, int] = {"utkface": 20, "wine": 20, "bike": 100}
#: Original defaults (``settings.default_values`` and the ``--extra_exp`` default).
DEFAULT_EPS = 0.1
DEFAULT_THRESHOLD = 1.0
DEFAULT_BATCH_SIZE = 256
DEFAULT_LR = 0.01


class CompatError(ValueError):
    """An invalid original command line. The CLI prints it on one line and exits with code 2."""


def fail(message: str) -> NoReturn:
    raise CompatError(message)


def one_line(text: str) -> str:
    """Collapse whitespace and line breaks so that every error fits on one line."""
    return " ".join(str(text).split())


# --------------------------------------------------------------------------- positional fields


@dataclass(frozen=True)
class Fields:
    """One comma-separated option of the original command line.

    Attributes:
        option: the option name as typed (``"--experiment_settings"``).
        raw: the option value as typed.
        names: the name of each position, used in messages (``("TAG", "SEED", ...)``).
        values: the values, split on ``,`` and stripped of surrounding spaces (the original
            ``float()``/``int()`` calls accepted ``" 5000"``).
    """

    option: str
    raw: str
    names: tuple[str, ...]
    values: tuple[str, ...]

    @classmethod
    def split(cls, option: str, raw: str, names: Sequence[str]) -> "Fields":
        return cls(option, raw, tuple(names), tuple(v.strip() for v in raw.split(",")))

    def renamed(self, names: Sequence[str]) -> "Fields":
        """The same values read with another layout (``--parameters`` depends on the mode)."""
        return Fields(self.option, self.raw, tuple(names), self.values)

    @property
    def layout(self) -> str:
        return ",".join(self.names)

    def label(self, i: int) -> str:
        name = self.names[i] if i < len(self.names) else f"#{i}"
        return f"{self.option} position {i} ({name})"

    def has(self, i: int) -> bool:
        return i < len(self.values)

    def text(self, i: int) -> str:
        if not self.has(i):
            fail(
                f"{self.option}={self.raw!r}: missing position {i} ({self.names[i]}); "
                f"expected {self.option}=\"{self.layout}\""
            )
        return self.values[i]

    def exactly(self, n: int, why: str) -> None:
        """Refuse values beyond position ``n - 1`` (they would change the meaning silently)."""
        if len(self.values) > n:
            fail(
                f"{self.option}={self.raw!r}: {len(self.values)} values, but {why} takes exactly {n}: "
                f"{self.option}=\"{self.layout}\""
            )

    def boolean(self, i: int) -> bool:
        value = self.text(i)
        if value == "True":
            return True
        if value == "False":
            return False
        fail(f"{self.label(i)} must be True or False (exactly), got {value!r}")

    def number(self, i: int, *, minimum: float | None = None, maximum: float | None = None,
               strict_minimum: bool = False, what: str = "") -> float:
        """A finite float (plain or scientific notation), optionally within bounds."""
        value = self.text(i)
        try:
            x = float(value)
        except ValueError:
            fail(f"{self.label(i)} must be a number, got {value!r}")
        if not math.isfinite(x):
            fail(f"{self.label(i)} must be a finite number, got {value!r}")
        too_low = minimum is not None and (x <= minimum if strict_minimum else x < minimum)
        too_high = maximum is not None and x > maximum
        if too_low or too_high:
            if minimum is not None and maximum is not None:
                bound = f"in [{minimum:g}, {maximum:g}]"
            elif minimum is not None:
                bound = f"> {minimum:g}" if strict_minimum else f">= {minimum:g}"
            else:
                bound = f"<= {maximum:g}"
            extra = f" ({what})" if what else ""
            fail(f"{self.label(i)}{extra} must be {bound}, got {value}")
        return x

    def integer(self, i: int, *, minimum: int | None = None) -> int:
        """A whole number; ``"7159"`` and ``"7159.0"`` are both 7159 (the original parsed floats)."""
        value = self.text(i)
        try:
            x = float(value)
        except ValueError:
            fail(f"{self.label(i)} must be a whole number, got {value!r}")
        if not math.isfinite(x) or x != int(x):
            fail(f"{self.label(i)} must be a whole number, got {value!r}")
        n = int(x)
        if minimum is not None and n < minimum:
            fail(f"{self.label(i)} must be >= {minimum}, got {value}")
        return n

    def choice(self, i: int, choices: Sequence[str]) -> str:
        value = self.text(i)
        if value not in choices:
            fail(f"{self.label(i)}: unknown value {value!r}; valid values: {', '.join(choices)}")
        return value


# --------------------------------------------------------------------------- resolved experiment


@dataclass(frozen=True)
class ResolvedExperiment:
    """An original command line translated into hetreg terms.

    Units: ``noise`` (the distribution of the per-label noise variance σ²) and ``threshold``
    are in **raw** squared label units (years² for UTKFace); when ``normalize`` is on the
    trainer divides σ² and the threshold by :math:`s_y^2` (clean training-label variance).
    ``eps`` is used as given, in the units of the variance handed to the loss (normalised
    units when ``normalize`` is on), as in the original.

    Attributes:
        source: ``"biv"`` or ``"iv"`` (which command line it came from).
        tag: the experiment tag (first position), used to name the run folder.
        dataset: hetreg dataset name (``utkface``, ``wine``, ``bike``).
        model: hetreg model name (``cnn``, ``resnet18``, ``mlp``).
        model_options: model options (the MLP preset ``wine`` or ``bike``).
        loss: hetreg loss name (``mse``, ``cutoff``, ``iv``, ``biv``).
        eps: ε of ``iv``/``biv``, else ``None``.
        threshold: τ of ``cutoff`` in raw units, else ``None``.
        seed, train_size, test_size, normalize, batch_size, lr, epochs: as named.
        variance_disturbance: d of the noisy variance estimate |σ² + N(0, (σ²√d/3)²)|.
        noise: a :mod:`hetreg.noise` distribution of σ², or ``None`` for clean labels.
        notes: remarks for the user (ignored values, placeholders), printed on stderr.
    """

    source: str
    tag: str
    dataset: str
    model: str
    model_options: Mapping[str, Any]
    loss: str
    eps: float | None
    threshold: float | None
    seed: int
    train_size: int
    test_size: int
    normalize: bool
    batch_size: int
    lr: float
    epochs: int
    variance_disturbance: float
    noise: Any
    notes: tuple[str, ...] = field(default=())

    def to_dry_run(self) -> dict[str, Any]:
        """The dry-run JSON object (exact key set of the compatibility contract)."""
        return {
            "dataset": self.dataset,
            "model": self.model,
            "loss": self.loss,
            "eps": self.eps,
            "threshold": self.threshold,
            "seed": self.seed,
            "train_size": self.train_size,
            "normalize": self.normalize,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "epochs": self.epochs,
            "variance_disturbance": self.variance_disturbance,
            "noise": None if self.noise is None else {"distribution": distribution_json(self.noise.to_dict())},
        }


def check_train_size(dataset: str, train_size: int, where: str) -> None:
    """The original asserted ``train_size + test_size <= dataset_size``; so does this layer."""
    limit = DATASET_ROWS[dataset] - TEST_SIZES[dataset]
    if train_size > limit:
        fail(
            f"{where}: train size {train_size} is too large for {dataset}: {DATASET_ROWS[dataset]} rows "
            f"minus the {TEST_SIZES[dataset]} test rows leave at most {limit}"
        )


# --------------------------------------------------------------------------- noise helpers


def interval_weights(n: int, p: float) -> list[float]:
    """Component probabilities of the original interval rule (``generate_intervals``).

    With one component the probability is 1 (p is ignored). Otherwise the first
    :math:`\\lceil n/2 \\rceil` components share probability p equally and the remaining
    :math:`\\lfloor n/2 \\rfloor` share :math:`1-p` equally; for n = 2 that is ``[p, 1 - p]``.
    """
    if n < 1:
        raise ValueError(f"need at least one component, got {n}")
    if n == 1:
        return [1.0]
    low, high = (n + 1) // 2, n // 2
    return [p / low] * low + [(1.0 - p) / high] * high


def mixture(components: Sequence[Any], weights: Sequence[float]) -> Any:
    """A :class:`hetreg.noise.Mixture` of ``components``; a single component is returned as it is."""
    from hetreg import noise

    if len(components) == 1:
        return components[0]
    return noise.Mixture(tuple(components), tuple(weights))


def construct(where: str, build: Callable[[], Any]) -> Any:
    """Call a :mod:`hetreg.noise` constructor; re-raise its ``ValueError`` as a CLI error."""
    try:
        return build()
    except CompatError:
        raise
    except ValueError as exc:
        fail(f"{where}: {one_line(str(exc))}")


def distribution_json(d: Mapping[str, Any]) -> dict[str, Any]:
    """The dry-run view of ``Distribution.to_dict()``: uniform, gamma or mixture only.

    A point mass (``constant``) is shown as a uniform with ``low == high``.
    """
    kind = d.get("kind")
    if kind == "uniform":
        return {"kind": "uniform", "low": float(d["low"]), "high": float(d["high"])}
    if kind == "constant":
        value = float(d["value"])
        return {"kind": "uniform", "low": value, "high": value}
    if kind == "gamma":
        return {"kind": "gamma", "shape": float(d["shape"]), "rate": float(d["rate"])}
    if kind == "mixture":
        return {
            "kind": "mixture",
            "weights": [float(w) for w in d["weights"]],
            "components": [distribution_json(c) for c in d["components"]],
        }
    raise ValueError(f"unexpected distribution kind {kind!r} in {dict(d)!r}")


# --------------------------------------------------------------------------- command-line front end


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as :class:`CompatError` (one line, exit code 2)."""

    def error(self, message: str) -> NoReturn:  # noqa: D401 - argparse hook
        fail(f"{message} (see {self.prog} --help)")


def make_parser(prog: str, description: str, epilog: str, original: Sequence[tuple[str, str, str]]) -> argparse.ArgumentParser:
    """A parser with the original options (``(flag, default, help)``) and the hetreg options."""
    parser = _Parser(
        prog=prog,
        description=description,
        epilog=epilog,
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group = parser.add_argument_group("original options (comma-separated positions)")
    for flag, default, text in original:
        group.add_argument(flag, default=default, help=f"{text} (default {default!r})")
    group = parser.add_argument_group("hetreg options (not in the original)")
    group.add_argument("--data-dir", default=None, help="data folder (default: $HETREG_DATA, then the per-user data folder)")
    group.add_argument("--epochs", type=int, default=None, help="override the number of epochs (default: 20 for utkf and wine, 100 for bike)")
    group.add_argument("--out", default=None, help="run folder (default: a new folder under ./hetreg-runs/)")
    group.add_argument("--dry-run", action="store_true", help="print the resolved experiment as one JSON object and exit without loading data")
    group.add_argument("--config-out", default=None, metavar="FILE", help="with --dry-run: write the equivalent `hetreg train` config (YAML) to FILE instead of stderr; never overwrites")
    group.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="change the translated hetreg config (repeatable), e.g. --set data.options.image_size=64 "
        "or --set train.eval_every=50; the dry-run JSON still shows the original command line",
    )
    return parser


@dataclass(frozen=True)
class RunOptions:
    """The hetreg options of both command lines."""

    data_dir: str | None = None
    epochs: int | None = None
    out: str | None = None
    dry_run: bool = False
    config_out: str | None = None
    overrides: tuple[str, ...] = ()

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> "RunOptions":
        if ns.epochs is not None and ns.epochs < 1:
            fail(f"--epochs must be >= 1, got {ns.epochs}")
        if ns.config_out is not None and not ns.dry_run:
            fail("--config-out is written by --dry-run; add --dry-run (or drop --config-out)")
        return cls(
            data_dir=ns.data_dir,
            epochs=ns.epochs,
            out=ns.out,
            dry_run=ns.dry_run,
            config_out=ns.config_out,
            overrides=tuple(ns.overrides),
        )


def run_cli(
    argv: Sequence[str],
    parse: Callable[[Sequence[str]], tuple[ResolvedExperiment, RunOptions]],
) -> int:
    """Parse, resolve and then dry-run or run; user errors print one line and return 2."""
    try:
        try:
            resolved, options = parse(list(argv))
        except SystemExit as exc:  # --help
            return int(exc.code or 0)
        if options.dry_run:
            return dry_run(resolved, options)
        return run(resolved, options)
    except CompatError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 2


def dry_run(resolved: ResolvedExperiment, options: RunOptions) -> int:
    """Print the resolved experiment as one JSON object and the equivalent config as YAML."""
    from hetreg.compat.config import config_yaml

    payload = json.dumps(resolved.to_dry_run())
    yaml_text = config_yaml(resolved, options)
    comments = "".join(f"# note: {one_line(n)}\n" for n in resolved.notes)
    if options.config_out:
        path = Path(options.config_out)
        if path.exists():
            fail(f"--config-out {path} already exists; choose a new file name (it is never overwritten)")
        try:
            with path.open("x", encoding="utf-8") as fh:
                fh.write(comments + yaml_text)
        except OSError as exc:
            fail(f"--config-out {path}: cannot write the file: {one_line(str(exc))}")
        for n in resolved.notes:
            print(f"note: {one_line(n)}", file=sys.stderr)
    else:
        sys.stderr.write(comments + yaml_text)
    print(payload)
    return 0


def run(resolved: ResolvedExperiment, options: RunOptions) -> int:
    """Build the experiment config, train, and print the final test MSE and the run folder."""
    from hetreg.compat.config import run_resolved

    for n in resolved.notes:
        print(f"note: {one_line(n)}", file=sys.stderr)
    return run_resolved(resolved, options)
