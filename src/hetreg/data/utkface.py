"""UTKFace (aligned & cropped faces): predict the age, in years, from a 200x200 face image.

Data folder layout (see :mod:`hetreg.data.location` for where the folder is looked up)::

    utkface/UTKFace/<age>_<gender>_<race>_<datetime>.jpg.chip.jpg   (23,708 files)
    utkface/SHA256SUMS                                              (optional: checked if present)

The label is the first ``_``-separated field of the file name, ``int(name.split("_")[0])``, which
also works for the irregular names of the release (missing race field, a space before the
extension, a missing dot).

Differences from the original BIV loader (on purpose, see the reference §5.1 and §9):

* the file list is sorted, and the split is a seeded permutation (the same on every machine);
* byte-identical images (375 groups, 765 files; 205 groups carry different ages) are kept in one
  split: rows are grouped by the sha256 of their bytes and whole groups are assigned to splits,
  so no test image leaks into training;
* a validation split is drawn from the images the original split leaves unused (16,000 train +
  4,000 test leave 3,708);
* images are decoded once, resized (default 64 px) and cached (:mod:`hetreg.data.images`).

UTKFace cannot be downloaded by this library: its licence allows non-commercial research use only,
so get it from the official page and place it as above.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from hetreg.data.base import RegressionData, Split, register_dataset, seeded_permutation
from hetreg.data.images import file_name, load_images
from hetreg.data.location import data_root, data_root_source
from hetreg.data.status import DataNotFoundError, missing_data_error

OFFICIAL_PAGE = "https://susanqq.github.io/UTKFace/"
#: Images in the full release, and the original split sizes (train = first 16,000, test = last 4,000).
N_IMAGES = 23708
ORIGINAL_TRAIN_SIZE = 16000
ORIGINAL_TEST_SIZE = 4000
#: Seed of the fixed subset chosen by ``max_images`` (independent of the split seed).
SUBSET_SEED = 0


@dataclass(frozen=True)
class UTKFaceOptions:
    """Options of the ``utkface`` loader.

    Attributes:
        image_size: height and width of the images in pixels (200 = the original, no resizing).
        train_size: training images; default 16,000 (the original), see :func:`resolve_sizes`.
        test_size: test images; default 4,000 (the original).
        val_fraction: validation images as a fraction of ``train_size``, taken from the images
            that are in neither train nor test (0 gives an empty validation split).
        max_images: use only this many images, a fixed subset (seed 0, whatever the split seed),
            for quick runs and tests; only these are decoded.
        workers: decoding processes for the first load (default: all usable cores).
        fast_decode: reduced-scale JPEG decoding before resizing (see :mod:`hetreg.data.images`).
    """

    image_size: int = 64
    train_size: int | None = None
    test_size: int | None = None
    val_fraction: float = 0.1
    max_images: int | None = None
    workers: int | None = None
    fast_decode: bool = True

    def __post_init__(self) -> None:
        _check_int(self.image_size, "image_size", minimum=8)
        for name in ("train_size", "test_size"):
            if getattr(self, name) is not None:
                _check_int(getattr(self, name), name, minimum=1)
        if self.max_images is not None:
            _check_int(self.max_images, "max_images", minimum=1)
        if self.workers is not None:
            _check_int(self.workers, "workers", minimum=1)
        if not isinstance(self.val_fraction, (int, float)) or not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")


def _check_int(value: object, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def parse_age(name: str) -> int:
    """Age in years from a UTKFace file name: ``int(name.split("_")[0])``.

    Raises:
        ValueError: naming the file when the first field is not an integer.
    """
    head = name.split("_")[0]
    try:
        return int(head)
    except ValueError:
        raise ValueError(
            f"cannot read an age from the file name {name!r}: UTKFace names start with the age "
            "in years followed by '_' (e.g. '26_0_1_20170116002340478.jpg.chip.jpg')"
        ) from None


def missing_folder_error(folder: Path, root: str | os.PathLike[str] | None) -> DataNotFoundError:
    """The error for a missing UTKFace folder: where we looked, why there, and how to get the data."""
    hint = (
        "UTKFace cannot be downloaded automatically: its licence allows non-commercial research use "
        "only. Get the 'Aligned & Cropped Faces' set (UTKFace.tar.gz) from the official page "
        f"{OFFICIAL_PAGE} and unpack it so that the images are in <data folder>/utkface/UTKFace/ with "
        "their original names."
    )
    return missing_data_error("utkface", folder, root, hint=hint)


def list_image_files(folder: str | os.PathLike[str]) -> list[str]:
    """Paths of the regular, non-hidden files of ``folder``, sorted by name (code point order)."""
    with os.scandir(folder) as it:
        entries = sorted((e.name, e.path) for e in it if not e.name.startswith(".") and e.is_file())
    return [path for _, path in entries]


def read_sha256sums(path: Path) -> dict[str, str]:
    """Map ``relative path -> sha256 hex`` from a ``sha256sum`` listing (``<hash>  <path>``)."""
    sums: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if len(line) < 67:
            continue
        digest, rel = line[:64].lower(), line[66:]  # two-character separator: "  " or " *"
        sums[rel] = digest
    return sums


def content_groups(digests: Sequence[str]) -> np.ndarray:
    """Group id per row: rows with the same content hash share an id (ids 0..G-1)."""
    _, inverse = np.unique(np.asarray(digests), return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def group_split(groups: np.ndarray, sizes: Sequence[int], seed: int) -> list[np.ndarray]:
    """Split rows into buckets of the given sizes without ever separating a group.

    Groups are visited in a seeded random order (:func:`seeded_permutation`); each goes to the
    first bucket that still has room for all of its rows (first fit). Groups that fit nowhere are
    left out. With small groups and some rows to spare every bucket gets exactly its size.

    Args:
        groups: group id per row, integers 0..G-1, shape (n,).
        sizes: wanted number of rows per bucket.
        seed: split seed.

    Returns:
        One sorted array of row indices per bucket.
    """
    groups = np.asarray(groups, dtype=np.int64)
    counts = np.bincount(groups) if groups.size else np.zeros(0, dtype=np.int64)
    remaining = [int(s) for s in sizes]
    bucket_of_group = np.full(counts.shape[0], -1, dtype=np.int64)
    for g in seeded_permutation(counts.shape[0], seed):
        if not any(remaining):
            break
        c = int(counts[g])
        for b, room in enumerate(remaining):
            if c <= room:
                bucket_of_group[g] = b
                remaining[b] -= c
                break
    bucket_of_row = bucket_of_group[groups]
    return [np.flatnonzero(bucket_of_row == b) for b in range(len(remaining))]


def resolve_sizes(n: int, opts: UTKFaceOptions) -> tuple[int, int, int]:
    """(train, val, test) sizes for ``n`` usable images.

    An omitted ``train_size``/``test_size`` is the original one (16,000 / 4,000) when train,
    validation and test fit in ``n`` images, else the same fraction of ``n`` (16,000/23,708 and
    4,000/23,708), so that ``max_images`` runs work without further options. The validation size
    is ``round(val_fraction * train_size)``.
    """
    def total(tr: int, te: int) -> int:
        return tr + round(opts.val_fraction * tr) + te

    train = opts.train_size if opts.train_size is not None else ORIGINAL_TRAIN_SIZE
    test = opts.test_size if opts.test_size is not None else ORIGINAL_TEST_SIZE
    if total(train, test) > n:
        if opts.train_size is None:
            train = max(1, int(n * ORIGINAL_TRAIN_SIZE / N_IMAGES))
        if opts.test_size is None:
            test = max(1, int(n * ORIGINAL_TEST_SIZE / N_IMAGES))
    val = round(opts.val_fraction * train)
    if total(train, test) > n:
        raise ValueError(
            f"train_size={train} + validation {val} (val_fraction={opts.val_fraction}) + "
            f"test_size={test} = {total(train, test)} images, but only {n} are available; "
            "lower train_size, test_size or val_fraction (or raise max_images)"
        )
    return train, val, test


def load_utkface(root: str | os.PathLike[str] | None = None, seed: int = 0, **options: Any) -> RegressionData:
    """Load UTKFace as an image regression dataset (label: age in years).

    Args:
        root: data folder containing ``utkface/UTKFace/`` (default: ``$HETREG_DATA``, then the
            per-user data directory).
        seed: split seed (the same seed gives the same split on every machine).
        **options: fields of :class:`UTKFaceOptions` (``image_size``, ``train_size``,
            ``test_size``, ``val_fraction``, ``max_images``, ``workers``, ``fast_decode``).

    Returns:
        A :class:`RegressionData` of kind ``"image"``: ``x`` uint8 ``(n, H, W, 3)``, ``y`` float32
        ages, ``ids`` the file names. ``info`` records the folder, the options, the duplicate
        groups, the skipped files and the cache used.

    Raises:
        DataNotFoundError: (a ``FileNotFoundError``) the folder is missing; the message says where
            it looked, why there, and how to get the data (it cannot be downloaded).
        ValueError: bad options, or more images requested than available.
    """
    valid = [f.name for f in fields(UTKFaceOptions)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown utkface option(s) {', '.join(unknown)}; valid options: seed, root, {', '.join(valid)}")
    _check_int(seed, "seed", minimum=0)
    opts = UTKFaceOptions(**options)

    base = data_root(root) / "utkface"
    folder = base / "UTKFace"
    if not folder.is_dir():
        raise missing_folder_error(folder, root)
    files = list_image_files(folder)
    n_listed = len(files)
    if opts.max_images is not None and opts.max_images < len(files):
        keep = np.sort(seeded_permutation(len(files), SUBSET_SEED)[: opts.max_images])
        files = [files[i] for i in keep]

    ages: list[int] = []
    labelled: list[str] = []
    skipped: dict[str, str] = {}
    for path in files:
        name = file_name(path)
        try:
            ages.append(parse_age(name))
        except ValueError as exc:
            warnings.warn(f"skipping {path}: {exc}", UserWarning, stacklevel=2)
            skipped[name] = "no age in the file name"
            continue
        labelled.append(path)
    if not labelled:
        raise ValueError(f"no UTKFace images in {folder}; expected files named <age>_<gender>_<race>_<datetime>.jpg")

    images = load_images(labelled, opts.image_size, draft=opts.fast_decode, workers=opts.workers)
    skipped.update(images.errors)
    ok = np.flatnonzero(images.ok)
    names = [file_name(labelled[i]) for i in ok]
    y_all = np.asarray(ages, dtype=np.float32)[ok]
    digests = [images.sha256[i] for i in ok]

    sums_info = _check_sha256sums(base / "SHA256SUMS", names, digests)
    groups = content_groups(digests)
    dup = _duplicate_stats(groups, y_all)

    train_size, val_size, test_size = resolve_sizes(len(ok), opts)
    test_idx, train_idx, val_idx = group_split(groups, [test_size, train_size, val_size], seed)

    def make_split(idx: np.ndarray) -> Split:
        rows = ok[idx]
        return Split(
            x=torch.from_numpy(np.take(images.pixels, rows, axis=0)),
            y=torch.from_numpy(y_all[idx].copy()),
            ids=tuple(names[i] for i in idx),
        )

    info: dict[str, Any] = {
        "source": str(folder),
        "root_source": data_root_source(root),
        "seed": seed,
        "options": {f: getattr(opts, f) for f in valid},
        "files_listed": n_listed,
        "images": len(ok),
        "skipped": skipped,
        "sizes": {"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)},
        "unused": len(ok) - len(train_idx) - len(val_idx) - len(test_idx),
        **dup,
        "sha256sums": sums_info,
        "cache": str(images.cache_path),
        "decoded": images.decoded,
        "license": f"non-commercial research only ({OFFICIAL_PAGE})",
    }
    return RegressionData(
        name="utkface",
        kind="image",
        train=make_split(train_idx),
        val=make_split(val_idx),
        test=make_split(test_idx),
        target_name="age",
        info=info,
    )


def _duplicate_stats(groups: np.ndarray, ages: np.ndarray) -> dict[str, int]:
    """Counts of duplicate-content groups (2+ files), their files, and those with differing ages."""
    counts = np.bincount(groups) if groups.size else np.zeros(0, dtype=np.int64)
    multi = counts >= 2
    age_min = np.full(counts.shape[0], np.inf)
    age_max = np.full(counts.shape[0], -np.inf)
    np.minimum.at(age_min, groups, ages)
    np.maximum.at(age_max, groups, ages)
    return {
        "duplicate_groups": int(multi.sum()),
        "duplicate_files": int(counts[multi].sum()),
        "duplicate_groups_conflicting_age": int((multi & (age_max > age_min)).sum()),
    }


def _check_sha256sums(path: Path, names: list[str], digests: list[str]) -> dict[str, Any] | None:
    """Compare the hashes computed while decoding with ``SHA256SUMS``; warn on any mismatch."""
    if not path.is_file():
        return None
    sums = read_sha256sums(path)
    listed = 0
    mismatched: list[str] = []
    for name, digest in zip(names, digests):
        expected = sums.get(f"UTKFace/{name}")
        if expected is None:
            continue
        listed += 1
        if expected != digest:
            mismatched.append(name)
    if mismatched:
        warnings.warn(
            f"{len(mismatched)} UTKFace file(s) differ from {path} (first: {mismatched[0]!r}); they "
            f"were changed after the release. Check with: cd {path.parent} && sha256sum -c --quiet SHA256SUMS",
            UserWarning,
            stacklevel=3,
        )
    return {"file": str(path), "listed": listed, "mismatched": len(mismatched)}


register_dataset("utkface", load_utkface)
