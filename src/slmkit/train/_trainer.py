"""SlmTrainer: the transformers Trainer with the additions slmkit needs, and nothing else.

1. The loss projects only the positions that carry a loss onto the vocabulary. Gemma 3's output layer is
   640 x 262k: the library's loss computes logits for every position of every row (prompt and padding
   included) and that projection, forward and backward, is most of a training step. Here the backbone runs
   once, the final hidden states at target positions are gathered and projected in chunks.
2. Generation metrics (e.g. ROUGE of decoded summaries) join the evaluation metrics, so the Trainer's own
   best-checkpoint and early-stopping machinery can select on them.
3. The contrastive objective (SetFit-style, for classifiers built on the model's embeddings): the backbone
   alone runs on both texts of every pair (nothing is projected onto the vocabulary), their hidden states are
   pooled exactly as `LanguageModel.embed` pools them at run time, and the loss is the mean squared error
   between the pair's cosine similarity and its target (1 = same class, 0 = different), as
   sentence-transformers' CosineSimilarityLoss computes it.
4. The preference objective (DPO): chosen and rejected targets go through the same target-positions-only
   projection, summed per row into sequence log-probabilities. Written here rather than taken from TRL's
   DPOTrainer because TRL (1.16) projects through its own LM-head path: on this project's CPU (one thread, another
   job on the other core) its reference pass took 209 s per batch of 4 Korean dialogue pairs, and this one ~12 s.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import Trainer

from slmkit.models._transformers import head_logits, pool_layers
from slmkit.train._data import IGNORE

_CHUNK = 512  # target positions projected at once: 512 x 262k bf16 logits = 268 MB


class SlmTrainer(Trainer):
    """Trainer(loss_path="target" | "full", n_virtual_tokens, generation_eval).

    Args:
        loss_path: "target" for the fast path; "full" for the library's full-vocabulary loss (kept to
            measure the speed-up against, and for models whose loss has extra terms).
        n_virtual_tokens: P-tuning's virtual tokens, prepended by peft to the hidden states.
        generation_eval: `fn(model, tokenizer) -> {name: value}` run at every evaluation (decoding-based metrics).
        contrastive: None, or the pooling recipe of the contrastive objective: {"pooling": "mean" | "last",
            "layers": [hidden-state indices], "bos_id": the token mean pooling leaves out at position 0 (None:
            none, as for encoders)}; batches then come from `PairCollator`.
    """

    def __init__(
        self,
        *args,
        loss_path: str = "target",
        n_virtual_tokens: int = 0,
        generation_eval: Callable | None = None,
        contrastive: dict | None = None,
        dpo_beta: float | None = None,
        dpo_sft_weight: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.loss_path, self.n_virtual_tokens, self.generation_eval = loss_path, n_virtual_tokens, generation_eval
        self.contrastive, self.dpo_beta, self.dpo_sft_weight = contrastive, dpo_beta, dpo_sft_weight
        self._preference_stats: list[tuple[float, float]] = []  # (reward margin, chosen preferred) per row
        if contrastive is not None or dpo_beta is not None:
            self.loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides by the accumulation steps

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        unwrapped = self.accelerator.unwrap_model(model)
        if self.contrastive is not None:
            return self._contrastive_loss(unwrapped, inputs, return_outputs)
        if self.dpo_beta is not None:
            return self._preference_loss(model, unwrapped, inputs, return_outputs)
        if getattr(unwrapped.config, "is_encoder_decoder", False):
            return self._seq2seq_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.loss_path == "full":
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        losses, _, outputs = batch_target_losses(model, unwrapped, inputs, self.n_virtual_tokens)
        if "loss_weights" in inputs:  # a weighted prompt (TrainConfig.prompt_loss_weight): the weighted mean
            weights = inputs["loss_weights"][:, 1:][inputs["labels"][:, 1:] != IGNORE].to(losses.dtype)
            total, own_count = (losses * weights).sum(), weights.sum()
        else:
            total, own_count = losses.sum(), losses.numel()
        count = num_items_in_batch if num_items_in_batch is not None else own_count
        loss = total / torch.as_tensor(count, dtype=total.dtype).clamp(min=1)  # a target weighs 1: sums >= 1
        return (loss, outputs) if return_outputs else loss

    def get_batch_samples(self, epoch_iterator, num_batches: int, device):
        """The library counts the labelled tokens of the accumulated batches to divide the summed loss by; with
        loss weights the weighted mean's divisor is their sum instead (the weights of the labelled positions)."""
        batches, count = super().get_batch_samples(epoch_iterator, num_batches, device)
        if count is not None and batches and "loss_weights" in batches[0]:
            count = sum(b["loss_weights"][:, 1:].sum() for b in batches)  # 0 wherever no label is
            count = count.to(device) if torch.is_tensor(count) else count
        return batches, count

    def _seq2seq_loss(self, model, inputs, return_outputs: bool, num_items_in_batch):
        """Token-summed cross-entropy over the batch's target tokens / their count in the whole accumulated batch.

        BART / T5 accept **kwargs, so the Trainer assumes their loss is already divided by `num_items_in_batch`
        and skips dividing by the accumulation steps; but they return a per-micro-batch mean. With grad_accum 4
        that gave a 4x loss and gradient (clipping at 1/4 the norm) and weighted micro-batches equally, not by
        tokens. Summing here makes any batch_size x grad_accum split train as one batch does.
        """
        outputs = model(**inputs)
        labels = inputs["labels"]
        logits = outputs.logits
        if logits.shape[:2] != labels.shape:  # e.g. virtual tokens in the decoder: the library's own loss
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        total = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten().to(logits.device),
                                                  ignore_index=IGNORE, reduction="sum")
        count = num_items_in_batch if num_items_in_batch is not None else (labels != IGNORE).sum()
        loss = total / torch.as_tensor(count, dtype=total.dtype, device=total.device).clamp(min=1)
        return (loss, outputs) if return_outputs else loss

    def _contrastive_loss(self, unwrapped, inputs, return_outputs: bool):
        ids, mask, target = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
        states = backbone(unwrapped)(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        vectors = pool_states(states, ids, mask, **self.contrastive)
        first, second = vectors.chunk(2)
        cosine = torch.nn.functional.cosine_similarity(first, second, dim=-1)
        loss = torch.nn.functional.mse_loss(cosine, target.to(cosine.dtype))
        return (loss, {"cosine": cosine}) if return_outputs else loss

    def _preference_loss(self, model, unwrapped, inputs, return_outputs: bool):
        logps = sequence_logps(model, unwrapped, inputs, self.n_virtual_tokens)
        chosen, rejected = logps.chunk(2)
        reference = inputs["reference"].to(logps.dtype)
        # DPO's implicit reward of a target: beta x (its log-prob now - its log-prob under the reference)
        margin = self.dpo_beta * ((chosen - reference[:, 0]) - (rejected - reference[:, 1]))
        loss = -torch.nn.functional.logsigmoid(margin).mean()
        if self.dpo_sft_weight:  # RPO's SFT term: the chosen target's mean token loss, a mean over rows
            n_scored = (inputs["labels"][:, 1:] != IGNORE).sum(1).chunk(2)[0].clamp(min=1)
            loss = loss + self.dpo_sft_weight * (-chosen / n_scored.to(chosen.dtype)).mean()
        if model.training:
            self._preference_stats += [(m, float(m > 0)) for m in margin.detach().tolist()]
        return (loss, {"margin": margin}) if return_outputs else loss

    def log(self, logs: dict, *args, **kwargs) -> None:
        if self._preference_stats and "loss" in logs:  # the training rows since the last log line
            margins, wins = zip(*self._preference_stats)
            logs["reward_margin"] = round(sum(margins) / len(margins), 4)
            logs["reward_accuracy"] = round(sum(wins) / len(wins), 4)
            self._preference_stats = []
        super().log(logs, *args, **kwargs)

    def evaluation_loop(self, *args, **kwargs):
        output = super().evaluation_loop(*args, **kwargs)
        if self.generation_eval is not None:
            prefix = kwargs.get("metric_key_prefix", "eval")
            was_training = self.model.training
            self.model.eval()
            try:
                for name, value in self.generation_eval(self.model, self.processing_class).items():
                    output.metrics[f"{prefix}_{name}"] = value
            finally:
                self.model.train(was_training)
        return output


def target_loss_sum(model, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum of -log p(target) for rows of `hidden` (n, d); see `target_token_losses`."""
    return target_token_losses(model, hidden, targets).sum()


def batch_target_losses(model, unwrapped, inputs: dict, n_virtual_tokens: int = 0):
    """-log p(target token) at every target position of a right-padded batch (input_ids, attention_mask, labels
    with IGNORE where no target is), projecting only those positions; with the row of each loss and the outputs.
    """
    labels = inputs["labels"]
    # logits_to_keep=1: the model's own head runs on one position only; we project the rest ourselves.
    outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                    output_hidden_states=True, logits_to_keep=1)
    hidden = outputs.hidden_states[-1][:, n_virtual_tokens:]
    scored = labels[:, 1:] != IGNORE  # position t predicts token t + 1
    losses = target_token_losses(unwrapped, hidden[:, :-1][scored], labels[:, 1:][scored])
    return losses, scored.nonzero()[:, 0], outputs


def sequence_logps(model, unwrapped, inputs: dict, n_virtual_tokens: int = 0) -> torch.Tensor:
    """log p(target | prompt) of every row of a right-padded batch, summed over its target tokens."""
    losses, rows, _ = batch_target_losses(model, unwrapped, inputs, n_virtual_tokens)
    return -torch.zeros(inputs["labels"].shape[0], dtype=losses.dtype, device=losses.device).index_add(0, rows, losses)


def target_token_losses(model, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log p(target) for each row of `hidden` (n, d), projecting `_CHUNK` rows at a time.

    With more than one chunk each chunk is checkpointed, so its logits are recomputed in the backward pass
    instead of being kept: memory stays at one chunk of logits whatever the number of targets.
    """
    head = model.get_output_embeddings()

    def chunk_loss(h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # scaled and soft-capped as the model's own forward does (checked once per run: check_head_projection)
        return torch.nn.functional.cross_entropy(head_logits(model.config, head, h), t, reduction="none")

    if hidden.shape[0] <= _CHUNK:
        return chunk_loss(hidden, targets) if hidden.shape[0] else hidden.sum(-1) * 0.0
    from torch.utils.checkpoint import checkpoint

    parts = [
        checkpoint(chunk_loss, hidden[i : i + _CHUNK], targets[i : i + _CHUNK], use_reentrant=False)
        for i in range(0, hidden.shape[0], _CHUNK)
    ]
    return torch.cat(parts)


def backbone(model):
    """The transformer stack without the output layer (what `LanguageModel.embed` runs), LoRA layers included:
    peft injects them into the wrapped model's modules, so its base model's backbone carries them."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.base_model


def pool_states(hidden_states, input_ids: torch.Tensor, mask: torch.Tensor, *, pooling: str, layers,
                bos_id: int | None) -> torch.Tensor:
    """Pooled vectors (rows, d x len(layers)) of right-padded rows, as `TransformersLM.embed` computes them:
    "mean" averages the real tokens, leaving out a causal LM's BOS at position 0 (an attention sink whose norm
    would drown the content); "last" takes the last real token; the layers are concatenated in the order given."""
    pool = mask.clone()
    if bos_id is not None:
        pool[:, 0] = torch.where(input_ids[:, 0] == bos_id, 0, pool[:, 0])
    pool = pool.unsqueeze(-1).float()
    last = mask.sum(1) - 1
    return torch.cat(pool_layers(hidden_states, pool, last, layers, pooling), dim=-1)
