"""Fine-tune a summarizer on dialogue tables with `slmkit.train`, and use it for prediction.

The training prompt is `build_prompt(dialogue, language)`: the same document-style prompt the zero-shot
baseline sends, and the one `predict` sends to a fine-tuned model. One function builds both, so training and
inference never drift. The target is " " + the reference summary + EOS, so a trained model stops by itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

from slmkit._constants import DEFAULT_MODEL, RUN_INFO_NAME, TASK_FILE_NAME
from slmkit.errors import ConfigError
from slmkit.summarize._data import DialogueColumns, load_dialogues
from slmkit.summarize._dialogue import detect_language, speakers
from slmkit.summarize._prompts import build_prompt, postprocess

logger = logging.getLogger(__name__)
TASK = "summarize"


@dataclass
class DecodeConfig:
    """Decoding for a fine-tuned summarizer (the search space of `decode_search` and `tune`).

    A trained model ends its summary with EOS, so `max_new_tokens` is a ceiling, not a target length.

    `mbr_samples` > 0 turns on minimum-Bayes-risk decoding: the decoding above plus that many sampled summaries
    (temperature `mbr_temperature`, top-p `mbr_top_p`, seeds seed+1, seed+2, ...) per dialogue, and the one with
    the highest mean ROUGE to the others is kept. It costs 1 + `mbr_samples` decodings (8 samples: 17.9 s a dialogue
    against 2.8 s greedy on the int8 engine, one CPU thread); on the Korean benchmark they lifted the default run
    from 31.75 to 32.66 (bench/summarize_train.py, ko_lora_mbr_sampled), while 2 or 4 samples scored below greedy
    (31.2, 31.1: with few candidates a mediocre sample often wins; ko_lora_mbr_curve).
    """

    max_new_tokens: int = 128
    min_new_tokens: int = 0
    num_beams: int = 1
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 8
    mbr_samples: int = 0
    mbr_temperature: float = 0.7
    mbr_top_p: float = 0.95

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.num_beams < 1 or self.batch_size < 1:
            raise ConfigError("max_new_tokens, num_beams and batch_size must be >= 1")
        if self.mbr_samples < 0 or not self.mbr_temperature > 0 or not 0 < self.mbr_top_p <= 1:
            raise ConfigError("mbr_samples must be >= 0, mbr_temperature > 0 and mbr_top_p in (0, 1]")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ConfigError(f"min_new_tokens must be in [0, max_new_tokens], got {self.min_new_tokens}")

    def mbr_sampling(self) -> DecodeConfig:
        """The decoding of MBR's sampled candidates: this one, sampled at `mbr_temperature` / `mbr_top_p`."""
        return replace(self, do_sample=True, temperature=self.mbr_temperature, top_p=self.mbr_top_p, num_beams=1,
                       mbr_samples=0)

    def params(self, lm, seed: int = 0):
        from slmkit.models import GenerationParams

        # No stop strings: a trained summary ends with EOS. Post-processing still cuts at a blank line.
        return GenerationParams(
            max_new_tokens=self.max_new_tokens,
            num_beams=self.num_beams,
            length_penalty=self.length_penalty,
            no_repeat_ngram_size=self.no_repeat_ngram_size,
            repetition_penalty=self.repetition_penalty,
            do_sample=self.do_sample,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=seed,
            min_new_tokens=self.min_new_tokens,
        )


def training_pairs(frame: pd.DataFrame, language: str) -> tuple[list[str], list[str]]:
    """(prompts, targets) for a loaded dialogue table: the prediction prompt and " " + its first reference."""
    prompts = [build_prompt(d, language) for d in frame["dialogue"]]
    targets = [" " + str(s).strip() if str(s).strip() else "" for s in frame["summary"]]
    return prompts, targets


@dataclass
class FineTunedSummarizer:
    """Summarize with a fine-tuned model: the training prompt, then decoding, then light post-processing.

    Post-processing keeps every sentence (the model learned the length) and only repairs speaker tags and
    cuts what follows a blank line.
    """

    lm: object
    language: str
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    seed: int = 0
    progress: bool = False

    def prompts(self, dialogues: Sequence[str]) -> list[str]:
        return [build_prompt(d, self.language) for d in dialogues]

    def summarize(self, dialogues: Sequence[str], ids: Sequence[str] | None = None) -> list[str]:
        summaries = self._decode(dialogues, self.decode, self.seed)
        if not self.decode.mbr_samples:
            return summaries
        from slmkit.summarize._ensemble import mbr_select
        from slmkit.summarize._evaluate import resolve_tokenizer

        sampled = self.decode.mbr_sampling()
        candidates = [summaries] + [
            self._decode(dialogues, sampled, self.seed + i) for i in range(1, self.decode.mbr_samples + 1)
        ]
        picked, _ = mbr_select(list(zip(*candidates)), tokenizer=resolve_tokenizer("auto", self.language))
        return picked

    def _decode(self, dialogues: Sequence[str], decode: DecodeConfig, seed: int) -> list[str]:
        raw = self.lm.generate(
            self.prompts(dialogues), decode.params(self.lm, seed), batch_size=decode.batch_size, progress=self.progress
        )
        return [postprocess(r, self.language, max_sentences=0, speakers=speakers(d)) for r, d in zip(raw, dialogues)]


def task_info_of(path: str | Path) -> dict | None:
    """The summarization task record of a run folder or merged model folder, or None for other models."""
    path = Path(path)
    for name in (RUN_INFO_NAME, TASK_FILE_NAME):  # a run folder, or weights written by `merge`
        file = path / name
        if file.is_file():
            try:
                values = json.loads(file.read_text())
            except (OSError, json.JSONDecodeError):
                return None
            return values.get("task_info") if values.get("task") == TASK else None
    return None


@dataclass
class SummarizeTrainConfig:
    """What `train_summarizer` needs beyond the TrainConfig.

    Attributes:
        model: base model to fine-tune (registry name or path; encoder-decoders such as KoBART work too).
        language: "ko", "en" or "auto" (from the training dialogues); sets the prompt's instruction.
        eval_rows: dev rows decoded for ROUGE at every evaluation (0 = all). Decoding costs ~3 s a dialogue
            for gemma3-270m on a laptop CPU, so the first 100 keep an evaluation to minutes; loss is computed
            on every dev row.
        decode: decoding used for that ROUGE.
    """

    model: str = DEFAULT_MODEL
    language: str = "auto"
    eval_rows: int = 100
    decode: DecodeConfig = field(default_factory=DecodeConfig)

def train_summarizer(
    train_data,
    run_dir: str | Path,
    config: SummarizeTrainConfig | None = None,
    train_config=None,
    *,
    dev_data=None,
    extra_data=None,
    columns: DialogueColumns | None = None,
    progress: bool = True,
    stop_after_steps: int | None = None,
    on_evaluate=None,
    callbacks=(),
):
    """Fine-tune a summarizer on `train_data` (path or `load_dialogues` frame) into `run_dir`.

    Args:
        train_data: dialogue table with references.
        run_dir: run folder (see `slmkit.train.train`); an unfinished run resumes.
        config / train_config: SummarizeTrainConfig and TrainConfig (method, epochs, ...).
        dev_data: optional dev table: loss at every evaluation and, with `train_config.metric_for_best="rouge"`
            (the summarization default when a dev table is given), ROUGE that picks the best checkpoint.
        extra_data: optional extra training table (e.g. English rows for a Korean model); its prompts use
            its own language.
        on_evaluate: `fn(step_metrics)` called after each ROUGE evaluation (Optuna pruning hooks in here).

    Returns:
        slmkit.train.TrainResult.
    """
    from slmkit.train import TrainConfig, train

    config = config or SummarizeTrainConfig()
    train_frame = _frame(train_data, columns)
    language = config.language if config.language != "auto" else detect_language(list(train_frame["dialogue"]))
    prompts, targets = training_pairs(train_frame, language)
    ids = list(train_frame["fname"])
    if extra_data is not None:
        extra = _frame(extra_data, columns)
        extra_language = detect_language(list(extra["dialogue"]))
        p2, t2 = training_pairs(extra, extra_language)
        prompts, targets, ids = prompts + p2, targets + t2, ids + [f"extra:{f}" for f in extra["fname"]]
    dev_frame = _frame(dev_data, columns) if dev_data is not None else None
    if train_config is None:
        train_config = TrainConfig(metric_for_best="rouge" if dev_frame is not None else "loss")
    eval_pairs = training_pairs(dev_frame, language) if dev_frame is not None else None
    generation_eval = None
    if dev_frame is not None:
        generation_eval = _rouge_eval(dev_frame, language, config, on_evaluate)
    task_info = {"prompt": "slmkit.summarize.build_prompt", "language": language, "decode": asdict(config.decode)}
    return train(
        config.model,
        train_config,
        run_dir,
        train_pairs=(prompts, targets),
        eval_pairs=eval_pairs,
        train_ids=ids,
        generation_eval=generation_eval,
        task=TASK,
        task_info=task_info,
        source=str(train_frame.attrs.get("path", "training data")),
        progress=progress,
        stop_after_steps=stop_after_steps,
        callbacks=callbacks,
    )


def _frame(data, columns) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    return load_dialogues(data, columns, require_summary=True, strict=True)


def _rouge_eval(dev: pd.DataFrame, language: str, config: SummarizeTrainConfig, on_evaluate):
    """`fn(model) -> {"rouge": final, "rouge1": .., ...}` decoding dev rows with the model being trained."""
    from slmkit.metrics import rouge
    from slmkit.models import resolve_model
    from slmkit.models._transformers import TransformersLM
    from slmkit.summarize._evaluate import resolve_tokenizer

    rows = dev if not config.eval_rows else dev.iloc[: config.eval_rows]
    tokenizer_name = resolve_tokenizer("auto", language)
    spec = resolve_model(config.model)

    def evaluate(model, tokenizer) -> dict:
        lm = TransformersLM(spec, model, tokenizer, {"name": "training"})
        summarizer = FineTunedSummarizer(lm, language, config.decode, progress=True)
        predictions = summarizer.summarize(list(rows["dialogue"]))
        scores = rouge(predictions, list(rows["references"]), tokenizer=tokenizer_name, n_bootstrap=0).summary()
        out = {"rouge": scores["final"], **{k: scores[k] for k in ("rouge1", "rouge2", "rougeL")}}
        if on_evaluate is not None:
            on_evaluate(out)
        return out

    evaluate.metrics = ("rouge", "rouge1", "rouge2", "rougeL")  # what metric_for_best may name (checked upfront)
    return evaluate
