"""Helpers of the compat tests: run a command line in-process, compute expected distributions by hand."""

from __future__ import annotations

import json
import math
import shlex
from typing import Any, Callable

import pytest

DRY_RUN_KEYS = {
    "dataset",
    "model",
    "loss",
    "eps",
    "threshold",
    "seed",
    "train_size",
    "normalize",
    "batch_size",
    "lr",
    "epochs",
    "variance_disturbance",
    "noise",
}


def argv_of(command: str) -> list[str]:
    """The arguments of a shell command line after ``python main.py`` (or ``hetreg compat biv``)."""
    words = shlex.split(command)
    if words[:2] == ["python", "main.py"]:
        return words[2:]
    return words


def dry_run(cli: Callable[[list[str]], int], command: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """Run ``command --dry-run`` in-process and return its JSON object (stdout must hold exactly one)."""
    code = cli(argv_of(command) + ["--dry-run"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    payload = json.loads(lines[0])
    assert set(payload) == DRY_RUN_KEYS
    return payload


def failure(cli: Callable[[list[str]], int], command: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run an invalid command line; check exit code 2 and a one-line message; return the message."""
    code = cli(argv_of(command) + ["--dry-run"])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def uniform(low: float, high: float) -> dict[str, Any]:
    return {"kind": "uniform", "low": low, "high": high}


def from_mean_var(mu: float, v: float) -> dict[str, Any]:
    """U(μ − √(3v), μ + √(3v)), computed here independently of hetreg."""
    half = math.sqrt(3.0 * v)
    return uniform(mu - half, mu + half)


def max_hetero(mu: float, s: float) -> dict[str, Any]:
    """Variance s·μ²/3: bounds μ(1 ± √s)."""
    return uniform(mu * (1 - math.sqrt(s)), mu * (1 + math.sqrt(s)))


def mixture(weights: list[float], *components: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "mixture", "weights": weights, "components": list(components)}


def assert_distribution(got: Any, expected: Any) -> None:
    """Recursive comparison with a relative tolerance on every number."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), (got, expected)
        for key in expected:
            assert_distribution(got[key], expected[key])
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), (got, expected)
        for g, e in zip(got, expected):
            assert_distribution(g, e)
    elif isinstance(expected, float) or (isinstance(expected, int) and not isinstance(expected, bool)):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), got
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-12), (got, expected)
    else:
        assert got == expected
