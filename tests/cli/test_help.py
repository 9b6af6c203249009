"""Every command's --help: a flag reads as a flag (no value type after it), an option that takes a value names its
type. typer 0.29 printed `--overwrite <bool>`, which invites `--overwrite true` (an "unexpected extra argument")."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from slmkit.cli.main import app

runner = CliRunner()


def _commands(group, path=()):
    yield path, group
    for name, sub in getattr(group, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = [pytest.param(path, command, id=" ".join(path) or "slmkit")
            for path, command in _commands(typer.main.get_command(app))]


def _option_row(help_text: str, option: str) -> str:
    rows = [line for line in help_text.splitlines() if re.search(rf"^[│*\s]*{re.escape(option)}(?![\w-])", line)]
    assert rows, f"{option} is not in the help"
    return rows[0]


def test_every_command_is_covered():
    names = {" ".join(param.values[0]) for param in COMMANDS}
    assert {"", "summarize predict", "classify fit", "quality score", "train pairs", "models list", "serve"} <= names


@pytest.mark.parametrize("path,command", COMMANDS)
def test_help_shows_no_value_type_after_a_flag(path, command):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help" in result.output
    for param in command.params:
        if getattr(param, "is_flag", True) is False and param.opts[0].startswith("--"):
            assert re.search(r"<[\w\[\]|,. ]+>", _option_row(result.output, param.opts[0])), param.opts[0]


@pytest.mark.parametrize("path,command", COMMANDS)
def test_every_option_and_argument_says_what_it_is(path, command):
    missing = [param.opts[0] for param in command.params if not (getattr(param, "help", None) or "").strip()]
    assert not missing, f"slmkit {' '.join(path)}: no help for {missing}"
