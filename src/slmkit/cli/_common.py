"""What every command shares: one-line errors and a non-zero exit, the output policy, common options."""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from pathlib import Path

import typer
from typer.core import TyperCommand, TyperGroup

from slmkit.errors import SlmkitError

try:  # typer >= 0.20 carries its own copy of click
    from typer._click.exceptions import ClickException
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - older typer on plain click
    from click import ClickException, get_current_context

# Only commands with a stochastic step (sampling, CV folds, shuffles, weight initialisation, bootstrap, TPE)
# take --seed; deterministic ones (embed, losses, score, report, eda, clean, ...) have none (tests/cli check it).
SEED_OPTION = typer.Option(0, "--seed", help="Random seed; every stochastic step derives from it.")
OVERWRITE_OPTION = typer.Option(
    False, "--overwrite", help="Replace existing output files this command did not write (or start a resume afresh)."
)
DTYPE_OPTION = typer.Option(
    None,
    "--dtype",
    help="transformers precision: auto | float32 | bfloat16 | float16 (default $SLMKIT_DTYPE, else auto: "
    "bfloat16 where the hardware computes it natively, else float32).",
)
DEBUG_ENV = "SLMKIT_DEBUG"
_MAX_MESSAGE = 400


class _FlagsTakeNoValue:
    """Help where a flag reads as a flag. typer 0.29 prints a type after every option, so `--overwrite <bool>` or
    `--help <bool>` looks as if it took a value, and a user who types `--overwrite true` gets "unexpected extra
    argument". An empty metavar leaves the type column blank for flags only; options that take a value keep theirs."""

    def format_help(self, ctx, formatter):
        for param in self.get_params(ctx):
            if getattr(param, "is_flag", False) and param.metavar is None:  # options only; typer 0.29's are not click's
                param.metavar = ""
        return super().format_help(ctx, formatter)


class _Command(_FlagsTakeNoValue, TyperCommand):
    pass


class _Group(_FlagsTakeNoValue, TyperGroup):
    pass


class Typer(typer.Typer):
    """`typer.Typer` whose groups and commands print flags without a value type (see `_FlagsTakeNoValue`)."""

    def __init__(self, *, cls=None, **kwargs):  # like command(): a caller's own cls still wins
        super().__init__(cls=cls or _Group, **kwargs)

    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or _Command, **kwargs)


def handle_errors(func):
    """Wrap a command: every error ends as one line on stderr and exit code 1.

    A SlmkitError is a message written for the user. Anything else is a bug or an unforeseen input: it is
    reported as one line naming what failed and the command's files, with a hint to rerun with `--debug`
    (or SLMKIT_DEBUG=1), which prints the traceback instead.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        setup_logging()
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except Exception as exc:  # the last line of defence: no input may reach the user as a traceback
            if _debug():
                traceback.print_exc()
            if isinstance(exc, SlmkitError):
                message = _one_line(str(exc), limit=1000)
            else:
                message = unexpected_message(exc, kwargs)
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(code=1) from exc

    return wrapper


def unexpected_message(exc: BaseException, params: dict) -> str:
    """One line for an exception slmkit did not raise on purpose: what failed, on which file, how to see more."""
    command = _command_path()
    files = [str(v) for v in params.values() if isinstance(v, Path)]
    files += [str(p) for v in params.values() if isinstance(v, list | tuple) for p in v if isinstance(p, Path)]
    where = getattr(exc, "filename", None) or ", ".join(files)
    detail = _one_line(str(exc)) or "(no message)"
    hint = "" if _debug() else "; rerun with --debug for the traceback"
    return _one_line(
        f"{command} failed unexpectedly{f' on {where}' if where else ''}: {type(exc).__name__}: {detail}{hint}"
    )


def output_policy(inputs, overwrite: bool):
    """The command's OutputPolicy (slmkit.data), named after the running command."""
    from slmkit.data import OutputPolicy

    return OutputPolicy(_command_path().removeprefix("slmkit "), inputs, overwrite=overwrite)


def option_given(name: str) -> bool:
    """Whether the running command's option `name` was given (on the command line or by environment), as
    opposed to left at its default. False outside a command."""
    ctx = get_current_context(silent=True)
    if ctx is None:
        return False
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _command_path() -> str:
    """`slmkit group command` of the running command, whatever name the program was started under."""
    names = []
    ctx = get_current_context(silent=True)
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(["slmkit", *reversed(names)])


def _debug() -> bool:
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        return True
    ctx = get_current_context(silent=True)
    return bool(ctx is not None and (ctx.find_root().params or {}).get("debug"))


def _one_line(text: str, limit: int = _MAX_MESSAGE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, file=sys.stderr)


class _BarSafeHandler(logging.Handler):
    """Log records as `warning: message` lines written through tqdm, which clears and redraws any open bar.

    slmkit's progress bars are tqdm bars; a plain stream handler would print into the middle of one. The text
    is the message alone: the user needs what happened and what to change, not the module that said it.
    """

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        try:
            tqdm.write(f"{record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)
        except Exception:  # noqa: BLE001 (logging must never be what breaks a command)
            self.handleError(record)


def setup_logging(level: int = logging.WARNING) -> None:
    """Route slmkit's log records (warnings and up) through `_BarSafeHandler`, once per process; turn on the
    status lines of phases that have no progress bar (model loading)."""
    from slmkit import _status

    _status.enable()
    root = logging.getLogger("slmkit")
    if not any(isinstance(h, _BarSafeHandler) for h in root.handlers):
        root.addHandler(_BarSafeHandler())
        root.setLevel(level)  # records still propagate: the root logger has no handler in the CLI
        import warnings

        warnings.showwarning = _show_warning
        # "Creating a new experiment" is not news to a user; mlflow configures its logger from this variable when
        # it is imported (later), so a setLevel here would be undone.
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings as one `warning: ...` line (no file, line number or source echo), through tqdm.

    Deprecation notices from libraries are dropped: they are for slmkit's developers, and a user cannot act on them.
    """
    if issubclass(category, DeprecationWarning | FutureWarning | PendingDeprecationWarning):
        return
    from tqdm.auto import tqdm

    tqdm.write(f"warning: {' '.join(str(message).split())}", file=sys.stderr)
