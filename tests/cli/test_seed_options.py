"""Every command that takes --seed really seeds something; deterministic commands take none."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

import slmkit.cli
from slmkit.cli.main import app

runner = CliRunner()
CLI = Path(slmkit.cli.__file__).parent


def _commands_with_seed():
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(a.arg == "seed" for a in node.args.args):
                yield path.name, node


@pytest.mark.parametrize("where,node", list(_commands_with_seed()), ids=lambda v: getattr(v, "name", v))
def test_every_seed_option_is_used(where, node):
    body = ast.Module(body=node.body, type_ignores=[])
    uses = [n for n in ast.walk(body) if isinstance(n, ast.Name) and n.id == "seed"]
    assert uses, f"{where}:{node.name} takes --seed but never uses it"


@pytest.mark.parametrize("command", [["lm", "embed"], ["lm", "losses"], ["lm", "demo"], ["quality", "score"],
                                     ["quality", "report"], ["summarize", "eda"], ["summarize", "clean"],
                                     ["summarize", "validate"], ["summarize", "ensemble"]])
def test_deterministic_commands_take_no_seed(command):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--seed" not in result.output


def test_generate_seed_reproduces_and_varies_sampling_and_stop_cuts(tiny_causal_dir):
    base = ["lm", "generate", "The cat", "--model", str(tiny_causal_dir), "--max-new-tokens", "8", "--do-sample",
            "--temperature", "2.0"]
    runs = {seed: runner.invoke(app, [*base, "--seed", str(seed)]) for seed in (1, 1, 2, 3, 4)}
    assert all(r.exit_code == 0 for r in runs.values()), [r.stdout for r in runs.values()]
    again = runner.invoke(app, [*base, "--seed", "1"])
    assert again.stdout == runs[1].stdout
    assert len({r.stdout for r in runs.values()}) > 1
    greedy = runner.invoke(app, ["lm", "generate", "The cat", "--model", str(tiny_causal_dir),
                                 "--max-new-tokens", "8"]).stdout.rstrip("\n")
    stop = greedy[2:4]
    cut = runner.invoke(app, ["lm", "generate", "The cat", "--model", str(tiny_causal_dir), "--max-new-tokens", "8",
                              "--stop", stop])
    assert cut.exit_code == 0 and cut.stdout.rstrip("\n") == greedy[: greedy.index(stop)]
