"""The README is tested: every shell command in its ```bash blocks parses against the CLI (fast), and runs, in
order, on the project's own example data with the real default models (slow), so a usage line cannot drift."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from slmkit.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def readme_commands() -> list[list[str]]:
    """Every command line of the README's ```bash blocks, as argv lists, in reading order (comments dropped)."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                commands.append(argv)
    return commands


def _resolve(argv: list[str]) -> None:
    """Parse `slmkit argv...` the way the CLI would, down to the leaf command; raise on any usage error.

    Duck-typed on purpose: typer ships its own copy of click, so its groups are not `click.Group`s.
    """
    command, rest = get_command(app), list(argv[1:])
    ctx = command.context_class(command, info_name="slmkit")
    while hasattr(command, "resolve_command"):
        name, command, rest = command.resolve_command(ctx, rest)
        assert command is not None, f"no command {name!r}"
        ctx = command.context_class(command, info_name=name, parent=ctx)
    command.make_context(ctx.info_name, rest, parent=ctx.parent)  # raises on unknown options or missing args


def test_the_readme_has_commands_for_every_job():
    firsts = {tuple(c[:2]) for c in readme_commands() if c[0] == "slmkit"}
    for group in ("summarize", "classify", "quality", "train", "models"):
        assert any(g == ("slmkit", group) for g in firsts), f"no `slmkit {group}` command in the README"


@pytest.mark.parametrize("argv", [c for c in readme_commands() if c[0] == "slmkit"], ids=lambda c: " ".join(c[:3]))
def test_every_readme_command_parses(argv):
    _resolve(argv)


def test_quick_start_targets_exist():
    make = [c for c in readme_commands() if c[0] == "make"]
    assert [c[1] for c in make] == ["demo", "test"]
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    for argv in make:
        subprocess.run(["make", "-n", *argv[1:]], cwd=ROOT, check=True, capture_output=True)


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path, monkeypatch):
    """In a scratch folder holding a copy of examples/: each `slmkit` line, in order, with the real models."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runner = CliRunner()
    for argv in readme_commands():
        if argv[0] != "slmkit":
            continue
        result = runner.invoke(app, argv[1:])
        assert result.exit_code == 0, f"`{shlex.join(argv)}` failed:\n{result.output[-3000:]}"
    assert os.listdir(tmp_path / "out")
