"""Issue 11's matrix: every CLI command that reads a table x bad inputs, and every command x bad options.

Each case asserts the exit code, that the answer is one `error:` line (no traceback), that every input file is
byte-for-byte unchanged, that no temp file is left, and that no model was loaded (bad inputs and options must
fail before any model work). Inputs that are valid but unusual (a CSV cell over 131,072 characters) must be
accepted: the command gets as far as loading its model (stopped here by a stub) or finishes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slmkit.cli.main import app

runner = CliRunner()

DIALOGUE = "#Person1#: Hello, how are you? #Person2#: Fine, thanks."
# Per kind of input: header and two good rows (the CSV form of each table a command reads).
KINDS = {
    "dialogues": (["fname", "dialogue", "summary", "topic"], [["a", DIALOGUE, "They greet.", "t"],
                                                               ["b", DIALOGUE, "A greeting.", "t"]]),
    "predictions": (["fname", "summary"], [["a", "They greet."], ["b", "A greeting."]]),
    "labelled": (["text", "label"], [["good film", "pos"], ["bad film", "neg"], ["great film", "pos"],
                                     ["awful film", "neg"]]),
    "texts": (["text"], [["The cat sat on the mat."], ["Stock prices rose."]]),
    "pairs": (["prompt", "target"], [["Say hi", "hi"], ["Say bye", "bye"]]),
    "scores": (["id", "text", "S", "forward_loss", "reverse_loss"], [["a", "x y", "0.5", "2.0", "1.5"],
                                                                     ["b", "y z", "0.1", "2.2", "2.1"]]),
}


HUGE_COLUMN = {"dialogues": "dialogue", "predictions": "summary", "labelled": "text", "texts": "text",
               "pairs": "prompt", "scores": "text"}


def _csv(header, rows) -> str:
    def cell(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n') else value

    return "".join(",".join(cell(v) for v in row) + "\n" for row in [header, *rows])


def _bad_input(case: str, kind: str, folder: Path) -> Path:
    """Write the bad (or unusual) input `case` for a command reading `kind`; return its path."""
    header, rows = KINDS[kind]
    path = folder / "input.csv"
    if case == "missing":
        return folder / "no_such_file.csv"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "header_only":
        path.write_text(_csv(header, []))
    elif case == "bad_encoding":
        path.write_bytes(_csv(header, rows).encode().replace(b"a", b"\xe9", 1))
    elif case == "bad_quoting":
        path.write_text(_csv(header, rows) + '"unclosed,' + ",".join(["x"] * (len(header) - 1)) + "\n")
    elif case == "binary":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe" * 20)
    elif case == "wrong_columns":
        path.write_text(_csv(["foo", "bar"], [["1", "2"]]))
    elif case == "empty_text":
        first = header.index("dialogue" if kind == "dialogues" else "target" if kind == "pairs" else header[0])
        bad = [list(r) for r in rows]
        bad[1][first] = "  "
        path.write_text(_csv(header, bad))
    elif case == "duplicate_ids":
        path.write_text(_csv(header, [rows[0], rows[0]]))
    elif case in ("missing_label", "empty_label", "null_label"):
        if case == "missing_label":
            path.write_text(_csv(["text"], [[r[0]] for r in rows]))
        elif case == "empty_label":
            path.write_text(_csv(header, [rows[0], [rows[1][0], ""]]))
        else:
            path = folder / "input.jsonl"
            path.write_text('{"text": "good film", "label": "pos"}\n{"text": "bad film", "label": null}\n')
    elif case == "huge_cell":
        big = [list(r) for r in rows]
        column = header.index(HUGE_COLUMN[kind])
        big[0][column] = big[0][column] + " " + "word, " * 30_000  # ~180,000 characters, quoted
        path.write_text(_csv(header, big))
    else:
        raise AssertionError(case)
    return path


# name -> (kind of its table input, argv builder f(bad, tmp, good), cases it accepts by design)
def _commands():
    return {
        "summarize predict": ("dialogues", lambda b, t, g: ["summarize", "predict", b, "--output", t / "p.csv",
                                                            "--method", "lead"], ()),
        "summarize evaluate": ("dialogues", lambda b, t, g: ["summarize", "evaluate", g["predictions"], b,
                                                             "--n-bootstrap", "0"], ()),
        "summarize eda": ("dialogues", lambda b, t, g: ["summarize", "eda", b, "--output-dir", t / "eda",
                                                        "--model", "none"], ()),
        "summarize clean": ("dialogues", lambda b, t, g: ["summarize", "clean", b, "--output", t / "c.csv"], ()),
        "summarize validate": ("dialogues", lambda b, t, g: ["summarize", "validate", b], ()),
        "summarize train": ("dialogues", lambda b, t, g: ["summarize", "train", b, "--output", t / "run"], ()),
        "summarize tune": ("dialogues", lambda b, t, g: ["summarize", "tune", b, "--dev", b, "--output",
                                                         t / "study"], ()),
        "summarize ensemble": ("predictions", lambda b, t, g: ["summarize", "ensemble", b, g["predictions"],
                                                               "--output", t / "e.csv"], ()),
        "classify fit": ("labelled", lambda b, t, g: ["classify", "fit", "--train", b, "--out", t / "m"], ()),
        "classify predict": ("texts", lambda b, t, g: ["classify", "predict", "--model-dir", t / "m", "--input", b,
                                                       "--output", t / "p.csv"], ()),
        "classify evaluate": ("labelled", lambda b, t, g: ["classify", "evaluate", "--model-dir", t / "m",
                                                           "--input", b], ()),
        "classify curve": ("labelled", lambda b, t, g: ["classify", "curve", "--train", b, "--test", b, "--out",
                                                        t / "c"], ()),
        "classify explain": ("texts", lambda b, t, g: ["classify", "explain", "--model-dir", t / "m", "--input", b,
                                                       "--output", t / "r.html"], ()),
        "quality train": ("texts", lambda b, t, g: ["quality", "train", b, "--output", t / "q"], ()),
        # quality score rejects bad rows one by one (rejects/ names each), so a bad cell is no error there.
        "quality score": ("texts", lambda b, t, g: ["quality", "score", b, "--scorer", t / "pair", "--output",
                                                    t / "s"], ("bad_encoding", "empty_text")),
        "quality select": ("scores", lambda b, t, g: ["quality", "select", b, "--output", t / "sel.csv",
                                                      "--k", "1"], ()),
        "quality report": ("scores", lambda b, t, g: ["quality", "report", b, "--output", t / "rep"], ()),
        "train pairs": ("pairs", lambda b, t, g: ["train", "pairs", b, "--output", t / "run"], ()),
        "train docs": ("texts", lambda b, t, g: ["train", "docs", b, "--output", t / "run"], ()),
        "train scratch": ("texts", lambda b, t, g: ["train", "scratch", b, "--output", t / "m"], ()),
        "lm demo": ("texts", lambda b, t, g: ["lm", "demo", "--input", b, "--output", t / "d.json"], ()),
        "lm embed": ("texts", lambda b, t, g: ["lm", "embed", b, "--output", t / "e.npy"], ()),
        "lm losses": ("texts", lambda b, t, g: ["lm", "losses", b, "--output", t / "l.jsonl"], ()),
    }


COMMANDS = _commands()
COMMON_CASES = ("missing", "empty", "header_only", "bad_encoding", "bad_quoting", "binary", "wrong_columns",
                "empty_text", "huge_cell")
KIND_CASES = {"dialogues": ("duplicate_ids",), "predictions": ("duplicate_ids",),
              "labelled": ("missing_label", "empty_label", "null_label")}
ACCEPTED = ("huge_cell",)  # valid input: must be read, never reported as broken


def _input_cases():
    for name, (kind, _, accepts) in COMMANDS.items():
        for case in COMMON_CASES + KIND_CASES.get(kind, ()):
            if case == "empty_text" and kind == "scores":
                continue
            yield pytest.param(name, case, case in ACCEPTED or case in accepts, id=f"{name}-{case}")


class ModelLoads:
    """Stands in for every model backend: records the attempt and stops the command there."""

    def __init__(self):
        self.count = 0

    def __call__(self, spec, **options):
        from slmkit.errors import ModelUnavailableError

        self.count += 1
        raise ModelUnavailableError(f"test stub: would load model {spec.name}")


@pytest.fixture
def loads(monkeypatch):
    from slmkit.models import _registry

    stub = ModelLoads()
    for backend in list(_registry._BACKENDS):
        monkeypatch.setitem(_registry._BACKENDS, backend, stub)
    return stub


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.suffixes]


def _good_inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    out = {}
    for kind, (header, rows) in KINDS.items():
        out[kind] = folder / f"{kind}.csv"
        out[kind].write_text(_csv(header, rows))
    return out


def run_case(argv_builder, bad: Path, tmp: Path, good: dict):
    argv = [str(a) for a in argv_builder(bad, tmp / "out", good)]
    (tmp / "out").mkdir(exist_ok=True)
    return runner.invoke(app, argv)


def assert_one_line_error(result, *, mention: str | None = None):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert result.output.rstrip().splitlines()[-1].startswith("error:"), result.output
    assert "failed unexpectedly" not in errors[0], errors[0]  # a message written for this input, not a bug
    if mention:
        assert mention in errors[0], errors[0]


@pytest.mark.parametrize("command, case, accepted", list(_input_cases()))
def test_bad_input(command, case, accepted, tmp_path, loads):
    kind, argv, _ = COMMANDS[command]
    good = _good_inputs(tmp_path / "good")
    (tmp_path / "in").mkdir()
    bad = _bad_input(case, kind, tmp_path / "in")
    before = _snapshot(tmp_path / "in"), _snapshot(tmp_path / "good")
    result = run_case(argv, bad, tmp_path, good)
    assert (_snapshot(tmp_path / "in"), _snapshot(tmp_path / "good")) == before
    assert not _temps(tmp_path), _temps(tmp_path)
    if accepted:
        # Read fine: the command finished, or got as far as its model (stubbed), or failed on something else
        # (a stand-in model folder), never on this input.
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert result.exit_code == 0 or loads.count or (errors and bad.name not in errors[0]), result.output
    else:
        assert_one_line_error(result, mention=bad.name if case != "wrong_columns" or kind != "scores" else None)
        assert loads.count == 0, f"a model was loaded before the bad input was noticed: {result.output}"


# (id, argv builder f(tmp, good), message fragment): every one must fail before any model loads.
def _option_cases():
    return [
        ("classify fit --cv 0", lambda t, g: ["classify", "fit", "--train", g["labelled"], "--out", t / "m",
                                              "--cv", "0"], "cv must be >= 2"),
        ("classify fit --layers x", lambda t, g: ["classify", "fit", "--train", g["labelled"], "--out", t / "m",
                                                  "--layers", "x"], "--layers"),
        ("classify fit --pooling max", lambda t, g: ["classify", "fit", "--train", g["labelled"], "--out",
                                                     t / "m", "--pooling", "max"], "pooling"),
        ("classify fit --adapt-budget soon", lambda t, g: ["classify", "fit", "--train", g["labelled"], "--out",
                                                           t / "m", "--adapt-budget", "soon"], "adapt_budget"),
        ("classify fit --adapt-pairs 3", lambda t, g: ["classify", "fit", "--train", g["labelled"], "--out",
                                                       t / "m", "--adapt-pairs", "3"], "adapt_pairs must be"),
        ("classify curve --shots 0", lambda t, g: ["classify", "curve", "--train", g["labelled"], "--test",
                                                   g["labelled"], "--out", t / "c", "--shots", "0"], "shots"),
        ("classify curve --draws 0", lambda t, g: ["classify", "curve", "--train", g["labelled"], "--test",
                                                   g["labelled"], "--out", t / "c", "--draws", "0"], "draws"),
        ("classify explain --limit 0", lambda t, g: ["classify", "explain", "--model-dir", t / "m", "--input",
                                                     g["texts"], "--output", t / "r.html", "--limit", "0"],
         "limit must be >= 1"),
        ("classify explain --n-boot -1", lambda t, g: ["classify", "explain", "--model-dir", t / "m", "--input",
                                                       g["texts"], "--output", t / "r.html", "--n-boot", "-1"],
         "n_boot"),
        ("classify explain --method x", lambda t, g: ["classify", "explain", "--model-dir", t / "m", "--input",
                                                      g["texts"], "--output", t / "r.html", "--method", "x"],
         "method"),
        ("classify explain --output r.json", lambda t, g: ["classify", "explain", "--model-dir", t / "m",
                                                           "--input", g["texts"], "--output", t / "r.json"],
         "same file"),
        ("classify explain --output <input>", lambda t, g: ["classify", "explain", "--model-dir", t / "m",
                                                            "--input", g["texts"], "--output", g["texts"]],
         "is also an input"),
        ("classify evaluate --output <input>", lambda t, g: ["classify", "evaluate", "--model-dir", t / "m",
                                                             "--input", g["labelled"], "--output", g["labelled"]],
         "is also an input"),
        ("classify predict --output <folder>", lambda t, g: ["classify", "predict", "--model-dir", t / "m",
                                                             "--input", g["texts"], "--output", t],
         "is a folder"),
        ("classify predict --output <artifact file>", lambda t, g: ["classify", "predict", "--model-dir",
                                                                    t / "m", "--input", g["texts"], "--output",
                                                                    t / "m" / "head.npz"], "is also an input"),
        ("summarize predict --limit -1", lambda t, g: ["summarize", "predict", g["dialogues"], "--output",
                                                       t / "p.csv", "--limit", "-1"], "limit must be >= 1"),
        ("summarize predict --shots 0", lambda t, g: ["summarize", "predict", g["dialogues"], "--output",
                                                      t / "p.csv", "--shots", "0"], "shots must be >= 1"),
        ("summarize predict --method x", lambda t, g: ["summarize", "predict", g["dialogues"], "--output",
                                                       t / "p.csv", "--method", "x"], "method must be"),
        ("summarize predict --output <input>", lambda t, g: ["summarize", "predict", g["dialogues"], "--output",
                                                             g["dialogues"], "--method", "lead"], "is also an input"),
        ("summarize predict --model x", lambda t, g: ["summarize", "predict", g["dialogues"], "--output",
                                                      t / "p.csv", "--model", "no-such-model"], "unknown model"),
        ("summarize predict --dtype x", lambda t, g: ["summarize", "predict", g["dialogues"], "--output",
                                                      t / "p.csv", "--dtype", "int3"], "dtype= must be one of"),
        ("summarize predict --dtype with llamacpp", lambda t, g: ["summarize", "predict", g["dialogues"],
                                                                  "--output", t / "p.csv", "--backend", "llamacpp",
                                                                  "--dtype", "bf16"], "dtype applies to"),
        ("summarize evaluate --n-bootstrap -5", lambda t, g: ["summarize", "evaluate", g["predictions"],
                                                              g["dialogues"], "--n-bootstrap", "-5"],
         "n_bootstrap must be >= 0"),
        ("summarize evaluate --multi-ref x", lambda t, g: ["summarize", "evaluate", g["predictions"],
                                                           g["dialogues"], "--multi-ref", "x"], "multi_ref"),
        ("summarize evaluate --tokenizer x", lambda t, g: ["summarize", "evaluate", g["predictions"],
                                                           g["dialogues"], "--tokenizer", "x"], "tokenizer"),
        ("summarize evaluate --output-dir <file>", lambda t, g: ["summarize", "evaluate", g["predictions"],
                                                                 g["dialogues"], "--output-dir", g["texts"]],
         "is a file"),
        ("summarize eda --coverage 150", lambda t, g: ["summarize", "eda", g["dialogues"], "--output-dir",
                                                       t / "eda", "--coverage", "150"], "coverage"),
        ("summarize eda --coverage 0", lambda t, g: ["summarize", "eda", g["dialogues"], "--output-dir",
                                                     t / "eda", "--coverage", "0"], "coverage"),
        ("summarize clean --output <input>", lambda t, g: ["summarize", "clean", g["dialogues"], "--output",
                                                           g["dialogues"]], "is also an input"),
        ("summarize clean --output <other file>", lambda t, g: ["summarize", "clean", g["dialogues"], "--output",
                                                                g["texts"]], "--overwrite"),
        ("summarize clean --report <other file>", lambda t, g: ["summarize", "clean", g["dialogues"], "--output",
                                                                t / "c.csv", "--report", g["texts"]],
         "--overwrite"),
        ("summarize clean --report = --output", lambda t, g: ["summarize", "clean", g["dialogues"], "--output",
                                                              t / "c.csv", "--report", t / "c.csv"], "same file"),
        ("summarize clean --output <folder>", lambda t, g: ["summarize", "clean", g["dialogues"], "--output", t],
         "is a folder"),
        ("summarize clean --disable x", lambda t, g: ["summarize", "clean", g["dialogues"], "--output",
                                                      t / "c.csv", "--disable", "x"], "unknown cleaning step"),
        ("summarize tune --n-trials 0", lambda t, g: ["summarize", "tune", g["dialogues"], "--dev",
                                                      g["dialogues"], "--output", t / "s", "--n-trials", "0"],
         "n_trials"),
        ("summarize train --epochs -1", lambda t, g: ["summarize", "train", g["dialogues"], "--output",
                                                      t / "run", "--epochs", "-1"], "epochs"),
        ("summarize train --output <input>", lambda t, g: ["summarize", "train", g["dialogues"], "--output",
                                                           g["dialogues"]], "is also an input"),
        ("summarize ensemble --output <input>", lambda t, g: ["summarize", "ensemble", g["predictions"],
                                                              g["predictions"], "--output", g["predictions"]],
         "is also an input"),
        ("quality score --chunk-rows 0", lambda t, g: ["quality", "score", g["texts"], "--scorer", t / "pair",
                                                       "--output", t / "s", "--chunk-rows", "0"], "chunk_rows"),
        ("quality score --format xml", lambda t, g: ["quality", "score", g["texts"], "--scorer", t / "pair",
                                                     "--output", t / "s", "--format", "xml"], "output_format"),
        ("quality select --k -1", lambda t, g: ["quality", "select", g["scores"], "--output", t / "x.csv",
                                                "--k", "-1"], "k must be >= 0"),
        ("quality select --fraction 2", lambda t, g: ["quality", "select", g["scores"], "--output", t / "x.csv",
                                                      "--fraction", "2"], "fraction"),
        ("quality select --output <input>", lambda t, g: ["quality", "select", g["scores"], "--output",
                                                          g["scores"], "--k", "1"], "is also an input"),
        ("quality report --fraction 0", lambda t, g: ["quality", "report", g["scores"], "--output", t / "r",
                                                      "--fraction", "0"], "fraction"),
        ("train pairs --learning-rate 0", lambda t, g: ["train", "pairs", g["pairs"], "--output", t / "r",
                                                        "--learning-rate", "0"], "learning_rate"),
        ("train pairs --set lora_r=0", lambda t, g: ["train", "pairs", g["pairs"], "--output", t / "r",
                                                     "--set", "lora_r=0"], "lora_r"),
        ("train docs --method x", lambda t, g: ["train", "docs", g["texts"], "--output", t / "r", "--method", "x"],
         "method"),
        ("train scratch --vocab-size 10", lambda t, g: ["train", "scratch", g["texts"], "--output", t / "m",
                                                        "--vocab-size", "10"], "vocab_size"),
        ("lm embed --layers x", lambda t, g: ["lm", "embed", g["texts"], "--output", t / "e.npy", "--layers", "x"],
         "--layers"),
        ("lm losses --output <input>", lambda t, g: ["lm", "losses", g["texts"], "--output", g["texts"]],
         "is also an input"),
        ("lm demo --output <folder>", lambda t, g: ["lm", "demo", "--input", g["texts"], "--output", t],
         "is a folder"),
        ("lm generate --max-new-tokens 0", lambda t, g: ["lm", "generate", "hi", "--max-new-tokens", "0"],
         "max_new_tokens"),
        ("lm generate --top-p 2", lambda t, g: ["lm", "generate", "hi", "--top-p", "2"], "top_p"),
    ]


OPTION_CASES = _option_cases()


@pytest.mark.parametrize("argv, fragment", [pytest.param(a, f, id=i) for i, a, f in OPTION_CASES])
def test_bad_option(argv, fragment, tmp_path, loads):
    good = _good_inputs(tmp_path / "good")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "m").mkdir()
    (tmp_path / "out" / "m" / "head.npz").write_bytes(b"stand-in artifact file")
    before = _snapshot(tmp_path)
    result = runner.invoke(app, [str(a) for a in argv(tmp_path / "out", good)])
    assert_one_line_error(result, mention=fragment)
    assert loads.count == 0, f"a model was loaded before the bad option was noticed: {result.output}"
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before
    assert not _temps(tmp_path)


def matrix_size() -> dict:
    """Commands x cases, for the README's reliability note."""
    inputs = len(list(_input_cases()))
    return {"commands": len(COMMANDS), "input_cases": inputs, "option_cases": len(OPTION_CASES),
            "total": inputs + len(OPTION_CASES)}


if __name__ == "__main__":
    print(json.dumps(matrix_size()))
