"""``hetreg sweep --executor slurm``: option checks and the dry run (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hetreg.cli.app import app

BASE = """
data: {name: diabetes}
model: {name: mlp, options: {hidden: [8]}}
loss: {name: mse}
train: {epochs: 1}
"""


def _config(tmp_path: Path) -> str:
    path = tmp_path / "base.yaml"
    path.write_text(BASE)
    return str(path)


def test_slurm_dry_run_prints_the_array_and_submits_nothing(tmp_path):
    out = tmp_path / "out"
    args = ["sweep", "-c", _config(tmp_path), "--grid", "seed=0-2", "--executor", "slurm",
            "--slurm-time", "10", "--slurm-cpus", "2", "--slurm-parallel", "2", "--dry-run", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "#SBATCH --array=0-2%2" in result.output
    assert "#SBATCH --cpus-per-task=2" in result.output
    assert "#SBATCH --time=10" in result.output
    assert result.output.count("seed=") == 3
    assert not out.exists()


def test_slurm_options_need_the_slurm_executor(tmp_path):
    args = ["sweep", "-c", _config(tmp_path), "--grid", "seed=0-1", "--slurm-cpus", "2", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "--executor slurm" in result.output


def test_dry_run_is_for_slurm(tmp_path):
    args = ["sweep", "-c", _config(tmp_path), "--grid", "seed=0-1", "--dry-run", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "--executor slurm" in result.output
