"""Small generated UTKFace-like folders for the data tests (tiny JPEGs written with Pillow).

A helper module (no tests): named test_utkface_* so that it sits with the tests that use it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

ODD_NAMES = {
    "39_1_20170116174525125.jpg.chip.jpg": 39,  # no race field
    "61_1_20170109142408075.jpg.chip.jpg": 61,
    "24_0_1_20170116220224657 .jpg.chip.jpg": 24,  # space before the extension
    "55_0_0_20170116232725357jpg.chip.jpg": 55,  # missing dot
}
DUPLICATE_PAIR = ("30_0_0_20170101000000001.jpg.chip.jpg", "45_1_0_20170101000000002.jpg.chip.jpg")
DUPLICATE_TRIPLE = (
    "8_0_2_20170101000000003.jpg.chip.jpg",
    "8_1_2_20170101000000004.jpg.chip.jpg",
    "8_0_2_20170101000000005.jpg.chip.jpg",
)
CORRUPT = "50_0_0_20170101000000006.jpg.chip.jpg"  # not a JPEG at all
TRUNCATED = "51_0_0_20170101000000007.jpg.chip.jpg"  # a JPEG cut in half


def face_jpeg(seed: int, size: int = 40, quality: int = 90) -> bytes:
    """A smooth random colour image (gradients + a blob) encoded as JPEG."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    c = rng.uniform(0, 1, size=(3, 4))
    img = np.stack([c[k, 0] + c[k, 1] * xx + c[k, 2] * yy + c[k, 3] * np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) * 8)
                    for k in range(3)], axis=-1)
    img = (255 * (img - img.min()) / (img.max() - img.min() + 1e-9)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def make_utkface(root: Path, n_regular: int = 24, size: int = 40) -> dict[str, int | None]:
    """Write ``root/utkface/UTKFace/`` and return ``{file name: age or None if unreadable}``."""
    folder = root / "utkface" / "UTKFace"
    folder.mkdir(parents=True)
    files: dict[str, int | None] = {}
    for i in range(n_regular):
        age = 1 + (7 * i) % 90
        name = f"{age}_{i % 2}_{i % 5}_2017011{i:010d}.jpg.chip.jpg"
        (folder / name).write_bytes(face_jpeg(i, size))
        files[name] = age
    for j, (name, age) in enumerate(ODD_NAMES.items()):
        (folder / name).write_bytes(face_jpeg(1000 + j, size))
        files[name] = age
    pair = face_jpeg(2000, size)
    for name in DUPLICATE_PAIR:
        (folder / name).write_bytes(pair)
        files[name] = int(name.split("_")[0])
    triple = face_jpeg(2001, size)
    for name in DUPLICATE_TRIPLE:
        (folder / name).write_bytes(triple)
        files[name] = 8
    (folder / CORRUPT).write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    files[CORRUPT] = None
    good = face_jpeg(3000, size)
    (folder / TRUNCATED).write_bytes(good[: len(good) // 2])
    files[TRUNCATED] = None
    return files
