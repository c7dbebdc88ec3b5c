"""What a run ran on: versions, platform and the source revision, for ``environment.json``."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

import hetreg
from hetreg.train.allocator import retained_freed_memory

__all__ = ["environment_info", "git_commit"]


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit of the git checkout holding ``path`` (default: the hetreg sources), else ``None``.

    A ``+dirty`` suffix marks uncommitted changes to tracked files.
    """
    where = Path(path) if path is not None else Path(hetreg.__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(where), "diff", "--quiet", "HEAD", "--", "."],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return commit + ("+dirty" if dirty.returncode == 1 else "")


def environment_info() -> dict[str, Any]:
    """Python, torch, numpy and hetreg versions, platform, CPU threads, whether freed memory is
    kept for reuse (:mod:`hetreg.train.allocator`) and the git commit."""
    return {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "hetreg": hetreg.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "torch_num_threads": torch.get_num_threads(),
        "retain_freed_memory": retained_freed_memory(),
        "git_commit": git_commit(),
    }
