"""report.html renders in headless Chromium with its images loaded and its tables present."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hetreg.experiments.report import write_report
from hetreg.experiments.runstore import write_json
from hetreg.experiments.testing import write_fake_run

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs headless Chromium at /usr/bin/chromium (apt-get install chromium)"),
]

# Appended to a copy of the report (the report itself has no scripts): after the load event,
# record each image's load state and size and the size of the results table in the DOM.
CHECK_SCRIPT = """
<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {complete: img.complete, width: img.naturalWidth, height: img.naturalHeight};
  });
  var rows = document.querySelectorAll("#results tbody tr").length;
  var out = document.createElement("pre");
  out.id = "hetreg-check";
  out.textContent = JSON.stringify({images: images, rows: rows, title: document.title});
  document.body.appendChild(out);
});
</script>
"""


def chromium_dump_dom(page: Path, profile: Path) -> str:
    args = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # any external resource would fail to load
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_renders_with_images_and_table(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    write_json(root / "sweep.json", {"grid": [{"key": "loss.name", "values": ["mse", "biv"]}, {"key": "seed", "values": [0, 1, 2]}]})
    for loss, level in (("mse", 2.0), ("biv", 1.0)):
        for seed in range(3):
            final = level + 0.1 * seed
            metrics = [{"epoch": e, "test_mse_raw": final * (4 - e)} for e in (1, 2, 3)]
            write_fake_run(root / "runs" / f"{loss}{seed}", {"seed": seed, "loss": {"name": loss}}, metrics, {"status": "completed", "final": {"test_mse_raw": final}})
    html = write_report(root).paths["html"]

    page = tmp_path / "check.html"
    page.write_text(html.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    dom = chromium_dump_dom(page, tmp_path / "profile")
    match = re.search(r'<pre id="hetreg-check">(.*?)</pre>', dom, re.S)
    assert match, "the load handler did not run: " + dom[:500]
    check = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert check["title"].startswith("hetreg report")
    assert check["rows"] == 2
    assert len(check["images"]) == 2  # learning curves + bar chart
    for img in check["images"]:
        assert img["complete"] and img["width"] >= 300 and img["height"] >= 200
    assert "biv" in dom and "mse" in dom


def test_screenshot_is_not_blank(tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    root = tmp_path / "run"
    write_fake_run(root, {"seed": 0}, [{"epoch": 1, "test_mse_raw": 2.0}, {"epoch": 2, "test_mse_raw": 1.0}], {"status": "completed", "final": {"test_mse_raw": 1.0}})
    html = write_report(root).paths["html"]
    shot = tmp_path / "shot.png"
    args = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1000,1400",
        f"--screenshot={shot}", html.as_uri(),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    with Image.open(shot) as img:
        assert img.size == (1000, 1400)
        stat = ImageStat.Stat(img.convert("L"))
        assert stat.stddev[0] > 5  # text, tables and figures, not a blank page
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
