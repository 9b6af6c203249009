"""A one-call tour of the runtime on a few texts: what `slmkit lm demo` runs and reports."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from slmkit.models._base import GenerationParams, LanguageModel


def runtime_report(
    lm: LanguageModel, ids: Sequence[str], texts: Sequence[str], *, seed: int = 0, max_new_tokens: int = 24
) -> dict:
    """Embed, score and generate for `texts`; return a JSON-able report with timings.

    The report shows each text's perplexity, its nearest neighbour by embedding cosine, and a greedy
    continuation of its first words, so a user sees every runtime path work on their own machine.
    """
    timings = {}
    start = time.perf_counter()
    vectors = lm.embed(texts, normalize=True)
    timings["embed_s"] = time.perf_counter() - start
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    start = time.perf_counter()
    losses = lm.token_losses(texts) if lm.spec.kind == "causal" else None
    timings["token_losses_s"] = time.perf_counter() - start
    rows = []
    for i, (text_id, text) in enumerate(zip(ids, texts)):
        row = {
            "id": text_id,
            "nearest": ids[int(similarity[i].argmax())],
            "cosine": round(float(similarity[i].max()), 4),
        }
        if losses is not None:
            row["tokens"] = int(len(losses[i]))
            row["perplexity"] = round(float(np.exp(losses[i].mean())), 2)
        rows.append(row)
    report = {"model": lm.info, "embedding_dim": int(vectors.shape[1]), "texts": rows}
    if lm.spec.kind == "causal":
        prompts = [" ".join(t.split()[:6]) for t in texts]
        start = time.perf_counter()
        continuations = lm.generate(prompts, GenerationParams(max_new_tokens=max_new_tokens, seed=seed))
        timings["generate_s"] = time.perf_counter() - start
        for row, prompt, cont in zip(rows, prompts, continuations):
            row["prompt"], row["continuation"] = prompt, cont
        start = time.perf_counter()
        choice = lm.score_choices(["Is this text spam? Text: " + t + "\nAnswer:" for t in texts], [" yes", " no"])
        timings["score_choices_s"] = time.perf_counter() - start
        for row, (yes, no) in zip(rows, choice):
            row["p_spam_yes"] = round(float(np.exp(yes) / (np.exp(yes) + np.exp(no))), 3)
    report["timings"] = {k: round(v, 3) for k, v in timings.items()}
    return report
