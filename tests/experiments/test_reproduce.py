"""Reproduction studies: study files, noise mapping, verdicts, and quick end-to-end runs."""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from hetreg.experiments import runstore
from hetreg.experiments.reproduce import (
    IMBALANCED_FILE,
    NoiseSettings,
    Study,
    _compute_tables,
    _direction,
    check_claims,
    collect_results,
    default_out_dir,
    list_reproductions,
    load_study,
    reproduce,
    rewrite_report,
    study_from_dict,
    validate_study,
)
from hetreg.experiments.report import ResultSet, RunRow
from hetreg.experiments.stats import Estimate

STUDIES_DIR = Path(__file__).resolve().parents[2] / "src" / "hetreg" / "experiments" / "reproductions"
EXPECTED = {"biv-wine", "biv-bike", "biv-epsilon", "bmse-synthetic", "biv-utkface"}
DATA = os.environ.get("HETREG_DATA")


def raw_study(name: str) -> dict[str, Any]:
    return yaml.safe_load((STUDIES_DIR / f"{name}.yaml").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------ study files


def test_all_studies_are_shipped() -> None:
    assert EXPECTED <= set(list_reproductions())
    assert list_reproductions() == sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_study_loads_and_every_grid_point_validates(name: str) -> None:
    study = load_study(name)
    assert study.name == name
    full = validate_study(study)
    quick = validate_study(study, quick=True)
    assert full == study.run_count() == sum(len(p.losses) or 1 for p in study.parts if not p.noise) * study.seeds + sum(
        len(p.losses) * len(study.noise.mixture_means) for p in study.parts if p.noise
    ) * study.seeds
    assert quick == study.run_count(quick=True)
    assert quick < full
    assert study.seed_count() >= (3 if name == "biv-utkface" else 10)
    assert study.quick.seeds >= 2  # an interval needs two seeds
    specs = study.sweep_specs()
    for spec in specs.values():
        assert spec.grid[-1].key == "seed" and spec.grid[-1].values == tuple(range(study.seeds))


def test_unknown_study_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="valid names: .*biv-wine"):
        load_study("biv-wines")


def test_losses_per_study() -> None:
    def names(study: Study) -> set[str]:
        return {v["name"] for part in study.parts for v in part.losses}

    assert names(load_study("biv-wine")) == {"mse", "iv", "biv", "cutoff"}
    assert names(load_study("biv-bike")) == {"mse", "iv", "biv", "cutoff"}
    assert {"mse", "biv", "cutoff"} <= names(load_study("biv-utkface"))
    bmse = load_study("bmse-synthetic")
    learned = {(v["name"], v["learn_sigma"]) for p in bmse.parts for v in p.losses if v["name"] != "mse"}
    assert learned == {(n, s) for n in ("bmc", "bni", "gai") for s in (True, False)}
    eps = load_study("biv-epsilon")
    values = sorted(v["eps"] for p in eps.parts for v in p.losses if v["name"] == "biv" and v["eps"] != "auto")
    assert values[0] == pytest.approx(1e-3) and values[-1] == pytest.approx(1.0) and len(values) >= 5
    assert any(v.get("eps") == "auto" for p in eps.parts for v in p.losses)


def test_bad_study_definitions_name_the_problem() -> None:
    good = raw_study("biv-wine")
    bad = copy.deepcopy(good)
    bad["seedz"] = 3
    with pytest.raises(ValueError, match="unknown key.*seedz"):
        study_from_dict(bad)
    bad = copy.deepcopy(good)
    del bad["parts"]
    with pytest.raises(ValueError, match="missing required key.*parts"):
        study_from_dict(bad)
    bad = copy.deepcopy(good)
    bad["claims"][0]["kind"] = "vibes"
    with pytest.raises(ValueError, match="unknown claim kind 'vibes'"):
        study_from_dict(bad)
    bad = copy.deepcopy(good)
    bad["quick"]["losses"] = ["nope"]
    with pytest.raises(ValueError, match="quick.losses names the loss 'nope'"):
        validate_study(study_from_dict(bad), quick=True)
    bad = copy.deepcopy(good)
    bad["parts"][0]["losses"][0] = {"name": "mse", "eps": 0.5}
    with pytest.raises(ValueError, match="(?s)part noisy.*eps"):
        validate_study(study_from_dict(bad))


def test_cutoff_threshold_must_separate_the_noise_components() -> None:
    bad = raw_study("biv-wine")
    bad["parts"][0]["losses"][3]["threshold"] = 0.001  # below the near-clean upper bound 0.00149
    with pytest.raises(ValueError, match="does not separate the noise components"):
        validate_study(study_from_dict(bad))


# ------------------------------------------------------------------------------ noise mapping


def test_identity_mapping_gives_the_readme_example() -> None:
    """UTKFace (V = V_ref): the README main setting, U(0.226, 0.774) and U(2713.4, 9285.6) years²."""
    noise = NoiseSettings(reference_variance=395.46, label_variance=395.46, mixture_means=(3000.0,))
    clean, noisy = noise.components(3000.0)
    assert (clean.low, clean.high) == pytest.approx((0.5 - 0.5 * math.sqrt(0.3), 0.5 + 0.5 * math.sqrt(0.3)))
    assert (clean.low, clean.high) == pytest.approx((0.226, 0.774), abs=1e-3)
    assert (noisy.low, noisy.high) == pytest.approx((2713.4, 9285.6), abs=0.1)


@pytest.mark.parametrize("name", ["biv-wine", "biv-bike", "biv-epsilon"])
def test_scaled_settings_keep_the_noise_to_label_variance_ratios(name: str) -> None:
    noise = load_study(name).noise
    assert noise is not None
    ref = NoiseSettings(noise.reference_variance, noise.reference_variance, noise.mixture_means)
    v, vref = noise.label_variance, noise.reference_variance
    for m in noise.mixture_means:
        # every bound divided by the label variance equals the reference bound divided by V_ref
        for ours, theirs in zip(noise.components(m), ref.components(m)):
            assert ours.low / v == pytest.approx(theirs.low / vref, rel=1e-12)
            assert ours.high / v == pytest.approx(theirs.high / vref, rel=1e-12)
        # the mixture mean, by numerical integration of the density of the two uniforms
        d = noise.distribution(m)
        total = 0.0
        for weight, comp in zip(d["weights"], d["components"]):
            grid = np.linspace(comp["low"], comp["high"], 10_001)
            total += weight * np.trapezoid(grid / (comp["high"] - comp["low"]), grid)
        assert total == pytest.approx(m * v / vref, rel=1e-9)


def test_label_variances_of_the_studies_match_the_released_data() -> None:
    if not DATA:
        pytest.skip("HETREG_DATA is not set: cannot read the Wine and Bike files")
    root = Path(DATA)
    red, white = root / "wine-quality" / "winequality-red.csv", root / "wine-quality" / "winequality-white.csv"
    hour = root / "bike-sharing" / "hour.csv"
    if not (red.exists() and white.exists() and hour.exists()):
        pytest.skip(f"Wine or Bike files missing under {root}")
    quality = pd.concat([pd.read_csv(red, sep=";"), pd.read_csv(white, sep=";")])["quality"].to_numpy(float)
    counts = pd.read_csv(hour)["cnt"].to_numpy(float)
    assert load_study("biv-wine").noise.label_variance == pytest.approx(quality.var(ddof=1), rel=1e-4)
    assert load_study("biv-bike").noise.label_variance == pytest.approx(counts.var(ddof=1), rel=1e-4)


# ------------------------------------------------------------------------------ tables and verdicts


def _fake_results(study: Study, values: dict[tuple[str, str], list[float]]) -> ResultSet:
    rows = []
    for (setting, loss), per_seed in values.items():
        section = next(v for p in study.parts for v in p.losses if study.loss_label(v) == loss)
        for seed, x in enumerate(per_seed):
            rows.append(
                RunRow(f"{setting}-{loss}-{seed}", "completed", {"setting": setting, "loss": section, "seed": seed}, {"final.test_mse_raw": x, "best.test_mse_raw": x})
            )
    return ResultSet(Path("."), ["setting", "loss", "seed"], rows, {})


def test_paired_verdicts_from_known_numbers() -> None:
    study = load_study("biv-wine")
    setting = study.noise.label(2000.0)
    other = study.noise.label(3000.0)
    mse = [1.0, 1.2, 0.9, 1.1]
    values = {
        (setting, "mse"): mse,
        (setting, "biv (eps=0.5)"): [x - 0.3 + 0.01 * i for i, x in enumerate(mse)],  # clearly lower
        (setting, "iv (eps=0.5)"): [x - 0.25 for x in mse],
        (setting, "cutoff (threshold=0.001928)"): [x - 0.31 + 0.02 * (-1) ** i for i, x in enumerate(mse)],
        (other, "mse"): mse,
        (other, "biv (eps=0.5)"): [x - 0.3 for x in mse],
        (other, "iv (eps=0.5)"): [x - 0.1 for x in mse],
        (other, "cutoff (threshold=0.001928)"): [x - 0.2 for x in mse],
    }
    tables = _compute_tables(study, _fake_results(study, values))
    # paired difference biv − mse against a brute-force t interval
    d = np.array(values[(setting, "biv (eps=0.5)")]) - np.array(mse)
    est = tables.diffs["test_mse_raw"][(setting, "{eps: 0.5, name: biv}")]
    half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    assert est.mean == pytest.approx(d.mean()) and est.half_width == pytest.approx(half)
    text = "\n".join(check_claims(study, tables))
    first = text.split("### ")[1]
    # biv − cutoff in the 2000 setting: mean +0.01, alternating ±0.02 → not significant
    assert "**Agrees partly**" in first
    assert "no significant difference" in first and "lower" in first


def test_direction_needs_an_interval() -> None:
    assert _direction(Estimate(1, -1.0, math.nan, math.nan, 0.95)) == "undetermined"
    assert _direction(Estimate(5, -1.0, 0.1, 0.5, 0.95)) == "lower"
    assert _direction(Estimate(5, 1.0, 0.1, 0.5, 0.95)) == "higher"
    assert _direction(Estimate(5, 0.2, 0.1, 0.5, 0.95)) == "no significant difference"


# ------------------------------------------------------------------------------ end to end


def _check_report_against_runs(study: Study, out: Path, metric: str) -> pd.DataFrame:
    """The CSV of the report equals mean and t interval recomputed from the run folders."""
    table = pd.read_csv(out / f"{study.name}.csv")
    assert set(table["metric"]) == {m.name for m in study.metrics} - set()
    per_group: dict[tuple[str, str], list[float]] = {}
    results = collect_results(study, out, quick=True)
    for row in results.rows:
        assert row.status == "completed"
        summary = runstore.read_json(row.record.run_dir / runstore.SUMMARY_FILE)
        value = summary["final"]["test_mse_raw"] if metric == "test_mse_raw" else None
        if metric.startswith("imb."):
            value = json.loads((row.record.run_dir / IMBALANCED_FILE).read_text())[metric[4:]]
        per_group.setdefault((row.values["setting"], study.loss_label(row.values["loss"])), []).append(value)
    sub = table[table["metric"] == metric]
    assert len(sub) == len(per_group)
    for rec in sub.to_dict("records"):
        x = np.array(per_group[(rec["setting"], rec["loss"])])
        half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
        assert rec["n"] == x.size
        assert rec["mean"] == pytest.approx(x.mean(), rel=1e-9)
        assert rec["ci_high"] - rec["mean"] == pytest.approx(half, rel=1e-6)
    return table


def test_quick_bmse_synthetic_end_to_end(tmp_path: Path) -> None:
    study = load_study("bmse-synthetic")
    out = tmp_path / "bmse"
    md = reproduce("bmse-synthetic", out, quick=True, workers=1, quiet=True)
    assert md == out / "bmse-synthetic.md"
    text = md.read_text(encoding="utf-8")
    for needle in ("balanced test MSE", "few-shot MSE", "Paired difference to mse", "## Claims of the papers", "Machine: ", "torch ", "Wall time"):
        assert needle in text
    assert "hetreg reproduce bmse-synthetic --out" in text and "--quick" in text
    for png in ("bmse-synthetic-metrics.png", "bmse-synthetic-curves.png"):
        assert (out / png).stat().st_size > 1000 and f"]({png})" in text
    _check_report_against_runs(study, out, "imb.bmse")
    _check_report_against_runs(study, out, "test_mse_raw")
    # shot groups against an independent count of the test labels' bins
    from hetreg.data import load_dataset
    from hetreg.experiments.config import load_config

    for record in runstore.scan_runs(out / "synthetic"):
        imb = json.loads((record.run_dir / IMBALANCED_FILE).read_text())
        cfg = load_config(record.run_dir / "config.yaml")
        data = load_dataset(cfg.data.name, seed=cfg.seed_for("data"), **cfg.data.loader_options())
        train_bins = np.floor(data.train.y.numpy()).astype(int)
        counts = {b: int((train_bins == b).sum()) for b in range(-1, 11)}
        test_bins = np.floor(data.test.y.numpy()).astype(int)
        n_train = np.array([counts.get(b, 0) for b in test_bins])
        assert imb["many.count"] == (n_train > 100).sum()
        assert imb["few.count"] == (n_train < 20).sum()
        assert imb["all.count"] == len(test_bins)
        assert imb["all.mse"] == pytest.approx(runstore.read_json(record.run_dir / "summary.json")["final"]["test_mse_raw"], rel=1e-4)
    # a rerun skips every completed run and records a second session
    before = sorted(p.name for p in (out / "synthetic" / "runs").iterdir())
    reproduce("bmse-synthetic", out, quick=True, workers=1, quiet=True)
    assert sorted(p.name for p in (out / "synthetic" / "runs").iterdir()) == before
    sessions = json.loads((out / "study.json").read_text())["sessions"]
    assert len(sessions) == 2 and sessions[-1]["command"].endswith("--quick --workers 1")
    # the report can be written again without running anything
    (out / "bmse-synthetic.md").unlink()
    assert rewrite_report("bmse-synthetic", out, quick=True).read_text(encoding="utf-8").count("| MSE |") == 1
    assert len(json.loads((out / "study.json").read_text())["sessions"]) == 2
    # the same folder cannot hold the full study, nor another one
    with pytest.raises(FileExistsError):
        reproduce("bmse-synthetic", out, quick=False, workers=1, quiet=True)


def test_quick_default_folder_is_not_copied_to_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "x.txt").write_text("not a study")
    with pytest.raises(FileExistsError, match="not a study folder"):
        reproduce("bmse-synthetic", tmp_path / "occupied", quick=True, quiet=True)
    assert default_out_dir("bmse-synthetic", quick=True) == Path("hetreg-runs/reproduce-bmse-synthetic-quick")


def test_reports_are_copied_to_the_checkouts_docs_never_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hetreg.experiments.reproduce as rp

    repo = Path(__file__).resolve().parents[2]
    assert rp.default_docs_dir() == repo / "docs" / "results"  # tests run from the checkout
    user_docs = tmp_path / "docs" / "results"
    user_docs.mkdir(parents=True)
    (user_docs / "biv-wine.md").write_text("the user's own notes")
    (user_docs / "biv-wine-plot.png").write_bytes(b"png")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "study"
    out.mkdir()
    (out / "biv-wine.md").write_text("report")
    said: list[str] = []
    monkeypatch.setattr(rp, "_CHECKOUT", tmp_path / "site-packages")  # an installed package
    assert rp.default_docs_dir() is None
    rp._copy_to_docs(out, "biv-wine", None, said.append)
    assert said == ["report not copied to docs/results: this is not a hetreg checkout"]
    assert (user_docs / "biv-wine.md").read_text() == "the user's own notes"
    assert (user_docs / "biv-wine-plot.png").exists()
    target = tmp_path / "elsewhere"
    rp._copy_to_docs(out, "biv-wine", target, said.append)  # an explicit folder is honoured
    assert (target / "biv-wine.md").read_text() == "report"


def test_missing_data_is_reported_before_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HETREG_DATA", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="needs the dataset 'wine'"):
        reproduce("biv-wine", tmp_path / "out", quick=True, quiet=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not DATA, reason="HETREG_DATA is not set: the Wine files are needed")
@pytest.mark.parametrize("name", ["biv-wine", "biv-epsilon"])
def test_quick_wine_studies_end_to_end(name: str, tmp_path: Path) -> None:
    if not (Path(DATA) / "wine-quality" / "winequality-red.csv").exists():
        pytest.skip(f"Wine files missing under {DATA}")
    study = load_study(name)
    out = tmp_path / name
    text = reproduce(name, out, quick=True, workers=1, quiet=True).read_text(encoding="utf-8")
    assert "Paired difference to mse" in text and "### Noise settings" in text
    table = _check_report_against_runs(study, out, "test_mse_raw")
    if name == "biv-wine":
        assert "no noise" in set(table["setting"])
        assert "### BIV beats L2, IV and the cutoff baseline" in text
        assert (out / f"{name}-settings.png").exists()
    else:
        ebs = table[(table["metric"] == "final.ebs") & table["loss"].str.startswith("biv (eps=0.")]
        assert len(ebs) >= 2 and (ebs["mean"] > 1).all() and (ebs["mean"] <= 256).all()
        assert (out / f"{name}-epsilon.png").exists()
        assert "ε controls the effective batch size" in text
