"""Artifact file names, environment variable names and default directories. No logic."""

from __future__ import annotations

CONFIG_NAME = "slmkit_config.json"
METRICS_NAME = "metrics.json"
CONVERTED_MARKER = "slmkit_converted.json"
RUN_INFO_NAME = "slmkit_run.json"  # a training run folder (slmkit.train)
TASK_FILE_NAME = "slmkit_task.json"  # beside merged weights: the job record (e.g. its prompt) travels along
OUTPUT_LEDGER_NAME = ".slmkit-outputs.json"  # per folder: which command wrote which output (data.OutputPolicy)

ENV_CACHE_DIR = "SLMKIT_CACHE"
ENV_THREADS = "SLMKIT_NUM_THREADS"
ENV_DEVICE = "SLMKIT_DEVICE"  # "auto" (default: a CUDA GPU when torch sees one), "cpu", "cuda", "cuda:1", ...
ENV_DTYPE = "SLMKIT_DTYPE"  # inference precision: "auto" (default), "float32", "bfloat16", "float16"
ENV_PACK = "SLMKIT_PACK_BF16"  # "0" turns off the oneDNN-prepacked bf16 Linear layers (the transformers backend)

DEFAULT_MODEL = "gemma3-270m"
DEFAULT_SEED = 0

SUPPORTED_TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")
