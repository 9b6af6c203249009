"""Baseline summarizers: extractive (lead-k, longest turn) and prompted LMs (zero-shot, few-shot).

Each has `summarize(dialogues, ids=None) -> list[str]`; `predict` feeds them chunk by chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from slmkit.errors import ConfigError
from slmkit.summarize._dialogue import format_turns, parse_dialogue, speakers
from slmkit.summarize._fewshot import FewShotRetriever
from slmkit.summarize._prompts import build_prompt, postprocess

logger = logging.getLogger(__name__)


class LeadSummarizer:
    """The first `k` turns, speaker tags stripped by default (the classic lead baseline)."""

    def __init__(self, k: int = 2, *, keep_tags: bool = False) -> None:
        if k < 1:
            raise ConfigError(f"lead k must be >= 1, got {k}")
        self.k, self.keep_tags = k, keep_tags

    def summarize(self, dialogues: Sequence[str], ids: Sequence[str] | None = None) -> list[str]:
        return [
            format_turns(parse_dialogue(d)[: self.k], with_tags=self.keep_tags).replace("\n", " ") for d in dialogues
        ]


class LongestTurnSummarizer:
    """The longest turn (in characters): often the one that states the dialogue's point."""

    def __init__(self, *, keep_tags: bool = False) -> None:
        self.keep_tags = keep_tags

    def summarize(self, dialogues: Sequence[str], ids: Sequence[str] | None = None) -> list[str]:
        out = []
        for d in dialogues:
            turns = parse_dialogue(d) or []
            best = max(turns, key=lambda t: len(t.text)) if turns else None
            out.append(format_turns([best], with_tags=self.keep_tags) if best else "")
        return out


def summary_params(
    lm=None, *, max_new_tokens: int = 64, num_beams: int = 1, repetition_penalty: float = 1.0, seed: int = 0
):
    """GenerationParams for one-line summaries: stop at the end of the line, never start with a newline.

    A base model writes the summary and then goes on to the next "Dialogue:" block; stopping at the line end
    saves most of the decoding time. Every backend honours the stop strings and the suppressed first newline
    (typed GenerationParams fields). `lm` is accepted for backward compatibility and no longer needed.
    """
    from slmkit.models import GenerationParams

    return GenerationParams(
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        repetition_penalty=repetition_penalty,
        seed=seed,
        stop=SUMMARY_STOP,
        suppress_leading_newline=True,
    )


SUMMARY_STOP = ("\n\n", "\n#", "\n대화", "\nDialogue")


class PromptSummarizer:
    """Zero-shot (no retriever) or few-shot (retriever given) prompting of a causal LM.

    Args:
        lm: a causal LanguageModel.
        language: "ko" or "en".
        params: GenerationParams for `lm.generate`.
        retriever: a fitted FewShotRetriever, or None for zero-shot.
        max_dialogue_chars: dialogues longer than this are cut at a turn boundary (counted and warned: the
            CPU cost of a prompt grows with its length).
        max_sentences: sentences kept by post-processing.
        batch_size: generation batch size.
    """

    def __init__(
        self,
        lm,
        language: str,
        params,
        *,
        retriever: FewShotRetriever | None = None,
        max_dialogue_chars: int = 2000,
        max_sentences: int = 2,
        batch_size: int = 4,
    ) -> None:
        self.lm, self.language, self.params, self.retriever = lm, language, params, retriever
        self.max_dialogue_chars, self.max_sentences, self.batch_size = max_dialogue_chars, max_sentences, batch_size
        self.n_cut_ = 0
        self.raw_: list[str] = []  # last chunk's raw generations and prompts, for inspection and token counts
        self.prompts_: list[str] = []

    def prompts(self, dialogues: Sequence[str], ids: Sequence[str] | None = None) -> list[str]:
        """The prompts `summarize` would send (useful to inspect or to count tokens)."""
        shown = [self._shorten(d) for d in dialogues]
        shots = self.retriever.select(shown, ids) if self.retriever else [[] for _ in shown]
        return [build_prompt(d, self.language, ex) for d, ex in zip(shown, shots)]

    def summarize(self, dialogues: Sequence[str], ids: Sequence[str] | None = None) -> list[str]:
        self.prompts_ = self.prompts(dialogues, ids)
        raw = self.lm.generate(self.prompts_, self.params, batch_size=self.batch_size)
        self.raw_ = raw
        return [
            postprocess(r, self.language, max_sentences=self.max_sentences, speakers=speakers(d))
            for r, d in zip(raw, dialogues)
        ]

    def _shorten(self, dialogue: str) -> str:
        if len(dialogue) <= self.max_dialogue_chars:
            return dialogue
        turns, kept, size = parse_dialogue(dialogue), [], 0
        for turn in turns:
            size += len(turn.text) + 12
            if size > self.max_dialogue_chars and kept:
                break
            kept.append(turn)
        self.n_cut_ += 1
        if self.n_cut_ == 1:  # once per run: the count is in the summary line `predict` logs at the end
            logger.warning(
                "a dialogue is longer than %d characters: it is cut at a turn boundary before prompting "
                "(--max-dialogue-chars to change)",
                self.max_dialogue_chars,
            )
        return format_turns(kept)
