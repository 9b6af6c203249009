"""Dialogue summarization: loading, validation, cleaning, EDA, baselines, prediction and evaluation.

Example:
    >>> from slmkit.summarize import PredictConfig, predict, evaluate
    >>> predict("dev.csv", "pred.csv", PredictConfig(method="lead"))      # doctest: +SKIP
    >>> evaluate("pred.csv", "dev.csv").result.summary()["final"]          # doctest: +SKIP
"""

from __future__ import annotations

from slmkit.summarize._clean import (
    STEP_NAMES,
    CleaningConfig,
    CleaningReport,
    clean_dialogues,
    clean_table,
    flag_summaries,
)
from slmkit.summarize._data import DialogueColumns, load_dialogues, validate_dialogues
from slmkit.summarize._demo import DemoConfig, DemoResult, find_example_data, run_demo
from slmkit.summarize._dialogue import DialogueIssue, Turn, check_dialogue, detect_language, parse_dialogue, speakers
from slmkit.summarize._eda import EdaConfig, EdaResult, describe
from slmkit.summarize._eda_report import write_eda_report
from slmkit.summarize._evaluate import EvaluationReport, evaluate, resolve_tokenizer
from slmkit.summarize._fewshot import FewShotRetriever
from slmkit.summarize._methods import LeadSummarizer, LongestTurnSummarizer, PromptSummarizer, summary_params
from slmkit.summarize._predict import (
    METHODS,
    PredictConfig,
    build_summarizer,
    builtin_examples,
    predict,
    predict_frame,
)
from slmkit.summarize._prompts import Example, build_prompt, fix_speaker_tags, postprocess
from slmkit.summarize._ensemble import ensemble_files, mbr_select
from slmkit.summarize._train import (
    DecodeConfig,
    FineTunedSummarizer,
    SummarizeTrainConfig,
    task_info_of,
    train_summarizer,
    training_pairs,
)
from slmkit.summarize._preference import preference_config, preference_tune
from slmkit.summarize._tune import TuneConfig, TuneResult, tune

__all__ = [
    "builtin_examples",
    "DecodeConfig",
    "FineTunedSummarizer",
    "SummarizeTrainConfig",
    "TuneConfig",
    "TuneResult",
    "ensemble_files",
    "mbr_select",
    "preference_config",
    "preference_tune",
    "task_info_of",
    "train_summarizer",
    "training_pairs",
    "tune",
    "METHODS",
    "STEP_NAMES",
    "CleaningConfig",
    "CleaningReport",
    "DemoConfig",
    "DemoResult",
    "DialogueColumns",
    "DialogueIssue",
    "EdaConfig",
    "EdaResult",
    "EvaluationReport",
    "Example",
    "FewShotRetriever",
    "LeadSummarizer",
    "LongestTurnSummarizer",
    "PredictConfig",
    "PromptSummarizer",
    "Turn",
    "build_prompt",
    "build_summarizer",
    "check_dialogue",
    "clean_dialogues",
    "clean_table",
    "describe",
    "detect_language",
    "evaluate",
    "find_example_data",
    "fix_speaker_tags",
    "flag_summaries",
    "load_dialogues",
    "parse_dialogue",
    "postprocess",
    "predict",
    "predict_frame",
    "resolve_tokenizer",
    "run_demo",
    "speakers",
    "summary_params",
    "validate_dialogues",
    "write_eda_report",
]
