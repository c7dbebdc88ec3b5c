"""Reports from hand-written run folders: group statistics, paired differences, files produced."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from hetreg.experiments import report as rep
from hetreg.experiments.runstore import write_json
from hetreg.experiments.testing import write_fake_run

# final test_mse_raw per (loss, seed), chosen by hand; seed 3 of "biv" failed
VALUES = {
    "mse": [4.0, 5.0, 6.5, 5.5],
    "biv": [3.0, 4.5, 5.0, None],
    "iv": [4.5, 4.0, 7.5, 6.0],
}


def curve(final: float, epochs: int = 3) -> list[dict[str, Any]]:
    return [{"epoch": e, "step": 10 * e, "test_mse_raw": final * (1 + (epochs - e)), "test_mse": final / 4} for e in range(1, epochs + 1)]


def make_sweep(root: Path, values: dict[str, list[float | None]] = VALUES, with_sweep_json: bool = True) -> Path:
    losses = list(values)
    seeds = list(range(len(next(iter(values.values())))))
    if with_sweep_json:
        write_json(
            root / "sweep.json",
            {"base": {}, "grid": [{"key": "loss.name", "values": losses}, {"key": "seed", "values": seeds}]},
        )
    for loss, finals in values.items():
        for seed, final in enumerate(finals):
            config = {"name": f"{loss}-{seed}", "seed": seed, "seeds": {"data": 100 + seed}, "loss": {"name": loss}, "train": {"epochs": 3}}
            run = root / "runs" / f"{loss}-{seed}"
            if final is None:
                write_fake_run(run, config, curve(9.0)[:1], {"status": "failed", "error": "RuntimeError: diverged"})
                (run / "run.log").write_text("Traceback ...\nRuntimeError: diverged\n")
            else:
                summary = {"status": "completed", "final": {"test_mse_raw": final, "test_mse": final / 4}, "best": {"val_mse": final / 5}}
                write_fake_run(run, config, curve(final), summary)
    return root


def test_group_statistics_match_scipy(tmp_path: Path) -> None:
    results = rep.load_results(make_sweep(tmp_path))
    assert results.keys == ["loss.name", "seed"]
    assert results.group_keys == ["loss.name"] and results.replicate_keys == ["seed"]
    summaries = rep.summarize(results, "test_mse_raw")
    assert [g.values["loss.name"] for g in summaries] == ["mse", "biv", "iv"]  # grid order
    for g in summaries:
        x = np.array([v for v in VALUES[g.values["loss.name"]] if v is not None])
        low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        assert g.estimate.n == len(x)
        assert g.estimate.mean == pytest.approx(x.mean())
        assert g.estimate.std == pytest.approx(x.std(ddof=1))
        assert (g.estimate.low, g.estimate.high) == pytest.approx((low, high))
    biv = summaries[1]
    assert biv.runs == 4 and biv.failed == 1


def test_paired_differences_by_hand(tmp_path: Path) -> None:
    results = rep.load_results(make_sweep(tmp_path))
    summaries = rep.summarize(results, "test_mse_raw")
    diffs = {d.values["loss.name"]: d for d in rep.paired_differences(summaries, "loss.name", "mse")}
    assert set(diffs) == {"biv", "iv"}
    # biv - mse on the seeds both completed (0, 1, 2): -1.0, -0.5, -1.5
    d = diffs["biv"].estimate
    assert d.n == 3 and d.mean == pytest.approx(-1.0)
    assert d.std == pytest.approx(0.5)
    assert d.half_width == pytest.approx(4.302652729911275 * 0.5 / math.sqrt(3))
    assert diffs["biv"].baseline_mean == pytest.approx(15.5 / 3)  # mse mean on seeds 0-2
    assert diffs["biv"].relative == pytest.approx(-3 / 15.5)
    # iv - mse: 0.5, -1.0, 1.0, 0.5 -> mean 0.25, sd sqrt(0.75)
    e = diffs["iv"].estimate
    assert e.n == 4 and e.mean == pytest.approx(0.25)
    assert e.std == pytest.approx(math.sqrt(0.75))
    assert rep.paired_differences(summaries, "optimizer.name", "adam") == []


def test_pairing_respects_the_other_keys(tmp_path: Path) -> None:
    # two datasets; the baseline of (biv, wine) is (mse, wine), never (mse, bike)
    write_json(tmp_path / "sweep.json", {"grid": [{"key": "data.name", "values": ["wine", "bike"]}, {"key": "loss.name", "values": ["mse", "biv"]}, {"key": "seed", "values": [0, 1]}]})
    finals = {("wine", "mse"): [1.0, 2.0], ("wine", "biv"): [0.5, 1.0], ("bike", "mse"): [10.0, 20.0], ("bike", "biv"): [11.0, 23.0]}
    for (data, loss), vals in finals.items():
        for seed, v in enumerate(vals):
            cfg = {"seed": seed, "data": {"name": data}, "loss": {"name": loss}}
            write_fake_run(tmp_path / "runs" / f"{data}-{loss}-{seed}", cfg, [], {"status": "completed", "final": {"test_mse_raw": v}})
    summaries = rep.summarize(rep.load_results(tmp_path), "test_mse_raw")
    diffs = rep.paired_differences(summaries, "loss.name", "mse")
    got = {d.values["data.name"]: d.estimate.mean for d in diffs}
    assert got == pytest.approx({"wine": -0.75, "bike": 2.0})


def test_section_axis_and_implied_keys(tmp_path: Path) -> None:
    # no sweep.json: the keys are the ones that vary; a section whose name varies is one key
    losses = [{"name": "mse"}, {"name": "biv", "eps": 0.5}]
    for i, loss in enumerate(losses):
        for seed in range(3):
            cfg = {"name": f"r{i}{seed}", "seed": seed, "seeds": {"data": seed + 7}, "loss": loss, "tracking": {"project": f"p{seed}"}}
            write_fake_run(tmp_path / "runs" / f"r{i}{seed}", cfg, [], {"status": "completed", "final": {"test_mse_raw": 2.0 + seed - i}})
    results = rep.load_results(tmp_path)
    assert results.keys == ["loss", "seed", "seeds.data"]
    assert results.group_keys == ["loss"]
    summaries = rep.summarize(results, "test_mse_raw")
    diffs = rep.paired_differences(summaries, "loss.name", "mse")
    assert len(diffs) == 1 and diffs[0].estimate.mean == pytest.approx(-1.0) and diffs[0].estimate.n == 3
    report = rep.write_report(tmp_path)
    assert "biv (eps=0.5)" in report.paths["markdown"].read_text()


def test_errors_name_the_choices(tmp_path: Path) -> None:
    make_sweep(tmp_path)
    with pytest.raises(ValueError, match=r"unknown metric 'mae'; valid metrics: test_mse, test_mse_raw \(after the last evaluation\); at the best validation epoch: best.val_mse"):
        rep.build_report(tmp_path, metric="mae")
    no_val = make_sweep(tmp_path / "no-val")
    for summary in no_val.glob("runs/*/summary.json"):
        data = json.loads(summary.read_text())
        data.pop("best", None)
        summary.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"no run has best.\* metrics: they need a validation split \(data.val_fraction > 0\)"):
        rep.build_report(no_val, metric="best.val_mse")
    with pytest.raises(ValueError, match=r"baseline loss.name=l1 not found; valid choices: biv, iv, mse"):
        rep.build_report(tmp_path, baseline="l1")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        rep.load_results(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no runs found"):
        rep.load_results(tmp_path / "empty")


def test_learning_curves_mean_and_band(tmp_path: Path) -> None:
    results = rep.load_results(make_sweep(tmp_path))
    curves = {c.values["loss.name"]: c for c in rep.learning_curves(results, "test_mse_raw")}
    mse = curves["mse"]
    assert mse.x.tolist() == [1.0, 2.0, 3.0]
    finals = np.array(VALUES["mse"])
    at_epoch_1 = finals * 3
    assert mse.mean[0] == pytest.approx(at_epoch_1.mean())
    low, high = stats.t.interval(0.95, 3, loc=at_epoch_1.mean(), scale=stats.sem(at_epoch_1))
    assert (mse.low[0], mse.high[0]) == pytest.approx((low, high))
    assert curves["biv"].n.tolist() == [3, 3, 3]  # the failed run is left out


def test_report_files(tmp_path: Path) -> None:
    root = make_sweep(tmp_path / "sweep")
    report = rep.write_report(root, metric="test_mse_raw", baseline="mse")
    for key in ("csv", "markdown", "html"):
        assert report.paths[key].exists()
    pngs = sorted((root / "figures").glob("*.png"))
    assert [p.name for p in pngs] == ["bars.png", "curves_01.png"]
    for png in pngs:
        with Image.open(png) as img:
            assert img.format == "PNG" and img.size[0] > 300
    table = pd.read_csv(root / "results.csv")
    assert table["loss.name"].tolist() == ["mse", "biv", "iv"]
    assert table["n"].tolist() == [4, 3, 4]
    assert table.loc[1, "diff_mean"] == pytest.approx(-1.0)
    assert pd.isna(table.loc[0, "diff_mean"])
    md = report.paths["markdown"].read_text()
    assert "| biv | 3 (1 not completed) |" in md
    assert "![Learning curves](figures/curves_01.png)" in md
    assert "RuntimeError: diverged" in md


def test_a_report_elsewhere_overwrites_only_what_a_report_wrote(tmp_path: Path) -> None:
    root = make_sweep(tmp_path / "sweep")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my own notes")
    with pytest.raises(FileExistsError, match=r"already holds report.md, which no hetreg report wrote there; nothing was written"):
        rep.write_report(root, mine, metric="test_mse_raw")
    assert sorted(p.name for p in mine.iterdir()) == ["report.md"] and (mine / "report.md").read_text() == "my own notes"

    out = tmp_path / "out"
    rep.write_report(root, out, metric="test_mse_raw")
    (out / "figures" / "curves_01.png").rename(out / "figures" / "curves_07.png")  # as if left by a larger sweep
    manifest = json.loads((out / rep.REPORT_MANIFEST).read_text())
    manifest["files"] = [f.replace("curves_01", "curves_07") for f in manifest["files"]]
    (out / rep.REPORT_MANIFEST).write_text(json.dumps(manifest))
    (out / "notes.txt").write_text("kept")
    rep.write_report(root, out, metric="test_mse_raw")  # its own files are replaced, stale figures removed
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["bars.png", "curves_01.png"]
    assert (out / "notes.txt").read_text() == "kept"
    (out / "figures" / "extra.png").write_bytes(b"user's figure")
    with pytest.raises(FileExistsError, match=r"already holds figures/extra.png"):
        rep.write_report(root, out, metric="test_mse_raw")
    rep.write_report(root, metric="test_mse_raw")  # the results folder itself is the report's own
    rep.write_report(root, metric="test_mse_raw")


def test_html_is_self_contained(tmp_path: Path) -> None:
    root = make_sweep(tmp_path)
    html = rep.write_report(root).paths["html"].read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert '<table id="results">' in html and '<table id="paired">' in html and '<table id="problems">' in html
    # no external resources: every src is a data URI, no links, scripts or remote stylesheets
    srcs = re.findall(r'src="([^"]*)"', html)
    assert len(srcs) == 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"(href=|<script|<link|@import|url\()", html)
    assert "http://" not in html and "https://" not in html
    png = base64.b64decode(srcs[0].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_index_only_folder(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d"],
            "loss.name": ["mse", "mse", "biv", "biv"],
            "seed": [0, 1, 0, 1],
            "status": ["completed"] * 4,
            "error": [None] * 4,
            "log": [None] * 4,
            "final.test_mse_raw": [2.0, 3.0, 1.0, 1.5],
        }
    )
    frame.to_csv(tmp_path / "index.csv", index=False)
    report = rep.write_report(tmp_path)
    assert [g.estimate.mean for g in report.summaries] == pytest.approx([1.25, 2.5])  # sorted by name
    assert report.diffs[0].estimate.mean == pytest.approx(-1.25)
    assert (tmp_path / "report.html").exists()


def test_single_run_folder(tmp_path: Path) -> None:
    run = write_fake_run(tmp_path / "one", {"seed": 0, "loss": {"name": "mse"}}, curve(2.0), {"status": "completed", "final": {"test_mse_raw": 2.0}})
    report = rep.write_report(run)
    assert report.summaries[0].estimate.mean == 2.0 and report.diffs == []
    assert "| 1 | 2 | – | – | – |" in report.paths["markdown"].read_text()
