"""Image decoding, the decoded-image cache and batch augmentation (hetreg.data.images)."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hetreg.data import images
from hetreg.data.images import UnreadableImageWarning, augment_hflip, cache_key, decode_image, hflip_mask, load_images
from test_utkface_fixtures import face_jpeg


def _pil_reference(data: bytes, size: int) -> np.ndarray:
    """Independent path: full-resolution decode, then a plain Lanczos resize."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img)


@pytest.fixture()
def folder(tmp_path: Path) -> list[Path]:
    d = tmp_path / "imgs"
    d.mkdir()
    paths = []
    for i in range(7):
        p = d / f"{i:02d}.jpg"
        p.write_bytes(face_jpeg(i, size=48))
        paths.append(p)
    return paths


def test_decode_at_original_size_is_the_plain_decode() -> None:
    data = face_jpeg(1, size=48)
    out = decode_image(data, 48)
    assert out.dtype == np.uint8 and out.shape == (48, 48, 3)
    np.testing.assert_array_equal(out, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


@pytest.mark.parametrize("size", [12, 24, 40])
def test_exact_decode_matches_pil_and_draft_is_close(size: int) -> None:
    data = face_jpeg(2, size=96)
    ref = _pil_reference(data, size).astype(np.int16)
    np.testing.assert_array_equal(decode_image(data, size, draft=False), ref)
    fast = decode_image(data, size, draft=True).astype(np.int16)
    assert fast.shape == ref.shape
    assert np.abs(fast - ref).mean() < 2.0  # grey levels out of 255, smooth image


def test_decode_grayscale_and_png_become_rgb() -> None:
    buf = io.BytesIO()
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L").save(buf, format="PNG")
    out = decode_image(buf.getvalue(), 16)
    assert out.shape == (16, 16, 3)
    np.testing.assert_array_equal(out[..., 0], np.arange(256).reshape(16, 16))
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_decode_rejects_garbage() -> None:
    with pytest.raises(OSError):
        decode_image(b"not an image", 8)


def test_load_images_pixels_hashes_and_cache_reuse(folder: list[Path], tmp_path: Path, monkeypatch) -> None:
    calls = []
    real = images.decode_image

    def counting(data: bytes, size: int, *, draft: bool = True) -> np.ndarray:
        calls.append(size)
        return real(data, size, draft=draft)

    monkeypatch.setattr(images, "decode_image", counting)
    first = load_images(folder, 16, cache_root=tmp_path / "cache", workers=1)
    assert first.decoded == len(folder) and len(calls) == len(folder)
    assert first.pixels.shape == (len(folder), 16, 16, 3) and first.pixels.dtype == np.uint8
    assert first.ok.all() and first.errors == {}
    for row, p in enumerate(folder):
        data = p.read_bytes()
        assert first.sha256[row] == hashlib.sha256(data).hexdigest()
        np.testing.assert_array_equal(first.pixels[row], real(data, 16))

    second = load_images(folder, 16, cache_root=tmp_path / "cache", workers=1)
    assert second.decoded == 0 and len(calls) == len(folder)  # nothing decoded the second time
    assert second.cache_path == first.cache_path
    np.testing.assert_array_equal(np.asarray(second.pixels), np.asarray(first.pixels))
    assert second.sha256 == first.sha256

    # a different size is a different cache
    third = load_images(folder, 8, cache_root=tmp_path / "cache", workers=1)
    assert third.decoded == len(folder) and third.cache_path != first.cache_path


def test_cache_files_are_complete_and_no_temporaries_remain(folder: list[Path], tmp_path: Path) -> None:
    out = load_images(folder, 16, cache_root=tmp_path / "c", workers=1)
    listing = sorted(p.name for p in (tmp_path / "c" / "images").iterdir())
    key = out.cache_path.stem
    assert listing == [f"{key}.json", f"{key}.npy"]
    assert np.load(out.cache_path).shape == (len(folder), 16, 16, 3)


def test_a_truncated_cache_is_rebuilt(folder: list[Path], tmp_path: Path) -> None:
    out = load_images(folder, 16, cache_root=tmp_path / "c", workers=1)
    expected = np.array(out.pixels)
    out.cache_path.write_bytes(out.cache_path.read_bytes()[:200])
    again = load_images(folder, 16, cache_root=tmp_path / "c", workers=1)
    assert again.decoded == len(folder)
    np.testing.assert_array_equal(np.asarray(again.pixels), expected)


def test_cache_key_follows_files_size_and_decoder(folder: list[Path]) -> None:
    k = cache_key(folder, 16)
    assert cache_key(folder, 16) == k
    assert cache_key(folder, 17) != k
    assert cache_key(folder, 16, draft=False) != k
    assert cache_key(folder[:-1], 16) != k
    st = os.stat(folder[0])
    os.utime(folder[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache_key(folder, 16) != k


def test_changed_file_is_decoded_again(folder: list[Path], tmp_path: Path) -> None:
    load_images(folder, 16, cache_root=tmp_path / "c", workers=1)
    folder[3].write_bytes(face_jpeg(99, size=48))
    st = os.stat(folder[3])
    os.utime(folder[3], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # be sure the mtime moves
    out = load_images(folder, 16, cache_root=tmp_path / "c", workers=1)
    assert out.decoded == len(folder)
    np.testing.assert_array_equal(out.pixels[3], decode_image(folder[3].read_bytes(), 16))


def test_parallel_decoding_gives_the_same_array(folder: list[Path], tmp_path: Path) -> None:
    serial = load_images(folder, 16, cache_root=tmp_path / "a", workers=1)
    parallel = load_images(folder, 16, cache_root=tmp_path / "b", workers=2, chunk_size=2)
    assert parallel.decoded == len(folder)
    np.testing.assert_array_equal(np.asarray(parallel.pixels), np.asarray(serial.pixels))
    assert parallel.sha256 == serial.sha256


def test_unreadable_file_is_skipped_with_a_warning_naming_it(folder: list[Path], tmp_path: Path) -> None:
    bad = folder[0].parent / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    paths = sorted(folder + [bad])
    with pytest.warns(UnreadableImageWarning, match="broken.jpg"):
        out = load_images(paths, 16, cache_root=tmp_path / "c", workers=2, chunk_size=3)
    row = paths.index(bad)
    assert not out.ok[row] and out.ok.sum() == len(folder)
    assert set(out.errors) == {"broken.jpg"}
    assert not out.pixels[row].any()
    with pytest.warns(UnreadableImageWarning, match="broken.jpg"):  # warned again on a cached load
        again = load_images(paths, 16, cache_root=tmp_path / "c", workers=1)
    assert again.decoded == 0 and not again.ok[row]


def test_load_images_validates_arguments(folder: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size"):
        load_images(folder, 0, cache_root=tmp_path)
    with pytest.raises(ValueError, match="workers"):
        load_images(folder, 8, cache_root=tmp_path, workers=0)
    with pytest.raises(ValueError, match="empty"):
        load_images([], 8, cache_root=tmp_path)
    with pytest.raises(ValueError, match="repeated file names"):
        load_images([folder[0], folder[0]], 8, cache_root=tmp_path)


def test_default_cache_location_is_hetreg_cache(folder: list[Path], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HETREG_CACHE", str(tmp_path / "envcache"))
    out = load_images(folder, 8, workers=1)
    assert out.cache_path.parent == tmp_path / "envcache" / "images"


# -- augmentation ---------------------------------------------------------------------------------


def _batch(n: int = 6) -> torch.Tensor:
    return torch.arange(n * 3 * 4 * 5, dtype=torch.float32).reshape(n, 3, 4, 5)


def test_hflip_p1_and_p0() -> None:
    x = _batch()
    torch.testing.assert_close(augment_hflip(x, p=1.0), x[..., torch.arange(4, -1, -1)])
    torch.testing.assert_close(augment_hflip(x, p=0.0), x)


def test_hflip_flips_exactly_the_masked_rows_and_keeps_the_input() -> None:
    x = _batch(50)
    before = x.clone()
    out = augment_hflip(x, torch.Generator().manual_seed(3), p=0.5)
    mask = hflip_mask(50, torch.Generator().manual_seed(3), 0.5)
    assert 0 < mask.sum() < 50
    for i in range(50):
        expected = x[i].flip(-1) if mask[i] else x[i]
        torch.testing.assert_close(out[i], expected)
    torch.testing.assert_close(x, before)
    # reproducible with the same seed
    torch.testing.assert_close(augment_hflip(x, torch.Generator().manual_seed(3)), out)


def test_hflip_rate_matches_p() -> None:
    x = torch.zeros(4000, 1, 1, 2)
    x[..., 0] = 1.0  # a flipped row has the 1 on the right
    out = augment_hflip(x, torch.Generator().manual_seed(0), p=0.3)
    rate = float(out[:, 0, 0, 1].mean())
    assert abs(rate - 0.3) < 0.03


def test_hflip_validates() -> None:
    with pytest.raises(ValueError, match=r"\(n, C, H, W\)"):
        augment_hflip(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="probability"):
        augment_hflip(_batch(), p=1.5)


def test_no_warnings_on_a_clean_load(folder: list[Path], tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_images(folder, 8, cache_root=tmp_path, workers=1)
        load_images(folder, 8, cache_root=tmp_path, workers=1)


def test_hflip_of_a_channels_last_batch() -> None:
    """Standardizer.transform_x returns a permuted (channels-last) tensor: same result, same layout."""
    x = torch.randint(0, 255, (9, 5, 6, 3), dtype=torch.uint8).permute(0, 3, 1, 2).float()
    out = augment_hflip(x, torch.Generator().manual_seed(1))
    ref = augment_hflip(x.contiguous(), torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, ref)
    assert out.stride() == x.stride()
