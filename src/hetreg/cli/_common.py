"""Shared pieces of the command line: consoles, quiet mode, error reporting, output folders."""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

F = TypeVar("F", bound=Callable[..., Any])

#: Exit code of user errors (bad option, unknown name, missing file): one line, no traceback.
EXIT_USAGE = 2
#: Exit code when the command ran but some runs failed.
EXIT_FAILED = 1
#: Exit code after Ctrl-C.
EXIT_INTERRUPTED = 130

DEFAULT_RUNS_ROOT = Path("hetreg-runs")


@dataclass
class State:
    """Options shared by every command (set by the global callback)."""

    quiet: bool = False


STATE = State()


def out_console() -> Console:
    """Console for results (stdout)."""
    return Console(highlight=False, soft_wrap=False)


_ERR_CONSOLE = Console(stderr=True, highlight=False)


def err_console() -> Console:
    """Console for progress and messages (stderr). One shared instance, so that messages printed
    while a progress bar is live appear above the bar; it writes to the current ``sys.stderr``."""
    return _ERR_CONSOLE


def is_quiet(local: bool = False) -> bool:
    return bool(local or STATE.quiet)


def info(message: str, *, quiet: bool = False) -> None:
    """A progress message on stderr, unless quiet."""
    if not is_quiet(quiet):
        err_console().print(message, markup=False, soft_wrap=True)


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (pydantic errors condensed to ``key: problem; ...``)."""
    try:
        from pydantic import ValidationError
    except ImportError:  # pragma: no cover - pydantic is a dependency
        ValidationError = ()  # type: ignore[assignment,misc]
    if isinstance(exc, ValidationError):
        try:
            from hetreg.experiments.config import format_validation_error

            text = format_validation_error(exc)
        except ImportError:
            text = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    else:
        text = str(exc)
    parts = [p.strip() for p in text.strip().splitlines() if p.strip()]
    if len(parts) > 1 and parts[0].endswith(":"):
        return parts[0] + " " + "; ".join(parts[1:])
    return "; ".join(parts) or type(exc).__name__


USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``error: message`` on stderr and return the ``typer.Exit`` to raise."""
    err_console().print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn user errors into one line on stderr and exit code 2 (no traceback).

    Other exceptions (bugs) also print one line, with exit code 1, unless ``HETREG_DEBUG`` is
    set, in which case they propagate with their traceback. Ctrl-C exits with 130.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            raise fail("interrupted", EXIT_INTERRUPTED) from None
        except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
            with contextlib.suppress(Exception):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(EXIT_FAILED) from None
        except USER_ERRORS as exc:
            if os.environ.get("HETREG_DEBUG"):
                raise
            raise fail(one_line(exc)) from None
        except Exception as exc:  # noqa: BLE001
            if os.environ.get("HETREG_DEBUG"):
                raise
            raise fail(f"{type(exc).__name__}: {one_line(exc)} (set HETREG_DEBUG=1 for the traceback)", EXIT_FAILED) from None

    return wrapper  # type: ignore[return-value]


def help_text(fn: Callable[..., Any]) -> str:
    """The docstring of a command for the rich help: paragraphs re-flowed (the terminal wraps
    them), lines kept in paragraphs starting with ``Examples:``, rich markup escaped."""
    paragraphs = inspect.cleandoc(fn.__doc__ or "").split("\n\n")
    out = []
    for para in paragraphs:
        if para.lstrip().startswith("Examples:"):
            out.append(para)
        else:
            out.append(" ".join(line.strip() for line in para.splitlines()))
    return escape("\n\n".join(out))


def new_run_folder(prefix: str, root: Path = DEFAULT_RUNS_ROOT) -> Path:
    """A fresh folder ``root/<prefix>-YYYYmmdd-HHMMSS[-n]`` that does not exist yet (not created)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = root / f"{prefix}-{stamp}"
    n = 2
    while candidate.exists():
        candidate = root / f"{prefix}-{stamp}-{n}"
        n += 1
    return candidate


def check_fresh_folder(path: Path, flag: str = "--out") -> None:
    """Refuse to write into an existing file or a non-empty folder (never overwrite user files)."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{flag} {path} already exists and is not empty; choose a new folder")


def fmt_number(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return "–" if not math.isfinite(x) else f"{x:.{digits}g}"
    return str(x)


def make_table(title: str | None, header: Sequence[str], rows: Iterable[Sequence[Any]], key_cols: int = 1) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for i, h in enumerate(header):
        table.add_column(str(h), justify="left" if i < key_cols else "right", no_wrap=i == 0, overflow="fold")
    for row in rows:
        table.add_row(*(fmt_number(c) if not isinstance(c, str) else c for c in row))
    return table


def print_table(table: Table) -> None:
    console = out_console()
    if not sys.stdout.isatty():
        console = Console(highlight=False, width=max(140, console.width))
    console.print(table)
