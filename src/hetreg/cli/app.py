"""The ``hetreg`` command line: run, train, sweep, report, datasets, noise describe."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from hetreg import __version__
from hetreg.cli._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    STATE,
    check_fresh_folder,
    err_console,
    fail,
    handle_errors,
    help_text,
    info,
    is_quiet,
    make_table,
    new_run_folder,
    print_table,
)
from hetreg.cli.compat import compat_app
from hetreg.cli.noise import noise_app

app = typer.Typer(
    name="hetreg",
    help=(
        "Deep regression with noisy, heteroscedastic or imbalanced labels: train, sweep and report.\n\n"
        "Start with:  hetreg run   (the main job: MSE vs IV vs BIV vs cutoff on heteroscedastic noise)"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(noise_app, name="noise")
app.add_typer(compat_app, name="compat")


def command(name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a command whose help text is its docstring (rich markup escaped) and whose
    user errors end in one line and exit code 2."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        wrapped = handle_errors(fn)
        app.command(name=name, help=help_text(fn), **kwargs)(wrapped)
        return wrapped

    return register


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hetreg {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or messages (for CI logs); results and errors are still printed."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    STATE.quiet = quiet


# ------------------------------------------------------------------------------------ helpers


QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="Same as the global --quiet.")
SLURM_PANEL = "Slurm (--executor slurm)"


def _execute_sweep(spec: Any, out: Path, *, runner: Any, executor: str, quiet: bool) -> Any:
    """Run a sweep on the executor ``runner`` with a progress bar over runs; returns the SweepOutcome."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hetreg.experiments.sweep import run_sweep

    progress: Progress | None = None
    task: Any = None
    failed = 0

    def on_plan(planned: list[Any]) -> None:
        nonlocal progress, task
        todo = sum(1 for p in planned if p.action != "skip")
        skipped = len(planned) - todo
        resumed = sum(1 for p in planned if p.action == "resume")
        info(
            f"sweep {out}: {len(planned)} runs, {skipped} already completed, {todo} to run"
            + (f" ({resumed} resumed)" if resumed else "")
            + (f", executor {executor} ({getattr(runner, 'workers', '?')} workers)" if executor == "local" else f", executor {runner}"),
            quiet=quiet,
        )
        if todo and not is_quiet(quiet):
            progress = Progress(
                TextColumn("[bold]runs"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]}"),
                TimeElapsedColumn(),
                console=err_console(),
                transient=False,
            )
            progress.start()
            task = progress.add_task("runs", total=todo, failed="")

    def on_result(result: Any) -> None:
        nonlocal failed
        if result.status != "completed":
            failed += 1
            info(f"run {result.run_id} {result.status}: {result.error} (log: {result.log_path})", quiet=quiet)
        if progress is not None:
            progress.update(task, advance=1, failed=f"{failed} failed" if failed else "")

    try:
        return run_sweep(spec, out, executor=runner, on_plan=on_plan, on_result=on_result)
    except KeyboardInterrupt:
        if progress is not None:
            progress.stop()
        raise fail(f"interrupted; continue with: hetreg sweep --resume {out}", EXIT_INTERRUPTED) from None
    finally:
        if progress is not None:
            progress.stop()


def _report_table(report: Any) -> Any:
    """The results table: mean ± 95 % CI per group and the paired difference to the baseline."""
    from hetreg.experiments.grid import format_value, value_label
    from hetreg.experiments.report import axis_value, baseline_axis
    from hetreg.experiments.stats import format_estimate

    keys = report.results.group_keys
    axis = baseline_axis(keys, report.baseline_key)
    diffs = {tuple(format_value(v) for v in d.values.values()): d for d in report.diffs}
    header = [*keys, "n", f"{report.metric} (mean ± 95% CI)"]
    if report.diffs:
        header += [f"Δ vs {value_label(report.baseline)} (paired, 95% CI)", "relative"]
    rows = []
    for g in report.summaries:
        row = [*(value_label(g.values[k]) for k in keys)]
        n = str(g.estimate.n) + (f" ({g.failed} not completed)" if g.failed else "")
        row += [n, format_estimate(g.estimate)]
        if report.diffs:
            d = diffs.get(tuple(format_value(v) for v in g.values.values()))
            if d is None:
                is_base = axis is not None and axis_value(g.values, axis) == format_value(report.baseline)
                row += ["baseline" if is_base else "no baseline run", ""]
            else:
                rel = "–" if not math.isfinite(d.relative) else f"{100 * d.relative:+.1f}%"
                row += [format_estimate(d.estimate), rel]
        rows.append(row)
    return make_table(None, header, rows, key_cols=len(keys))


def _finish_sweep(out: Path, outcome: Any, *, write: bool, metric: str, baseline: str, baseline_key: str, quiet: bool) -> None:
    from hetreg.experiments.report import write_report

    counts = outcome.counts
    info("runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), quiet=quiet)
    if write and counts.get("completed"):
        report = write_report(out, metric=metric, baseline=baseline, baseline_key=baseline_key)
        print_table(_report_table(report))
        typer.echo(f"report: {report.paths['html']}")
    typer.echo(f"index: {outcome.index_path}")
    not_done = sum(n for s, n in counts.items() if s != "completed")
    if not_done:
        raise fail(
            f"{not_done} of {len(outcome.planned)} runs did not complete (see the index and runs/<id>/run.log); "
            f"rerun the failed ones with: hetreg sweep --resume {out}",
            EXIT_FAILED,
        )


def _check_sets(sets: List[str]) -> None:
    from hetreg.experiments.grid import parse_assignment

    for item in sets:
        parse_assignment(item, flag="--set")


def _apply_sets(cfg: Any, sets: List[str]) -> Any:
    """``cfg`` with the ``--set`` overrides; a ``loss.name`` switch that leaves parameters of the
    file's loss behind gets the way out in its error."""
    from hetreg.experiments.config import ConfigError, apply_overrides

    try:
        return apply_overrides(cfg, sets)
    except ConfigError as exc:
        names = [item.partition("=")[2].strip() for item in sets if item.partition("=")[0].strip() == "loss.name"]
        if names and "is not a parameter of loss" in str(exc):
            raise ConfigError(
                f"{exc}. To switch the loss, replace the whole section: --set 'loss={{name: {names[-1]}}}' "
                "(a sweep's --grid loss.name=... keeps the parameters the new loss accepts)"
            ) from None
        raise


# ----------------------------------------------------------------------------------- commands


@command("run")
def run_demo(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for the runs and the report (default: a new hetreg-runs/demo-<time>/)."),
    quick: bool = typer.Option(False, "--quick", help="Smaller data, 3 epochs, 2 seeds: a smoke test in a few seconds per run."),
    seeds: Optional[int] = typer.Option(None, "--seeds", min=1, help="Number of seeds (default 5, or 2 with --quick)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Runs in parallel (default: the number of cores)."),
    quiet: bool = QUIET_OPTION,
) -> None:
    """Run the main job: MSE, IV, BIV and cutoff-MSE on strongly heteroscedastic labels.

    Data: synthetic-hetero. Noise: each label's variance comes from a two-uniform mixture (half
    near-clean labels, half very noisy ones, as in the BIV paper's meanvar_avg examples).
    Losses: mse, iv (eps 0.5), biv (eps 0.5), cutoff (threshold 1.0), 5 seeds each.

    Prints the test MSE per loss (mean ± 95% CI over seeds) and its paired difference to mse,
    and writes OUT/report.html (self-contained), OUT/report.md, OUT/results.csv and the runs.
    Rerunning with the same --out skips the completed runs.

    Examples:
      hetreg run
      hetreg run --out results/demo --workers 2
      hetreg run --quick --quiet
    """
    from hetreg.experiments.demo import demo_spec
    from hetreg.experiments.executor import LocalExecutor

    start = time.monotonic()
    spec = demo_spec(quick=quick, seeds=seeds)
    target = out if out is not None else new_run_folder("demo")
    outcome = _execute_sweep(spec, target, runner=LocalExecutor(workers), executor="local", quiet=quiet)
    try:
        _finish_sweep(target, outcome, write=True, metric="test_mse_raw", baseline="mse", baseline_key="loss.name", quiet=quiet)
    finally:
        info(f"wall time: {time.monotonic() - start:.1f} s", quiet=quiet)


@command("train")
def train(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Experiment configuration (YAML)."),
    sets: List[str] = typer.Option([], "--set", "-s", help="Override one key: --set loss.eps=0.5 (repeatable; YAML values)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder to create (default: a new hetreg-runs/train-<name>-<time>/)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run from its folder (uses its config.yaml)."),
    quiet: bool = QUIET_OPTION,
) -> None:
    """Train one experiment described by a YAML configuration.

    The run folder receives config.yaml (resolved), metrics.jsonl (one line per evaluation),
    summary.json (final and best metrics), checkpoints (last.pt, best.pt) and environment.json.
    An existing non-empty --out is refused; continue an interrupted run with --resume.

    Examples:
      hetreg train --config wine-biv.yaml
      hetreg train -c wine-biv.yaml --set loss.eps=0.1 --set train.epochs=5 --out runs/eps01
      hetreg train --resume runs/eps01
    """
    from hetreg.experiments.config import load_config
    from hetreg.train import run_experiment

    if resume is not None:
        if config is not None or sets:
            raise fail("--resume continues a run with its own config.yaml; do not combine it with --config or --set")
        if out is not None and out.resolve() != resume.resolve():
            raise fail("--resume RUN_DIR writes into RUN_DIR; drop --out")
        if not (resume / "config.yaml").is_file():
            raise fail(f"--resume {resume}: no config.yaml there; give a run folder written by hetreg train")
        cfg = load_config(resume / "config.yaml")
        run_dir = resume
    else:
        _check_sets(sets)
        if config is None:
            raise fail("missing --config FILE (or --resume RUN_DIR to continue a run)")
        cfg = load_config(config)
        if sets:
            cfg = _apply_sets(cfg, sets)
        run_dir = out if out is not None else new_run_folder(f"train-{cfg.name}")
        if out is not None and out.is_dir():
            from hetreg.train.runner import run_status

            status = run_status(out)
            if status == "completed":
                raise fail(f"--out {out} already holds a completed run; choose a new folder. Nothing was overwritten.")
            if status is not None:
                raise fail(
                    f"--out {out} already holds a run (status: {status}); resume it with "
                    f"`hetreg train --resume {out}`, or choose a new folder (or remove that one). Nothing was overwritten."
                )
        check_fresh_folder(run_dir)
    info(f"run folder: {run_dir}", quiet=quiet)
    try:
        summary = run_experiment(cfg, run_dir, resume=resume is not None, quiet=is_quiet(quiet))
    except KeyboardInterrupt:
        raise fail(f"interrupted; continue with: hetreg train --resume {run_dir}", EXIT_INTERRUPTED) from None
    _print_summary(summary, run_dir)
    status = summary.get("status") if isinstance(summary, dict) else None
    if status == "interrupted":
        raise fail(f"the run was interrupted; continue with: hetreg train --resume {run_dir}", EXIT_INTERRUPTED)
    if status not in (None, "completed"):
        raise fail(f"the run {status}: {summary.get('error', '')} (see {run_dir})", EXIT_FAILED)


def _print_summary(summary: Any, run_dir: Path) -> None:
    from hetreg.experiments.runstore import summary_metrics

    if not isinstance(summary, dict):
        typer.echo(f"run folder: {run_dir}")
        return
    metrics = summary_metrics(summary)
    names = [n.split(".", 1)[1] for n in metrics if n.startswith("final.")]
    names += [n.split(".", 1)[1] for n in metrics if n.startswith("best.") and n.split(".", 1)[1] not in names]
    rows = [[name, metrics.get(f"final.{name}"), metrics.get(f"best.{name}")] for name in names]
    print_table(make_table(f"status: {summary.get('status', '?')}", ["metric", "final", "best (by val_mse)"], rows))
    typer.echo(f"run folder: {run_dir}")


@command("sweep")
def sweep(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Base experiment configuration (YAML)."),
    grid: List[str] = typer.Option([], "--grid", "-g", help="Swept key and values: key=v1,v2 or key=0-9 (repeatable; the product is run)."),
    sets: List[str] = typer.Option([], "--set", "-s", help="Override a key of the base configuration (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Sweep folder (default: a new hetreg-runs/sweep-<name>-<time>/)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Runs in parallel (default: the number of cores)."),
    executor: str = typer.Option("local", "--executor", help="Where runs execute: local (a process pool on this machine), or a registered plugin such as slurm."),
    executor_options: List[str] = typer.Option([], "--executor-option", "-E", help="Option of the executor, key=value (repeatable), e.g. -E partition=gpu -E time_min=120 for slurm."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Rerun a sweep folder from its sweep.json: skip completed runs, resume the rest."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html / report.md / results.csv into the sweep folder."),
    metric: str = typer.Option("test_mse_raw", "--metric", help="Metric of the report table."),
    baseline: str = typer.Option("mse", "--baseline", help="Value of --baseline-key the paired differences compare with."),
    baseline_key: str = typer.Option("loss.name", "--baseline-key", help="Key whose values are compared to the baseline."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be submitted and exit (with --executor slurm: the sbatch script and the job array)."),
    slurm_partition: Optional[str] = typer.Option(None, "--slurm-partition", help="Partition (default: the cluster's default).", rich_help_panel=SLURM_PANEL),
    slurm_time: Optional[str] = typer.Option(None, "--slurm-time", help="Time limit per run: minutes, or D-HH:MM:SS (default 60).", rich_help_panel=SLURM_PANEL),
    slurm_cpus: Optional[int] = typer.Option(None, "--slurm-cpus", min=1, help="CPUs per run (default 1).", rich_help_panel=SLURM_PANEL),
    slurm_mem: Optional[str] = typer.Option(None, "--slurm-mem", help="Memory per run: GB, or 16G / 512M (default: the cluster's).", rich_help_panel=SLURM_PANEL),
    slurm_gpus: Optional[int] = typer.Option(None, "--slurm-gpus", min=0, help="GPUs per run (default 0).", rich_help_panel=SLURM_PANEL),
    slurm_parallel: Optional[int] = typer.Option(None, "--slurm-parallel", min=1, help="At most this many runs at a time (default: --workers, else no limit).", rich_help_panel=SLURM_PANEL),
    slurm_flags: List[str] = typer.Option([], "--slurm-flag", help="Extra sbatch flag, e.g. --slurm-flag=--account=abc (repeatable).", rich_help_panel=SLURM_PANEL),
    slurm_job_name: Optional[str] = typer.Option(None, "--slurm-job-name", help="Job name (default hetreg).", rich_help_panel=SLURM_PANEL),
    slurm_folder: Optional[Path] = typer.Option(None, "--slurm-folder", help="Folder of the tasks' logs (default OUT/slurm).", rich_help_panel=SLURM_PANEL),
    slurm_setup: List[str] = typer.Option([], "--slurm-setup", help="Shell line run before each run, e.g. 'module load cuda' (repeatable).", rich_help_panel=SLURM_PANEL),
    quiet: bool = QUIET_OPTION,
) -> None:
    """Run the Cartesian product of grid values over a base configuration.

    Each run gets a deterministic id (the hash of its resolved configuration) and the folder
    OUT/runs/<id>/; OUT/index.parquet and OUT/index.csv list every run with its swept values,
    status and final metrics; OUT/sweep.json stores the base configuration and the grid.
    Rerunning (same command and --out, or --resume OUT) skips completed runs and resumes
    interrupted ones; a failed run is recorded (status, error, run.log) and the others go on.

    Grid values: comma-separated YAML values (1e-3, true, null, mse), inclusive integer ranges
    (0-9), lists in brackets and whole sections in braces. A grid over loss.name gives each loss
    the base loss parameters it accepts (eps for iv and biv, none for mse); sweep the whole loss
    section to give each loss its own parameters.

    Examples:
      hetreg sweep -c examples/wine-biv.yaml --grid loss.name=mse,biv --grid seed=0-9
      hetreg sweep -c examples/wine-biv.yaml --grid loss.eps=0.01,0.1,0.5 --grid seed=0-4 --workers 2
      hetreg sweep -c examples/wine-biv.yaml --grid "loss={name: mse},{name: biv, eps: 0.5}" --grid seed=0-4
      hetreg sweep --resume hetreg-runs/sweep-wine-20250101-120000
      hetreg sweep -c examples/wine-biv.yaml --grid seed=0-9 --executor slurm -E partition=cpu -E time_min=30
    """
    from hetreg.experiments.config import load_config
    from hetreg.experiments.executor import build_executor
    from hetreg.experiments.grid import parse_assignment, parse_grid
    from hetreg.experiments.sweep import SweepSpec, load_sweep

    options = dict(parse_assignment(item, flag="--executor-option") for item in executor_options)
    slurm_values = dict(
        partition=slurm_partition, time=slurm_time, cpus=slurm_cpus, mem=slurm_mem, gpus=slurm_gpus,
        array_parallelism=slurm_parallel, flags=slurm_flags, job_name=slurm_job_name, folder=slurm_folder, setup=slurm_setup,
    )
    if any(v not in (None, []) for v in slurm_values.values()):
        if executor != "slurm":
            raise fail("the --slurm-* options need --executor slurm")
        if options:
            raise fail("give the Slurm options either as --slurm-* or as --executor-option, not both")
        from hetreg.experiments.slurm import SlurmOptions

        options = {"options": SlurmOptions.from_cli(workers=workers, **slurm_values)}
    runner = build_executor(executor, workers=workers, **options)  # unknown names list the valid ones
    if executor == "slurm":
        runner.notify = lambda message: info(message, quiet=quiet)
    if resume is not None:
        if config is not None or grid or sets:
            raise fail("--resume reruns the sweep stored in the folder; do not combine it with --config, --grid or --set")
        if out is not None and out.resolve() != resume.resolve():
            raise fail("--resume OUT writes into OUT; drop --out")
        spec = load_sweep(resume)
        target = resume
    else:
        axes = parse_grid(grid, flag="--grid")
        _check_sets(sets)
        if config is None:
            raise fail("missing --config FILE (or --resume OUT to rerun a sweep)")
        cfg = load_config(config)
        if sets:
            cfg = _apply_sets(cfg, sets)
        spec = SweepSpec(base=cfg.model_dump(mode="json"), grid=axes)
        target = out if out is not None else new_run_folder(f"sweep-{cfg.name}")
    if executor == "slurm":
        from hetreg.experiments.slurm import check_no_active_jobs, dry_run_sweep

        if dry_run:
            typer.echo(dry_run_sweep(spec, target, runner.options))
            return
        check_no_active_jobs(target, runner.options)  # a rerun while tasks of the sweep still run
    elif dry_run:
        raise fail("--dry-run describes a Slurm submission; use it with --executor slurm")
    outcome = _execute_sweep(spec, target, runner=runner, executor=executor, quiet=quiet)
    _finish_sweep(target, outcome, write=report, metric=metric, baseline=baseline, baseline_key=baseline_key, quiet=quiet)


@command("report")
def report_cmd(
    results_dir: Path = typer.Argument(..., metavar="RESULTS_DIR", help="A sweep folder (or any folder of run folders, or one run folder)."),
    baseline: str = typer.Option("mse", "--baseline", help="Value of --baseline-key the paired differences compare with."),
    baseline_key: str = typer.Option("loss.name", "--baseline-key", help="Key whose values are compared to the baseline."),
    metric: str = typer.Option("test_mse_raw", "--metric", help="Final metric to tabulate (e.g. test_mse, test_mae_raw, best.val_mse)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the report (default: RESULTS_DIR). Replaces only files an earlier report wrote there."),
) -> None:
    """Aggregate runs into tables over seeds, paired differences and figures.

    Groups the runs by the swept keys except the seeds; per group: mean, std and 95% Student-t
    confidence interval over seeds, and the difference to the baseline paired by seed (and the
    other keys) with its 95% CI. Writes report.html (self-contained: inline CSS, embedded
    images), report.md, results.csv and figures/*.png (learning curves with confidence bands,
    bar chart).

    Examples:
      hetreg report hetreg-runs/demo-20250101-120000
      hetreg report results/wine --baseline mse --metric test_mae_raw
      hetreg report results/eps --baseline-key loss.eps --baseline 0.1
    """
    from hetreg.experiments.report import write_report

    report = write_report(results_dir, out, metric=metric, baseline=baseline, baseline_key=baseline_key)
    print_table(_report_table(report))
    if not report.diffs:
        info(f"no paired differences: {baseline_key} is not a swept key with the value {baseline}")
    typer.echo(f"report: {report.paths['html']}")


@command("reproduce")
def reproduce_cmd(
    name: Optional[str] = typer.Argument(None, metavar="NAME", help="The study (omit to list them)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Study folder (default: hetreg-runs/reproduce-NAME; its report is then also copied to docs/results/ of the hetreg checkout, if hetreg runs from one)."),
    quick: bool = typer.Option(False, "--quick", help="A small variant (few seeds, short training): a smoke test."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Runs in parallel (default: the number of cores)."),
    executor: str = typer.Option("local", "--executor", help="Where runs execute: local, or a registered plugin such as slurm."),
    report_only: bool = typer.Option(False, "--report-only", help="Write the report of the study folder again; run nothing."),
    quiet: bool = QUIET_OPTION,
) -> None:
    """Reproduce a claim of the BIV or Balanced MSE papers with confidence intervals.

    Studies: biv-wine, biv-bike, biv-utkface (MSE, IV, BIV and cutoff under the original noise
    settings), biv-epsilon (the effect of ε and of automatic ε), bmse-synthetic (the Balanced MSE
    synthetic benchmark). Each runs a sweep over seeds and writes NAME.md with tables of mean ±
    95% interval, paired differences to MSE, plots, the command, the elapsed time and the
    machine. Rerunning with the same --out skips completed runs.

    Examples:
      hetreg reproduce
      hetreg reproduce biv-wine
      hetreg reproduce bmse-synthetic --quick --out /tmp/bmse
      hetreg reproduce bmse-synthetic --quick --out /tmp/bmse --report-only
    """
    from hetreg.experiments.reproduce import list_reproductions, reproduce, rewrite_report

    if name is None:
        for study in list_reproductions():
            typer.echo(study)
        return
    if name not in list_reproductions():
        raise fail(f"unknown study {name!r}; valid studies: {', '.join(list_reproductions())}")
    if report_only:
        try:
            path = rewrite_report(name, out, quick=quick)
        except FileNotFoundError as exc:
            raise fail(str(exc)) from None
    else:
        path = reproduce(name, out, quick=quick, workers=workers, executor=executor, quiet=is_quiet(quiet))
    typer.echo(f"report: {path}")


@command("datasets")
def datasets(
    root: Optional[Path] = typer.Option(None, "--root", help="Data folder (default: $HETREG_DATA, else the per-user data folder)."),
) -> None:
    """List the datasets: available or not, where their files were found, checksums verified.

    Examples:
      hetreg datasets
      hetreg datasets --root /data/hetreg
    """
    from hetreg.data.status import data_folder_description, dataset_status

    records = dataset_status(root)
    info(f"data folder: {data_folder_description(root)}")
    rows = []
    for r in records:
        available = {True: "yes", False: "no", None: "depends"}.get(r.get("available"), str(r.get("available")))
        where = str(r.get("path") or r.get("source") or "–")
        rows.append([str(r.get("name")), available, where, str(r.get("checksum", "–")), str(r.get("detail", ""))])
    print_table(make_table(None, ["dataset", "available", "where found", "checksums", "detail"], rows, key_cols=5))


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of the ``hetreg`` console script.

    Usage errors (unknown option, missing value, bad type) print one line, ``error: ...`` with a
    pointer to the command's ``--help``, and exit with code 2, like the commands' own errors.
    """
    import sys

    # typer raises click's exception classes (its own vendored copy in recent versions)
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    try:
        code = app(args=argv, prog_name="hetreg", standalone_mode=False)
    except usage_error as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `hetreg` or `hetreg noise`: the help
            typer.echo(exc.format_message())
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "hetreg"
        err_console().print(
            f"error: {exc.format_message()} (see: {where} --help)", markup=False, highlight=False, soft_wrap=True
        )
        sys.exit(EXIT_USAGE)
    except typer.Abort:
        err_console().print("error: aborted", markup=False)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)
