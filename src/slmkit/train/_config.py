"""TrainConfig: one dataclass for every training run, saved as JSON beside the artifact it produced."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from slmkit._constants import DEFAULT_SEED
from slmkit.errors import ConfigError

METHODS = ("full", "lora", "ptuning")
OBJECTIVES = ("pairs", "documents", "contrastive", "preference")
EMBED_POOLINGS = ("mean", "last")
LOSS_PATHS = ("target", "full")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
PRECISIONS = ("auto", "bf16", "fp32")
TRAIN_CONFIG_NAME = "train_config.json"
# Fields added after configs began to be hashed into artifacts' checksums (TrainConfig.identity), with defaults.
_LATER_FIELDS = {"prompt_loss_weight": 0.0}

# LoRA targets per architecture (model_type in config.json): every linear layer of the blocks, never the
# output layer (on Gemma 3 that is the 262k-token embedding, tied to the input; adapting it buys nothing
# for its 168M parameters). Anything unlisted gets peft's "all-linear", which excludes the output layer too.
LORA_TARGETS = {
    "gemma3_text": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma3": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "bart": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    "mbart": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    "t5": ["q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"],
    "mt5": ["q", "k", "v", "o", "wi_0", "wi_1", "wo"],
}


@dataclass
class TrainConfig:
    """How to train. Every field has a default; the CLI's options have the same names in kebab-case.

    Attributes:
        method: "full" (every weight), "lora" (low-rank adapters) or "ptuning" (a prompt encoder that
            learns virtual tokens; the model stays frozen).
        objective: "pairs" (loss on the target of each (prompt, target) pair), "documents" (plain
            next-token loss over whole documents, as a language model is pre-trained) or "contrastive"
            (SetFit-style: the cosine similarity of two texts' pooled hidden states is pulled toward a target,
            1 = same class, 0 = different, by mean squared error, as sentence-transformers'
            CosineSimilarityLoss; nothing is projected onto the vocabulary) or "preference" (DPO, Rafailov et
            al. 2023: for (prompt, chosen, rejected) triples, -log sigmoid(beta x the gap between how much more
            the model prefers chosen over rejected than the starting model did); the starting model is the
            reference, its log-probabilities computed once before the first step).
        dpo_beta: objective "preference" only: how far the model may move from the reference (DPO's beta).
        dpo_sft_weight: objective "preference" only: weight of the chosen target's mean token loss added to the
            DPO loss (0 = plain DPO). The SFT term of RPO (Pang et al. 2024; TRL's `rpo_alpha`): it keeps the
            chosen summaries likely, where plain DPO can lower both sides and drift from their style.
        embed_template, embed_pooling, embed_layers: objective "contrastive" only: how a text becomes the vector
            the loss compares, exactly as `LanguageModel.embed(template=, pooling=, layers=)` computes it at
            run time (the text inside the template, "mean" over its tokens with a causal LM's BOS left out or
            the "last" token, the listed hidden-state indices concatenated: 0 = embeddings, -1 = last layer).
        lora_r, lora_alpha, lora_dropout: LoRA rank, scale and dropout.
        lora_targets: module names to adapt; empty = chosen per architecture (LORA_TARGETS).
        num_virtual_tokens, encoder_hidden_size: P-tuning's virtual prompt length and MLP width.
        learning_rate, epochs, max_steps (> 0 overrides epochs), batch_size, grad_accum, warmup_ratio,
            weight_decay, scheduler, max_grad_norm: the optimiser (AdamW) and its schedule.
        max_length: longest (prompt + target) in tokens; longer rows are an error naming the row.
        prompt_loss_weight: objective "pairs" only: weight of each prompt token's next-token loss beside the
            target tokens' weight of 1 (the loss is the weighted mean); 0 = the prompt is masked, as usual.
            Huerta-Enochian & Ko (2024, "Instruction Fine-Tuning: Does Prompt Loss Matter?") found small
            weights (0.01-0.5) better than masking when targets are short beside their prompts (a summary is
            ~1/7 of its dialogue): the prompt loss keeps the model near its pre-trained weights and curbs
            overfitting. It costs time: every prompt position is projected onto the vocabulary too.
        loss_path: "target" projects only the positions that carry a loss onto the vocabulary (the fast
            path: Gemma 3's output layer is 262k wide); "full" is the library's full-vocabulary loss.
        precision: "auto" (bf16 autocast where the hardware computes bf16 natively: a GPU, or a CPU with
            AVX-512 BF16 / AMX; float32 elsewhere), "bf16" or "fp32". On a CPU without bf16 instructions
            (e.g. AVX2-only AMD EPYC) autocast emulates bf16 and a training step is ~100x slower.
        eval_steps: evaluate every N optimiser steps (0 = once per epoch); needs an eval set.
        save_steps: checkpoint every N steps (0 = once per epoch); the last `save_total_limit` are kept.
        early_stopping_patience: stop after this many evaluations without improvement (0 = never).
        metric_for_best: "loss" or a generation metric a job adds (summarization: "rouge").
        report_to: "mlflow" (a file store under the run folder) or "none".
        seed: the one seed for data order, dropout and initialisation.
    """

    method: str = "lora"
    objective: str = "pairs"
    lora_r: int = 32
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=list)
    num_virtual_tokens: int = 20
    encoder_hidden_size: int = 128
    learning_rate: float = 4e-4
    epochs: float = 3.0
    max_steps: int = 0
    batch_size: int = 4
    grad_accum: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    scheduler: str = "linear"
    max_grad_norm: float = 1.0
    max_length: int = 1024
    prompt_loss_weight: float = 0.0
    loss_path: str = "target"
    embed_template: str = "{text}"
    embed_pooling: str = "mean"
    embed_layers: list[int] = field(default_factory=lambda: [-1])
    dpo_beta: float = 0.1
    dpo_sft_weight: float = 0.0
    precision: str = "auto"
    eval_steps: int = 0
    save_steps: int = 0
    save_total_limit: int = 2
    early_stopping_patience: int = 0
    metric_for_best: str = "loss"
    report_to: str = "mlflow"
    logging_steps: int = 5
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first field out of range."""
        choices = {
            "method": METHODS,
            "objective": OBJECTIVES,
            "loss_path": LOSS_PATHS,
            "scheduler": SCHEDULERS,
            "precision": PRECISIONS,
            "report_to": ("mlflow", "none"),
            "embed_pooling": EMBED_POOLINGS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"TrainConfig.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        positive = ("lora_r", "lora_alpha", "num_virtual_tokens", "encoder_hidden_size", "batch_size", "grad_accum")
        for name in positive + ("max_length", "logging_steps", "save_total_limit"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "eval_steps", "save_steps", "early_stopping_patience"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ConfigError(f"TrainConfig.learning_rate must be > 0, got {self.learning_rate}")
        if not self.epochs > 0 and not self.max_steps:
            raise ConfigError(f"TrainConfig.epochs must be > 0 (or set max_steps), got {self.epochs}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"TrainConfig.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"TrainConfig.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ConfigError("TrainConfig.weight_decay and max_grad_norm must be >= 0")
        if not isinstance(self.embed_template, str) or self.embed_template.count("{text}") != 1:
            raise ConfigError(f"TrainConfig.embed_template must contain '{{text}}' exactly once, "
                              f"got {self.embed_template!r}")
        try:  # the CLI's --set embed_layers=6,-1 gives strings
            self.embed_layers = [int(v) for v in self.embed_layers]
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"TrainConfig.embed_layers must be hidden-state indices, got {self.embed_layers!r}"
            ) from exc
        if not self.embed_layers:
            raise ConfigError("TrainConfig.embed_layers must name at least one layer, e.g. [-1]")
        if not self.dpo_beta > 0:
            raise ConfigError(f"TrainConfig.dpo_beta must be > 0, got {self.dpo_beta}")
        if not self.dpo_sft_weight >= 0:
            raise ConfigError(f"TrainConfig.dpo_sft_weight must be >= 0, got {self.dpo_sft_weight}")
        if not 0 <= self.prompt_loss_weight <= 1:
            raise ConfigError(f"TrainConfig.prompt_loss_weight must be in [0, 1], got {self.prompt_loss_weight}")
        if self.prompt_loss_weight and (self.objective != "pairs" or self.loss_path != "target"):
            raise ConfigError("TrainConfig.prompt_loss_weight weighs the prompt of (prompt, target) pairs: it needs "
                              "objective 'pairs' and loss_path 'target'")
        if self.objective == "preference" and self.method == "ptuning":
            raise ConfigError("objective 'preference' trains with method 'lora' or 'full'")
        if self.objective == "contrastive" and self.method == "ptuning":
            raise ConfigError("objective 'contrastive' trains the backbone's hidden states; P-tuning's virtual "
                              "tokens live outside it (use method 'lora' or 'full')")

    def to_dict(self) -> dict:
        return asdict(self)

    def identity(self) -> dict:
        """`to_dict()` less the fields added since artifacts began recording the config, where they hold their
        defaults: what checksums over a config hash, so the artifacts of earlier versions keep theirs."""
        values = self.to_dict()
        for name, default in _LATER_FIELDS.items():
            if values.get(name) == default:
                del values[name]
        return values

    def save(self, directory: str | Path) -> Path:
        from slmkit.data import write_json

        return write_json(Path(directory) / TRAIN_CONFIG_NAME, self.to_dict())

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if path.is_dir():
            path = path / TRAIN_CONFIG_NAME
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not a readable train config ({exc})") from exc

    def resolved_precision(self) -> str:
        return self.precision if self.precision != "auto" else ("bf16" if native_bf16() else "fp32")

    def lora_target_modules(self, model_type: str) -> list[str] | str:
        return list(self.lora_targets) or LORA_TARGETS.get(model_type, "all-linear")


def native_bf16() -> bool:
    """Whether bf16 matmuls run natively here: a CUDA GPU with bf16, or a CPU with AVX-512 BF16 or AMX."""
    import torch

    from slmkit.models._precision import native_bf16 as device_native_bf16  # the runtime's one flag reader

    return device_native_bf16("cuda" if torch.cuda.is_available() else "cpu")
