"""One trainer for every job: fine-tune causal (and encoder-decoder) LMs with full, LoRA or P-tuning.

Built on the transformers Trainer and peft: warm-up, schedules, gradient accumulation, checkpoints and resume,
early stopping, evaluation and MLflow logging come from the library. slmkit adds the target-positions-only
loss (the fast path for 262k-token vocabularies), generation metrics in evaluation, the run folder, `merge`,
and from-scratch models.

Example:
    >>> from slmkit.train import TrainConfig, train
    >>> result = train("gemma3-270m", TrainConfig(method="lora", epochs=2), "runs/lora",
    ...                train_pairs=(prompts, targets))                              # doctest: +SKIP
    >>> from slmkit.models import load_model
    >>> lm = load_model("runs/lora")                                               # doctest: +SKIP
"""

from __future__ import annotations

from slmkit.train._config import LORA_TARGETS, METHODS, TRAIN_CONFIG_NAME, TrainConfig
from slmkit.train._data import Collator, Example, ExampleDataset, document_ids, encode_documents, encode_pairs
from slmkit.train._merge import merge
from slmkit.train._run import RUN_INFO_NAME, TrainResult, is_run_dir, read_run_info, train
from slmkit.train._scratch import ScratchConfig, build_from_scratch, train_tokenizer

__all__ = [
    "LORA_TARGETS",
    "METHODS",
    "RUN_INFO_NAME",
    "TRAIN_CONFIG_NAME",
    "Collator",
    "Example",
    "ExampleDataset",
    "ScratchConfig",
    "TrainConfig",
    "TrainResult",
    "build_from_scratch",
    "document_ids",
    "encode_documents",
    "encode_pairs",
    "is_run_dir",
    "merge",
    "read_run_info",
    "train",
    "train_tokenizer",
]
