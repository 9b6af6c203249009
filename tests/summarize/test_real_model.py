"""The real gemma3-270m on two example dialogues (marked slow: about 20 s on two idle CPU cores)."""

from __future__ import annotations

import pytest

from slmkit.summarize import (
    FewShotRetriever,
    PromptSummarizer,
    builtin_examples,
    find_example_data,
    load_dialogues,
    summary_params,
)


@pytest.mark.slow
def test_gemma_few_shot_korean_summaries(gemma):
    data = find_example_data()
    dev = load_dialogues(data / "dialogues_ko.csv").iloc[:1]
    pool = load_dialogues(builtin_examples("ko"))
    retriever = FewShotRetriever(gemma, k=1).fit(list(pool["dialogue"]), list(pool["summary"]), list(pool["fname"]))
    summarizer = PromptSummarizer(gemma, "ko", summary_params(gemma, max_new_tokens=24), retriever=retriever)
    out = summarizer.summarize(list(dev["dialogue"]), list(dev["fname"]))
    assert len(out) == 1
    for text in out:
        assert text and "\n" not in text and "대화:" not in text and "요약:" not in text
    # The stop strings end generation at the line break instead of running to max_new_tokens on a new block.
    assert all(raw.count("\n") <= 2 for raw in summarizer.raw_)
