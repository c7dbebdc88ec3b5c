"""``hetreg noise``: inspect label-noise variance distributions."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer

from hetreg.cli._common import fail, handle_errors, help_text

noise_app = typer.Typer(
    help="Inspect label-noise variance distributions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def parse_extra_options(args: list[str]) -> dict[str, Any]:
    """``["--low", "0", "--high=1"]`` → ``{"low": 0, "high": 1}`` (YAML values, dashes → underscores)."""
    from hetreg.experiments.grid import parse_value

    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or len(token) < 3:
            raise ValueError(f"unexpected argument {token!r}; distribution parameters are given as --name value")
        name, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise ValueError(f"--{name} needs a value, e.g. --{name} 1.0")
            value = args[i + 1]
            i += 1
        out[name.replace("-", "_")] = parse_value(value)
        i += 1
    return out


def describe(
    ctx: typer.Context,
    kind: Optional[str] = typer.Option(None, "--kind", help="Distribution kind: uniform, constant, gamma (mixtures: use --json)."),
    spec: Optional[str] = typer.Option(None, "--json", help='The distribution as JSON, e.g. \'{"kind": "uniform", "low": 0, "high": 1}\'.'),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Batch size K at which the effective batch size is estimated."),
    eps: float = typer.Option(0.0, "--eps", min=0.0, help="ε of the BIV weights 1/(σ² + ε), in the units of the distribution."),
    n_batches: int = typer.Option(1000, "--n-batches", min=1, help="Monte Carlo batches for the EBS, quantiles and histogram."),
    bins: int = typer.Option(20, "--bins", min=1, help="Histogram bins."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the draws."),
    as_json: bool = typer.Option(False, "--as-json", help="Print the description as JSON instead of text."),
) -> None:
    """Describe a noise-variance distribution: mean, variance, expected EBS, text histogram.

    Give the distribution either with --kind and its parameters as options (uniform: --low,
    --high; constant: --value; gamma: --shape, --rate) or as one JSON object with --json
    (needed for mixtures). Values are in squared label units. The effective batch size
    EBS = (Σw)²/Σw² of the BIV weights w = 1/(σ² + ε) is estimated over sampled batches.

    Examples:
      hetreg noise describe --kind uniform --low 0 --high 1
      hetreg noise describe --kind gamma --shape 2 --rate 0.5 --batch-size 64 --eps 0.1
      hetreg noise describe --json '{"kind": "mixture", "weights": [0.5, 0.5], "components": [{"kind": "uniform", "low": 0.0, "high": 0.002}, {"kind": "uniform", "low": 7, "high": 23}]}'
    """
    from hetreg.noise import describe_distribution, distribution_from_dict, format_description

    extra = parse_extra_options(list(ctx.args))
    if spec is not None:
        if kind is not None or extra:
            raise fail("give the distribution either with --json or with --kind and its parameters, not both")
        try:
            d = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise fail(f"--json is not valid JSON: {exc}") from None
    elif kind is not None:
        d = {"kind": kind, **extra}
    else:
        raise fail("missing distribution: give --kind (e.g. --kind uniform --low 0 --high 1) or --json")
    dist = distribution_from_dict(d)
    description = describe_distribution(dist, batch_size=batch_size, eps=eps, n_batches=n_batches, seed=seed, bins=bins)
    if as_json:
        typer.echo(json.dumps(description, indent=2))
    else:
        typer.echo(format_description(description))


noise_app.command(
    name="describe",
    help=help_text(describe),
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)(handle_errors(describe))
