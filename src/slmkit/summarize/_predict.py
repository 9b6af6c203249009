"""`predict`: run a baseline over a dialogue table and write the competition's `fname,summary` CSV.

The output is rewritten atomically after every chunk, so an interrupted run resumes where it stopped: rows
already in the output (matched by fname) are not generated again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from slmkit._constants import DEFAULT_MODEL, DEFAULT_SEED
from slmkit.data import read_table, write_table
from slmkit.errors import ConfigError, DataError
from slmkit.summarize._data import DialogueColumns, load_dialogues
from slmkit.summarize._dialogue import detect_language

logger = logging.getLogger(__name__)
METHODS = ("lead", "longest", "zero-shot", "few-shot")


@dataclass
class PredictConfig:
    """How to summarize. Every field has a default; CLI options have the same names in kebab-case.

    Attributes:
        method: "lead" (first turns), "longest" (longest turn), "zero-shot" or "few-shot" prompting.
        model: causal LM for the prompting methods (a registry name or a path).
        backend: what runs it: "transformers", or "ctranslate2" (int8 CPU generation, ~2x faster; the `fast`
            extra) or "llamacpp" for GGUF files and LoRA runs of them (4-bit base, adapter in float32).
        language: "ko", "en" or "auto" (from the share of Hangul in the dialogues).
        lead_k: turns kept by "lead".
        shots: few-shot examples per prompt.
        examples: table of (dialogue, summary) pairs to draw few-shot examples from; None uses the small pool
            slmkit ships per language (`builtin_examples`).
        embedder: model that embeds dialogues for example retrieval; None: minilm-l6 for English, `model`
            for Korean (`retrieval_embedder`).
        max_example_chars: longest dialogue eligible as a few-shot example.
        center_embeddings: subtract the pool's mean embedding before retrieval (see FewShotRetriever; off by
            default: raw cosine scored higher on the Korean dev rows).
        max_dialogue_chars: longer input dialogues are cut at a turn boundary (counted in the log); prompting
            only (a fine-tuned summarizer gets its training prompt).
        max_new_tokens: generation budget per summary; None: 64 for prompting, and a fine-tuned run's own
            budget (the one it was trained and evaluated with) for a fine-tuned summarizer.
        num_beams: beam width (1 = greedy).
        mbr_samples: fine-tuned summarizers only: minimum-Bayes-risk decoding over the greedy summary and this
            many samples (see DecodeConfig; 0 = off, 8 = the benchmark's setting, ~6x the greedy decoding time).
        repetition_penalty: >1 discourages loops (it also discourages repeating speaker tags); None: 1.0 for
            prompting, and a fine-tuned run's own (its decoding, as `summarize tune` chose it).
        max_sentences: sentences kept by post-processing of a prompted summary (0 keeps all); a fine-tuned
            summarizer keeps every sentence (it learned the length).
        batch_size: prompts generated together.
        chunk_size: rows between two saves of the output file.
        limit: summarize only the first `limit` rows still to do (None: all).
        seed: generation seed.
        keep_tokens: a dialogue table (e.g. the training table) whose summaries and dialogues, with the dialogues
            being summarized, choose the model's output vocabulary (`load_model(..., keep_tokens=)`): the output
            layer keeps only their tokens, which makes decoding faster; a token in none of them cannot be written.
            None (the default) keeps the whole vocabulary. transformers and ctranslate2 backends.
        dtype: transformers backend only: the precision the summarizing LM decodes in ("auto", "float32",
            "bfloat16", "float16"); None follows `$SLMKIT_DTYPE`, else "auto" (bf16 where the CPU computes it
            natively). On three trained Korean summarizers bf16 decoded 2-4x faster than float32 and scored
            -0.87, +0.73 and -0.31 ROUGE against it (README, `ko_lora_bf16*`, `ko_lora_seed2*`, `ko_lora_vnni*`);
            with `keep_tokens`, -0.27 at 0.37 s a dialogue against 1.78: little cost on average, but up to a
            point either way per model; "float32" removes that variance for a final submission.
        quantize: ctranslate2 backend only: the engine's precision, "int8" (None: the default) or "float32".
            The float32 engine decodes as transformers float32 does (tested); with `keep_tokens` it is the fast
            path that keeps float32's summaries: on a trained Korean summarizer 99 of 100 equal to transformers
            float32's, +0.10 ROUGE, at 0.85 s a dialogue against 1.78 (int8: -0.77, 4 equal; README,
            `ko_lora_vnni*`).
    """

    method: str = "few-shot"
    model: str = DEFAULT_MODEL
    backend: str = "transformers"
    language: str = "auto"
    lead_k: int = 2
    shots: int = 2
    examples: str | None = None
    embedder: str | None = None
    max_example_chars: int = 700
    center_embeddings: bool = False
    max_dialogue_chars: int = 2000
    max_new_tokens: int | None = None
    num_beams: int = 1
    mbr_samples: int = 0
    repetition_penalty: float | None = None
    max_sentences: int = 2
    batch_size: int = 4
    chunk_size: int = 8
    limit: int | None = None
    seed: int = DEFAULT_SEED
    keep_tokens: str | None = None
    dtype: str | None = None
    quantize: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.language not in ("auto", "ko", "en"):
            raise ConfigError(f"language must be 'auto', 'ko' or 'en', got {self.language!r}")
        for name in ("lead_k", "shots", "max_new_tokens", "num_beams", "batch_size", "chunk_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_example_chars", "max_dialogue_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1 (leave it out for every row), got {self.limit}")
        if self.mbr_samples < 0:
            raise ConfigError(f"mbr_samples must be >= 0 (0 = off), got {self.mbr_samples}")
        if self.max_sentences < 0:
            raise ConfigError(f"max_sentences must be >= 0 (0 keeps all), got {self.max_sentences}")
        if self.repetition_penalty is not None and not self.repetition_penalty > 0:
            raise ConfigError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.keep_tokens and self.backend not in ("transformers", "ctranslate2"):
            raise ConfigError(f"keep_tokens needs the transformers or ctranslate2 backend, not {self.backend!r}")
        if self.dtype is not None:
            from slmkit.models._precision import requested_dtype

            self.dtype = requested_dtype(self.dtype)
            if self.backend != "transformers":
                raise ConfigError(f"dtype applies to the transformers backend, not {self.backend!r} (it runs its "
                                  "own precision)")
        if self.quantize is not None:
            if self.quantize not in ("int8", "float32"):
                raise ConfigError(f"quantize must be 'int8' or 'float32', got {self.quantize!r}")
            if self.backend != "ctranslate2":
                raise ConfigError(f"quantize applies to the ctranslate2 backend, not {self.backend!r} (transformers "
                                  "takes dtype)")

    def to_dict(self) -> dict:
        return asdict(self)


PROMPT_MAX_NEW_TOKENS = 64  # a prompted summary's budget when none is given


def resolved_max_new_tokens(config: PredictConfig) -> int:
    """The budget `config` decodes with: its own, else a fine-tuned run's trained one, else 64."""
    if config.max_new_tokens is not None:
        return config.max_new_tokens
    if config.method in ("zero-shot", "few-shot"):
        from slmkit.summarize._train import DecodeConfig, task_info_of

        trained = task_info_of(config.model)
        if trained is not None:
            return DecodeConfig(**trained.get("decode", {})).max_new_tokens
    return PROMPT_MAX_NEW_TOKENS


def resolved_repetition_penalty(config: PredictConfig) -> float:
    """The repetition penalty `config` decodes with: its own, else a fine-tuned run's decoding's, else 1.0."""
    if config.repetition_penalty is not None:
        return config.repetition_penalty
    if config.method in ("zero-shot", "few-shot"):
        from slmkit.summarize._train import DecodeConfig, task_info_of

        trained = task_info_of(config.model)
        if trained is not None:
            return DecodeConfig(**trained.get("decode", {})).repetition_penalty
    return 1.0


def builtin_examples(language: str) -> Path:
    """The few-shot example pool slmkit ships for `language` ("ko" or "en"): its own small dialogue set."""
    from importlib.resources import files

    if language not in ("ko", "en"):
        raise ConfigError(f"no built-in few-shot examples for language {language!r}; give --examples")
    return Path(str(files("slmkit.summarize") / "pools" / f"dialogues_{language}.csv"))


def retrieval_embedder(config: PredictConfig, language: str) -> str:
    """The model that embeds dialogues for example retrieval: `config.embedder`, else a measured default.

    English: minilm-l6, the sentence encoder the README's English few-shot rows were measured with. Korean:
    the generating model itself (MiniLM is English-only; gemma3-270m reads Korean).
    """
    if config.embedder:
        return config.embedder
    return "minilm-l6" if language == "en" else config.model


def _load_generator(config: PredictConfig, dialogues: Sequence[str]):
    """load_model for the summarizing LM, its output layer trimmed when `config.keep_tokens` names a table."""
    from slmkit.models import load_model

    options = {} if config.dtype is None else {"dtype": config.dtype}
    if config.quantize is not None:
        options["quantize"] = config.quantize
    if not config.keep_tokens:
        return load_model(config.model, backend=config.backend, **options)
    table = load_dialogues(config.keep_tokens, strict=False, ids_optional=True)
    texts = [t for refs in table["references"] for t in refs] + list(table["dialogue"]) + list(dialogues)
    return load_model(config.model, backend=config.backend, keep_tokens=[t for t in texts if t], **options)


def build_summarizer(config: PredictConfig, language: str, *, lm=None, exclude_ids=(), progress: bool = False,
                     dialogues: Sequence[str] = ()):
    """Make the summarizer `config.method` names.

    Inputs (the example table) are read before any model loads, so a bad path fails in a second.

    Args:
        config: the prediction config.
        language: "ko" or "en" (already resolved).
        lm: an already loaded causal LM to reuse (else `config.model` is loaded).
        exclude_ids: example-table ids never used as examples (e.g. the rows being evaluated).
        progress: show progress while the example pool is embedded.
    """
    from slmkit.summarize._methods import LeadSummarizer, LongestTurnSummarizer, PromptSummarizer, summary_params

    if config.method == "lead":
        return LeadSummarizer(config.lead_k)
    if config.method == "longest":
        return LongestTurnSummarizer()
    from slmkit.summarize._train import DecodeConfig, FineTunedSummarizer, task_info_of

    trained = task_info_of(config.model)
    if trained is not None:
        # A fine-tuned summarizer is prompted exactly as it was trained (no few-shot examples: it learned the
        # task, and examples would only lengthen a prompt it has never seen).
        if config.method == "few-shot" and config.examples:
            logger.info("%s is a fine-tuned summarizer: using its training prompt, no few-shot examples", config.model)
        decode = DecodeConfig(**trained.get("decode", {}))
        decode = replace(
            decode,
            # the user's budget when given (a lower one is honoured), else the run's own
            max_new_tokens=resolved_max_new_tokens(config),
            num_beams=config.num_beams,
            batch_size=config.batch_size,
            mbr_samples=config.mbr_samples,
            repetition_penalty=resolved_repetition_penalty(config),  # a given one is honoured, else the run's
        )
        lm = lm or _load_generator(config, dialogues)
        return FineTunedSummarizer(lm, trained.get("language", language), decode, seed=config.seed)
    if config.mbr_samples:
        raise ConfigError("mbr_samples applies to fine-tuned summarizers (--model RUN); prompting decodes once")
    pool = _load_pool(config, language, set(exclude_ids)) if config.method == "few-shot" else None
    # the few-shot examples' summaries are in every prompt: their tokens stay writable too
    lm = lm or _load_generator(config, list(dialogues) + (list(pool["summary"]) if pool is not None else []))
    params = summary_params(
        lm,
        max_new_tokens=resolved_max_new_tokens(config),
        num_beams=config.num_beams,
        repetition_penalty=resolved_repetition_penalty(config),
        seed=config.seed,
    )
    retriever = _fit_retriever(config, language, lm, pool, progress) if pool is not None else None
    return PromptSummarizer(
        lm,
        language,
        params,
        retriever=retriever,
        max_dialogue_chars=config.max_dialogue_chars,
        max_sentences=config.max_sentences,
        batch_size=config.batch_size,
    )


def _load_pool(config: PredictConfig, language: str, exclude: set[str]) -> pd.DataFrame:
    source = config.examples
    if not source:
        source = builtin_examples(language)
    pool = load_dialogues(source, require_summary=True, strict=False, ids_optional=True)
    if not config.examples:
        logger.warning(
            "few-shot examples: slmkit's built-in pool of %d %s dialogues (pass --examples with your own "
            "dialogue/summary table for better examples)",
            len(pool),
            "Korean" if language == "ko" else "English",
        )
    pool = pool[~pool["fname"].isin(exclude)]
    if pool.empty:
        raise ConfigError(
            f"{source}: every example row is excluded (they are the rows being summarized); "
            "give a separate example table"
        )
    return pool


def _fit_retriever(config: PredictConfig, language: str, lm, pool: pd.DataFrame, progress: bool):
    from slmkit.classify._cache import EmbeddingCache
    from slmkit.models import load_model
    from slmkit.summarize._fewshot import FewShotRetriever

    name = retrieval_embedder(config, language)
    embedder = lm if name == config.model else load_model(name)
    retriever = FewShotRetriever(
        embedder,
        k=config.shots,
        max_example_chars=config.max_example_chars,
        center=config.center_embeddings,
        cache=EmbeddingCache(),
        progress=progress,
    )
    return retriever.fit(list(pool["dialogue"]), list(pool["summary"]), list(pool["fname"]))


def predict(
    input_path: str | Path,
    output_path: str | Path,
    config: PredictConfig | None = None,
    *,
    columns: DialogueColumns | None = None,
    summarizer=None,
    progress: bool = False,
) -> pd.DataFrame:
    """Summarize every dialogue of `input_path` into `output_path` (`fname,summary` CSV), resuming.

    Args:
        input_path: dialogue table (fname, dialogue; references are not needed).
        output_path: CSV to write; rows already there are kept and skipped.
        config: method and decoding settings.
        columns: source column names.
        summarizer: an already built summarizer (skips `build_summarizer`).
        progress: show a progress bar on stderr.

    Returns:
        The output table (fname, summary) in input order.

    Raises:
        DataError: the existing output file is not a `fname,summary` table of this input.
    """
    config = config or PredictConfig()
    frame = load_dialogues(input_path, columns, strict=True)
    if summarizer is None and not (_load_done(Path(output_path), set(frame["fname"])).keys() >= set(frame["fname"])):
        language = config.language if config.language != "auto" else detect_language(list(frame["dialogue"]))
        # No ids excluded from the example pool: the retriever already skips each input's own row by fname.
        summarizer = build_summarizer(config, language, progress=progress, dialogues=list(frame["dialogue"]))
    return predict_frame(
        frame, output_path, summarizer, chunk_size=config.chunk_size, limit=config.limit, progress=progress
    )


def predict_frame(
    frame: pd.DataFrame,
    output_path: str | Path,
    summarizer,
    *,
    chunk_size: int = 8,
    limit: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Summarize the rows of a loaded table (columns fname, dialogue) into `output_path`, resuming.

    Args:
        frame: dialogues, e.g. from `load_dialogues` (a subset is fine).
        output_path: `fname,summary` CSV, rewritten atomically after every chunk.
        summarizer: any object with `summarize(dialogues, ids) -> list[str]`; None only if nothing is left.
        chunk_size: rows between two saves.
        limit: summarize at most this many of the rows still to do.
        progress: show a progress bar on stderr.

    Returns:
        The output rows (fname, summary) in `frame` order.
    """
    done = _load_done(Path(output_path), set(frame["fname"]))
    todo = frame[~frame["fname"].isin(done)]
    if limit is not None:
        todo = todo.iloc[:limit]
    if len(todo):
        if summarizer is None:
            raise ConfigError("predict_frame has rows left to summarize but no summarizer")
        _run_chunks(summarizer, todo, done, frame, Path(output_path), chunk_size, progress)
    return _ordered(frame, done)


def _run_chunks(summarizer, todo, done: dict, frame, output: Path, chunk_size: int, progress: bool) -> None:
    with tqdm(total=len(todo), desc="summarize", unit="dialogue", disable=not progress) as bar:
        for start in range(0, len(todo), chunk_size):
            chunk = todo.iloc[start : start + chunk_size]
            tic = time.perf_counter()
            outputs = summarizer.summarize(list(chunk["dialogue"]), list(chunk["fname"]))
            done.update(zip(chunk["fname"], outputs))
            write_table(output, _ordered(frame, done))
            logger.info(
                "%d/%d summarized (%.1f s per dialogue)",
                len(done),
                len(frame),
                (time.perf_counter() - tic) / len(chunk),
            )
            bar.update(len(chunk))
    cut = getattr(summarizer, "n_cut_", 0)
    if cut:
        logger.warning(
            "%d of %d dialogues were longer than %d characters and were cut at a turn boundary "
            "(--max-dialogue-chars to change)",
            cut,
            len(todo),
            summarizer.max_dialogue_chars,
        )


def _load_done(output: Path, known: set[str]) -> dict[str, str]:
    if not output.exists():
        return {}
    table = read_table(output, required=("fname", "summary"), id_column="fname")
    stray = [f for f in table["fname"] if f not in known]
    if stray:
        raise DataError(
            f"{output}: fname {stray[0]!r} is not in the input; this output belongs to another input "
            "(choose a new output path or delete the file)"
        )
    return dict(zip(table["fname"], table["summary"].fillna("").astype(str)))


def _ordered(frame: pd.DataFrame, done: dict[str, str]) -> pd.DataFrame:
    rows = [(f, done[f]) for f in frame["fname"] if f in done]
    return pd.DataFrame(rows, columns=["fname", "summary"])
