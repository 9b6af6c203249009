"""Preference tuning (DPO) of a fine-tuned summarizer: the gold summary is preferred to the model's own.

The model first summarizes its own training dialogues (greedy, the run's decoding); each (dialogue, gold summary,
model summary) triple where the two summaries differ becomes a DPO pair, and `slmkit.train` trains with
objective "preference" from the fine-tuned model, which is also the reference. The run folder is an ordinary one:
`predict --model RUN_DIR` serves it.

    run/
      rejected.csv       the model's own summaries of the training dialogues (resumable)
      sft_merged/        a LoRA summarizer folded into its base (the starting point and reference)
      train_config.json, model/, metrics.jsonl, reference_logps.json, ...   as every slmkit.train run
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from slmkit.errors import ConfigError
from slmkit.summarize._data import DialogueColumns
from slmkit.summarize._train import TASK, DecodeConfig, FineTunedSummarizer, _frame, task_info_of, training_pairs

logger = logging.getLogger(__name__)


def preference_config(**overrides):
    """The TrainConfig DPO runs with unless told otherwise: a fresh LoRA (r 32) on the fine-tuned model, one epoch,
    learning rate 5e-5, beta 0.1, no dropout (the reference log-probabilities are computed without it)."""
    from slmkit.train import TrainConfig

    values = {"objective": "preference", "method": "lora", "epochs": 1.0, "learning_rate": 5e-5,
              "lora_dropout": 0.0, "dpo_beta": 0.1, **overrides}
    return TrainConfig(**values)


def preference_tune(
    model: str | Path,
    train_data,
    run_dir: str | Path,
    train_config=None,
    *,
    decode: DecodeConfig | None = None,
    columns: DialogueColumns | None = None,
    progress: bool = True,
    stop_after_steps: int | None = None,
    callbacks=(),
):
    """DPO-tune the summarizer `model` (a run folder or merged folder from `train_summarizer`) into `run_dir`.

    Args:
        model: a fine-tuned summarizer: its prompt format and language come from its task record.
        train_data: dialogue table with references (a path or a `load_dialogues` frame); usually the rows the
            summarizer was trained on.
        train_config: a TrainConfig with objective "preference" (default: `preference_config()`).
        decode: how the model writes its own (rejected) summaries (default: the run's recorded decoding).
        stop_after_steps, callbacks: as `slmkit.train.train`.

    Returns:
        slmkit.train.TrainResult; `info["task_info"]["preference"]` says how many pairs were trained on.
    """
    from slmkit.models import load_model
    from slmkit.summarize import predict_frame
    from slmkit.train import train
    from slmkit.train._run import _check_run_dir

    task_info = task_info_of(model)
    if task_info is None:
        raise ConfigError(f"{model}: not a fine-tuned summarizer (no summarization task record); train one first")
    train_config = train_config or preference_config()
    if train_config.objective != "preference":
        raise ConfigError(f"preference tuning needs TrainConfig.objective='preference', got {train_config.objective!r}")
    run_dir = Path(run_dir)
    finished = _check_run_dir(run_dir, train_config)  # a new folder, or this config's run (finished: returned)
    if finished is not None:
        return finished
    frame = _frame(train_data, columns)
    run_dir.mkdir(parents=True, exist_ok=True)
    train_config.save(run_dir)  # from here on the folder is this run's, and resumes
    language = task_info.get("language", "en")
    decode = decode or DecodeConfig(**task_info.get("decode", {}))
    lm = load_model(_starting_point(Path(model), run_dir), dtype="float32")

    summarizer = FineTunedSummarizer(lm, language, decode, seed=train_config.seed)
    own = predict_frame(frame[["fname", "dialogue"]], run_dir / "rejected.csv", summarizer, progress=progress)
    prompts, chosen = training_pairs(frame, language)
    rejected = [" " + s.strip() for s in own["summary"].fillna("").astype(str)]
    # A pair teaches nothing where the model already wrote the gold summary, and an empty output is no target.
    keep = [i for i, (c, r) in enumerate(zip(chosen, rejected)) if r.strip() and r.strip() != c.strip()]
    if not keep:
        raise ConfigError(f"{run_dir}: the model's own summaries equal the references on every row; nothing to prefer")
    logger.info("%d preference pairs (%d rows dropped: the model's summary equals the reference or is empty)",
                len(keep), len(frame) - len(keep))
    info = {
        **task_info,
        "preference": {"source_model": str(model), "pairs": len(keep), "rows": len(frame), "decode": asdict(decode)},
    }
    return train(
        lm,
        train_config,
        run_dir,
        preference_pairs=([prompts[i] for i in keep], [chosen[i] for i in keep], [rejected[i] for i in keep]),
        train_ids=[frame["fname"].iloc[i] for i in keep],
        task=TASK,
        task_info=info,
        source=str(frame.attrs.get("path", "training data")),
        progress=progress,
        stop_after_steps=stop_after_steps,
        callbacks=callbacks,
    )


def _starting_point(model: Path, run_dir: Path) -> str:
    """The fine-tuned model as plain weights: a LoRA run is merged into its base once (run_dir/sft_merged), since
    the DPO adapter is trained on top of it and a run folder records one base and one adapter."""
    from slmkit.train import is_run_dir, merge, read_run_info

    if not (is_run_dir(model) and read_run_info(model).get("method") == "lora"):
        return str(model)
    merged = run_dir / "sft_merged"
    if not merged.is_dir():  # merge writes under a temp name and renames: a folder here is complete
        merge(model, merged)
    return str(merged)

