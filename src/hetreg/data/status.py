"""Which datasets are available, where their files are, and whether they are the published ones.

This module also holds what every file-based loader needs to find its files: the published
sha256 of the public releases (:data:`RELEASE_FILES`), :func:`require_file`, and
:class:`DataNotFoundError`, whose message says which file is missing, where hetreg looked (and
why there), and how to supply it. :func:`dataset_status` backs the ``hetreg datasets`` command.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hetreg.data.base import dataset_names
from hetreg.data.location import data_root, data_root_source


@dataclass(frozen=True)
class KnownFile:
    """A file of a public release: path under the data folder, sha256 and number of data rows."""

    relpath: str
    sha256: str
    rows: int


WINE_RED = KnownFile(
    "wine-quality/winequality-red.csv", "4a402cf041b025d4566d954c3b9ba8635a3a8a01e039005d97d6a710278cf05e", 1599
)
WINE_WHITE = KnownFile(
    "wine-quality/winequality-white.csv", "76c3f809815c17c07212622f776311faeb31e87610d52c26d87d6e361b169836", 4898
)
BIKE_HOUR = KnownFile(
    "bike-sharing/hour.csv", "e03de4ee4ef4dc376ac6e04bf829673c6269e8eba5c60fa121640fa2f829504f", 17379
)
BIKE_DAY = KnownFile(
    "bike-sharing/day.csv", "a6bcf826782d3c0fbfdcbeead17cd0884185a0dafe8ff10cd48a874ee7ba18be", 731
)

RELEASE_FILES: dict[str, tuple[KnownFile, ...]] = {
    "wine": (WINE_RED, WINE_WHITE),
    "bike": (BIKE_HOUR, BIKE_DAY),
}
"""Files of the downloadable public datasets, with the sha256 of the UCI release (byte for byte)."""

REQUIRED_FILES: dict[str, tuple[KnownFile, ...]] = {
    "wine": (WINE_RED, WINE_WHITE),
    "bike": (BIKE_HOUR,),
}
"""The files each loader reads (Bike reads ``hour.csv`` only; ``day.csv`` comes with the release)."""

UTKFACE_IMAGES = "utkface/UTKFace"
UTKFACE_RELEASE_IMAGES = 23708

DOWNLOAD_COMMAND = "python -m hetreg.data.download {name}"

DATA_LAYOUT = (
    "  wine-quality/winequality-red.csv\n"
    "  wine-quality/winequality-white.csv\n"
    "  bike-sharing/hour.csv  (and day.csv)\n"
    "  utkface/UTKFace/<age>_<gender>_<race>_<datetime>.jpg.chip.jpg"
)


class DataNotFoundError(FileNotFoundError):
    """A dataset file is missing. The message says which file, where hetreg looked and why there,
    and how to supply it.

    Attributes:
        dataset: registry name of the dataset.
        path: the missing file (or folder).
    """

    def __init__(self, message: str, *, dataset: str, path: Path) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.path = path
        self.filename = str(path)

    def __str__(self) -> str:
        return str(self.args[0])


def missing_data_error(
    dataset: str, path: Path, root: str | os.PathLike[str] | None = None, *, hint: str | None = None
) -> DataNotFoundError:
    """Build the :class:`DataNotFoundError` for a missing ``path`` of ``dataset``.

    Args:
        dataset: registry name (``"wine"``).
        path: the file or folder that is missing.
        root: the ``root`` argument the loader received (to say how the data folder was chosen).
        hint: how to get this particular dataset; by default the download command when
            ``dataset`` is downloadable.
    """
    folder = data_root(root)
    if hint is None:
        hint = ""
        if dataset in RELEASE_FILES:
            command = DOWNLOAD_COMMAND.format(name=dataset)
            if root is not None or os.environ.get("HETREG_DATA"):
                command += f" --root {folder}"
            hint = f"or download it (sha256-verified) with `{command}`"
    message = (
        f"{dataset}: file not found: {path}\n"
        f"hetreg looked in the data folder {folder} (chosen from {data_root_source(root)}).\n"
        f"To supply it, set HETREG_DATA (or pass root=) to a folder laid out like\n{DATA_LAYOUT}\n"
        f"{hint}"
    )
    return DataNotFoundError(message.rstrip(), dataset=dataset, path=path)


def require_file(dataset: str, relpath: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The path of ``relpath`` under the data folder; :class:`DataNotFoundError` if it is missing."""
    path = data_root(root) / relpath
    if not path.is_file():
        raise missing_data_error(dataset, path, root)
    return path


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_state(path: Path, item: KnownFile) -> str:
    """``"verified"`` if ``path`` has the published sha256 of ``item``, else ``"mismatch"``."""
    return "verified" if sha256_file(path) == item.sha256 else "mismatch"


def _release_status(name: str, folder: Path) -> dict[str, Any]:
    files = REQUIRED_FILES[name]
    paths = [folder / item.relpath for item in files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        return {
            "available": False,
            "source": "files",
            "path": str(paths[0].parent),
            "checksum": "missing",
            "detail": f"missing {', '.join(missing)}; `{DOWNLOAD_COMMAND.format(name=name)}` fetches it",
        }
    states = {item.relpath: checksum_state(p, item) for item, p in zip(files, paths)}
    bad = [rel for rel, state in states.items() if state != "verified"]
    return {
        "available": True,
        "source": "files",
        "path": str(paths[0].parent),
        "checksum": "mismatch" if bad else "verified",
        "detail": f"sha256 differs from the UCI release: {', '.join(bad)}" if bad else "sha256 verified",
    }


def _utkface_status(folder: Path) -> dict[str, Any]:
    images = folder / UTKFACE_IMAGES
    if not images.is_dir():
        return {
            "available": False,
            "source": "files",
            "path": str(images),
            "checksum": "missing",
            "detail": "folder not found; UTKFace must be obtained by hand (see download_dataset('utkface'))",
        }
    with os.scandir(images) as entries:
        count = sum(1 for e in entries if e.name.endswith(".jpg") and e.is_file())
    return {
        "available": count > 0,
        "source": "files",
        "path": str(images),
        "checksum": "not checked",
        "detail": f"{count} images found (the full release has {UTKFACE_RELEASE_IMAGES}); not hashed",
    }


_BUILT_IN = {
    "synthetic-hetero": ("generated", "generated from the seed; no files needed"),
    "synthetic-imbalanced": ("generated", "generated from the seed; no files needed"),
    "diabetes": ("bundled", "bundled with scikit-learn"),
    "csv": ("user file", "any csv table: pass path= and target="),
    "parquet": ("user file", "any parquet table: pass path= and target="),
}


def dataset_status(root: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """One status record per registered dataset, sorted by name.

    Keys: ``name``; ``available`` (True / False, ``None`` when it depends on a user file);
    ``source`` (``"files"``, ``"generated"``, ``"bundled"``, ``"user file"``); ``path`` (folder
    where the files were found or looked for, else ``None``); ``checksum`` (``"verified"``,
    ``"mismatch"``, ``"missing"``, ``"not checked"``, ``"n/a"``); ``detail`` (one line for people).

    Wine and Bike files are hashed (a few ms); UTKFace images are only counted, not hashed.
    """
    folder = data_root(root)
    records = []
    for name in dataset_names():
        if name in REQUIRED_FILES:
            record = _release_status(name, folder)
        elif name == "utkface":
            record = _utkface_status(folder)
        elif name in _BUILT_IN:
            source, detail = _BUILT_IN[name]
            record = {
                "available": None if source == "user file" else True,
                "source": source,
                "path": None,
                "checksum": "n/a",
                "detail": detail,
            }
        else:
            record = {"available": None, "source": "unknown", "path": None, "checksum": "n/a", "detail": "no status check"}
        records.append({"name": name, **record})
    return records


def data_folder_description(root: str | os.PathLike[str] | None = None) -> str:
    """``"<folder> (from <source>)"``: the folder :func:`dataset_status` inspects, for a header line."""
    return f"{data_root(root)} (from {data_root_source(root)})"
