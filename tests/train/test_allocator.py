"""Keeping freed memory for reuse: set once per process, can be turned off, and it stops the
page faults of a loop that allocates and frees the same large block (run in subprocesses, since
the setting is process-wide)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)

_SCRIPT = """
import json, resource, torch
from hetreg.train.allocator import retain_freed_memory, retained_freed_memory
before = retained_freed_memory()
done = retain_freed_memory()
again = retain_freed_memory()
x = torch.ones(10_000, 1024)  # 40 MB, as an activation of a batched group's evaluation pass
for _ in range(3):
    (x * 2).sum()
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    (x * 2).sum()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0
print(json.dumps({"before": before, "done": done, "again": again, "after": retained_freed_memory(), "faults": faults}))
"""


def _run(env_value: str | None) -> dict:
    env = dict(os.environ)
    env.pop("HETREG_RETAIN_FREED_MEMORY", None)
    if env_value is not None:
        env["HETREG_RETAIN_FREED_MEMORY"] = env_value
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_retains_freed_memory_once_and_stops_page_faults():
    kept = _run(None)
    assert kept["before"] is False and kept["done"] is True and kept["again"] is True and kept["after"] is True
    off = _run("0")
    assert off["done"] is False and off["after"] is False
    # without it a block above glibc's largest dynamic mmap threshold (32 MB) is mapped afresh
    # every time: ~10,000 pages faulted in per iteration
    assert off["faults"] > 100 * 2000
    assert kept["faults"] < off["faults"] / 20


def test_environment_info_records_it():
    from hetreg.train.allocator import retained_freed_memory
    from hetreg.train.environment import environment_info

    assert environment_info()["retain_freed_memory"] is retained_freed_memory()
