"""A tour of slmkit's shared runtime: embeddings, perplexity, choice scores and generation.

python examples/runtime_tour.py [MODEL]     # MODEL defaults to gemma3-270m
"""

from __future__ import annotations

import sys

import numpy as np

from slmkit.models import GenerationParams, load_model

model = sys.argv[1] if len(sys.argv) > 1 else "gemma3-270m"
lm = load_model(model)
texts = [
    "The meeting moved to Tuesday afternoon because the projector was broken.",
    "회의가 프로젝터 고장 때문에 화요일 오후로 옮겨졌습니다.",
    "Mix the flour and water, then let the dough rest for an hour.",
]

vectors = lm.embed(texts, normalize=True)
print("cosine similarity of the three texts:\n", np.round(vectors @ vectors.T, 3))

for text, loss in zip(texts, lm.token_losses(texts)):
    print(f"perplexity {np.exp(loss.mean()):8.1f}  {text[:50]}")

prompt = "Review: The plot was dull and the acting wooden.\nSentiment:"
print(
    "log p(choice):",
    dict(zip([" positive", " negative"], lm.score_choices([prompt], [" positive", " negative"])[0].round(2))),
)
print("generation:", lm.generate(["The best way to learn a language is"], GenerationParams(max_new_tokens=20))[0])
