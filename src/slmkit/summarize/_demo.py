"""The end-to-end demo: summarize the project's example dialogues, write `fname,summary` CSVs, score them.

Offline and on built-in defaults: gemma3-270m few-shot prompting over 12 Korean and 12 English dialogues
(examples drawn from the small pools the package ships, `builtin_examples`) takes a few minutes on two CPU cores;
`method="lead"` takes a second.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import slmkit
from slmkit.data import write_json
from slmkit.errors import ConfigError, DataError
from slmkit.summarize._data import load_dialogues
from slmkit.summarize._evaluate import EvaluationReport, evaluate
from slmkit.summarize._predict import (PredictConfig, build_summarizer, predict_frame, resolved_max_new_tokens,
                                       resolved_repetition_penalty)
from slmkit.summarize._resume import predict_identity

logger = logging.getLogger(__name__)
_LANGUAGES = ("ko", "en")


@dataclass
class DemoConfig:
    """Settings of `run_demo`; the prediction settings live in `predict` (its `examples` is filled per language).

    Attributes:
        predict: method and decoding; few-shot gemma3-270m by default.
        languages: which example sets to run ("ko", "en").
        data_dir: folder holding dialogues_{ko,en}.csv (and, optionally, dialogues_{ko,en}_train.csv as the
            few-shot pool; without it the built-in pool is used); None finds the repository's examples/data.
        output_dir: where predictions and reports go.
    """

    predict: PredictConfig = field(default_factory=PredictConfig)
    languages: tuple[str, ...] = _LANGUAGES
    data_dir: str | None = None
    output_dir: str = "slmkit_demo"

    def __post_init__(self) -> None:
        unknown = [x for x in self.languages if x not in _LANGUAGES]
        if unknown or not self.languages:
            raise ConfigError(f"languages must be a non-empty subset of {_LANGUAGES}, got {self.languages!r}")


@dataclass
class DemoResult:
    """Per language: the prediction CSV, the evaluation, and the seconds it took."""

    language: str
    predictions: Path
    report: EvaluationReport
    seconds: float


def find_example_data(data_dir: str | Path | None = None) -> Path:
    """The example dialogue folder: `data_dir`, else the checkout's examples/data, else ./examples/data.

    Raises:
        DataError: none of them holds dialogues_ko.csv.
    """
    candidates = (
        [Path(data_dir)]
        if data_dir
        else [Path(__file__).resolve().parents[3] / "examples" / "data", Path.cwd() / "examples" / "data"]
    )
    for folder in candidates:
        if (folder / "dialogues_ko.csv").is_file():
            return folder
    raise DataError(
        f"example dialogues not found (looked for dialogues_ko.csv in {', '.join(map(str, candidates))}); "
        "run from the slmkit checkout or pass --data-dir"
    )


def run_demo(
    config: DemoConfig | None = None, *, progress: bool = False, restart_changed: bool = False
) -> list[DemoResult]:
    """Predict -> `fname,summary` CSV -> ROUGE report, for each example language.

    Writes `predictions_{lang}.csv` (with a resume manifest), `eval_{lang}/` (rouge.json, per_example.csv,
    per_topic.csv) and `demo.json` into `config.output_dir`. A rerun with the same settings resumes unfinished
    prediction files; one with other settings (method, model, shots, ...) raises DataError naming what differs.
    `restart_changed` (`--overwrite`) predicts every file again.

    Example:
        >>> results = run_demo(DemoConfig(predict=PredictConfig(method="lead")))   # doctest: +SKIP
        >>> results[0].report.result.summary()["final"]                              # doctest: +SKIP
    """
    config = config or DemoConfig()
    data, out = find_example_data(config.data_dir), Path(config.output_dir)
    plans = []
    for language in config.languages:  # every output is checked before any work
        own_pool = data / f"dialogues_{language}_train.csv"
        examples = config.predict.examples or (str(own_pool) if own_pool.is_file() else None)
        pconfig = replace(config.predict, language=language, examples=examples)
        pconfig = replace(pconfig, max_new_tokens=resolved_max_new_tokens(pconfig),  # recorded as decoded
                          repetition_penalty=resolved_repetition_penalty(pconfig))
        source, path = data / f"dialogues_{language}.csv", out / f"predictions_{language}.csv"
        # Without this, a rerun with another method "resumed" the finished file: the old method's summaries
        # were scored and reported under the new one.
        _claim(path, predict_identity(source, pconfig), restart_changed)
        plans.append((language, source, path, pconfig))
    lm, results = None, []
    for language, source, path, pconfig in plans:
        tic = time.perf_counter()
        frame = load_dialogues(source, require_summary=True)
        summarizer = None
        if pconfig.method in ("zero-shot", "few-shot"):
            if lm is None:
                from slmkit.models import load_model

                lm = load_model(pconfig.model)
            summarizer = build_summarizer(
                pconfig, language, lm=lm, exclude_ids=set(frame["fname"]), progress=progress
            )
        else:
            summarizer = build_summarizer(pconfig, language)
        preds = predict_frame(frame, path, summarizer, chunk_size=pconfig.chunk_size, progress=progress)
        report = evaluate(preds, frame, seed=pconfig.seed)
        report.save(out / f"eval_{language}")
        results.append(DemoResult(language, path, report, time.perf_counter() - tic))
        logger.info("demo %s: final %.2f", language, report.result.summary()["final"])
    write_json(
        out / "demo.json",
        {
            "slmkit": slmkit.__version__,
            "config": asdict(config),
            "model_info": getattr(lm, "info", None),
            "results": {
                r.language: {"predictions": str(r.predictions), "seconds": round(r.seconds, 1),
                             "predict": asdict(plan[3]), **r.report.to_dict()}  # the settings this language used
                for r, plan in zip(results, plans)
            },
        },
    )
    return results


def _claim(path: Path, identity: dict, restart_changed: bool) -> None:
    from slmkit.data import check_resume

    if restart_changed:  # --overwrite: start afresh, as `summarize predict --overwrite` does
        check_resume(path, identity, overwrite=True, option="--output-dir")
        return
    check_resume(path, identity, option="--output-dir")
