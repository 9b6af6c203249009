"""What every command shares: turning SlmkitError into a one-line message and a non-zero exit."""

from __future__ import annotations

import functools
import logging
import sys

import typer

from slmkit.errors import SlmkitError

SEED_OPTION = typer.Option(0, "--seed", help="Random seed; every stochastic step derives from it.")


def handle_errors(func):
    """Wrap a command: a SlmkitError prints one line to stderr and exits 1; anything else is a bug."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        try:
            return func(*args, **kwargs)
        except SlmkitError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from exc

    return wrapper


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, file=sys.stderr)
