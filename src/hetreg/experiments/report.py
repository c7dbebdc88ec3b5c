"""Reports over a sweep (or any folder of runs): tables over seeds, paired differences, figures.

:func:`write_report` reads the runs of a results folder, groups them by the swept keys except
the replicate keys (``seed``, ``*.seed`` and the per-stream ``seeds.*``), and writes into the
folder

* ``results.csv``: one row per group: n, mean, std and the 95 % Student-t interval of the
  metric over seeds, plus the paired difference to the baseline (same seed, same other keys);
* ``figures/*.png``: learning curves (mean over seeds with a confidence band, per loss) and a
  bar chart of the final metric;
* ``report.md`` (links the PNGs) and one self-contained ``report.html`` (inline CSS, images
  embedded as base64 data URIs, no external resources).

Paired difference (for group g and baseline b, over the seeds s run for both):
:math:`d_s = m_{g,s} - m_{b,s}`, reported as :math:`\\bar d \\pm t_{0.975,n-1}\\,s_d/\\sqrt n`.
A negative difference means the group has a lower (better) metric than the baseline.
"""

from __future__ import annotations

import base64
import html
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from hetreg.experiments import runstore
from hetreg.experiments.grid import flatten, format_value, get_dotted, value_label
from hetreg.experiments.stats import Estimate, format_estimate, mean_ci

FIGURES_DIR = "figures"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
RESULTS_CSV = "results.csv"
#: The files the last report wrote into a folder, so that the next one replaces only those.
REPORT_MANIFEST = ".hetreg-report.json"
DEFAULT_METRIC = "test_mse_raw"
DEFAULT_BASELINE_KEY = "loss.name"
_MAX_CURVE_FIGURES = 24
# configuration keys that differ between runs without defining an experimental condition
_IGNORED_KEYS = re.compile(r"^(name|tag|notes?|data\.root|train\.num_threads|tracking(\..*)?)$")


def is_replicate_key(key: str) -> bool:
    """Keys averaged over: ``seed``, any key ending in ``.seed``, and the per-stream ``seeds.*``."""
    return key == "seed" or key.endswith(".seed") or key.startswith("seeds.")


@dataclass(frozen=True)
class RunRow:
    """One run reduced to what the report needs: its swept values, status and metric values."""

    run_id: str
    status: str
    values: dict[str, Any]
    metrics: dict[str, float]
    record: runstore.RunRecord | None = None
    error: str | None = None


@dataclass
class ResultSet:
    """The runs of a results folder with the keys that were swept and the order of their values."""

    root: Path
    keys: list[str]
    rows: list[RunRow]
    value_order: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def replicate_keys(self) -> list[str]:
        return [k for k in self.keys if is_replicate_key(k)]

    @property
    def group_keys(self) -> list[str]:
        return [k for k in self.keys if not is_replicate_key(k)]

    def metric_names(self) -> list[str]:
        names: set[str] = set()
        for row in self.rows:
            names.update(row.metrics)
        return sorted(names)

    def resolve_metric(self, metric: str) -> str:
        """``test_mse_raw`` → ``final.test_mse_raw`` (or the exact name); ``ValueError`` lists choices."""
        names = self.metric_names()
        for candidate in (metric, f"final.{metric}"):
            if candidate in names:
                return candidate
        if not names:
            raise ValueError(f"no run in {self.root} has metrics yet (no completed summary.json)")
        short = sorted({n.removeprefix("final.") for n in names if n.startswith("final.")}) or names
        message = f"unknown metric {metric!r}; valid metrics: {', '.join(short)} (after the last evaluation)"
        best = sorted(n for n in names if n.startswith("best."))
        if best:
            message += f"; at the best validation epoch: {', '.join(best)}"
        elif metric.startswith("best."):
            message += "; no run has best.* metrics: they need a validation split (data.val_fraction > 0)"
        raise ValueError(message)

    def sort_key(self, key: str, value: Any) -> tuple[int, str]:
        order = self.value_order.get(key, [])
        for i, v in enumerate(order):
            if format_value(v) == format_value(value):
                return (i, "")
        return (len(order), format_value(value))


def _varying_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Configuration keys whose values differ between runs (the implied sweep).

    A section whose ``name`` differs (``loss``, ``model``, ...) is one key as a whole, so that
    ``{name: mse}`` and ``{name: biv, eps: 0.5}`` are two values of ``loss``.
    """
    flat = [flatten(c) for c in configs if c]
    if len(flat) < 2:
        return []
    keys = sorted(set().union(*flat))
    varying = [k for k in keys if not _IGNORED_KEYS.match(k) and len({format_value(f.get(k)) for f in flat}) > 1]
    sections = sorted({k[: -len(".name")] for k in varying if k.endswith(".name")})
    out: list[str] = []
    for key in varying:
        section = next((p for p in sections if key.startswith(p + ".")), None)
        name = section if section is not None else key
        if name not in out:
            out.append(name)
    return out


def _matches(asked: Any, actual: Any) -> bool:
    """Whether a run's configuration value ``actual`` is the grid value ``asked``.

    Mappings match when every key given in ``asked`` has that value in ``actual`` (the stored
    configuration also holds the defaults the grid value left out).
    """
    if isinstance(asked, Mapping):
        return isinstance(actual, Mapping) and all(k in actual and _matches(v, actual[k]) for k, v in asked.items())
    return format_value(asked) == format_value(actual)


def grid_value(values: Sequence[Any], actual: Any) -> Any:
    """The first of the swept ``values`` that ``actual`` matches (its short form), else ``actual``."""
    for value in values:
        if _matches(value, actual):
            return value
    return actual


def load_results(root: Path) -> ResultSet:
    """Collect the runs under ``root``: a sweep folder, a folder of run folders, or one run folder.

    The swept keys come from ``sweep.json`` when present, else they are the configuration keys
    whose values differ between runs. Without run folders, ``index.parquet``/``index.csv`` is used
    (tables only, no learning curves).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {root} does not exist")
    sweep_data = runstore.read_json(root / "sweep.json")
    grid = sweep_data.get("grid") or []
    keys = [str(axis["key"]) for axis in grid]
    value_order = {str(axis["key"]): list(axis["values"]) for axis in grid}
    if (root / runstore.SUMMARY_FILE).exists() or (root / runstore.CONFIG_FILE).exists():
        records = [runstore.read_run(root)]
    else:
        records = runstore.scan_runs(root)
    if records:
        if not sweep_data:
            keys = _varying_keys([r.config for r in records])
        rows = [
            RunRow(
                run_id=r.run_id,
                status=r.status,
                values={k: grid_value(value_order.get(k, ()), get_dotted(r.config, k)) for k in keys},
                metrics=runstore.summary_metrics(r.summary) if r.status == "completed" else {},
                record=r,
                error=r.error,
            )
            for r in records
        ]
        return ResultSet(root, keys, rows, value_order)
    index = runstore.read_index(root)
    if index is None or index.empty:
        raise FileNotFoundError(
            f"no runs found in {root} (expected runs/*/summary.json or index.parquet); "
            "give the folder written by hetreg sweep or hetreg run"
        )
    fixed = {"run_id", "status", "error", "log"}
    if not keys:
        keys = [c for c in index.columns if c not in fixed and not _looks_like_metric(c)]
    rows = []
    for rec in index.to_dict("records"):
        status = str(rec.get("status"))
        metrics = {
            c: float(v)
            for c, v in rec.items()
            if c not in fixed and c not in keys and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        rows.append(
            RunRow(
                run_id=str(rec["run_id"]),
                status=status,
                values={k: _none_if_nan(rec.get(k)) for k in keys},
                metrics=metrics if status == "completed" else {},
                error=_none_if_nan(rec.get("error")),
            )
        )
    return ResultSet(root, keys, rows, value_order)


def _none_if_nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _looks_like_metric(name: str) -> bool:
    return name.startswith(("final.", "best.")) or name in ("elapsed", "epochs", "epochs_planned", "steps")


# ----------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class GroupSummary:
    """The metric of one group of runs over its replicates (seeds)."""

    values: dict[str, Any]
    estimate: Estimate
    runs: int
    failed: int
    per_seed: dict[tuple[Any, ...], float]


def _group_of(row: RunRow, keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(format_value(row.values.get(k)) for k in keys)


def summarize(results: ResultSet, metric: str, confidence: float = 0.95) -> list[GroupSummary]:
    """Mean, std and Student-t interval of ``metric`` per group (completed, finite runs only)."""
    metric = results.resolve_metric(metric)
    gkeys, rkeys = results.group_keys, results.replicate_keys
    groups: dict[tuple[str, ...], list[RunRow]] = {}
    for row in results.rows:
        groups.setdefault(_group_of(row, gkeys), []).append(row)
    out = []
    for members in groups.values():
        per_seed: dict[tuple[Any, ...], float] = {}
        vals = []
        for row in members:
            v = row.metrics.get(metric)
            if row.status == "completed" and v is not None and math.isfinite(v):
                vals.append(v)
                per_seed[_group_of(row, rkeys)] = v
        out.append(
            GroupSummary(
                values={k: members[0].values.get(k) for k in gkeys},
                estimate=mean_ci(vals, confidence),
                runs=len(members),
                failed=sum(1 for r in members if r.status != "completed"),
                per_seed=per_seed,
            )
        )
    out.sort(key=lambda g: tuple(results.sort_key(k, g.values[k]) for k in gkeys))
    return out


@dataclass(frozen=True)
class PairedDifference:
    """Difference of one group to the baseline group with the same other keys, paired by seed."""

    values: dict[str, Any]
    baseline: dict[str, Any]
    estimate: Estimate
    baseline_mean: float

    @property
    def relative(self) -> float:
        """Mean difference as a fraction of the baseline mean (−0.2 = 20 % lower)."""
        if not self.baseline_mean or not math.isfinite(self.baseline_mean):
            return math.nan
        return self.estimate.mean / self.baseline_mean


def baseline_axis(keys: Sequence[str], baseline_key: str) -> tuple[str, str] | None:
    """The grouping key that carries ``baseline_key``, and the sub-key inside its values.

    ``loss.name`` is carried by the key ``loss.name`` itself (sub-key ``""``) or by a swept
    section ``loss`` whose values are mappings (sub-key ``"name"``). ``None`` when no key does.
    """
    if baseline_key in keys:
        return baseline_key, ""
    for key in keys:
        if baseline_key.startswith(key + "."):
            return key, baseline_key[len(key) + 1 :]
    return None


def axis_value(values: Mapping[str, Any], axis: tuple[str, str]) -> str:
    """The text of the value that ``axis`` (from :func:`baseline_axis`) picks out of a group's values."""
    key, sub = axis
    value = values.get(key)
    if sub:
        value = get_dotted(value, sub) if isinstance(value, Mapping) else None
    return format_value(value)


def paired_differences(
    summaries: Sequence[GroupSummary],
    baseline_key: str,
    baseline: Any,
    confidence: float = 0.95,
) -> list[PairedDifference]:
    """Per group, the seed-paired differences ``metric(group) − metric(baseline)`` and their CI.

    The baseline group of a group has the same values for every grouping key except the one
    carrying ``baseline_key`` (see :func:`baseline_axis`), where its value is ``baseline``. Only
    seeds present (completed, finite) in both are paired. Returns an empty list when no grouping
    key carries ``baseline_key``.
    """
    if not summaries:
        return []
    axis = baseline_axis(list(summaries[0].values), baseline_key)
    if axis is None:
        return []
    base_text = format_value(baseline)
    others = [k for k in summaries[0].values if k != axis[0]]

    def rest(g: GroupSummary) -> tuple[str, ...]:
        return tuple(format_value(g.values[k]) for k in others)

    bases: dict[tuple[str, ...], GroupSummary] = {}
    for g in summaries:
        if axis_value(g.values, axis) == base_text:
            if rest(g) in bases:
                raise ValueError(
                    f"several groups match the baseline {baseline_key}={base_text} "
                    f"({value_label(bases[rest(g)].values[axis[0]])} and {value_label(g.values[axis[0]])}); "
                    f"compare on a key that tells them apart with --baseline-key"
                )
            bases[rest(g)] = g
    out = []
    for g in summaries:
        if axis_value(g.values, axis) == base_text or rest(g) not in bases:
            continue
        b = bases[rest(g)]
        seeds = sorted(set(g.per_seed) & set(b.per_seed))
        diffs = [g.per_seed[s] - b.per_seed[s] for s in seeds]
        out.append(
            PairedDifference(
                values=dict(g.values),
                baseline=dict(b.values),
                estimate=mean_ci(diffs, confidence),
                baseline_mean=mean_ci([b.per_seed[s] for s in seeds], confidence).mean if seeds else math.nan,
            )
        )
    return out


def results_frame(
    summaries: Sequence[GroupSummary], diffs: Sequence[PairedDifference], metric: str
) -> pd.DataFrame:
    """The table written to ``results.csv``: one row per group."""
    by_group = {tuple(format_value(v) for v in d.values.values()): d for d in diffs}
    rows = []
    for g in summaries:
        e = g.estimate
        row: dict[str, Any] = {k: value_label(v) for k, v in g.values.items()}
        row.update(
            metric=metric,
            n=e.n,
            runs=g.runs,
            failed=g.failed,
            mean=e.mean,
            std=e.std,
            ci_low=e.low,
            ci_high=e.high,
        )
        d = by_group.get(tuple(format_value(v) for v in g.values.values()))
        row.update(
            diff_n=d.estimate.n if d else None,
            diff_mean=d.estimate.mean if d else None,
            diff_ci_low=d.estimate.low if d else None,
            diff_ci_high=d.estimate.high if d else None,
            diff_relative=d.relative if d else None,
        )
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- curves


@dataclass(frozen=True)
class Curve:
    """Mean learning curve of one group over its seeds, with a confidence band."""

    values: dict[str, Any]
    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray


def learning_curves(
    results: ResultSet, metric: str, x: str = "epoch", confidence: float = 0.95
) -> list[Curve]:
    """Per group, ``metric`` from ``metrics.jsonl`` against ``x``: mean over seeds and t band.

    At each ``x`` only the runs that logged it count (the band is NaN where n < 2). Failed runs
    are left out; interrupted and incomplete runs contribute the epochs they logged.
    """
    gkeys = results.group_keys
    series: dict[tuple[str, ...], dict[float, list[float]]] = {}
    first: dict[tuple[str, ...], RunRow] = {}
    for row in results.rows:
        if row.record is None or row.status == "failed":
            continue
        for m in row.record.metrics():
            xv, yv = m.get(x), m.get(metric)
            if not isinstance(xv, (int, float)) or not isinstance(yv, (int, float)):
                continue
            g = _group_of(row, gkeys)
            first.setdefault(g, row)
            series.setdefault(g, {}).setdefault(float(xv), []).append(float(yv))
    curves = []
    for g, points in series.items():
        xs = np.array(sorted(points))
        ests = [mean_ci(points[v], confidence) for v in xs]
        curves.append(
            Curve(
                values={k: first[g].values.get(k) for k in gkeys},
                x=xs,
                mean=np.array([e.mean for e in ests]),
                low=np.array([e.low for e in ests]),
                high=np.array([e.high for e in ests]),
                n=np.array([e.n for e in ests]),
            )
        )
    curves.sort(key=lambda c: tuple(results.sort_key(k, c.values[k]) for k in gkeys))
    return curves


# ----------------------------------------------------------------------------------- plots


def _label(values: Mapping[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={value_label(values[k])}" for k in keys) or "all runs"


def new_figure(width: float, height: float) -> Any:
    """A matplotlib figure of ``width`` x ``height`` inches on the Agg canvas (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: Path) -> Path:
    """Save ``fig`` as PNG at ``path`` (creating its folder), tightly laid out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_curves(
    curves: Sequence[Curve], line_key: str | None, metric: str, x: str, out_dir: Path
) -> list[tuple[str, Path]]:
    """One PNG per combination of the non-``line_key`` keys; a line (and band) per ``line_key`` value."""
    if not curves:
        return []
    keys = list(curves[0].values)
    panel_keys = [k for k in keys if k != line_key]
    panels: dict[str, list[Curve]] = {}
    for c in curves:
        panels.setdefault(_label(c.values, panel_keys), []).append(c)
    figures = []
    for i, (title, members) in enumerate(list(panels.items())[:_MAX_CURVE_FIGURES]):
        fig = new_figure(6.4, 4.0)
        ax = fig.add_subplot(1, 1, 1)
        positive = all(np.all(c.mean[np.isfinite(c.mean)] > 0) for c in members)
        for c in members:
            label = value_label(c.values[line_key]) if line_key in c.values else _label(c.values, keys)
            (line,) = ax.plot(c.x, c.mean, marker="o", markersize=3, label=label)
            band = np.isfinite(c.low) & np.isfinite(c.high)
            if band.any():
                low = np.maximum(c.low, c.mean * 1e-3) if positive else c.low
                ax.fill_between(c.x[band], low[band], c.high[band], color=line.get_color(), alpha=0.2)
        finite = np.concatenate([c.mean[np.isfinite(c.mean)] for c in members])
        if positive and finite.size and finite.max() / max(finite.min(), 1e-300) > 20:
            ax.set_yscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel(metric)
        ax.set_title(title if panel_keys else f"{metric}: mean over seeds, 95 % CI band", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(title=line_key, fontsize=8)
        path = save_figure(fig, out_dir / f"curves_{i + 1:02d}.png")
        figures.append((f"Learning curves: {title}" if panel_keys else "Learning curves", path))
    return figures


def plot_bars(summaries: Sequence[GroupSummary], metric: str, out_dir: Path) -> tuple[str, Path] | None:
    """Bar chart of the mean metric per group with 95 % CI error bars."""
    if not summaries:
        return None
    keys = list(summaries[0].values)
    labels = [", ".join(value_label(g.values[k]) for k in keys) or "all runs" for g in summaries]
    means = np.array([g.estimate.mean for g in summaries])
    err = np.array([g.estimate.half_width if math.isfinite(g.estimate.half_width) else 0.0 for g in summaries])
    height = max(2.5, 0.35 * len(summaries) + 1.2)
    fig = new_figure(6.4, height)
    ax = fig.add_subplot(1, 1, 1)
    pos = np.arange(len(summaries))
    ax.barh(pos, np.nan_to_num(means), xerr=err, color="#4c78a8", ecolor="black", capsize=3)
    ax.set_yticks(pos)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} (mean, 95 % CI)")
    ax.set_title(", ".join(keys) if keys else metric, fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    return ("Final metric per group", save_figure(fig, out_dir / "bars.png"))


# --------------------------------------------------------------------------------- writing


@dataclass
class Report:
    """What :func:`write_report` produced."""

    results: ResultSet
    metric: str
    summaries: list[GroupSummary]
    diffs: list[PairedDifference]
    table: pd.DataFrame
    figures: list[tuple[str, Path]]
    paths: dict[str, Path]
    baseline_key: str
    baseline: Any


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}g}"


def _summary_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    keys = report.results.group_keys
    header = [*keys, "n", "mean ± 95 % CI", "std", "CI low", "CI high"]
    rows = []
    for g in report.summaries:
        e = g.estimate
        n = f"{e.n}" + (f" ({g.failed} not completed)" if g.failed else "")
        rows.append([*(value_label(g.values[k]) for k in keys), n, format_estimate(e), _fmt(e.std), _fmt(e.low), _fmt(e.high)])
    return header, rows


def _diff_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    keys = report.results.group_keys
    header = [*keys, "pairs", f"Δ vs {report.baseline_key}={format_value(report.baseline)}", "CI low", "CI high", "relative"]
    rows = []
    for d in report.diffs:
        e = d.estimate
        rel = "–" if not math.isfinite(d.relative) else f"{100 * d.relative:+.1f} %"
        rows.append([*(value_label(d.values[k]) for k in keys), str(e.n), format_estimate(e), _fmt(e.low), _fmt(e.high), rel])
    return header, rows


def _problem_rows(report: Report) -> list[list[str]]:
    rows = []
    for r in report.results.rows:
        if r.status != "completed":
            log = str(r.record.log_path) if r.record is not None and r.record.log_path.exists() else "–"
            rows.append([r.run_id, r.status, _label(r.values, report.results.keys), r.error or "–", log])
    return rows


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in row] for row in [list(header), *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines)


def _counts(results: ResultSet) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in results.rows:
        out[r.status] = out.get(r.status, 0) + 1
    return out


def render_markdown(report: Report, out_dir: Path) -> str:
    """The Markdown report (figures linked as relative paths)."""
    res = report.results
    counts = ", ".join(f"{n} {s}" for s, n in sorted(_counts(res).items()))
    parts = [
        "# hetreg report",
        "",
        f"Results folder: `{res.root}`  ",
        f"Metric: `{report.metric}` (lower is better); runs: {counts}.  ",
        f"Grouped by: {', '.join(res.group_keys) or '(nothing swept)'}; "
        f"averaged over: {', '.join(res.replicate_keys) or '(no seed key swept)'}.  ",
        "Intervals: 95 % Student-t over seeds. Paired differences: same seed and other keys.",
        "",
        "## Results",
        "",
        _md_table(*_summary_rows(report)),
    ]
    if report.diffs:
        parts += ["", f"## Paired difference to {report.baseline_key}={format_value(report.baseline)}", ""]
        parts += ["Negative values: lower metric than the baseline on the same seeds.", ""]
        parts.append(_md_table(*_diff_rows(report)))
    problems = _problem_rows(report)
    if problems:
        parts += ["", "## Runs not completed", "", _md_table(["run", "status", "values", "error", "log"], problems)]
    if report.figures:
        parts += ["", "## Figures", ""]
        for title, path in report.figures:
            parts += [f"![{title}]({path.relative_to(out_dir).as_posix()})", ""]
    parts += ["", f"_Generated {time.strftime('%Y-%m-%d %H:%M:%S')}._", ""]
    return "\n".join(parts)


_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;border-bottom:2px solid #4c78a8;padding-bottom:.2em}
h2{font-size:1.25em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#eef2f7}
td.k,th.k{text-align:left}
tr:nth-child(even) td{background:#fafafa}
tr.failed td{background:#fdecea}
.meta{color:#555;font-size:.92em}
figure{margin:1em 0}
figure img{max-width:100%;border:1px solid #ddd}
figcaption{color:#555;font-size:.9em}
code{background:#f3f3f3;padding:0 .2em}
"""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], key_cols: int, table_id: str, row_class: str = "") -> str:
    def cell(tag: str, i: int, text: str) -> str:
        cls = ' class="k"' if i < key_cols else ""
        return f"<{tag}{cls}>{html.escape(text)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join(
        f'<tr{f" class={chr(34)}{row_class}{chr(34)}" if row_class else ""}>' + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(report: Report) -> str:
    """The self-contained HTML report (inline CSS, images as base64 data URIs, no scripts)."""
    res = report.results
    keys = res.group_keys
    counts = ", ".join(f"{n} {s}" for s, n in sorted(_counts(res).items()))
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>hetreg report: {e(res.root.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>hetreg report</h1>",
        f'<p class="meta">Results folder: <code>{e(str(res.root))}</code><br>',
        f"Metric: <code>{e(report.metric)}</code> (lower is better); runs: {e(counts)}.<br>",
        f"Grouped by: {e(', '.join(keys) or '(nothing swept)')}; averaged over: "
        f"{e(', '.join(res.replicate_keys) or '(no seed key swept)')}.<br>",
        "Intervals: 95 % Student-t over seeds. Paired differences: same seed and other keys.</p>",
        "<h2>Results</h2>",
        _html_table(*_summary_rows(report), key_cols=len(keys), table_id="results"),
    ]
    if report.diffs:
        parts.append(f"<h2>Paired difference to {e(report.baseline_key)}={e(format_value(report.baseline))}</h2>")
        parts.append("<p>Negative values: lower metric than the baseline on the same seeds.</p>")
        parts.append(_html_table(*_diff_rows(report), key_cols=len(keys), table_id="paired"))
    problems = _problem_rows(report)
    if problems:
        parts.append("<h2>Runs not completed</h2>")
        parts.append(_html_table(["run", "status", "values", "error", "log"], problems, key_cols=5, table_id="problems", row_class="failed"))
    if report.figures:
        parts.append("<h2>Figures</h2>")
        for title, path in report.figures:
            parts.append(
                f'<figure><img src="{_data_uri(path)}" alt="{e(title)}"><figcaption>{e(title)}</figcaption></figure>'
            )
    parts.append(f'<p class="meta">Generated {e(time.strftime("%Y-%m-%d %H:%M:%S"))}.</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def build_report(
    root: Path,
    *,
    metric: str = DEFAULT_METRIC,
    baseline: Any = "mse",
    baseline_key: str = DEFAULT_BASELINE_KEY,
    confidence: float = 0.95,
) -> Report:
    """Load the runs of ``root`` and compute the tables (no files written)."""
    results = load_results(Path(root))
    metric_name = results.resolve_metric(metric)
    summaries = summarize(results, metric_name, confidence)
    axis = baseline_axis(results.group_keys, baseline_key)
    if axis is not None:
        present = {axis_value(g.values, axis) for g in summaries}
        if format_value(baseline) not in present:
            raise ValueError(
                f"baseline {baseline_key}={format_value(baseline)} not found; valid choices: {', '.join(sorted(present))}"
            )
    diffs = paired_differences(summaries, baseline_key, baseline, confidence)
    table = results_frame(summaries, diffs, metric_name)
    return Report(results, metric_name, summaries, diffs, table, [], {}, baseline_key, baseline)


def write_report(
    root: Path,
    out_dir: Path | None = None,
    *,
    metric: str = DEFAULT_METRIC,
    baseline: Any = "mse",
    baseline_key: str = DEFAULT_BASELINE_KEY,
    curve_x: str = "epoch",
    confidence: float = 0.95,
) -> Report:
    """Build the report of ``root`` and write ``results.csv``, figures, ``report.md``, ``report.html``.

    Args:
        root: results folder (sweep folder, folder of runs, or one run folder).
        out_dir: where to write (default ``root``).
        metric: summary metric, e.g. ``test_mse_raw`` (read as ``final.test_mse_raw``) or
            ``best.val_mse``.
        baseline: value of ``baseline_key`` that the paired differences compare against.
        baseline_key: the key whose values are compared (default ``loss.name``).
        curve_x: the ``metrics.jsonl`` field on the x axis of the learning curves.
    """
    report = build_report(root, metric=metric, baseline=baseline, baseline_key=baseline_key, confidence=confidence)
    out = Path(out_dir) if out_dir is not None else Path(root)
    previous = _claim_report_folder(out, Path(root))
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / FIGURES_DIR
    curve_metric = report.metric.split(".", 1)[1] if report.metric.startswith(("final.", "best.")) else report.metric
    curves = learning_curves(report.results, curve_metric, x=curve_x, confidence=confidence)
    axis = baseline_axis(report.results.group_keys, baseline_key)
    line_key = axis[0] if axis is not None else None
    report.figures = plot_curves(curves, line_key, curve_metric, curve_x, fig_dir)
    bars = plot_bars(report.summaries, report.metric, fig_dir)
    if bars is not None:
        report.figures.append(bars)
    csv_path = out / RESULTS_CSV
    runstore.atomic_write_text(csv_path, report.table.to_csv(index=False))
    md_path = out / REPORT_MD
    runstore.atomic_write_text(md_path, render_markdown(report, out))
    html_path = out / REPORT_HTML
    runstore.atomic_write_text(html_path, render_html(report))
    report.paths = {"csv": csv_path, "markdown": md_path, "html": html_path, "figures": fig_dir}
    written = {RESULTS_CSV, REPORT_MD, REPORT_HTML, *(path.relative_to(out).as_posix() for _, path in report.figures)}
    for stale in sorted(previous - written):  # figures of the previous report that this one does not have
        if stale.startswith(f"{FIGURES_DIR}/"):
            (out / stale).unlink(missing_ok=True)
    runstore.write_json(out / REPORT_MANIFEST, {"files": sorted(written)})
    return report


def _claim_report_folder(out: Path, root: Path) -> set[str]:
    """The files a previous report wrote into ``out`` (its manifest), after checking that this
    report overwrites nothing else: in a folder other than the results folder itself, an existing
    ``report.md``, ``report.html``, ``results.csv`` or figure that no hetreg report wrote there is
    the user's, and the report is refused (``FileExistsError``) before anything is written."""
    listed = runstore.read_json(out / REPORT_MANIFEST).get("files")  # {} when missing or unreadable
    previous = {f for f in listed if isinstance(f, str)} if isinstance(listed, list) else set()
    if out.exists() and out.resolve() != root.resolve():
        targets = [out / RESULTS_CSV, out / REPORT_MD, out / REPORT_HTML]
        if (out / FIGURES_DIR).is_dir():
            targets += sorted(p for p in (out / FIGURES_DIR).iterdir() if p.is_file())
        foreign = [t.relative_to(out).as_posix() for t in targets if t.exists() and t.relative_to(out).as_posix() not in previous]
        if foreign:
            more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
            raise FileExistsError(
                f"{out} already holds {foreign[0]}{more}, which no hetreg report wrote there; nothing was "
                "written. Choose another --out, or move those files away."
            )
    return previous
