"""Scoring files: chunked reading, resume after a kill, refusal of a mismatched resume, bad rows reported."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from slmkit.errors import ConfigError, DataError
from slmkit.quality import ScoreConfig, read_rejects, read_scores, score_file
from slmkit.quality import _score as score_module
from slmkit.testing import TOY_TEXTS


@pytest.fixture()
def counted(monkeypatch):
    """Count the rows that reach the model."""
    seen: list[int] = []
    original = score_module.score_frame

    def counting(pair, frame, **kwargs):
        seen.append(len(frame))
        return original(pair, frame, **kwargs)

    monkeypatch.setattr(score_module, "score_frame", counting)
    return seen


def test_scores_every_row_in_order_with_all_columns(pair, corpus_jsonl, tmp_path):
    manifest = score_file(corpus_jsonl, pair, tmp_path / "out", ScoreConfig(chunk_rows=6), progress=False)
    assert manifest["finished"] and manifest["rows_scored"] == 20 and manifest["chunks_done"] == 4
    scores = read_scores(tmp_path / "out")
    source = pd.read_json(corpus_jsonl, lines=True)
    assert list(scores["id"]) == list(source["id"]) and list(scores["row"]) == list(range(1, 21))
    assert list(scores["text"]) == list(source["text"]) and "domain" in scores
    direct = pair.score_texts(list(source["text"]))
    np.testing.assert_allclose(scores["S"], direct["S"], rtol=1e-5, atol=1e-6)
    assert manifest["last_run"]["tokens_per_second"] > 0


def test_a_killed_run_resumes_without_rescoring_or_losing_rows(pair, corpus_jsonl, tmp_path, counted):
    config = ScoreConfig(chunk_rows=4)
    whole = score_file(corpus_jsonl, pair, tmp_path / "whole", config, progress=False)
    counted.clear()

    first = score_file(corpus_jsonl, pair, tmp_path / "out", config, progress=False, max_chunks=2)  # "killed"
    assert not first["finished"] and first["rows_read"] == 8 and sum(counted) == 8
    part0 = (tmp_path / "out" / "parts" / "part-00000.parquet").read_bytes()
    counted.clear()
    import tqdm.auto

    bars = []  # the resumed bar opens where the first run stopped, so its rate counts only rows scored now
    real_tqdm = tqdm.auto.tqdm
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tqdm.auto, "tqdm", lambda *a, **k: bars.append(k) or real_tqdm(*a, **k))
        second = score_file(corpus_jsonl, pair, tmp_path / "out", config, progress=False)
    assert second["finished"] and sum(counted) == 12  # only the rows not yet scored
    (bar,) = [k for k in bars if k.get("desc") == "quality score"]
    assert 0 < bar["initial"] < bar["total"]
    assert (tmp_path / "out" / "parts" / "part-00000.parquet").read_bytes() == part0
    pd.testing.assert_frame_equal(read_scores(tmp_path / "out"), read_scores(tmp_path / "whole"))
    assert second["rows_scored"] == whole["rows_scored"] == 20

    # A kill after a part was written but before the manifest recorded it: that chunk is redone, not doubled.
    manifest_path = tmp_path / "out" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest.update(finished=False, chunks_done=4, rows_read=16, rows_scored=16)
    manifest_path.write_text(json.dumps(manifest))
    counted.clear()
    third = score_file(corpus_jsonl, pair, tmp_path / "out", config, progress=False)
    assert sum(counted) == 4 and third["rows_scored"] == 20
    pd.testing.assert_frame_equal(read_scores(tmp_path / "out"), read_scores(tmp_path / "whole"))


def test_a_run_stopped_on_its_last_chunk_keeps_its_record_when_the_next_call_finds_the_end(
    pair, corpus_jsonl, tmp_path, counted
):
    config = ScoreConfig(chunk_rows=4)  # 20 rows: 5 chunks
    first = score_file(corpus_jsonl, pair, tmp_path / "out", config, progress=False, max_chunks=5)
    assert not first["finished"] and first["last_run"]["rows_scored"] == 20  # the end is not known yet
    counted.clear()
    second = score_file(corpus_jsonl, pair, tmp_path / "out", config, progress=False)
    assert second["finished"] and sum(counted) == 0 and second["last_run"] == first["last_run"]


def test_a_resume_with_another_input_or_settings_is_refused(pair, corpus_jsonl, tmp_path):
    score_file(corpus_jsonl, pair, tmp_path / "out", ScoreConfig(chunk_rows=4), progress=False, max_chunks=1)
    with pytest.raises(ConfigError, match=r"settings\.chunk_rows: 4 -> 5"):
        score_file(corpus_jsonl, pair, tmp_path / "out", ScoreConfig(chunk_rows=5), progress=False)
    corpus_jsonl.write_text(corpus_jsonl.read_text() + json.dumps({"id": "new", "text": "one more row"}) + "\n")
    with pytest.raises(ConfigError, match=r"input\.sha256"):
        score_file(corpus_jsonl, pair, tmp_path / "out", ScoreConfig(chunk_rows=4), progress=False)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="no manifest.json"):
        score_file(corpus_jsonl, pair, tmp_path / "taken", progress=False)


def test_bad_rows_are_reported_and_skipped_and_the_rest_kept(pair, tmp_path):
    good = [json.dumps({"id": f"g{i}", "text": t}).encode() for i, t in enumerate(TOY_TEXTS[:3])]
    lines = [
        good[0],
        json.dumps({"id": "empty", "text": ""}).encode(),
        json.dumps({"id": "blank", "text": "   \n "}).encode(),
        b'{"id": "bytes", "text": "caf\xe9 au lait"}',  # Latin-1, not UTF-8
        good[1],
        b'{"id": "broken", "text": "no closing brace"',
        json.dumps({"id": "long", "text": "word " * 200}).encode(),
        json.dumps({"id": "none", "other": "no text field"}).encode(),
        good[2],
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    manifest = score_file(path, pair, tmp_path / "out", ScoreConfig(chunk_rows=4, max_tokens=50), progress=False)
    assert manifest["rows_scored"] == 3 and manifest["rows_rejected"] == 6 and manifest["rows_read"] == 9
    scores = read_scores(tmp_path / "out")
    assert list(scores["id"]) == ["g0", "g1", "g2"] and list(scores["row"]) == [1, 5, 9]
    rejects = read_rejects(tmp_path / "out").set_index("id")
    assert rejects.loc["empty", "reason"] == "empty text" and rejects.loc["blank", "reason"] == "empty text"
    assert (
        "undecodable" in rejects.loc["bytes", "reason"] and rejects.loc["bytes", "text_preview"] == "caf\ufffd au lait"
    )
    assert rejects.loc["6", "reason"].startswith("line 6: invalid JSON")  # no id readable: named by its row
    assert (
        rejects.loc["long", "reason"].startswith("too long: ") and "> max_tokens 50" in rejects.loc["long", "reason"]
    )
    assert rejects.loc["none", "reason"] == "missing text"
    assert sorted(rejects["row"]) == [2, 3, 4, 6, 7, 8]


def test_csv_and_parquet_inputs_and_jsonl_output(pair, tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_bytes(
        b'doc,body\n1,The cat sat on the mat.\n2,\n3,"Quoted, with a comma"\n4,bad \xff byte\n5,Please call me back.\n'
    )
    config = ScoreConfig(text_column="body", id_column="doc", chunk_rows=2, output_format="jsonl")
    manifest = score_file(csv, pair, tmp_path / "csv_out", config, progress=False)
    assert manifest["rows_scored"] == 3 and manifest["rows_rejected"] == 2
    assert list(read_scores(tmp_path / "csv_out")["id"]) == ["1", "3", "5"]
    assert sorted((tmp_path / "csv_out" / "parts").glob("*.jsonl"))
    assert list(read_rejects(tmp_path / "csv_out")["id"]) == ["2", "4"]

    parquet = tmp_path / "in.parquet"
    pd.DataFrame({"text": TOY_TEXTS, "domain": ["en"] * 5 + ["ko"] * 2 + ["en"]}).to_parquet(parquet)
    manifest = score_file(parquet, pair, tmp_path / "pq_out", ScoreConfig(chunk_rows=3), progress=False)
    scores = read_scores(tmp_path / "pq_out")
    assert manifest["rows_scored"] == 8 and list(scores["id"]) == [str(i) for i in range(1, 9)]


def test_awkward_but_valid_inputs_score_to_the_end(pair, tmp_path):
    # a later chunk with no text key at all, a pass-through column of mixed JSON types, a null id
    rows = [{"id": 10, "text": TOY_TEXTS[0], "year": 2020}, {"id": None, "text": TOY_TEXTS[1], "year": "unknown"},
            {"id": 12, "body": "another key"}, {"id": 13, "body": "another key"}, {"id": 14, "text": TOY_TEXTS[2]}]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = score_file(path, pair, tmp_path / "out", ScoreConfig(chunk_rows=2), progress=False)
    assert manifest["finished"] and manifest["rows_scored"] == 3 and manifest["rows_rejected"] == 2
    scores = read_scores(tmp_path / "out")
    assert list(scores["id"]) == ["10", "2", "14"] and list(scores["year"][:2]) == ["2020", "unknown"]
    assert pd.isna(scores["year"][2])
    assert list(read_rejects(tmp_path / "out")["reason"]) == ["missing text", "missing text"]
    # a Parquet int id column with a null (pandas Int64: pd.NA; or floats 10.0) names rows as the JSONL does
    for ids in (pd.array([10, None, 12], dtype="Int64"), [10.0, float("nan"), 12.0]):
        parquet = tmp_path / "ids.parquet"
        pd.DataFrame({"id": ids, "text": TOY_TEXTS[:3]}).to_parquet(parquet)
        out = tmp_path / f"pq{len(list(tmp_path.iterdir()))}"
        score_file(parquet, pair, out, ScoreConfig(chunk_rows=2), progress=False)
        assert list(read_scores(out)["id"]) == ["10", "2", "12"]


def test_parts_are_read_back_in_chunk_order_past_99999(tmp_path):
    parts = [tmp_path / "part-99999.parquet", tmp_path / "part-100000.parquet", tmp_path / "part-00002.parquet"]
    assert [p.name for p in sorted(parts, key=score_module._part_index)] == [
        "part-00002.parquet", "part-99999.parquet", "part-100000.parquet"]


def test_bad_inputs_and_options_name_file_row_and_field(pair, corpus_jsonl, tmp_path):
    row_column = tmp_path / "row.jsonl"
    row_column.write_text(json.dumps({"row": 7, "text": TOY_TEXTS[0]}) + "\n")
    with pytest.raises(DataError, match=r"row\.jsonl: the input has a column named 'row'"):
        score_file(row_column, pair, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()
    with pytest.raises(DataError, match=r"corpus\.jsonl: missing column\(s\) 'body'; found 'id', 'text', 'domain'"):
        score_file(corpus_jsonl, pair, tmp_path / "a", ScoreConfig(text_column="body"), progress=False)
    with pytest.raises(DataError, match="nothing.jsonl: no such file"):
        score_file(tmp_path / "nothing.jsonl", pair, tmp_path / "b", progress=False)
    with pytest.raises(ConfigError, match="chunk_rows must be >= 1"):
        ScoreConfig(chunk_rows=0)
    with pytest.raises(ConfigError, match="engine must be local or ray"):
        ScoreConfig(engine="spark")
    with pytest.raises(ConfigError, match="not a quality scorer folder"):
        score_file(corpus_jsonl, tmp_path, tmp_path / "c", progress=False)


def test_local_mode_never_imports_ray(scorer_dir, corpus_jsonl, tmp_path):
    code = (
        "import sys\n"
        "from slmkit.cli.main import app\n"
        "from slmkit.quality import score_file\n"
        f"score_file({str(corpus_jsonl)!r}, {str(scorer_dir)!r}, {str(tmp_path / 'out')!r}, progress=False)\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_temp_files_of_a_hard_kill_are_cleared_and_do_not_block_the_folder(pair, corpus_jsonl, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".manifest.json.k1ll3d.tmp").write_text("{")  # killed during the very first manifest write
    first = score_file(corpus_jsonl, pair, out, ScoreConfig(chunk_rows=4), progress=False, max_chunks=1)
    assert first["chunks_done"] == 1
    (out / "parts" / ".part-00001.parquet.k1ll3d.tmp").write_bytes(b"half")  # killed during the next part
    second = score_file(corpus_jsonl, pair, out, ScoreConfig(chunk_rows=4), progress=False)
    assert second["finished"] and not list(out.rglob("*.tmp"))
