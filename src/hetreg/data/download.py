"""The checksum-verified download command for the public tabular datasets.

Nothing in hetreg downloads data implicitly: loaders only read files under the data folder
(:func:`hetreg.data.location.data_root`) and raise
:class:`~hetreg.data.status.DataNotFoundError` when one is missing. :func:`download_dataset` is
the one explicit way to fetch Wine Quality and Bike Sharing from the UCI Machine Learning
Repository (CC BY 4.0). Every file it writes is checked against the published sha256
(:data:`hetreg.data.status.RELEASE_FILES`, the hashes of the unmodified UCI release).
UTKFace is never downloaded (licence); asking for it raises with instructions.

Command line::

    python -m hetreg.data.download wine [--root DIR] [--base-url URL] [--overwrite]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

from hetreg.data.location import data_root
from hetreg.data.status import (
    BIKE_DAY,
    BIKE_HOUR,
    WINE_RED,
    WINE_WHITE,
    KnownFile,
    sha256_file,
)

UCI_HOST = "https://archive.ics.uci.edu"
"""Scheme and host of the official addresses; ``base_url`` replaces it (mirrors, tests)."""


@dataclass(frozen=True)
class Source:
    """Where a dataset's files come from: one URL path per file, or one zip archive holding them."""

    files: tuple[KnownFile, ...]
    url_paths: tuple[str, ...] = ()
    archive_path: str | None = None


SOURCES: dict[str, Source] = {
    "wine": Source(
        files=(WINE_RED, WINE_WHITE),
        url_paths=(
            "/ml/machine-learning-databases/wine-quality/winequality-red.csv",
            "/ml/machine-learning-databases/wine-quality/winequality-white.csv",
        ),
    ),
    "bike": Source(
        files=(BIKE_HOUR, BIKE_DAY),
        archive_path="/ml/machine-learning-databases/00275/Bike-Sharing-Dataset.zip",
    ),
}
"""The downloadable datasets: official UCI paths and the files they give (hashes in status.py)."""

UTKFACE_INSTRUCTIONS = (
    "UTKFace is never downloaded by hetreg: its licence allows non-commercial research use only, "
    "and the copyright of the images belongs to their owners, so you must obtain it yourself and "
    "accept its terms. Get the 'Aligned & Cropped Faces' set (UTKFace.tar.gz) from the official "
    "page https://susanqq.github.io/UTKFace/ and unpack it so that the images sit in "
    "<data folder>/utkface/UTKFace/ with their original names "
    "(<age>_<gender>_<race>_<datetime>.jpg.chip.jpg; 23,708 files in the full release), then set "
    "HETREG_DATA=<data folder> (or pass root=)."
)


class DownloadError(RuntimeError):
    """A download could not be completed (network, HTTP error, unusable archive, refused overwrite)."""


class ChecksumError(DownloadError):
    """A file's sha256 differs from the published one; the downloaded copy has been deleted."""


def _check_url(base_url: str | None) -> str:
    host = UCI_HOST if base_url is None else str(base_url).rstrip("/")
    if not host.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
    return host


def _fetch(url: str, handle: IO[bytes], timeout: float) -> str:
    """Stream ``url`` into ``handle``; return the sha256 of the bytes written."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http(s) only)
            for chunk in iter(lambda: response.read(1 << 16), b""):
                digest.update(chunk)
                handle.write(chunk)
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"could not download {url}: the server answered HTTP {exc.code} {exc.reason} "
            f"(the file is missing there; check base_url or try again later)"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"could not download {url}: {reason}") from None
    return digest.hexdigest()


def _temp_beside(final: Path) -> tuple[IO[bytes], Path]:
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    return os.fdopen(fd, "wb"), Path(name)


def _install(temp: Path, actual: str, item: KnownFile, final: Path, origin: str) -> Path:
    """Rename ``temp`` to ``final`` if its hash is the published one; else delete it and raise."""
    if actual != item.sha256:
        temp.unlink(missing_ok=True)
        raise ChecksumError(
            f"checksum mismatch for {item.relpath} from {origin}: expected sha256 {item.sha256}, "
            f"got {actual}; the download was deleted and nothing was written to {final}"
        )
    os.replace(temp, final)
    return final


def _existing_ok(item: KnownFile, final: Path, overwrite: bool) -> bool:
    """True when ``final`` already holds the verified file (nothing to do).

    An existing file with another hash is never replaced silently: refused unless ``overwrite``.
    """
    if not final.exists():
        return False
    actual = sha256_file(final)
    if actual == item.sha256:
        return True
    if not overwrite:
        raise DownloadError(
            f"refusing to overwrite {final}: it exists but its sha256 is {actual}, not the published "
            f"{item.sha256} (a modified or different copy). Move it away, or pass overwrite=True "
            f"(--overwrite) to replace it with a verified download"
        )
    return False


def download_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    *,
    overwrite: bool = False,
    timeout: float = 60.0,
) -> list[Path]:
    """Download a public dataset into the data folder, verifying every file's sha256.

    Files already present with the published hash are kept as they are (not downloaded again).
    Each file is written to a temporary file beside its destination and renamed only once its
    hash matches, so a failed or corrupted download never leaves a partial file behind.

    Args:
        name: ``"wine"`` (two csv files) or ``"bike"`` (zip archive; ``hour.csv`` and ``day.csv``
            are extracted). ``"utkface"`` raises with instructions: it is never downloaded.
        root: data folder (else ``$HETREG_DATA``, else the per-user data directory).
        base_url: replaces ``https://archive.ics.uci.edu`` in the official addresses (a mirror,
            or a local server in tests); the paths stay the same.
        overwrite: replace an existing file whose hash differs from the published one (refused
            by default).
        timeout: seconds to wait for the server.

    Returns:
        The paths of the dataset's files, all verified.

    Raises:
        ValueError: unknown dataset name, or a bad ``base_url``.
        DownloadError: network or HTTP error, an archive without the expected file, a refused
            overwrite, or UTKFace.
        ChecksumError: a downloaded file does not have the published sha256 (it is deleted).
    """
    if name == "utkface":
        raise DownloadError(UTKFACE_INSTRUCTIONS)
    if name not in SOURCES:
        raise ValueError(f"cannot download {name!r}; downloadable datasets: {', '.join(sorted(SOURCES))}")
    host = _check_url(base_url)
    source = SOURCES[name]
    folder = data_root(root)
    finals = [folder / item.relpath for item in source.files]
    todo = [(item, final) for item, final in zip(source.files, finals) if not _existing_ok(item, final, overwrite)]
    if not todo:
        return finals
    if source.archive_path is None:
        for item, final in todo:
            url = host + source.url_paths[source.files.index(item)]
            handle, temp = _temp_beside(final)
            try:
                with handle:
                    actual = _fetch(url, handle, timeout)
                _install(temp, actual, item, final, url)
            finally:
                temp.unlink(missing_ok=True)
        return finals
    url = host + source.archive_path
    handle, archive = _temp_beside(finals[0].parent / "download.zip")
    try:
        with handle:
            _fetch(url, handle, timeout)
        _extract(archive, url, todo)
    finally:
        archive.unlink(missing_ok=True)
    return finals


def _extract(archive: Path, url: str, todo: Sequence[tuple[KnownFile, Path]]) -> None:
    """Extract each wanted file (matched by base name, at any depth) from the zip, verified."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = {Path(m).name: m for m in zf.namelist() if not m.endswith("/") and "__MACOSX" not in m}
            for item, final in todo:
                base = Path(item.relpath).name
                if base not in members:
                    raise DownloadError(
                        f"the archive {url} has no {base}; it holds: {', '.join(sorted(members)) or 'nothing'}"
                    )
                handle, temp = _temp_beside(final)
                try:
                    digest = hashlib.sha256()
                    with handle, zf.open(members[base]) as src:
                        for chunk in iter(lambda: src.read(1 << 16), b""):
                            digest.update(chunk)
                            handle.write(chunk)
                    _install(temp, digest.hexdigest(), item, final, f"{url} ({members[base]})")
                finally:
                    temp.unlink(missing_ok=True)
    except zipfile.BadZipFile:
        raise DownloadError(f"{url} is not a valid zip archive (truncated or not a zip file)") from None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hetreg.data.download NAME``: download and verify one dataset."""
    parser = argparse.ArgumentParser(
        prog="python -m hetreg.data.download", description="Download a public dataset, sha256-verified."
    )
    parser.add_argument("name", choices=sorted(SOURCES) + ["utkface"])
    parser.add_argument("--root", default=None, help="data folder (default: $HETREG_DATA or per-user folder)")
    parser.add_argument("--base-url", default=None, help=f"mirror replacing {UCI_HOST}")
    parser.add_argument("--overwrite", action="store_true", help="replace files whose hash differs")
    args = parser.parse_args(argv)
    try:
        paths = download_dataset(args.name, root=args.root, base_url=args.base_url, overwrite=args.overwrite)
    except (DownloadError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"verified {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
