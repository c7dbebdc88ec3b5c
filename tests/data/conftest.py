"""Fixtures of the data tests: the shared data folder (skip when absent), a small fake release of
the Wine and Bike files, and a local HTTP server for the download command."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest

WINE_HEADER = (
    '"fixed acidity";"volatile acidity";"citric acid";"residual sugar";"chlorides";'
    '"free sulfur dioxide";"total sulfur dioxide";"density";"pH";"sulphates";"alcohol";"quality"'
)
BIKE_HEADER = (
    "instant,dteday,season,yr,mnth,hr,holiday,weekday,workingday,weathersit,temp,atemp,hum,windspeed,"
    "casual,registered,cnt"
)
# Three real rows of hour.csv (instants 1, 4323, 10093) and one more of the same day as the first.
BIKE_ROWS = (
    "1,2011-01-01,1,0,1,0,0,6,0,1,0.24,0.2879,0.81,0,3,13,16",
    "2,2011-01-01,1,0,1,1,0,6,0,1,0.22,0.2727,0.8,0,8,32,40",
    "4323,2011-07-04,3,0,7,0,1,1,0,1,0.64,0.5758,0.83,0.1343,63,77,140",
    "10093,2012-03-01,1,1,3,14,0,4,1,1,0.58,0.5455,0.35,0.2239,37,174,211",
    "17379,2012-12-31,1,1,12,23,0,1,1,1,0.26,0.2727,0.65,0.1343,12,37,49",
)


def _shared_file(relpath: str) -> Path:
    """A file of the shared data folder, or skip the test with the reason."""
    env = os.environ.get("HETREG_DATA")
    if not env:
        pytest.skip("HETREG_DATA is not set (point it at the shared data folder to run this test)")
    path = Path(env) / relpath
    if not path.is_file():
        pytest.skip(f"{path} is missing from HETREG_DATA={env}")
    return path


@pytest.fixture
def shared_file() -> Callable[[str], Path]:
    """``shared_file("bike-sharing/hour.csv")``: the real file, or skip (HETREG_DATA unset/missing)."""
    return _shared_file


def wine_lines(n: int, quality_offset: int) -> list[str]:
    """``n`` deterministic, distinct wine rows (11 inputs; quality 3..8)."""
    rows = []
    for i in range(n):
        values = [f"{(i * (j + 3)) % 17 + j + 0.25 * (i % 4):.4g}" for j in range(11)]
        rows.append(";".join(values + [str(3 + (i + quality_offset) % 6)]))
    return rows


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """A data folder with small Wine (30 red + 50 white rows) and Bike (5 rows) files.

    Their hashes are not the published ones (the loaders warn about it).
    """
    wine = tmp_path / "wine-quality"
    wine.mkdir()
    (wine / "winequality-red.csv").write_text("\n".join([WINE_HEADER, *wine_lines(30, 0)]) + "\n")
    (wine / "winequality-white.csv").write_text("\n".join([WINE_HEADER, *wine_lines(50, 2)]) + "\n")
    bike = tmp_path / "bike-sharing"
    bike.mkdir()
    (bike / "hour.csv").write_bytes(("\r\n".join([BIKE_HEADER, *BIKE_ROWS]) + "\r\n").encode())
    return tmp_path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        pass

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        self.requests.append(self.path)
        super().do_GET()


class LocalServer:
    """A static file server on 127.0.0.1 (random free port) in a thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.requests: list[str] = []
        handler = type("Handler", (_QuietHandler,), {"requests": self.requests})
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    """Serve ``tmp_path / "www"`` (created empty) over HTTP; proxies are bypassed for 127.0.0.1."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    www = tmp_path / "www"
    www.mkdir()
    server = LocalServer(www)
    try:
        yield server
    finally:
        server.close()
