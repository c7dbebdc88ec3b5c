"""The download command against a local HTTP server: verified files, corrupted files, missing files,
existing files, archives, and the UTKFace refusal."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Callable

import pytest

from hetreg.data import download
from hetreg.data.download import ChecksumError, DownloadError, Source, download_dataset
from hetreg.data.status import BIKE_DAY, BIKE_HOUR, WINE_RED, WINE_WHITE, KnownFile, sha256_file

WINE_DIR = "ml/machine-learning-databases/wine-quality"
BIKE_ZIP = "ml/machine-learning-databases/00275/Bike-Sharing-Dataset.zip"


def _publish(www: Path, relpath: str, data: bytes) -> Path:
    path = www / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _zip(www: Path, members: dict[str, bytes]) -> None:
    path = www / BIKE_ZIP
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _fake_sources(monkeypatch: pytest.MonkeyPatch, **contents: bytes) -> dict[str, bytes]:
    """Make the published hashes those of small fake files (so no real data is needed)."""

    def known(item: KnownFile, data: bytes) -> KnownFile:
        return KnownFile(item.relpath, hashlib.sha256(data).hexdigest(), 1)

    red, white, hour, day = (contents[k] for k in ("red", "white", "hour", "day"))
    wine = download.SOURCES["wine"]
    bike = download.SOURCES["bike"]
    monkeypatch.setitem(
        download.SOURCES, "wine", Source(files=(known(WINE_RED, red), known(WINE_WHITE, white)), url_paths=wine.url_paths)
    )
    monkeypatch.setitem(
        download.SOURCES,
        "bike",
        Source(files=(known(BIKE_HOUR, hour), known(BIKE_DAY, day)), archive_path=bike.archive_path),
    )
    return contents


FAKE = {"red": b"red;1\n", "white": b"white;2\n", "hour": b"hour,3\r\n", "day": b"day,4\r\n"}


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and (p.name.endswith(".part") or p.name.startswith("."))]


def test_wine_download_verified(serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_sources(monkeypatch, **FAKE)
    _publish(serve.directory, f"{WINE_DIR}/winequality-red.csv", FAKE["red"])
    _publish(serve.directory, f"{WINE_DIR}/winequality-white.csv", FAKE["white"])
    root = tmp_path / "data"
    paths = download_dataset("wine", root=root, base_url=serve.url)
    assert paths == [root / "wine-quality" / "winequality-red.csv", root / "wine-quality" / "winequality-white.csv"]
    assert [p.read_bytes() for p in paths] == [FAKE["red"], FAKE["white"]]
    assert serve.requests == [f"/{WINE_DIR}/winequality-red.csv", f"/{WINE_DIR}/winequality-white.csv"]
    # present and verified: kept, nothing fetched again
    assert download_dataset("wine", root=root, base_url=serve.url) == paths
    assert len(serve.requests) == 2
    assert not _leftovers(root)


def test_bike_archive_extracted_and_verified(serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_sources(monkeypatch, **FAKE)
    _zip(serve.directory, {"Readme.txt": b"x", "Bike/hour.csv": FAKE["hour"], "Bike/day.csv": FAKE["day"]})
    paths = download_dataset("bike", root=tmp_path / "d", base_url=serve.url + "/")
    assert [p.name for p in paths] == ["hour.csv", "day.csv"]
    assert paths[0].read_bytes() == FAKE["hour"] and paths[1].read_bytes() == FAKE["day"]
    assert not (tmp_path / "d" / "bike-sharing" / "Readme.txt").exists()
    assert not _leftovers(tmp_path / "d")


def test_corrupted_file_rejected(serve, tmp_path: Path) -> None:
    _publish(serve.directory, f"{WINE_DIR}/winequality-red.csv", b"not the wine data\n")
    with pytest.raises(ChecksumError) as info:
        download_dataset("wine", root=tmp_path, base_url=serve.url)
    message = str(info.value)
    assert WINE_RED.sha256 in message and hashlib.sha256(b"not the wine data\n").hexdigest() in message
    assert "deleted" in message
    assert not (tmp_path / "wine-quality" / "winequality-red.csv").exists()
    assert not _leftovers(tmp_path)


def test_corrupted_archive_member_rejected(serve, tmp_path: Path) -> None:
    _zip(serve.directory, {"hour.csv": b"bad", "day.csv": b"bad"})
    with pytest.raises(ChecksumError, match=f"expected sha256 {BIKE_HOUR.sha256}"):
        download_dataset("bike", root=tmp_path, base_url=serve.url)
    assert not _leftovers(tmp_path) and not (tmp_path / "bike-sharing" / "hour.csv").exists()


def test_missing_file_on_server(serve, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=rf"could not download {serve.url}/{WINE_DIR}/winequality-red.csv: .*HTTP 404"):
        download_dataset("wine", root=tmp_path, base_url=serve.url)
    assert not _leftovers(tmp_path)


def test_archive_without_the_file(serve, tmp_path: Path) -> None:
    _zip(serve.directory, {"day.csv": b"x"})
    with pytest.raises(DownloadError, match=r"has no hour.csv; it holds: day.csv"):
        download_dataset("bike", root=tmp_path, base_url=serve.url)
    _publish(serve.directory, BIKE_ZIP, b"this is not a zip")
    with pytest.raises(DownloadError, match="not a valid zip archive"):
        download_dataset("bike", root=tmp_path, base_url=serve.url)
    assert not _leftovers(tmp_path)


def test_unreachable_server(tmp_path: Path, serve) -> None:
    port = serve.httpd.server_address[1]
    serve.close()  # nothing listens there any more
    with pytest.raises(DownloadError, match="could not download http://127.0.0.1"):
        download_dataset("wine", root=tmp_path, base_url=f"http://127.0.0.1:{port}", timeout=5)


def test_existing_different_file_is_never_overwritten_silently(
    serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_sources(monkeypatch, **FAKE)
    _publish(serve.directory, f"{WINE_DIR}/winequality-red.csv", FAKE["red"])
    _publish(serve.directory, f"{WINE_DIR}/winequality-white.csv", FAKE["white"])
    mine = tmp_path / "wine-quality" / "winequality-red.csv"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own edited copy\n")
    with pytest.raises(DownloadError, match=r"refusing to overwrite .*winequality-red.csv.*overwrite=True"):
        download_dataset("wine", root=tmp_path, base_url=serve.url)
    assert mine.read_bytes() == b"my own edited copy\n" and serve.requests == []
    download_dataset("wine", root=tmp_path, base_url=serve.url, overwrite=True)
    assert mine.read_bytes() == FAKE["red"]


def test_utkface_is_never_downloaded(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        download_dataset("utkface", root=tmp_path)
    message = str(info.value)
    for words in ("licence", "non-commercial", "https://susanqq.github.io/UTKFace/", "utkface/UTKFace/", "HETREG_DATA"):
        assert words in message
    assert not any(tmp_path.iterdir())


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot download 'imdb'; downloadable datasets: bike, wine"):
        download_dataset("imdb", root=tmp_path)
    with pytest.raises(ValueError, match="base_url must start with http"):
        download_dataset("wine", root=tmp_path, base_url="ftp://mirror")


def test_command_line(serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    _fake_sources(monkeypatch, **FAKE)
    _zip(serve.directory, {"hour.csv": FAKE["hour"], "day.csv": FAKE["day"]})
    assert download.main(["bike", "--root", str(tmp_path), "--base-url", serve.url]) == 0
    assert f"verified {tmp_path / 'bike-sharing' / 'hour.csv'}" in capsys.readouterr().out
    assert download.main(["utkface", "--root", str(tmp_path)]) == 1
    assert "never downloaded" in capsys.readouterr().err


# -- the real release served locally (skipped without HETREG_DATA) ----------------------------


def test_real_release_round_trip(serve, tmp_path: Path, shared_file: Callable[[str], Path]) -> None:
    for item in (WINE_RED, WINE_WHITE):
        _publish(serve.directory, f"{WINE_DIR}/{Path(item.relpath).name}", shared_file(item.relpath).read_bytes())
    _zip(
        serve.directory,
        {"Readme.txt": b"readme", **{Path(i.relpath).name: shared_file(i.relpath).read_bytes() for i in (BIKE_HOUR, BIKE_DAY)}},
    )
    root = tmp_path / "data"
    paths = download_dataset("wine", root=root, base_url=serve.url) + download_dataset(
        "bike", root=root, base_url=serve.url
    )
    assert [sha256_file(p) for p in paths] == [i.sha256 for i in (WINE_RED, WINE_WHITE, BIKE_HOUR, BIKE_DAY)]
    # the published values, as in the data README
    assert sha256_file(root / "bike-sharing" / "hour.csv") == (
        "e03de4ee4ef4dc376ac6e04bf829673c6269e8eba5c60fa121640fa2f829504f"
    )
    # one byte changed upstream: rejected, the verified copy stays
    red = serve.directory / WINE_DIR / "winequality-red.csv"
    red.write_bytes(red.read_bytes().replace(b"7.4;0.7;", b"7.5;0.7;", 1))
    (root / "wine-quality" / "winequality-red.csv").unlink()
    with pytest.raises(ChecksumError, match=WINE_RED.sha256):
        download_dataset("wine", root=root, base_url=serve.url)
    assert not (root / "wine-quality" / "winequality-red.csv").exists()
    assert (root / "wine-quality" / "winequality-white.csv").is_file()
