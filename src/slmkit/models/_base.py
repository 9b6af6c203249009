"""The one language-model interface every slmkit job uses, whatever the backend."""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from slmkit._constants import ENV_THREADS
from slmkit.errors import ConfigError
from slmkit.models._spec import ModelSpec

POOLINGS = ("mean", "last")


@dataclass
class TokenStates:
    """Hidden states of one text, token by token (for exact per-token explanations).

    Attributes:
        tokens: the token strings, of length n_tokens.
        offsets: (start, end) character span of each token in the *formatted* text; (0, 0) for special tokens.
        text_span: (start, end) of the user's text inside the formatted text (the template wraps it).
        states: array of shape (n_tokens, n_features), the chosen layers concatenated.
        pooled_mask: bool array of shape (n_tokens,), the tokens that `embed(pooling="mean")` averages.
    """

    tokens: list[str]
    offsets: list[tuple[int, int]]
    text_span: tuple[int, int]
    states: np.ndarray
    pooled_mask: np.ndarray


@dataclass
class GenerationParams:
    """Decoding knobs shared by every backend (the usual transformers names), honoured the same way by each.

    Attributes:
        max_new_tokens: the most tokens generated per prompt.
        min_new_tokens: end-of-sequence is not allowed before this many new tokens.
        stop: stop strings; generation ends as soon as the new text contains one, and the returned text ends
            just before the first occurrence (the stop string itself is not returned). Only the new text is
            searched, never the prompt.
        suppress_leading_newline: the first new token may not be a whitespace token holding a line break
            (a prompt that ends where an answer should start on the same line).
        seed: seeds sampling (`do_sample=True`); greedy and beam search do not depend on it. Backends seed a
            private generator, or restore the global one afterwards, so a call leaves no trace in torch's
            global random state.
        extra: backend-specific keyword arguments only, passed through untouched: for transformers, extra
            `model.generate()` arguments (e.g. a `streamer`); for llama.cpp, extra `create_completion()`
            arguments (e.g. `min_p`). Anything every backend understands is a typed field above.
    """

    max_new_tokens: int = 64
    min_new_tokens: int = 0
    num_beams: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    length_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    suppress_leading_newline: bool = False
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ConfigError(f"min_new_tokens must be in [0, max_new_tokens], got {self.min_new_tokens}")
        if self.num_beams < 1:
            raise ConfigError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.do_sample and self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0 when do_sample=True, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0 (0 = no top-k cut), got {self.top_k}")
        if not self.repetition_penalty > 0:
            raise ConfigError(f"repetition_penalty must be > 0 (1 = none), got {self.repetition_penalty}")
        if self.no_repeat_ngram_size < 0:
            raise ConfigError(f"no_repeat_ngram_size must be >= 0 (0 = off), got {self.no_repeat_ngram_size}")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        if any(not isinstance(s, str) or not s for s in stop):
            raise ConfigError(f"stop must be non-empty strings, got {self.stop!r}")
        self.stop = stop
        typed = sorted(set(self.extra) & _TYPED_EXTRA)
        if typed:
            raise ConfigError(
                f"extra={typed} duplicates typed GenerationParams fields; use stop=, suppress_leading_newline= "
                "or min_new_tokens= (honoured by every backend)"
            )


# transformers spellings of what GenerationParams now carries as typed fields.
_TYPED_EXTRA = frozenset({"stop_strings", "begin_suppress_tokens", "min_new_tokens", "max_new_tokens"})


@dataclass(frozen=True)
class Generation:
    """One continuation with what a server reports about it.

    Attributes:
        text: the new text, cut before the earliest stop string.
        n_tokens: tokens the model generated for it (up to the one completing a stop string; EOS not counted),
            counted from the generated ids, not by re-tokenizing `text` (which can differ, and is cut).
        finish_reason: "stop" (EOS or a stop string) or "length" (the max_new_tokens budget ran out).
    """

    text: str
    n_tokens: int
    finish_reason: str


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """`text` up to (not including) the earliest occurrence of any stop string; unchanged if none occurs."""
    hits = [text.find(s) for s in stop if s and s in text]
    return text[: min(hits)] if hits else text


def progress_bar(total: int, desc: str, enabled: bool, items: Sequence | None = None):
    """The bar every backend shows for `progress=True`: texts done out of `total`, hidden when not `enabled`;
    with `items`, it iterates over them and counts each."""
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc=desc, unit="text", disable=not enabled, leave=False)


def log_softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable log-softmax of a numpy array along `axis` (slmkit's one copy)."""
    scores = np.asarray(scores, dtype=np.float64)
    shifted = scores - scores.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")  # SentencePiece byte fallback: any text stays writable


def keep_token_texts(keep_tokens) -> list[str] | None:
    """`keep_tokens=` as both trimming backends take it: None, or a list of texts (one string is a mistake that
    would keep its characters' tokens only)."""
    if keep_tokens is None:
        return None
    if isinstance(keep_tokens, str):
        raise ConfigError("keep_tokens takes a list of texts, not one string")
    return list(keep_tokens)


def kept_token_ids(tokenizer, texts: Sequence[str], end_ids: Sequence[int] = ()) -> list[int]:
    """The tokens `texts` use, every special token and every byte-fallback token (so any text stays writable),
    and `end_ids` (a generation config's EOS ids, which the tokenizer may not mark special)."""
    ids = set(tokenizer.all_special_ids) | {int(i) for i in end_ids}
    ids |= {i for i in (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
    ids |= {i for token, i in tokenizer.get_vocab().items() if BYTE_TOKEN.match(token)}
    for start in range(0, len(texts), 256):
        for seq in tokenizer(list(texts[start : start + 256]), add_special_tokens=False)["input_ids"]:
            ids.update(seq)
    return sorted(ids)


def is_newline_token(text: str) -> bool:
    """A vocabulary entry made only of whitespace with a line break (what suppress_leading_newline bans)."""
    return "\n" in text and not text.strip()


def newline_ids_of(tokenizer) -> list[int]:
    """Vocabulary entries made only of whitespace with a line break (SentencePiece "\\n", byte-level "Ċ")."""
    return sorted(
        idx
        for token, idx in tokenizer.get_vocab().items()
        if is_newline_token(token.replace("Ċ", "\n").replace("▁", " ").replace("Ġ", " "))
    )


class LanguageModel(abc.ABC):
    """Batched, no-grad inference over a small LM: embeddings, token losses, choice scores, generation.

    Attributes:
        spec: the ModelSpec it was loaded from.
        info: JSON-able facts to record in results (name, backend, checksum, dtype, parameter count, load time).
    """

    spec: ModelSpec
    info: dict

    def _require_full_vocabulary(self, what: str) -> None:
        """Refuse a scoring call on a model whose output layer was trimmed (`info["kept_tokens"]`)."""
        if self.info.get("kept_tokens"):
            raise ConfigError(
                f"{what} needs the whole vocabulary; this model's output layer was trimmed to "
                f"{self.info['kept_tokens']} tokens (keep_tokens=...), which serves generation only (embeddings "
                "are unchanged): load it without keep_tokens to score"
            )

    @abc.abstractmethod
    def embed(
        self,
        texts: Sequence[str],
        *,
        pooling: str = "mean",
        layers: Sequence[int] = (-1,),
        template: str = "{text}",
        batch_size: int = 16,
        normalize: bool = False,
        progress: bool = False,
    ) -> np.ndarray:
        """Embed texts, each wrapped in `template` ("{text}" marks where the text goes).

        `pooling` may be a sequence ("mean", "last"): every pooling comes out of the same forward pass, blocks
        ordered pooling-major, then by layer.

        Returns:
            float32 array of shape (n_texts, hidden_size * len(layers) * n_poolings).
        """

    @abc.abstractmethod
    def token_losses(self, texts: Sequence[str], *, batch_size: int = 8, progress: bool = False) -> list[np.ndarray]:
        """Negative log-likelihood (nats) of every token of each text given the ones before it.

        Returns:
            one float32 array per text, of shape (n_tokens,) (the BOS token is context, not scored).
        """

    @abc.abstractmethod
    def score_choices(
        self, prompts: Sequence[str], choices: Sequence[str] | Sequence[Sequence[str]], *, reduction: str = "sum"
    ) -> np.ndarray:
        """Log-probability of each candidate continuation after each prompt.

        Args:
            prompts: n_prompts strings.
            choices: the same candidates for every prompt, or one list per prompt (all of equal length).
            reduction: "sum" of token log-probs, or "mean" over the choice's tokens.

        Returns:
            float array of shape (n_prompts, n_choices).
        """

    @abc.abstractmethod
    def generate(
        self,
        prompts: Sequence[str],
        params: GenerationParams | None = None,
        *,
        batch_size: int = 8,
        progress: bool = False,
        **overrides,
    ) -> list[str]:
        """Continue each prompt; returns only the new text. `overrides` are GenerationParams fields."""

    def generate_detailed(
        self,
        prompts: Sequence[str],
        params: GenerationParams | None = None,
        *,
        batch_size: int = 8,
        progress: bool = False,
        **overrides,
    ) -> list[Generation]:
        """`generate`, with each continuation's generated-token count and finish reason (see `Generation`).

        The built-in backends count the ids they generated; this fallback, for other backends, re-tokenizes
        the text (an estimate: a stop string's cut and tokenization round trips can change the count).
        """
        params = resolve_params(params, overrides)
        texts = self.generate(prompts, params, batch_size=batch_size, progress=progress)
        counts = self.count_tokens(texts)
        return [
            Generation(t, n, "stop" if n < params.max_new_tokens else "length") for t, n in zip(texts, counts)
        ]

    @property
    @abc.abstractmethod
    def hidden_size(self) -> int:
        """Width of the hidden states (one `embed` block per layer and pooling is this wide)."""

    @property
    @abc.abstractmethod
    def n_layers(self) -> int | None:
        """Number of transformer layers whose hidden states `embed(layers=...)` can address (index 0 is the
        embedding output, `n_layers` the last layer); None where the backend exposes only the last layer."""

    def next_token_logprobs(self, prompts: Sequence[str], tokens: Sequence[str]) -> np.ndarray:
        """Log-probability of each single-token candidate as the very next token after each prompt.

        One forward pass per prompt whatever the number of candidates. Every candidate must tokenize (without
        special tokens) to exactly one token; `single_token_ids` tells whether they do.

        Returns:
            float array of shape (n_prompts, n_candidates), equal to `score_choices(prompts, tokens)`.
        """
        raise ConfigError(f"backend {self.spec.backend!r} has no next-token path; use score_choices")

    def single_token_ids(self, tokens: Sequence[str]) -> list[int] | None:
        """The token id of each candidate if every one is exactly one token, else None."""
        return None

    def token_states(
        self, texts: Sequence[str], *, layers: Sequence[int] = (-1,), template: str = "{text}"
    ) -> list[TokenStates]:
        raise ConfigError(f"backend {self.spec.backend!r} does not expose per-token hidden states; use transformers")

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        raise NotImplementedError


def resolve_params(params: GenerationParams | None, overrides: dict) -> GenerationParams:
    if params is None:
        return GenerationParams(**overrides)
    if overrides:
        from dataclasses import replace

        return replace(params, **overrides)
    return params


def check_embed_args(pooling: str | Sequence[str], layers: Sequence[int], template: str) -> tuple[str, ...]:
    """Validate `embed`'s arguments; returns the poolings as a tuple (one string or several from one pass)."""
    poolings = (pooling,) if isinstance(pooling, str) else tuple(pooling)
    if not poolings or any(p not in POOLINGS for p in poolings):
        raise ConfigError(f"pooling must be one of {POOLINGS} (or a sequence of them), got {pooling!r}")
    if not layers:
        raise ConfigError("layers must name at least one layer (e.g. [-1] for the last)")
    if template.count("{text}") != 1:
        raise ConfigError(f"template must contain '{{text}}' exactly once, got {template!r}")
    return poolings


def format_template(template: str, text: str) -> str:
    # str.replace, not str.format: instruction templates may contain literal braces.
    return template.replace("{text}", text)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding wastes little compute."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def default_num_threads() -> int:
    if os.environ.get(ENV_THREADS):
        return int(os.environ[ENV_THREADS])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
