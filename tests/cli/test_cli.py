"""The hetreg command line through typer's CliRunner: help, errors and exit codes, commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hetreg.cli import app, main
from hetreg.experiments.executor import LocalExecutor
from hetreg.experiments.grid import parse_grid
from hetreg.experiments.runstore import write_json
from hetreg.experiments.sweep import SweepSpec, run_sweep
from hetreg.experiments.testing import write_fake_run

runner = CliRunner()

COMMANDS = [["run"], ["train"], ["sweep"], ["report"], ["datasets"], ["noise", "describe"]]


def invoke(*args: str):  # noqa: ANN201 - click Result
    return runner.invoke(app, list(args), env={"COLUMNS": "120", "HETREG_DEBUG": ""})


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_examples(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    assert f"hetreg {' '.join(command)}" in result.output


def test_top_level_help_and_version() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("run", "train", "sweep", "report", "datasets", "noise"):
        assert name in result.output
    assert invoke("--version").output.startswith("hetreg ")
    assert invoke().exit_code in (0, 2)  # no arguments: the help


def test_main_is_the_console_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("hetreg ")


def one_error_line(result) -> str:  # noqa: ANN001
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_sweep_errors(tmp_path: Path) -> None:
    result = invoke("sweep", "--grid", "seed", "--config", "x.yaml")
    assert result.exit_code == 2
    assert one_error_line(result) == "error: --grid 'seed': expected key=v1,v2,... (e.g. --grid loss.name=mse,biv or --grid seed=0-9)"
    result = invoke("sweep", "--grid", "seed=3-1")
    assert result.exit_code == 2 and "range '3-1' is decreasing" in one_error_line(result)
    result = invoke("sweep", "--grid", "seed=0-1")
    assert result.exit_code == 2 and one_error_line(result) == "error: missing --config FILE (or --resume OUT to rerun a sweep)"
    result = invoke("sweep", "--executor", "cluster", "--config", "x.yaml")
    assert result.exit_code == 2 and "unknown executor 'cluster'; valid executors: local" in one_error_line(result)
    result = invoke("sweep", "--config", str(tmp_path / "missing.yaml"), "--grid", "seed=0-1")
    assert result.exit_code == 2 and "configuration file not found" in one_error_line(result)
    result = invoke("sweep", "--resume", str(tmp_path))
    assert result.exit_code == 2 and "is not a sweep folder" in one_error_line(result)
    result = invoke("sweep", "--resume", str(tmp_path), "--grid", "seed=1")
    assert result.exit_code == 2 and "do not combine it with --config, --grid or --set" in one_error_line(result)


def test_train_errors(tmp_path: Path) -> None:
    result = invoke("train")
    assert result.exit_code == 2 and one_error_line(result) == "error: missing --config FILE (or --resume RUN_DIR to continue a run)"
    result = invoke("train", "--config", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2 and "configuration file not found" in one_error_line(result)
    result = invoke("train", "--config", str(tmp_path))
    assert result.exit_code == 2 and f"{tmp_path} is a folder; give a configuration file (.yaml)" in one_error_line(result)
    result = invoke("train", "--config", "x.yaml", "--set", "loss.eps")
    assert result.exit_code == 2 and one_error_line(result).startswith("error: --set 'loss.eps': expected key=value")
    result = invoke("train", "--resume", str(tmp_path))
    assert result.exit_code == 2 and "no config.yaml there" in one_error_line(result)
    config = tmp_path / "biv.yaml"
    config.write_text("data: {name: synthetic-hetero}\nmodel: {name: mlp}\nloss: {name: biv, eps: 0.1}\n")
    for command in ("train", "sweep"):  # a --set switch of the loss names the way out
        result = invoke(command, "--config", str(config), "--set", "loss.name=mse", "--out", str(tmp_path / command))
        line = one_error_line(result)
        assert result.exit_code == 2 and "loss.eps is not a parameter of loss 'mse'" in line
        assert "replace the whole section: --set 'loss={name: mse}'" in line
        assert not (tmp_path / command).exists()
    failed = tmp_path / "failed-run"  # a run that failed at setup leaves its folder: the error says what to do
    result = invoke("train", "--config", str(config), "--set", "data.train_size=100000", "--out", str(failed))
    assert result.exit_code == 2 and (failed / "summary.json").exists()
    result = invoke("train", "--config", str(config), "--out", str(failed))
    assert result.exit_code == 2
    assert f"already holds a run (status: failed); resume it with `hetreg train --resume {failed}`" in one_error_line(result)


def fake_sweep(root: Path, grid: list[str], **fake: object) -> SweepSpec:
    base = {"loss": {"name": "mse"}, "seed": 0, "fake": {"epochs": 2, **fake}}
    return SweepSpec(base=base, grid=parse_grid(grid), target="hetreg.experiments.testing:fake_train", backend="dict")


def test_sweep_resume_completes_an_interrupted_sweep(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = fake_sweep(tmp_path, ["loss.name=mse,biv", "seed=0-2"], interrupt_after=1)
    run_sweep(spec, out, executor=LocalExecutor(workers=1))
    result = invoke("sweep", "--resume", str(out), "--workers", "1", "--metric", "test_mse")
    assert result.exit_code == 0, result.output
    assert "6 runs, 0 already completed, 6 to run (6 resumed)" in result.stderr
    assert "final.test_mse (mean ± 95% CI)" in result.stdout
    assert "Δ vs mse" in result.stdout
    assert (out / "report.html").exists() and (out / "index.parquet").exists()
    again = invoke("--quiet", "sweep", "--resume", str(out), "--metric", "test_mse")
    assert again.exit_code == 0 and again.stderr == ""
    assert "biv" in again.stdout


def test_sweep_with_failures_exits_1_and_keeps_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = fake_sweep(tmp_path, ["fake.fail=false,true", "seed=0-1"])
    out.mkdir()
    write_json(out / "sweep.json", spec.to_dict())
    result = invoke("sweep", "--resume", str(out), "--workers", "1", "--no-report")
    assert result.exit_code == 1
    assert "2 of 4 runs did not complete" in result.stderr
    assert "RuntimeError: fake failure requested by fake.fail" in result.stderr
    assert not (out / "report.html").exists()


def test_report_command(tmp_path: Path) -> None:
    write_json(tmp_path / "sweep.json", {"grid": [{"key": "loss.name", "values": ["mse", "biv"]}, {"key": "seed", "values": [0, 1]}]})
    for loss, vals in (("mse", [2.0, 3.0]), ("biv", [1.0, 1.5])):
        for seed, v in enumerate(vals):
            write_fake_run(tmp_path / "runs" / f"{loss}{seed}", {"seed": seed, "loss": {"name": loss}}, [], {"status": "completed", "final": {"test_mse_raw": v}})
    result = invoke("report", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "final.test_mse_raw (mean ± 95% CI)" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "biv" in line)
    assert "1.25" in row and "-1.25" in row and "-50.0%" in row
    assert f"report: {tmp_path / 'report.html'}" in result.stdout
    bad = invoke("report", str(tmp_path), "--metric", "nope")
    assert bad.exit_code == 2 and "unknown metric 'nope'; valid metrics: test_mse_raw" in one_error_line(bad)
    bad = invoke("report", str(tmp_path), "--baseline", "l1")
    assert bad.exit_code == 2 and "valid choices: biv, mse" in one_error_line(bad)
    bad = invoke("report", str(tmp_path / "none"))
    assert bad.exit_code == 2 and "does not exist" in one_error_line(bad)


def test_noise_describe() -> None:
    result = invoke("noise", "describe", "--kind", "uniform", "--low", "0", "--high", "2", "--batch-size", "16", "--n-batches", "50")
    assert result.exit_code == 0, result.output
    assert "mean      1" in result.stdout and "variance  0.333333" in result.stdout
    assert "histogram:" in result.stdout and "#" in result.stdout
    spec = {"kind": "mixture", "weights": [0.5, 0.5], "components": [{"kind": "constant", "value": 1.0}, {"kind": "constant", "value": 3.0}]}
    result = invoke("noise", "describe", "--json", json.dumps(spec), "--as-json", "--n-batches", "10")
    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)
    assert described["mean"] == pytest.approx(2.0) and described["variance"] == pytest.approx(1.0)
    assert described["ebs"]["batch_size"] == 256


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "uniform", "--low", "2", "--high", "1"], "low must be <= high"),
        (["--kind", "cauchy"], "unknown distribution kind 'cauchy'; valid kinds: uniform, constant, gamma, mixture"),
        (["--kind", "uniform", "--low"], "--low needs a value"),
        (["--json", "{oops"], "--json is not valid JSON"),
        (["--json", '{"kind": "constant", "value": 1}', "--kind", "uniform"], "either with --json or with --kind"),
        ([], "missing distribution"),
    ],
)
def test_noise_describe_errors(args: list[str], message: str) -> None:
    result = invoke("noise", "describe", *args)
    assert result.exit_code == 2
    assert message in one_error_line(result)


def test_datasets(tmp_path: Path) -> None:
    result = invoke("datasets", "--root", str(tmp_path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("synthetic-hetero" in line and "yes" in line for line in lines)
    wine = next(line for line in lines if line.lstrip("│ ").startswith("wine"))
    assert "no" in wine and "missing" in wine
    assert f"data folder: {tmp_path}" in result.stderr


def test_default_output_folders_are_new(tmp_path: Path) -> None:
    from hetreg.cli._common import check_fresh_folder, new_run_folder

    first = new_run_folder("demo", root=tmp_path)
    assert first.parent == tmp_path and first.name.startswith("demo-") and not first.exists()
    first.mkdir()
    second = new_run_folder("demo", root=tmp_path)
    assert second != first and not second.exists()
    check_fresh_folder(tmp_path / "absent")
    check_fresh_folder(first)  # empty: fine
    (first / "x").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists and is not empty"):
        check_fresh_folder(first)


def test_executor_options_reach_the_executor() -> None:
    result = invoke("sweep", "--executor", "local", "-E", "nodes=3", "--config", "x.yaml")
    assert result.exit_code == 2
    assert one_error_line(result).startswith(
        "error: executor 'local' has no option 'nodes'; its options: workers, grace, batch; is it an option of another executor ("
    )
    result = invoke("sweep", "-E", "grace", "--config", "x.yaml")
    assert result.exit_code == 2 and one_error_line(result).startswith("error: --executor-option 'grace': expected key=value")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sweep", "--foo"], "error: No such option: --foo"),
        (["sweep", "--workers", "x"], "error: Invalid value for '--workers'"),
        (["report"], "error: Missing argument 'RESULTS_DIR'."),
        (["nope"], "error: No such command 'nope'."),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(message)
    assert f"(see: hetreg {argv[0]} --help)" in err or "(see: hetreg --help)" in err
