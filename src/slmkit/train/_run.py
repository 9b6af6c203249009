"""`train`: fine-tune a model into a run folder, resuming an interrupted run from its last checkpoint.

A run folder holds everything needed to reproduce, inspect and serve what was trained:

    run/
      train_config.json   the TrainConfig
      slmkit_run.json     base model + checksum, task, sizes, timings, peak memory, final metrics, versions
      slmkit_inputs.json  base weights, data digest, token order, task: a rerun resumes only the same work
      model/              the LoRA / P-tuning adapter, or the full weights, with the tokenizer
      metrics.jsonl       every logged step (loss, learning rate, evaluation metrics)
      learning_curve.png  training and evaluation curves
      README.md           a short model card
      checkpoints/        the Trainer's checkpoints (resume after interruption)
      mlruns/             MLflow file store (with report_to="mlflow")

`load_model("run/")` serves a run like any model: full weights directly, LoRA merged into its base in
memory, P-tuning through peft.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from slmkit._constants import RUN_INFO_NAME, TASK_FILE_NAME  # noqa: F401  (re-exported)
from slmkit._files import atomic_dir, peak_rss_mb
from slmkit.data import write_json
from slmkit.errors import ConfigError
from slmkit.train._config import TRAIN_CONFIG_NAME, TrainConfig
from slmkit.train._data import (
    Collator,
    ExampleDataset,
    PairCollator,
    PreferenceCollator,
    PreferenceDataset,
    TextPairDataset,
    encode_documents,
    encode_pairs,
    encode_text_pairs,
)

logger = logging.getLogger(__name__)
INPUTS_NAME = "slmkit_inputs.json"  # base model, data digest, token order and task of a run (see _run_inputs)


@dataclass
class TrainResult:
    """What `train` produced.

    Attributes:
        run_dir: the run folder; `model_dir` inside it is what `load_model` serves.
        info: the contents of slmkit_run.json (metrics, timings, peak memory, base model).
        history: the Trainer's log history (one dict per logged step or evaluation).
        model: the trained model still in memory (a peft model for LoRA / P-tuning), for a caller that uses it
            right away instead of loading `model_dir` again; None for a finished run returned as found.
    """

    run_dir: Path
    model_dir: Path
    info: dict
    history: list[dict] = field(default_factory=list)
    model: object = field(default=None, repr=False, compare=False)

    @property
    def metrics(self) -> dict:
        return self.info.get("metrics", {})


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / RUN_INFO_NAME).is_file()


def read_run_info(path: str | Path) -> dict:
    path = Path(path)
    try:
        return json.loads((path / RUN_INFO_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable slmkit run folder ({exc})") from exc


def train(
    base,
    config: TrainConfig,
    run_dir: str | Path,
    *,
    train_pairs: tuple[Sequence[str], Sequence[str]] | None = None,
    eval_pairs: tuple[Sequence[str], Sequence[str]] | None = None,
    train_ids: Sequence[str] | None = None,
    documents: Sequence[str] | None = None,
    eval_documents: Sequence[str] | None = None,
    text_pairs: tuple[Sequence[str], Sequence[str], Sequence[float]] | None = None,
    eval_text_pairs: tuple[Sequence[str], Sequence[str], Sequence[float]] | None = None,
    preference_pairs: tuple[Sequence[str], Sequence[str], Sequence[str]] | None = None,
    reverse: bool = False,
    generation_eval: Callable | None = None,
    task: str = "generic",
    task_info: dict | None = None,
    source: str = "training data",
    progress: bool = True,
    stop_after_steps: int | None = None,
    callbacks: Sequence = (),
) -> TrainResult:
    """Fine-tune `base` on pairs (objective "pairs"), documents ("documents"), text pairs with a target
    similarity ("contrastive") or preference triples ("preference", DPO) into `run_dir`.

    Args:
        base: registry name, path, ModelSpec, or an already loaded transformers LanguageModel.
        config: the TrainConfig (saved as train_config.json).
        run_dir: run folder; an unfinished run there with the same config resumes from its last
            checkpoint, a finished one is returned as is, one with another config is refused.
        train_pairs / eval_pairs: (prompts, targets) for objective "pairs".
        train_ids: row ids for error messages (e.g. the dialogue fnames).
        documents / eval_documents: texts for objective "documents".
        text_pairs / eval_text_pairs: (first texts, second texts, target cosine similarities) for objective
            "contrastive"; the texts are embedded with the config's embed_template / embed_pooling / embed_layers.
        preference_pairs: (prompts, chosen targets, rejected targets) for objective "preference"; `base` as
            loaded is the reference model (its log-probabilities of both targets are computed before the first
            step and kept in the run folder, so a resumed run does not recompute them).
        reverse: reverse each document's token order (the reverse LM of a quality scorer pair).
        generation_eval: `fn(model, tokenizer) -> {name: value}` added to every evaluation (e.g. ROUGE).
        task, task_info: recorded in slmkit_run.json (summarization records its prompt format there).
        stop_after_steps: stop (after checkpointing) at this global step, as an interruption would; for
            tests and for splitting a long run across sessions.
        callbacks: extra transformers TrainerCallbacks (timing, pruning, ...).
    """
    import torch
    from transformers import EarlyStoppingCallback, TrainerCallback, TrainingArguments

    from slmkit.train._trainer import SlmTrainer

    config.validate()
    run_dir = Path(run_dir)
    inputs = _run_inputs(base, reverse, task, task_info, train_pairs, documents, text_pairs, preference_pairs)
    finished = _check_run_dir(run_dir, config, inputs)
    if finished is not None:
        logger.info("%s is already trained with this config; returning it", run_dir)
        return finished
    if config.metric_for_best != "loss" and generation_eval is None:
        raise ConfigError(f"metric_for_best={config.metric_for_best!r} needs a generation metric; use 'loss'")
    # A name the job's metrics lack failed at the first evaluation, after an epoch's training and before its
    # checkpoint. `generation_eval.metrics` (optional) declares the names it returns.
    known = getattr(generation_eval, "metrics", None)
    if config.metric_for_best != "loss" and known is not None and config.metric_for_best not in known:
        raise ConfigError(f"metric_for_best={config.metric_for_best!r} is not a metric of this job; choose one of "
                          f"loss, {', '.join(known)}")
    has_eval = bool(eval_pairs or eval_documents or eval_text_pairs)
    if config.early_stopping_patience and not has_eval:
        raise ConfigError("early_stopping_patience needs an evaluation set")
    if has_eval and config.save_steps and (not config.eval_steps or config.save_steps % config.eval_steps):
        # the best checkpoint is chosen among evaluated ones, so checkpoints must fall on evaluations
        raise ConfigError(f"with an evaluation set, save_steps ({config.save_steps}) must be a multiple of "
                          f"eval_steps ({config.eval_steps or 'unset: once per epoch'}); set eval_steps too, e.g. "
                          f"eval_steps={config.save_steps}")

    lm = _load_base(base)
    tokenizer, seq2seq = lm.tokenizer, lm.spec.kind == "seq2seq"
    contrastive, preference = config.objective == "contrastive", config.objective == "preference"
    if preference:
        if seq2seq:
            raise ConfigError("objective 'preference' trains causal LMs only")
        if train_pairs is not None or documents is not None or text_pairs is not None:
            raise ConfigError("objective 'preference' takes preference_pairs=(prompts, chosen, rejected) only")
        if has_eval or generation_eval is not None:
            raise ConfigError("objective 'preference' trains without an evaluation set; score the run afterwards")
        train_set, eval_set = _preference_dataset(config, tokenizer, preference_pairs, train_ids, source), None
    elif preference_pairs is not None:
        raise ConfigError("preference_pairs are for objective 'preference'")
    elif contrastive:
        if seq2seq:
            raise ConfigError("objective 'contrastive' trains causal LMs only (the embeddings slmkit serves)")
        if train_pairs is not None or documents is not None:
            raise ConfigError("objective 'contrastive' takes text_pairs, not train_pairs or documents")
        train_set, eval_set = _text_pair_datasets(config, tokenizer, text_pairs, eval_text_pairs, source)
    elif text_pairs is not None:
        raise ConfigError("text_pairs are for objective 'contrastive'")
    else:
        train_set, eval_set = _datasets(
            config, tokenizer, seq2seq, train_pairs, eval_pairs, train_ids, documents, eval_documents, reverse, source
        )
    if config.loss_path == "target" and not seq2seq and not contrastive:
        from slmkit.models._transformers import check_head_projection

        check_head_projection(lm.model)  # the fast path repeats the model's output steps: refuse one it cannot
    epoch_eval = "epoch" if not config.eval_steps else "steps"
    args = TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        lr_scheduler_type=config.scheduler,
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        eval_strategy=epoch_eval if has_eval else "no",
        eval_steps=config.eval_steps or None,
        # Checkpoints follow evaluations when those are step-based (best-checkpoint selection needs both).
        save_strategy="steps" if (config.save_steps or config.eval_steps) else "epoch",
        save_steps=config.save_steps or config.eval_steps or 500,
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=has_eval,
        metric_for_best_model=f"eval_{config.metric_for_best}" if has_eval else None,
        greater_is_better=config.metric_for_best != "loss" if has_eval else None,
        report_to=["mlflow"] if config.report_to == "mlflow" else "none",
        seed=config.seed,
        data_seed=config.seed,
        bf16=config.resolved_precision() == "bf16",
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,
        label_names=["labels"],
        prediction_loss_only=True,
        disable_tqdm=not progress,
        # Similar lengths per batch: little padding to compute. Contrastive pairs keep their own (shuffled) order:
        # each side of a pair has its own length, and a run the time budget stops early is then a shorter run.
        train_sampling_strategy="random" if contrastive else "group_by_length",
        dataloader_num_workers=0,
    )
    # Only now, with the arguments accepted, is the run folder written: a config transformers refuses must not
    # leave a folder that then refuses the corrected config as "another run".
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir)
    if not (run_dir / INPUTS_NAME).is_file():
        write_json(run_dir / INPUTS_NAME, inputs)
    if preference:  # before any adapter exists: the model as loaded is the reference
        train_set.reference = _reference_logps(lm.model, train_set, config, run_dir, tokenizer.pad_token_id, progress)
    model = _prepare(lm.model, config)
    n_virtual = config.num_virtual_tokens if config.method == "ptuning" else 0
    callbacks = list(callbacks)
    if config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))
    if stop_after_steps:
        callbacks.append(_StopAt(stop_after_steps, TrainerCallback))
    checkpoint = _last_checkpoint(run_dir / "checkpoints")
    resumed_seconds, resumed_step, resumed_epoch, all_steps_done = _clock_at(checkpoint)
    callbacks.append(_Clock(resumed_seconds, TrainerCallback))
    guard = _DivergenceGuard(TrainerCallback)
    callbacks.append(guard)
    trainer = SlmTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=(PairCollator if contrastive else PreferenceCollator if preference else Collator)(
            tokenizer.pad_token_id
        ),
        processing_class=tokenizer,
        callbacks=callbacks,
        loss_path=config.loss_path,
        n_virtual_tokens=n_virtual,
        generation_eval=generation_eval,
        contrastive={"pooling": config.embed_pooling, "layers": list(config.embed_layers),
                     "bos_id": tokenizer.bos_token_id} if contrastive else None,
        dpo_beta=config.dpo_beta if preference else None,
        dpo_sft_weight=config.dpo_sft_weight if preference else 0.0,
    )
    if checkpoint:
        logger.warning("resuming %s from %s", run_dir, checkpoint.name)
    start = time.perf_counter()
    if all_steps_done:
        # Killed after the last step's checkpoint but before the model was written: finish from that checkpoint.
        # trainer.train would time nothing here, and on a max_steps run that ends mid-epoch it trains one step
        # more (transformers' resume), so the weights would differ from an uninterrupted run's.
        from transformers.trainer_callback import TrainerState

        trainer._load_from_checkpoint(str(checkpoint))
        trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
        output = None
    else:
        with _mlflow_store(run_dir, config):
            output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - start
    # Rates come from this process's steps and seconds: a resumed run's global step counts steps an earlier
    # process took, and dividing by this process's time alone overstated throughput (2x on a run resumed halfway).
    # A process that trained nothing (finished from its checkpoint) reports the earlier processes' rates.
    steps_here = trainer.state.global_step - resumed_step
    epochs_here = max(0.0, float(trainer.state.epoch or 0) - resumed_epoch)
    if steps_here > 0:
        rate_seconds, rate_steps, rate_epochs = seconds, steps_here, epochs_here
    else:
        rate_seconds, rate_steps, rate_epochs = resumed_seconds, max(1, resumed_step), resumed_epoch
    history = list(trainer.state.log_history)
    _write_history(run_dir, history)
    if guard.diverged:
        # A NaN/inf step poisons every weight (clipping a NaN gradient keeps it NaN), and the library carries on
        # silently: the saved model would generate nothing. Stop, keep the history, write no model.
        from slmkit.errors import TrainingDivergedError

        step, what = guard.diverged
        raise TrainingDivergedError(
            f"{run_dir}: training diverged at step {step} ({what}); no model was written. Lower learning_rate, "
            f"or train with precision='fp32' (it ran in {config.resolved_precision()})"
        )
    if stop_after_steps and trainer.state.global_step < _planned_steps(trainer):
        # Interrupted on purpose: leave the checkpoints, write no final model.
        return TrainResult(run_dir, run_dir / "model", {"status": "interrupted"}, history)

    model_dir = run_dir / "model"
    with atomic_dir(model_dir) as tmp_dir:
        trainer.save_model(str(tmp_dir))
        tokenizer.save_pretrained(str(tmp_dir))

    final = {k: v for k, v in (output.metrics if output else {}).items() if isinstance(v, (int, float))}
    if resumed_step:
        # The trainer's train_loss averages this process's steps only; the history holds every logged step.
        if "train_loss" in final:
            final["train_loss_this_process"] = final["train_loss"]
        final["train_loss"] = _mean_logged_loss(history, final.get("train_loss", float("nan")))
    evals = [h for h in history if any(k.startswith("eval_") for k in h)]
    info = {
        "status": "done",
        "task": task,
        "task_info": task_info or {},
        "method": config.method,
        "kind": lm.spec.kind,
        "base_model": lm.spec.to_dict(),
        "base_checksum": lm.info.get("checksum"),
        "n_train": len(train_set),
        "n_eval": len(eval_set) if eval_set is not None else 0,
        "train_tokens": train_set.n_tokens(),
        "train_target_tokens": train_set.n_target_tokens(),
        "steps": trainer.state.global_step,
        "epochs": round(float(trainer.state.epoch or 0), 3),
        "precision": config.resolved_precision(),
        # Whole training time of the steps kept, across resumes (an earlier process's seconds come from the clock
        # saved in the checkpoint it left); steps a killed process took after its last checkpoint are not counted.
        "seconds": round(resumed_seconds + seconds, 1),
        "resumed_from_step": resumed_step,
        "seconds_this_process": round(seconds, 1),
        "seconds_per_step": round(rate_seconds / rate_steps, 3),
        "tokens_per_second": round(train_set.n_tokens() * rate_epochs / max(rate_seconds, 1e-9), 1),
        "peak_rss_mb": peak_rss_mb(),
        "trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "metrics": {
            **final,
            "final_eval": {k: v for k, v in (evals[-1] if evals else {}).items() if k.startswith("eval_")},
            "best_metric": trainer.state.best_metric,
            "best_checkpoint": Path(trainer.state.best_model_checkpoint).name
            if trainer.state.best_model_checkpoint
            else None,
        },
        "versions": _versions(),
    }
    write_json(run_dir / RUN_INFO_NAME, info)
    _plot_history(run_dir, history)
    _write_model_card(run_dir, config, info)
    return TrainResult(run_dir, model_dir, info, history, model)


def _load_base(base):
    from slmkit.models import LanguageModel, load_model, resolve_model

    if isinstance(base, LanguageModel):
        lm = base
    elif resolve_model(base).backend == "transformers":
        # float32 master weights whatever $SLMKIT_DTYPE says (that is an inference setting); autocast is
        # TrainConfig.precision's business.
        lm = load_model(base, dtype="float32")
    else:
        lm = load_model(base)
    if not hasattr(lm, "model") or not hasattr(lm, "tokenizer"):
        raise ConfigError(f"training needs the transformers backend; {lm.spec.name!r} is on {lm.spec.backend}")
    if lm.info.get("quantize") or lm.info.get("dtype", "float32") != "float32":
        raise ConfigError(
            f"{lm.spec.name!r} was loaded for inference in {lm.info.get('quantize') or lm.info.get('dtype')}; "
            "training needs float32 weights: pass the model name, or load_model(..., dtype='float32')"
        )
    if lm.spec.kind == "encoder":
        raise ConfigError(f"{lm.spec.name!r} is an encoder; slmkit.train fine-tunes causal and seq2seq LMs")
    if getattr(lm, "prompt_tuned", False):
        raise ConfigError(f"{lm.spec.name!r} is a P-tuned run; train from its base model instead")
    return lm


def _datasets(
    config, tokenizer, seq2seq, train_pairs, eval_pairs, train_ids, documents, eval_documents, reverse, source
):
    if config.objective == "pairs":
        if train_pairs is None or documents is not None:
            raise ConfigError("objective 'pairs' needs train_pairs=(prompts, targets) and no documents")
        if config.prompt_loss_weight and seq2seq:
            raise ConfigError("TrainConfig.prompt_loss_weight applies to causal LMs: an encoder-decoder reads the "
                              "prompt in its encoder, where no token is predicted")
        # Eval rows keep the prompt masked: the eval loss stays the target's, comparable across weights.
        train = encode_pairs(
            tokenizer, *train_pairs, max_length=config.max_length, seq2seq=seq2seq, ids=train_ids, source=source,
            prompt_loss_weight=config.prompt_loss_weight,
        )
        held = (
            encode_pairs(tokenizer, *eval_pairs, max_length=config.max_length, seq2seq=seq2seq, source="eval data")
            if eval_pairs
            else None
        )
    else:
        if documents is None or train_pairs is not None:
            raise ConfigError("objective 'documents' needs documents=[...] and no train_pairs")
        if seq2seq:
            raise ConfigError("objective 'documents' trains causal LMs only")
        train = encode_documents(tokenizer, documents, max_length=config.max_length, reverse=reverse, source=source)
        held = (
            encode_documents(tokenizer, eval_documents, max_length=config.max_length, reverse=reverse, source="eval")
            if eval_documents
            else None
        )
    return ExampleDataset(train), (ExampleDataset(held) if held else None)


def _text_pair_datasets(config, tokenizer, text_pairs, eval_text_pairs, source):
    if text_pairs is None or len(text_pairs) != 3:
        raise ConfigError("objective 'contrastive' needs text_pairs=(first texts, second texts, similarities)")
    kwargs = {"template": config.embed_template, "max_length": config.max_length}
    train = encode_text_pairs(tokenizer, *text_pairs, source=source, **kwargs)
    held = encode_text_pairs(tokenizer, *eval_text_pairs, source="eval data", **kwargs) if eval_text_pairs else None
    return TextPairDataset(train), (TextPairDataset(held) if held else None)


def _preference_dataset(config, tokenizer, preference_pairs, train_ids, source) -> PreferenceDataset:
    if preference_pairs is None or len(preference_pairs) != 3:
        raise ConfigError("objective 'preference' needs preference_pairs=(prompts, chosen, rejected)")
    prompts, chosen, rejected = (list(x) for x in preference_pairs)
    if len(chosen) != len(prompts) or len(rejected) != len(prompts):
        raise ConfigError(f"{source}: {len(prompts)} prompts, {len(chosen)} chosen and {len(rejected)} rejected "
                          "targets; they must match row for row")
    kwargs = {"max_length": config.max_length, "ids": train_ids}
    return PreferenceDataset(
        encode_pairs(tokenizer, prompts, chosen, source=f"{source} (chosen)", **kwargs),
        encode_pairs(tokenizer, prompts, rejected, source=f"{source} (rejected)", **kwargs),
    )


REFERENCE_NAME = "reference_logps.json"


def _reference_logps(model, dataset: PreferenceDataset, config: TrainConfig, run_dir: Path, pad_id: int,
                     progress: bool):
    """The reference model's log p(chosen) and log p(rejected) per row, computed once and kept in the run folder,
    at the precision training runs in (so the first step's margins are zero)."""
    import contextlib

    import torch
    from tqdm.auto import tqdm

    from slmkit.train._trainer import sequence_logps

    path = run_dir / REFERENCE_NAME
    if path.is_file():
        saved = json.loads(path.read_text())
        if len(saved) == len(dataset):
            return [tuple(x) for x in saved]
    collate = PreferenceCollator(pad_id)
    autocast = (
        torch.autocast(model.device.type, dtype=torch.bfloat16)
        if config.resolved_precision() == "bf16"
        else contextlib.nullcontext()
    )
    was_training = model.training
    model.eval()
    out: list[tuple[float, float]] = []
    starts = range(0, len(dataset), config.batch_size)
    try:
        with torch.no_grad(), autocast:
            for start in tqdm(starts, desc="reference log-probs", unit="batch", disable=not progress):
                rows = [dataset[i] for i in range(start, min(start + config.batch_size, len(dataset)))]
                batch = {k: v.to(model.device) for k, v in collate(rows).items()}
                chosen, rejected = sequence_logps(model, model, batch).float().chunk(2)
                out += list(zip(chosen.tolist(), rejected.tolist()))
    finally:
        model.train(was_training)
    write_json(path, [list(x) for x in out])
    return out


def _prepare(model, config: TrainConfig):
    """Wrap the model for the method: LoRA / P-tuning adapters through peft, or every weight trainable."""
    import torch

    torch.manual_seed(config.seed)  # adapter initialisation
    model.train()
    if config.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, PromptEncoderConfig, TaskType, get_peft_model

    task_type = TaskType.SEQ_2_SEQ_LM if model.config.is_encoder_decoder else TaskType.CAUSAL_LM
    if config.method == "lora":
        peft_config = LoraConfig(
            task_type=task_type,
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.lora_target_modules(model.config.model_type),
        )
    else:
        peft_config = PromptEncoderConfig(
            task_type=task_type,
            num_virtual_tokens=config.num_virtual_tokens,
            encoder_hidden_size=config.encoder_hidden_size,
        )
    return get_peft_model(model, peft_config)


def _run_inputs(base, reverse, task, task_info, *data) -> dict:
    """What a run is trained on besides its config: the base model's weights, the training data (a digest; the
    evaluation rows choose checkpoints but train nothing, so they may change), the token order and the task. A run
    folder resumes, or is returned finished, only for the same; checked without loading the model."""
    from slmkit.models import LanguageModel, model_checksum

    if isinstance(base, LanguageModel):
        name, checksum = base.spec.name, base.info.get("weights_checksum", base.info.get("checksum"))
    else:
        name = base if isinstance(base, str) else getattr(base, "name", str(base))
        try:
            checksum = model_checksum(base)
        except Exception:  # an unknown or missing model fails later, at load, with its own clear error
            checksum = None
    digest = hashlib.sha256()
    for part in data:  # every text of every input, in order, with separators between fields and inputs
        digest.update(b"\x01")
        for column in part if isinstance(part, tuple) else [part] if part is not None else []:
            digest.update(b"\x02")
            for value in column:
                digest.update(str(value).encode("utf-8", "surrogatepass") + b"\x00")
    return {"base": name, "base_checksum": checksum, "data_sha256": digest.hexdigest(), "reverse": bool(reverse),
            "task": task, "task_info": json.loads(json.dumps(task_info or {}, default=str))}


def _check_run_dir(run_dir: Path, config: TrainConfig, inputs: dict | None = None) -> TrainResult | None:
    saved = run_dir / TRAIN_CONFIG_NAME
    if not saved.is_file():
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(f"{run_dir} exists and is not an slmkit run folder; choose an empty or new folder")
        return None
    old = TrainConfig.load(saved).to_dict()
    new = config.to_dict()
    differs = [k for k in new if old.get(k) != new[k]]
    if differs:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in differs[:5])
        raise ConfigError(
            f"{run_dir} holds a run with another config ({shown}); choose a new run folder, or delete this one"
        )
    recorded = run_dir / INPUTS_NAME
    if inputs is not None and recorded.is_file():  # runs from before this record resume as they did
        before = json.loads(recorded.read_text())
        names = {"base": "base model", "base_checksum": "base model weights", "data_sha256": "training data",
                 "reverse": "token order (reverse)", "task": "task", "task_info": "task settings"}
        differs = [names.get(k, k) for k in inputs if k in before and before[k] != inputs[k]]
        if differs:
            raise ConfigError(f"{run_dir} holds a run trained with another {', '.join(differs)}; choose a new run "
                              "folder, or delete this one")
    if is_run_dir(run_dir) and read_run_info(run_dir).get("status") == "done" and (run_dir / "model").is_dir():
        history = _read_history(run_dir)
        return TrainResult(run_dir, run_dir / "model", read_run_info(run_dir), history)
    return None


def _last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint: one that holds trainer_state.json, which transformers writes last.

    transformers' get_last_checkpoint takes the highest number even when a kill cut that save short, and every
    resume from it then fails on the missing state file.
    """
    if not folder.is_dir():
        return None
    numbered = [(int(p.name.rsplit("-", 1)[1]), p) for p in folder.glob("checkpoint-*")
                if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit()]
    complete = [p for _, p in sorted(numbered) if (p / "trainer_state.json").is_file()]
    if len(complete) < len(numbered):
        logger.warning("%s: skipping incomplete checkpoint(s) %s", folder,
                       ", ".join(p.name for _, p in numbered if p not in complete))
    return complete[-1] if complete else None


def _mean_logged_loss(history: list[dict], default: float) -> float:
    """Mean training loss over the logged steps, each log weighted by the steps it averages."""
    total, steps, last = 0.0, 0, 0
    for entry in history:
        if "loss" in entry and "step" in entry and entry["step"] > last:
            total += float(entry["loss"]) * (entry["step"] - last)
            steps += entry["step"] - last
            last = entry["step"]
    return total / steps if steps else default


def _planned_steps(trainer) -> int:
    return int(trainer.state.max_steps or 0)


def _StopAt(step: int, base):  # noqa: N802  (a callback class built on demand: transformers is imported lazily)
    class StopAt(base):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= step:
                control.should_save = True
                control.should_training_stop = True
            return control

    return StopAt()


CLOCK_NAME = "slmkit_clock.json"


def _clock_at(checkpoint: Path | None) -> tuple[float, int, float, bool]:
    """(training seconds, global step, epoch, whether every planned step is done) when `checkpoint` was saved;
    zeros and False for a fresh run.

    A checkpoint from before the clock existed has a step but no seconds: its earlier time is unknown and counted 0.
    """
    if checkpoint is None or not (checkpoint / "trainer_state.json").is_file():
        return 0.0, 0, 0.0, False
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    clock = checkpoint / CLOCK_NAME
    seconds = float(json.loads(clock.read_text())["seconds"]) if clock.is_file() else 0.0
    step = int(state.get("global_step") or 0)
    return seconds, step, float(state.get("epoch") or 0.0), 0 < int(state.get("max_steps") or 0) <= step


def _Clock(prior_seconds: float, base):  # noqa: N802  (a callback class built on demand, like _StopAt)
    """Writes the training seconds so far into each checkpoint, so a resumed run can report its whole time.

    transformers' trainer_state.json keeps no wall time (its train_runtime is per process), hence this file.
    """

    class Clock(base):
        start = time.perf_counter()

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():  # on_save runs after the checkpoint is written (and after rotation)
                write_json(folder / CLOCK_NAME, {"seconds": round(prior_seconds + time.perf_counter() - self.start, 3),
                                                 "step": state.global_step})

    return Clock()


def _DivergenceGuard(base):  # noqa: N802  (a callback class built on demand, like _StopAt)
    """Stops training at the first logged non-finite gradient norm or loss; `.diverged` = (step, what)."""

    class DivergenceGuard(base):
        diverged: tuple | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            for key in ("grad_norm", "loss"):
                value = (logs or {}).get(key)
                if isinstance(value, (int, float)) and not math.isfinite(value):
                    self.diverged = (state.global_step, f"{key} {value}")
                    control.should_training_stop = True
                    control.should_save = False
                    break
            return control

    return DivergenceGuard()


class _mlflow_store:
    """Point transformers' MLflowCallback at a file store inside the run folder for the run's duration."""

    def __init__(self, run_dir: Path, config: TrainConfig) -> None:
        self.values = {
            "MLFLOW_TRACKING_URI": (run_dir / "mlruns").resolve().as_uri(),
            "MLFLOW_EXPERIMENT_NAME": "slmkit",
            "MLFLOW_FLATTEN_PARAMS": "1",
            # MLflow 3 puts its file store in maintenance mode and refuses it unless asked; a folder of plain
            # files inside the run needs no database server or driver, which suits a laptop run.
            "MLFLOW_ALLOW_FILE_STORE": "true",
        }
        self.enabled = config.report_to == "mlflow"
        self.saved: dict = {}

    def __enter__(self):
        if self.enabled:
            for k, v in self.values.items():
                self.saved[k] = os.environ.get(k)
                os.environ.setdefault(k, v)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            try:
                import mlflow

                if mlflow.active_run():
                    mlflow.end_run()
            except ImportError:
                pass
            for k, v in self.saved.items():
                if v is None:
                    os.environ.pop(k, None)
        return False


def _write_history(run_dir: Path, history: list[dict]) -> None:
    from slmkit.data import atomic_open

    with atomic_open(run_dir / "metrics.jsonl") as handle:
        for row in history:
            handle.write(json.dumps(row) + "\n")


def _read_history(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _plot_history(run_dir: Path, history: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    evals = [h for h in history if "eval_loss" in h]
    extra = sorted({k for h in evals for k in h if k.startswith("eval_") and k not in ("eval_loss",)} - _TIMING_KEYS)
    fig, axes = plt.subplots(1, 1 + bool(extra), figsize=(6 + 5 * bool(extra), 4), squeeze=False)
    ax = axes[0][0]
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot([h["step"] for h in evals], [h["eval_loss"] for h in evals], "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats / target token)")
    if train or evals:  # a run shorter than one logging interval has nothing to label
        ax.legend()
    if extra:
        ax2 = axes[0][1]
        for key in extra:
            ax2.plot([h["step"] for h in evals if key in h], [h[key] for h in evals if key in h], "o-", label=key)
        ax2.set_xlabel("step")
        ax2.legend()
    fig.suptitle(run_dir.name)
    fig.tight_layout()
    from slmkit.data import atomic_open

    with atomic_open(run_dir / "learning_curve.png", "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)


_TIMING_KEYS = {"eval_runtime", "eval_samples_per_second", "eval_steps_per_second"}


def _write_model_card(run_dir: Path, config: TrainConfig, info: dict) -> None:
    from slmkit.data import atomic_open

    base = info["base_model"]
    metrics = info["metrics"]
    lines = [
        f"# {run_dir.name}",
        "",
        f"Fine-tuned by slmkit ({info['task']}) from `{base.get('name')}` "
        f"(checksum `{str(info['base_checksum'])[:16]}`)"
        f" with **{config.method}** on {info['n_train']} examples ({info['train_tokens']} tokens), "
        f"{info['steps']} steps / {info['epochs']} epochs in {info['seconds']:.0f} s "
        f"({info['tokens_per_second']:.0f} tokens/s, peak RSS {info['peak_rss_mb']:.0f} MB).",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for key, value in {**metrics.get("final_eval", {}), "train_loss": metrics.get("train_loss")}.items():
        if isinstance(value, (int, float)) and key not in _TIMING_KEYS:
            lines.append(f"| {key} | {value:.4g} |")
    lines += [
        "",
        "Use it: `slmkit summarize predict data.csv --model <this folder> --output pred.csv`, or "
        "`slmkit.models.load_model('<this folder>')`. A LoRA run can be folded into plain weights with "
        "`slmkit train merge`.",
        "",
        "Config: `train_config.json`; per-step metrics: `metrics.jsonl`; curves: `learning_curve.png`.",
        "",
    ]
    with atomic_open(run_dir / "README.md") as handle:
        handle.write("\n".join(lines))


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("slmkit", "torch", "transformers", "peft", "accelerate"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out
