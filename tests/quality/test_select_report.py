"""Selection modes, the combined score, and the report (histograms, HTML, overlap of two scorers)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from slmkit.errors import ConfigError, DataError
from slmkit.quality import CombinedScore, select, top_overlap, write_report


@pytest.fixture()
def scores():
    return pd.DataFrame(
        {
            "id": [f"d{i}" for i in range(10)],
            "S": [0.5, -0.2, 0.9, 0.1, np.nan, 0.3, -0.5, 0.7, 0.0, 0.2],
            "forward_loss": np.linspace(3, 5, 10),
            "forward_ppl": np.exp(np.linspace(3, 5, 10)),
            "n_tokens": [10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
            "domain": ["a"] * 5 + ["b"] * 5,
            "text": [f"text {i}" for i in range(10)],
        }
    )


def test_top_bottom_threshold_and_fraction(scores):
    assert list(select(scores, k=3)["id"]) == ["d0", "d2", "d7"]  # file order kept
    assert list(select(scores, mode="bottom", k=2)["id"]) == ["d1", "d6"]
    assert list(select(scores, fraction=0.2)["id"]) == ["d2", "d7"]
    assert list(select(scores, threshold=0.3)["id"]) == ["d0", "d2", "d5", "d7"]
    assert list(select(scores, mode="bottom", threshold=0.0)["id"]) == ["d1", "d6", "d8"]
    assert list(select(scores, by="forward_ppl", mode="bottom", k=2)["id"]) == ["d0", "d1"]  # perplexity filter
    assert "d4" not in set(select(scores, k=9)["id"])  # an unscored row ranks last


def test_random_is_seeded_and_stratified_selection_is_per_domain(scores):
    first = select(scores, mode="random", k=4, seed=1)
    assert len(first) == 4 and first.equals(select(scores, mode="random", k=4, seed=1))
    assert not first.equals(select(scores, mode="random", k=4, seed=2))
    per_domain = select(scores, k=2, stratify="domain")
    assert list(per_domain["id"]) == ["d0", "d2", "d5", "d7"]
    assert per_domain["domain"].value_counts().to_dict() == {"a": 2, "b": 2}


def test_bad_selection_options_are_named(scores):
    with pytest.raises(ConfigError, match="exactly one of k, fraction or threshold"):
        select(scores, k=2, fraction=0.5)
    with pytest.raises(ConfigError, match="mode must be one of"):
        select(scores, mode="middle", k=2)
    with pytest.raises(ConfigError, match="fraction must be in"):
        select(scores, fraction=1.5)
    with pytest.raises(DataError, match="no column 'topic'"):
        select(scores, k=2, stratify="topic")


def test_combined_score_beats_a_weak_s_when_forward_loss_carries_the_signal():
    rng = np.random.default_rng(0)
    n = 200
    good = rng.random(n) < 0.5
    frame = pd.DataFrame(
        {
            "S": rng.normal(0, 1, n) + 0.2 * good,  # weak
            "forward_loss": rng.normal(4, 0.5, n) - 1.0 * good,  # strong
            "n_tokens": rng.integers(10, 200, n),
            "label": np.where(good, "good", "bad"),
        }
    )
    labelled = frame.copy()
    labelled.loc[40:, "label"] = None  # only 40 labelled rows
    model = CombinedScore.fit(labelled)
    combined = model.score(frame)
    held = slice(40, None)
    assert roc_auc_score(good[held], combined[held]) > roc_auc_score(good[held], frame["S"][held]) + 0.15
    assert model.weights()["forward_loss"] < 0  # lower loss -> more likely good
    with pytest.raises(DataError, match="at least 2 'good' and 2 other"):
        CombinedScore.fit(frame.assign(label="good"))


def test_report_writes_png_and_self_contained_html(scores, tmp_path):
    other = scores.assign(S=scores["S"][::-1].to_numpy())
    summary = write_report(scores, tmp_path / "rep", domain_column="domain", n_examples=2, other=other)
    png = (tmp_path / "rep" / "histograms.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    page = (tmp_path / "rep" / "report.html").read_text()
    assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in page  # embedded, no external file
    assert "text 2" in page and "text 6" in page  # highest and lowest examples
    assert [r["id"] for r in summary["highest"]] == ["d2", "d7"] and [r["id"] for r in summary["lowest"]] == [
        "d6",
        "d1",
    ]
    assert set(summary["per_domain"]) == {"a", "b"} and summary["n_scored"] == 9
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["top_overlap"]["fraction"] == 0.5


def test_report_json_is_strict_json_when_a_domain_has_one_row(scores, tmp_path):
    lone = scores.assign(domain=["a"] * 9 + [None])  # one row without a domain; its std is NaN
    write_report(lone, tmp_path / "rep", domain_column="domain", n_examples=10)

    def refuse(value):
        raise ValueError(f"not JSON: {value}")

    report = json.loads((tmp_path / "rep" / "report.json").read_text(), parse_constant=refuse)
    assert report["per_domain"]["nan"]["std"] is None and report["per_domain"]["nan"]["count"] == 1
    assert any(r["domain"] is None for r in report["highest"])


def test_top_overlap(scores):
    assert top_overlap(scores, scores)["overlap"] == 1.0
    flipped = scores.assign(S=-scores["S"])
    result = top_overlap(scores, flipped, fraction=0.4)
    assert result["overlap"] == 0.0 and result["n_top"] == 4 and result["n_common"] == 9  # d4 is unscored
    with pytest.raises(DataError, match="share no ids"):
        top_overlap(scores, scores.assign(id=scores["id"] + "x"))


def test_fractions_round_half_up_keep_every_group_and_skip_unscored_rows():
    frame = pd.DataFrame({"id": list("abcdefgh"), "S": [5.0, 4, 3, 2, 1, 9, 8, 7],
                          "domain": ["big"] * 5 + ["small"] * 2 + ["one"]})
    assert len(select(frame.iloc[:5], fraction=0.5)) == 3  # 2.5 -> 3, not round-half-even's 2
    per_domain = select(frame, fraction=0.5, stratify="domain")["domain"].value_counts().to_dict()
    assert per_domain == {"big": 3, "small": 1, "one": 1}  # the one-row domain keeps its row
    unscored = pd.DataFrame({"id": list("abcdefghij"), "S": [1.0, 2.0] + [np.nan] * 8})
    for mode in ("top", "bottom", "random"):
        assert select(unscored, fraction=0.5, mode=mode)["S"].notna().all()
        assert select(unscored, k=5, mode=mode)["S"].notna().all()
    assert list(select(unscored, fraction=0.5)["id"]) == ["b"]  # half of the 2 scored rows


def test_selection_counts_rows_not_index_labels():
    frame = pd.concat([pd.DataFrame({"id": ["a", "b"], "S": [1.0, 2.0]}),
                       pd.DataFrame({"id": ["c", "d"], "S": [3.0, 4.0]})])  # index 0, 1, 0, 1
    assert list(select(frame, k=1)["id"]) == ["d"]


def test_overlap_is_over_ids_both_scorers_scored():
    a = pd.DataFrame({"id": list("wxyz"), "S": [1.0, 2.0, np.nan, np.nan]})
    b = pd.DataFrame({"id": list("wxyz"), "S": [1.0, 2.0, 3.0, 4.0]})
    assert top_overlap(a, b, fraction=0.5) == {"overlap": 1.0, "n_common": 2, "n_top": 1}


def test_the_combined_score_skips_unusable_labelled_rows_and_reads_numeric_labels():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"S": rng.normal(size=12), "forward_loss": rng.normal(3, 1, size=12),
                          "n_tokens": rng.integers(5, 50, size=12),
                          "label": [1.0, 0.0] * 5 + [np.nan, 1.0]})
    frame.loc[11, "n_tokens"] = 0  # labelled, but log-length is -inf
    model = CombinedScore.fit(frame, good="1")  # the column is float (1.0) because of its gap
    assert np.isfinite(model.score(frame)[:10]).all()
