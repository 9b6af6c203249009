"""The Ray Data engine on a local one-CPU Ray instance gives the same scores as local mode."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slmkit.quality import ScoreConfig, read_rejects, read_scores, score_file

ray = pytest.importorskip("ray", reason="the Ray engine needs `pip install 'slmkit[ray]'`")
pytestmark = pytest.mark.ray


@pytest.fixture()
def local_ray():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_and_local_scores_agree(scorer_dir, corpus_jsonl, tmp_path, local_ray):
    with corpus_jsonl.open("a") as handle:
        handle.write('{"id": "empty", "text": "", "domain": "toy"}\n')
    config = ScoreConfig(chunk_rows=6, max_tokens=200)
    local = score_file(corpus_jsonl, scorer_dir, tmp_path / "local", config, progress=False)
    distributed = score_file(
        corpus_jsonl,
        scorer_dir,
        tmp_path / "ray",
        ScoreConfig(chunk_rows=6, max_tokens=200, engine="ray"),
        progress=False,
    )
    assert distributed["finished"] and distributed["last_run"]["engine"] == "ray"
    for key in ("rows_read", "rows_scored", "rows_rejected"):
        assert local[key] == distributed[key], key
    a, b = read_scores(tmp_path / "local"), read_scores(tmp_path / "ray")
    assert list(a["id"]) == list(b["id"]) and list(a["row"]) == list(b["row"])
    for column in ("forward_loss", "reverse_loss", "S", "n_tokens"):
        np.testing.assert_allclose(b[column].to_numpy(float), a[column].to_numpy(float), rtol=1e-5, atol=1e-6)
    pd.testing.assert_frame_equal(read_rejects(tmp_path / "local"), read_rejects(tmp_path / "ray"))


def test_ray_reads_a_csv_as_text_like_local_mode(scorer_dir, tmp_path, local_ray):
    # Arrow would read the id "007" as 7: the same rows named differently by the two engines.
    table = tmp_path / "docs.csv"
    pd.DataFrame({"id": ["007", "010", "3"], "text": ["A short line of text.", "Another line, longer.", "Third."]}
                 ).to_csv(table, index=False)
    config = ScoreConfig(chunk_rows=2, max_tokens=200)
    score_file(table, scorer_dir, tmp_path / "local", config, progress=False)
    score_file(table, scorer_dir, tmp_path / "ray", ScoreConfig(chunk_rows=2, max_tokens=200, engine="ray"),
               progress=False)
    a, b = read_scores(tmp_path / "local"), read_scores(tmp_path / "ray")
    assert list(a["id"]) == list(b["id"]) == ["007", "010", "3"]
    np.testing.assert_allclose(b["S"].to_numpy(float), a["S"].to_numpy(float), rtol=1e-5, atol=1e-6)
