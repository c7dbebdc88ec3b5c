"""The UTKFace loader: age parsing, duplicate-aware splits, cache reuse, unreadable files."""

from __future__ import annotations

import os
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from hetreg.data import Standardizer, dataset_names, images, load_dataset
from hetreg.data.images import UnreadableImageWarning
from hetreg.data.status import DataNotFoundError
from hetreg.data.utkface import (
    N_IMAGES,
    OFFICIAL_PAGE,
    content_groups,
    group_split,
    list_image_files,
    parse_age,
    read_sha256sums,
    resolve_sizes,
    UTKFaceOptions,
)
from test_utkface_fixtures import CORRUPT, DUPLICATE_PAIR, DUPLICATE_TRIPLE, ODD_NAMES, TRUNCATED, make_utkface

SHARED = os.environ.get("HETREG_DATA")
REAL_FOLDER = Path(SHARED) / "utkface" / "UTKFace" if SHARED else None
needs_real = pytest.mark.skipif(
    REAL_FOLDER is None or not REAL_FOLDER.is_dir(),
    reason="real UTKFace not available: set HETREG_DATA to a folder with utkface/UTKFace/",
)


@pytest.fixture()
def fake_root(tmp_path: Path, monkeypatch) -> tuple[Path, dict[str, int | None]]:
    monkeypatch.setenv("HETREG_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    return root, make_utkface(root)


def _load(root: Path, seed: int = 0, **options):
    """Load the fixture, silencing the expected warnings about its two broken files."""
    options.setdefault("image_size", 16)
    options.setdefault("workers", 1)
    with pytest.warns(UnreadableImageWarning):
        return load_dataset("utkface", root=str(root), seed=seed, **options)


def _split_of(data) -> dict[str, str]:
    where = {}
    for split in ("train", "val", "test"):
        for name in getattr(data, split).ids:
            assert name not in where, f"{name} is in two splits"
            where[name] = split
    return where


# -- names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, age", sorted(ODD_NAMES.items()) + [("61_1_20170109150557335.jpg.chip.jpg", 61),
                                                                    ("1_0_0_20161219140623097.jpg.chip.jpg", 1),
                                                                    ("116_0_0_x.jpg.chip.jpg", 116)])
def test_parse_age_of_regular_and_odd_names(name: str, age: int) -> None:
    assert parse_age(name) == age


def test_parse_age_rejects_a_name_without_age() -> None:
    with pytest.raises(ValueError, match="README.txt"):
        parse_age("README.txt")


def test_registered() -> None:
    assert "utkface" in dataset_names()


# -- missing folder, bad options --------------------------------------------------------------------


def test_missing_folder_error_says_where_and_how(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("utkface", root=str(tmp_path))
    msg = str(err.value)
    assert isinstance(err.value, DataNotFoundError) and err.value.path == tmp_path / "utkface" / "UTKFace"
    assert str(tmp_path / "utkface" / "UTKFace") in msg
    assert "root argument" in msg
    assert "non-commercial" in msg and "cannot be downloaded" in msg
    assert OFFICIAL_PAGE in msg and "utkface/UTKFace/" in msg
    monkeypatch.setenv("HETREG_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match=r"\$HETREG_DATA"):
        load_dataset("utkface")


def test_unknown_and_bad_options(fake_root) -> None:
    root, _ = fake_root
    with pytest.raises(ValueError, match="valid options:.*image_size"):
        load_dataset("utkface", root=str(root), imagesize=32)
    with pytest.raises(ValueError, match="val_fraction"):
        load_dataset("utkface", root=str(root), val_fraction=1.5)
    with pytest.raises(ValueError, match="image_size"):
        load_dataset("utkface", root=str(root), image_size=0)
    with pytest.raises(ValueError, match="only 33 are available"):
        _load(root, train_size=30, test_size=10)


# -- loading the generated folder -------------------------------------------------------------------


def test_fixture_load_labels_shapes_and_skips(fake_root) -> None:
    root, files = fake_root
    with pytest.warns(UnreadableImageWarning) as record:
        data = load_dataset("utkface", root=str(root), image_size=16, workers=1, train_size=20, test_size=6)
    messages = " ".join(str(w.message) for w in record)
    assert CORRUPT in messages and TRUNCATED in messages
    good = {n: a for n, a in files.items() if a is not None}
    assert data.info["images"] == len(good) and set(data.info["skipped"]) == {CORRUPT, TRUNCATED}
    assert data.kind == "image" and data.target_name == "age" and data.input_shape == (3, 16, 16)
    assert (len(data.train), len(data.val), len(data.test)) == (20, 2, 6)
    where = _split_of(data)
    for split in (data.train, data.val, data.test):
        assert split.x.dtype == torch.uint8 and split.x.shape[1:] == (16, 16, 3)
        assert split.y.dtype == torch.float32
        assert list(split.ids) == sorted(split.ids)
        for name, age in zip(split.ids, split.y.tolist()):
            assert age == good[name]
    assert set(where) <= set(good)
    # pixels: the row of a file is that file decoded (independently with Pillow, exact path)
    name = data.test.ids[0]
    img = Image.open(root / "utkface" / "UTKFace" / name).convert("RGB").resize((16, 16), Image.Resampling.LANCZOS)
    diff = np.abs(data.test.x[0].numpy().astype(int) - np.asarray(img).astype(int))
    assert diff.mean() < 3.0
    # duplicates: one pair with different ages, one triple with equal ages
    assert data.info["duplicate_groups"] == 2
    assert data.info["duplicate_files"] == 5
    assert data.info["duplicate_groups_conflicting_age"] == 1
    assert data.info["sha256sums"] is None


def test_images_standardize_to_channels_first(fake_root) -> None:
    root, _ = fake_root
    data = _load(root, train_size=20, test_size=6)
    s = Standardizer.fit(data)
    batch = s.transform_x(data.train.x[:5])
    assert batch.shape == (5, 3, 16, 16) and batch.dtype == torch.float32
    ref = data.train.x.double().div(255)
    assert float(s.x_mean) == pytest.approx(float(ref.mean()), abs=1e-6)


@pytest.mark.parametrize("seed", range(12))
def test_duplicate_groups_never_straddle_splits(fake_root, seed: int) -> None:
    root, _ = fake_root
    data = _load(root, seed=seed, train_size=18, test_size=8, val_fraction=0.2)
    where = _split_of(data)
    for group in (DUPLICATE_PAIR, DUPLICATE_TRIPLE):
        assert len({where.get(name, "unused") for name in group}) == 1


def test_split_depends_on_seed_and_is_reproducible(fake_root) -> None:
    root, _ = fake_root
    a = _load(root, seed=1, train_size=20, test_size=6)
    b = _load(root, seed=1, train_size=20, test_size=6)
    c = _load(root, seed=2, train_size=20, test_size=6)
    assert a.test.ids == b.test.ids and a.train.ids == b.train.ids
    torch.testing.assert_close(a.train.x, b.train.x)
    assert a.test.ids != c.test.ids


def test_second_load_decodes_nothing(fake_root, monkeypatch) -> None:
    root, _ = fake_root
    calls = []
    real = images.decode_image

    def counting(data: bytes, size: int, *, draft: bool = True):
        calls.append(1)
        return real(data, size, draft=draft)

    monkeypatch.setattr(images, "decode_image", counting)
    first = _load(root, train_size=20, test_size=6)
    n_files = len(list_image_files(root / "utkface" / "UTKFace"))
    assert first.info["decoded"] == n_files and len(calls) == n_files
    second = _load(root, train_size=20, test_size=6)
    assert second.info["decoded"] == 0 and len(calls) == n_files
    assert Path(second.info["cache"]).parent == root.parent / "cache" / "images"
    torch.testing.assert_close(second.train.x, first.train.x)


def test_max_images_is_a_fixed_subset_whatever_the_seed(fake_root) -> None:
    root, _ = fake_root
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableImageWarning)
        a = load_dataset("utkface", root=str(root), seed=0, image_size=16, workers=1, max_images=20)
        b = load_dataset("utkface", root=str(root), seed=5, image_size=16, workers=1, max_images=20)
    listing = [os.path.basename(f) for f in list_image_files(root / "utkface" / "UTKFace")]
    subset = {listing[i] for i in np.random.default_rng(0).permutation(len(listing))[:20]}
    assert a.info["files_listed"] == len(listing)
    assert a.info["images"] + len(a.info["skipped"]) == 20
    for d in (a, b):
        assert set(d.train.ids + d.val.ids + d.test.ids) | set(d.info["skipped"]) <= subset
    assert b.info["cache"] == a.info["cache"] and b.info["decoded"] == 0  # same files, same cache
    assert a.test.ids != b.test.ids
    # default sizes scale with the subset (the original fractions 16000/23708 and 4000/23708)
    n = a.info["images"]
    assert a.info["sizes"]["train"] == int(n * 16000 / N_IMAGES)
    assert a.info["sizes"]["test"] == int(n * 4000 / N_IMAGES)


def test_sha256sums_mismatch_is_reported(fake_root, tmp_path: Path) -> None:
    root, files = fake_root
    good = sorted(n for n, a in files.items() if a is not None)
    lines = [f"{'0' * 64}  UTKFace/{good[0]}"]  # a wrong hash for one file, the rest unlisted
    (root / "utkface" / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings(), pytest.warns(UserWarning, match="differ from"):
        warnings.simplefilter("ignore", UnreadableImageWarning)
        data = load_dataset("utkface", root=str(root), image_size=16, workers=1, train_size=20, test_size=6)
    assert data.info["sha256sums"]["listed"] == 1 and data.info["sha256sums"]["mismatched"] == 1


# -- the split function -----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    group_sizes=st.lists(st.integers(1, 4), min_size=1, max_size=60),
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=3),
    seed=st.integers(0, 2**31 - 1),
)
def test_group_split_properties(group_sizes: list[int], sizes: list[int], seed: int) -> None:
    groups = np.repeat(np.arange(len(group_sizes)), group_sizes)
    np.random.default_rng(seed).shuffle(groups)  # rows of a group need not be adjacent
    buckets = group_split(groups, sizes, seed)
    assert len(buckets) == len(sizes)
    seen: dict[int, int] = {}
    for b, rows in enumerate(buckets):
        assert len(rows) <= sizes[b]
        assert np.all(np.diff(rows) > 0)
        for g in groups[rows]:
            assert seen.setdefault(int(g), b) == b  # a group never straddles two buckets
    counts = Counter(groups.tolist())
    for b, rows in enumerate(buckets):  # whole groups only
        for g, c in Counter(groups[rows].tolist()).items():
            assert c == counts[g]
    # first fit: a group left out did not fit in the room any bucket has left
    rooms = [s - len(r) for s, r in zip(sizes, buckets)]
    for g, c in counts.items():
        if g not in seen:
            assert all(c > room for room in rooms)
    np.testing.assert_array_equal(np.concatenate(group_split(groups, sizes, seed)), np.concatenate(buckets))


def test_group_split_is_exact_with_singletons() -> None:
    groups = np.arange(100)
    buckets = group_split(groups, [10, 60, 6], seed=3)
    assert [len(b) for b in buckets] == [10, 60, 6]


def test_resolve_sizes() -> None:
    assert resolve_sizes(N_IMAGES, UTKFaceOptions()) == (16000, 1600, 4000)
    assert resolve_sizes(N_IMAGES, UTKFaceOptions(val_fraction=0.0)) == (16000, 0, 4000)
    assert resolve_sizes(1000, UTKFaceOptions()) == (674, 67, 168)
    assert resolve_sizes(1000, UTKFaceOptions(train_size=500, val_fraction=0.5)) == (500, 250, 168)
    with pytest.raises(ValueError, match="lower train_size"):
        resolve_sizes(1000, UTKFaceOptions(train_size=900))


def test_content_groups() -> None:
    ids = content_groups(["b", "a", "b", "c", "a"])
    assert ids[0] == ids[2] and ids[1] == ids[4] and len(set(ids.tolist())) == 3


# -- the real files (skipped without HETREG_DATA) ---------------------------------------------------


@needs_real
def test_real_names_all_parse() -> None:
    files = list_image_files(REAL_FOLDER)
    assert len(files) == N_IMAGES
    names = [os.path.basename(f) for f in files]
    ages = [parse_age(n) for n in names]
    assert min(ages) == 1 and max(ages) == 116 and len(set(ages)) == 104
    assert Counter(ages)[26] == 2197 and Counter(ages)[1] == 1123
    for name, age in ODD_NAMES.items():
        assert name in names and parse_age(name) == age


@needs_real
def test_real_duplicate_groups_and_their_split() -> None:
    sums = read_sha256sums(REAL_FOLDER.parent / "SHA256SUMS")
    names = [os.path.basename(f) for f in list_image_files(REAL_FOLDER)]
    digests = [sums[f"UTKFace/{n}"] for n in names]
    # independent count of the README figures
    by_hash: dict[str, list[int]] = defaultdict(list)
    for n, d in zip(names, digests):
        by_hash[d].append(parse_age(n))
    multi = [a for a in by_hash.values() if len(a) > 1]
    assert (len(multi), sum(map(len, multi)), sum(len(set(a)) > 1 for a in multi)) == (375, 765, 205)
    groups = content_groups(digests)
    test, train, val = group_split(groups, [4000, 16000, 1600], seed=0)
    assert (len(test), len(train), len(val)) == (4000, 16000, 1600)
    bucket = np.full(len(names), -1)
    for b, rows in enumerate((test, train, val)):
        bucket[rows] = b
    rows_of: dict[int, set[int]] = defaultdict(set)
    for g, b in zip(groups.tolist(), bucket.tolist()):
        rows_of[g].add(b)
    assert all(len(bs) == 1 for bs in rows_of.values())


@needs_real
def test_real_subset_load(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HETREG_CACHE", str(tmp_path))
    data = load_dataset("utkface", root=SHARED, seed=0, image_size=32, max_images=200, workers=2)
    assert data.info["images"] == 200 and data.info["decoded"] == 200
    assert data.info["sha256sums"] == {"file": str(REAL_FOLDER.parent / "SHA256SUMS"), "listed": 200, "mismatched": 0}
    assert data.input_shape == (3, 32, 32)
    name = data.train.ids[0]
    img = Image.open(REAL_FOLDER / name).convert("RGB").resize((32, 32), Image.Resampling.LANCZOS)
    assert np.abs(data.train.x[0].numpy().astype(int) - np.asarray(img).astype(int)).mean() < 2.0
    for split in (data.train, data.val, data.test):
        assert split.y.tolist() == [float(parse_age(n)) for n in split.ids]
    again = load_dataset("utkface", root=SHARED, seed=0, image_size=32, max_images=200)
    assert again.info["decoded"] == 0
