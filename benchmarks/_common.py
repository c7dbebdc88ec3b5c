"""Timing helpers shared by the benchmarks in this folder (not part of the library).

The machine these benchmarks run on is usually shared, so absolute times drift from one second
to the next. Every benchmark therefore measures the variants it compares **side by side in the
same run**, interleaved round by round (the order is rotated every round), and reports the
median over rounds of the per-round ratio: a slow-down that hits a whole round cancels out.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path

import torch

# Run from a checkout without installing: make `import hetreg` work from src/.
_SRC = Path(__file__).resolve().parents[1] / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """First and third quartiles (the interquartile range of the per-round ratios)."""
    if len(values) < 2:
        return float(values[0]), float(values[0])
    q = statistics.quantiles(values, n=4)
    return float(q[0]), float(q[2])


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count (``None``: leave it) and return the count in use."""
    if threads is not None:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def interleaved(
    variants: Mapping[str, Callable[[], float]],
    rounds: int,
    *,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Run each variant once per round, rotating the order every round; collect what each returns.

    Each variant is a callable returning the quantity measured in one call (seconds, or a
    normalised time such as seconds per step). ``warmup`` un-recorded rounds run first.

    Returns:
        name -> list of ``rounds`` measurements, in round order (index r of every list belongs to
        the same round, so per-round ratios can be formed with :func:`paired_ratios`).
    """
    names = list(variants)
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup + rounds):
        shift = r % len(names)
        order = names[shift:] + names[:shift]
        if r % 2 == 1:
            order = order[::-1]
        results = {name: variants[name]() for name in order}
        if r >= warmup:
            for name in names:
                out[name].append(results[name])
    return out


def paired_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Per-round ratios ``numerator[r] / denominator[r]``."""
    return [a / b for a, b in zip(numerator, denominator)]


def time_call(fn: Callable[[], object], repeat: int = 1, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per call of ``fn`` over ``repeat`` back-to-back calls, measured with ``clock``.

    ``clock`` is wall time (``time.perf_counter``) by default; single-threaded benchmarks pass
    ``time.process_time`` (CPU time of this process), which does not count the time the process
    waits for a core while other jobs run, and so stays meaningful on a busy machine.
    """
    t0 = clock()
    for _ in range(repeat):
        fn()
    return (clock() - t0) / repeat


def matmul_flops(
    threads: int, *, n: int = 2048, rounds: int = 7, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Measured float32 matrix-multiply throughput, FLOP/s, at ``threads`` threads.

    Times ``torch.mm`` of two ``n x n`` float32 matrices (:math:`2n^3` FLOP per product) with
    ``clock`` (use the same clock as the measurement it is compared with) and returns the
    **best** of ``rounds`` timings: the closest this machine gets to its peak, the natural
    denominator of a "fraction of peak" figure. The caller's thread count is restored.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, generator=gen)
        b = torch.randn(n, n, generator=gen)
        torch.mm(a, b)  # warm-up
        best = min(time_call(lambda: torch.mm(a, b), clock=clock) for _ in range(rounds))
    finally:
        torch.set_num_threads(previous)
    return 2.0 * n**3 / best


def environment_line(threads: int) -> str:
    """One line describing where and when the benchmark ran."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 0
    try:
        load = "load average %.1f" % os.getloadavg()[0]
    except OSError:
        load = "load average n/a"
    return (
        f"{date.today().isoformat()}  {platform.machine()}  {cores} cores  torch {torch.__version__}  "
        f"python {platform.python_version()}  threads {threads}  {load}"
    )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, title: str | None = None) -> None:
    """Print a Markdown table (pasteable into benchmarks/README.md)."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    if title:
        print(f"\n{title}\n")
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    sys.stdout.flush()


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    return str(value)


def base_parser(description: str, *, default_threads: int | None) -> argparse.ArgumentParser:
    """Argument parser with the options every benchmark takes (``--quick``, ``--threads``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short run (about 30 s) with fewer rounds")
    parser.add_argument(
        "--threads",
        type=int,
        default=default_threads,
        help=f"torch intra-op threads (default: {default_threads if default_threads else 'torch default'})",
    )
    return parser
