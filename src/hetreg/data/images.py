"""Image helpers: decode JPEGs once (in parallel), cache the pixels, augment whole batches.

Decoding is the slow part of an image dataset on a CPU machine (about 0.5-1 ms per 200x200 JPEG),
so every image is decoded **once**, resized to the working size and stored in one uint8 array
``(n, size, size, 3)`` under ``cache_dir()/images/``. Later loads memory-map that array and decode
nothing. The cache key is a hash of the sorted file list (names, sizes and modification times),
the image size and the decoder settings, so changing, adding or removing a file rebuilds it.

Files in the cache folder, for a key ``k``:

* ``k.npy``: the pixels, ``uint8`` ``(n, size, size, 3)`` (rows of unreadable files are zeros);
* ``k.json``: the manifest, with the file names, the sha256 of each file's bytes (computed while
  decoding, so duplicate-content checks need no second read) and the files that could not be
  decoded, with the reason.

Both are written to a temporary name and renamed (atomic on POSIX), the manifest last, so a crash
or a concurrent writer never leaves a half-written cache that looks valid.

Fast decoding (``draft=True``) asks libjpeg to decode at a reduced scale (1/2, 1/4 or 1/8, chosen
as the smallest scale whose result is still at least ``size`` pixels wide; DCT-domain scaling),
then resizes to ``size`` with a Lanczos filter. For 200 px UTKFace faces at 64 px this halves the
decode time; the pixels differ from a full-resolution decode + Lanczos resize by about 0.5 grey
levels on average (out of 255), at most a few tens of levels on sharp edges, which is far below
what matters for training. ``draft=False`` gives the exact full-resolution path.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import uuid
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from hetreg.data.location import cache_dir

#: Bump when the decoded pixels would change (decoder settings, resize filter, layout).
CACHE_VERSION = 1
RESAMPLE = Image.Resampling.LANCZOS


class UnreadableImageWarning(UserWarning):
    """An image file could not be decoded and was left out of the dataset."""


def decode_image(data: bytes, size: int, *, draft: bool = True) -> np.ndarray:
    """Decode one image file's bytes to a ``uint8`` RGB array of shape ``(size, size, 3)``.

    Args:
        data: the bytes of an image file (any format Pillow reads; JPEG gets the fast path).
        size: output height and width in pixels. An image already ``size`` x ``size`` is returned
            as decoded (no resampling); any other shape is resized to a square (UTKFace faces are
            square, aligned crops).
        draft: let libjpeg decode at a reduced scale first (see the module docstring).

    Raises:
        OSError (including ``PIL.UnidentifiedImageError``), ValueError, SyntaxError: when the
        bytes are not a readable image (truncated, corrupt or unknown format);
        :func:`load_images` turns any such failure into a warning.
    """
    with Image.open(io.BytesIO(data)) as img:
        if draft and img.format == "JPEG" and img.size != (size, size):
            img.draft("RGB", (size, size))
        rgb = img.convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), RESAMPLE)
    return np.asarray(rgb, dtype=np.uint8)


def _decode_files(paths: Sequence[str], size: int, draft: bool) -> tuple[np.ndarray, list[str], list[str | None]]:
    """Decode a chunk of files (runs in a worker process).

    Returns the pixels ``(k, size, size, 3)``, the sha256 hex digest of each file's bytes (empty
    when the file could not be read) and an error message per file (``None`` on success).
    """
    out = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    digests: list[str] = []
    errors: list[str | None] = []
    for i, path in enumerate(paths):
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            digests.append("")
            errors.append(f"cannot read the file ({exc})")
            continue
        digests.append(hashlib.sha256(data).hexdigest())
        try:
            out[i] = decode_image(data, size, draft=draft)
        except Exception as exc:  # noqa: BLE001 - any decoder failure skips the file, never the run
            errors.append(f"not a readable image ({type(exc).__name__}: {exc})")
            continue
        errors.append(None)
    return out, digests, errors


@dataclass(frozen=True)
class ImageArray:
    """Decoded images of a file list, as returned by :func:`load_images`.

    Attributes:
        pixels: ``uint8`` array ``(n, size, size, 3)``, memory-mapped read-only from the cache
            (copy rows out with ``np.take(pixels, rows, axis=0)``). Rows of unreadable files are
            zeros.
        ok: ``bool`` array ``(n,)``, False for files that could not be decoded.
        sha256: hex digest of each file's bytes (empty string if the file could not be read).
        errors: file name -> reason, for the files that could not be decoded.
        cache_path: the ``.npy`` file holding the pixels.
        decoded: how many files this call decoded (0 when the cache was reused).
    """

    pixels: np.ndarray
    ok: np.ndarray
    sha256: tuple[str, ...]
    errors: dict[str, str]
    cache_path: Path
    decoded: int


def file_name(path: str) -> str:
    """The last component of a path string (``os.path.basename``, faster on POSIX)."""
    return path.rpartition(os.sep)[2] if os.altsep is None else os.path.basename(path)


def cache_key(paths: Sequence[str | os.PathLike[str]], size: int, *, draft: bool = True) -> str:
    """Hash of the file list (names, byte sizes, modification times), the size and the decoder.

    The list is hashed in the order given; :func:`load_images` callers pass sorted lists so the
    key does not depend on the file system's directory order.
    """
    files = [os.fspath(p) for p in paths]
    return _cache_key(files, [file_name(p) for p in files], size, draft)


def _cache_key(files: list[str], names: list[str], size: int, draft: bool) -> str:
    parts = [f"hetreg-images v{CACHE_VERSION} size={size} draft={draft} resample={RESAMPLE.name}"]
    stat = os.stat
    for path, name in zip(files, names):
        st = stat(path)
        parts.append(f"{name}\0{st.st_size}\0{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def default_workers() -> int:
    """Number of CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork starts workers in milliseconds without re-importing torch; the workers only use
    # Pillow and numpy. Elsewhere fall back to the platform default (spawn).
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _atomic_path(final: Path) -> Path:
    return final.with_name(f".{final.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{final.suffix}")


def _read_cache(npy: Path, manifest: Path, names: list[str], size: int) -> tuple[np.ndarray, dict] | None:
    """The cached pixels and manifest if both exist and match the file list, else ``None``."""
    try:
        meta = json.loads(manifest.read_text())
        if meta.get("version") != CACHE_VERSION or meta.get("names") != names or meta.get("size") != size:
            return None
        pixels = np.load(npy, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if pixels.shape != (len(names), size, size, 3) or pixels.dtype != np.uint8:
        return None
    return pixels, meta


def _build_cache(
    paths: list[str], size: int, draft: bool, workers: int, chunk_size: int, npy: Path, manifest: Path
) -> dict:
    """Decode every file into a new cache (pixels + manifest), written atomically."""
    n = len(paths)
    tmp_npy = _atomic_path(npy)
    digests: list[str] = [""] * n
    errors: list[str | None] = [None] * n
    try:
        pixels = np.lib.format.open_memmap(tmp_npy, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        chunks = [(start, paths[start : start + chunk_size]) for start in range(0, n, chunk_size)]
        if workers <= 1 or len(chunks) <= 1:
            results = ((start, _decode_files(chunk, size, draft)) for start, chunk in chunks)
            for start, (arr, dig, err) in results:
                pixels[start : start + len(arr)] = arr
                digests[start : start + len(arr)] = dig
                errors[start : start + len(arr)] = err
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=_pool_context()) as pool:
                futures = {pool.submit(_decode_files, chunk, size, draft): start for start, chunk in chunks}
                for future, start in futures.items():
                    arr, dig, err = future.result()
                    pixels[start : start + len(arr)] = arr
                    digests[start : start + len(arr)] = dig
                    errors[start : start + len(arr)] = err
        pixels.flush()
        del pixels
        os.replace(tmp_npy, npy)
    finally:
        if tmp_npy.exists():
            tmp_npy.unlink()
    meta = {
        "version": CACHE_VERSION,
        "size": size,
        "draft": draft,
        "names": [file_name(p) for p in paths],
        "sha256": digests,
        "errors": {file_name(paths[i]): e for i, e in enumerate(errors) if e is not None},
    }
    tmp_manifest = _atomic_path(manifest)
    try:
        tmp_manifest.write_text(json.dumps(meta))
        os.replace(tmp_manifest, manifest)
    finally:
        if tmp_manifest.exists():
            tmp_manifest.unlink()
    return meta


def load_images(
    paths: Sequence[str | os.PathLike[str]],
    size: int,
    *,
    draft: bool = True,
    workers: int | None = None,
    cache_root: str | os.PathLike[str] | None = None,
    chunk_size: int = 256,
) -> ImageArray:
    """Decode ``paths`` to one ``uint8`` array ``(n, size, size, 3)``, through the disk cache.

    The first call decodes every file in ``workers`` processes and writes the cache; later calls
    with the same files (same names, sizes and modification times) and settings memory-map it
    and decode nothing. A file that cannot be decoded is reported with an
    :class:`UnreadableImageWarning` naming it (on every load) and marked in ``ok``; it never
    raises.

    Args:
        paths: image files, in the order wanted for the rows (pass a sorted list; file names must
            be unique as the cache keys on them).
        size: output height and width in pixels (>= 1).
        draft: fast reduced-scale JPEG decoding (see the module docstring).
        workers: decoding processes; default: the usable CPU cores. 1 decodes in this process.
        cache_root: cache folder; default :func:`hetreg.data.location.cache_dir` (``HETREG_CACHE``).
            The arrays go to ``<cache_root>/images/``.
        chunk_size: files per task sent to a worker.

    Returns:
        An :class:`ImageArray`.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer number of pixels, got {size!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer or None (all cores), got {workers!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    files = [os.fspath(p) for p in paths]
    if not files:
        raise ValueError("paths is empty; pass at least one image file")
    names = [file_name(p) for p in files]
    if len(set(names)) != len(names):
        raise ValueError("paths contains repeated file names; the image cache identifies files by name")
    size = int(size)
    folder = Path(cache_root).expanduser() if cache_root is not None else cache_dir()
    folder = folder / "images"
    folder.mkdir(parents=True, exist_ok=True)
    key = _cache_key(files, names, size, draft)
    npy, manifest = folder / f"{key}.npy", folder / f"{key}.json"

    cached = _read_cache(npy, manifest, names, size)
    decoded = 0
    if cached is None:
        _build_cache(files, size, draft, workers or default_workers(), chunk_size, npy, manifest)
        decoded = len(files)
        cached = _read_cache(npy, manifest, names, size)
        if cached is None:  # pragma: no cover - only if another process corrupts the folder meanwhile
            raise OSError(f"the image cache {npy} could not be read back after writing it")
    pixels, meta = cached
    errors: dict[str, str] = dict(meta["errors"])
    by_name = dict(zip(names, files))
    for name, reason in errors.items():
        warnings.warn(f"skipping image {by_name[name]}: {reason}", UnreadableImageWarning, stacklevel=2)
    ok = np.array([name not in errors for name in names], dtype=bool)
    return ImageArray(
        pixels=pixels, ok=ok, sha256=tuple(meta["sha256"]), errors=errors, cache_path=npy, decoded=decoded
    )


def hflip_mask(n: int, generator: torch.Generator | None = None, p: float = 0.5) -> Tensor:
    """Boolean mask ``(n,)``: True for the samples to flip, each independently with probability p."""
    return torch.rand(n, generator=generator) < p


def augment_hflip(batch: Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> Tensor:
    """Flip each image of a batch left-right with probability ``p``, in one vectorised step.

    Args:
        batch: images ``(n, C, H, W)`` (channels first, as returned by
            :meth:`hetreg.data.Standardizer.transform_x`), any dtype and device.
        generator: CPU random generator for reproducible flips (``None``: the global one).
        p: flip probability in [0, 1].

    Returns:
        A new tensor of the same shape; the input is not modified.
    """
    if not isinstance(batch, Tensor) or batch.dim() != 4:
        shape = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
        raise ValueError(f"batch must be a tensor (n, C, H, W), got {shape}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p}")
    rows = hflip_mask(batch.shape[0], generator, p).nonzero().squeeze(1).to(batch.device)
    out = batch.clone()  # keeps the memory format (contiguous or channels-last)
    return out.index_copy_(0, rows, batch.index_select(0, rows).flip(-1))
