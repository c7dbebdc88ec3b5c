"""Where datasets and caches live.

Data folder, in order: the ``root`` argument, the ``HETREG_DATA`` environment variable, the
per-user data directory (``$XDG_DATA_HOME/hetreg`` or ``~/.local/share/hetreg``). The folder is
laid out like this::

    wine-quality/winequality-red.csv, winequality-white.csv
    bike-sharing/hour.csv
    utkface/UTKFace/*.jpg

Caches (decoded images) go to ``HETREG_CACHE`` or ``$XDG_CACHE_HOME/hetreg`` (``~/.cache/hetreg``).
"""

from __future__ import annotations

import os
from pathlib import Path


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data folder to read from (see module docstring for the search order)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("HETREG_DATA")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hetreg"


def data_root_source(root: str | os.PathLike[str] | None = None) -> str:
    """Say where :func:`data_root` took its answer from (for messages)."""
    if root is not None:
        return "the root argument"
    if os.environ.get("HETREG_DATA"):
        return "$HETREG_DATA"
    return "the per-user data directory (set HETREG_DATA or pass root= to change it)"


def cache_dir() -> Path:
    """Folder for caches such as decoded image arrays; created on demand by the callers."""
    env = os.environ.get("HETREG_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hetreg"
