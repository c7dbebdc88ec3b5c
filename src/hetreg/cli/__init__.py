"""The ``hetreg`` command line (typer + rich); ``main`` is the console-script entry point."""

from hetreg.cli.app import app, main

__all__ = ["app", "main"]
