"""``dataset_status`` and the missing-file message."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from hetreg.data import dataset_names, dataset_status
from hetreg.data.status import WINE_RED, DataNotFoundError, require_file, sha256_file

pytestmark = pytest.mark.filterwarnings("ignore:.*differs from the published:UserWarning")


def _by_name(root: Path | None) -> dict[str, dict]:
    return {record["name"]: record for record in dataset_status(root)}


def test_one_record_per_registered_dataset(tmp_path: Path) -> None:
    records = dataset_status(tmp_path)
    assert [r["name"] for r in records] == dataset_names()
    for record in records:
        assert set(record) == {"name", "available", "source", "path", "checksum", "detail"}


def test_empty_folder(tmp_path: Path) -> None:
    status = _by_name(tmp_path)
    assert status["wine"]["available"] is False and status["wine"]["checksum"] == "missing"
    assert status["wine"]["path"] == str(tmp_path / "wine-quality")
    assert "python -m hetreg.data.download wine" in status["wine"]["detail"]
    assert status["bike"]["available"] is False
    assert status["synthetic-hetero"] == {
        "name": "synthetic-hetero",
        "available": True,
        "source": "generated",
        "path": None,
        "checksum": "n/a",
        "detail": "generated from the seed; no files needed",
    }
    assert status["diabetes"]["source"] == "bundled" and status["diabetes"]["available"] is True
    assert status["csv"]["available"] is None and status["parquet"]["source"] == "user file"
    if "utkface" in status:
        assert status["utkface"]["available"] is False
        assert status["utkface"]["path"] == str(tmp_path / "utkface" / "UTKFace")


def test_files_present_but_not_the_release(fake_root: Path) -> None:
    status = _by_name(fake_root)
    assert status["wine"]["available"] is True and status["wine"]["checksum"] == "mismatch"
    assert "wine-quality/winequality-red.csv" in status["wine"]["detail"]
    assert status["bike"]["checksum"] == "mismatch"


def test_utkface_images_counted_not_hashed(tmp_path: Path) -> None:
    if "utkface" not in dataset_names():
        pytest.skip("the utkface loader is not registered")
    images = tmp_path / "utkface" / "UTKFace"
    images.mkdir(parents=True)
    for name in ("1_0_0_2017.jpg.chip.jpg", "24_0_1_2017 .jpg.chip.jpg", "55_0_0_2017jpg.chip.jpg", "notes.txt"):
        (images / name).write_bytes(b"not really an image")
    record = _by_name(tmp_path)["utkface"]
    assert record["available"] is True and record["checksum"] == "not checked"
    assert record["detail"].startswith("3 images found")


def test_environment_variable_is_used(fake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HETREG_DATA", str(fake_root))
    assert _by_name(None)["wine"]["path"] == str(fake_root / "wine-quality")


def test_real_data_verified(shared_file: Callable[[str], Path]) -> None:
    root = shared_file("wine-quality/winequality-red.csv").parent.parent
    shared_file("wine-quality/winequality-white.csv")
    shared_file("bike-sharing/hour.csv")
    status = _by_name(root)
    assert status["wine"]["checksum"] == "verified" and status["bike"]["checksum"] == "verified"
    assert sha256_file(root / WINE_RED.relpath) == WINE_RED.sha256


def test_missing_file_message_says_where_and_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataNotFoundError) as info:
        require_file("bike", "bike-sharing/hour.csv", root=tmp_path)
    message = str(info.value)
    assert message.startswith(f"bike: file not found: {tmp_path / 'bike-sharing' / 'hour.csv'}")
    assert "(chosen from the root argument)" in message
    assert "bike-sharing/hour.csv" in message.split("laid out like")[1]
    assert f"python -m hetreg.data.download bike --root {tmp_path}" in message
    assert info.value.path == tmp_path / "bike-sharing" / "hour.csv"

    monkeypatch.delenv("HETREG_DATA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with pytest.raises(FileNotFoundError) as info:
        require_file("wine", WINE_RED.relpath)
    message = str(info.value)
    assert str(tmp_path / "xdg" / "hetreg" / WINE_RED.relpath) in message
    assert "per-user data directory" in message and "--root" not in message
