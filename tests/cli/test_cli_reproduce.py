"""``hetreg reproduce``: listing, unknown names, and a quick study end to end."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from hetreg.cli.app import app
from hetreg.experiments.reproduce import list_reproductions


def test_lists_the_studies_and_rejects_unknown_names():
    result = CliRunner().invoke(app, ["reproduce"])
    assert result.exit_code == 0
    assert result.output.split() == list_reproductions()
    assert {"biv-wine", "biv-epsilon", "bmse-synthetic"} <= set(result.output.split())
    result = CliRunner().invoke(app, ["reproduce", "biv-mnist"])
    assert result.exit_code == 2 and "valid studies" in result.output


def test_quick_bmse_study_writes_its_report(tmp_path):
    out = tmp_path / "bmse"
    result = CliRunner().invoke(app, ["--quiet", "reproduce", "bmse-synthetic", "--quick", "--out", str(out), "-w", "1"])
    assert result.exit_code == 0, result.output
    report = out / "bmse-synthetic.md"
    assert report.exists()
    text = report.read_text()
    assert "bmc" in text.lower() and "95" in text
    # --report-only writes the report again from the runs, without running anything
    report.unlink()
    runs_before = sorted(p.name for p in out.rglob("summary.json"))
    result = CliRunner().invoke(app, ["--quiet", "reproduce", "bmse-synthetic", "--quick", "--out", str(out), "--report-only"])
    assert result.exit_code == 0, result.output
    stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")  # when the report was written
    assert stamp.sub("", report.read_text()) == stamp.sub("", text)  # same runs, same recorded sessions
    assert stamp.search(text) is not None
    assert sorted(p.name for p in out.rglob("summary.json")) == runs_before
    result = CliRunner().invoke(app, ["reproduce", "bmse-synthetic", "--quick", "--out", str(tmp_path / "none"), "--report-only"])
    assert result.exit_code == 2 and "does not hold the study 'bmse-synthetic'" in result.output
