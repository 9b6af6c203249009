"""CTranslate2 backend (optional extra `slmkit[fast]`): fast CPU generation and scoring, from wheels, no compiler.

Why this engine (measured on this project's 2-core AVX2 CPU, bench/engine_candidates.py and bench/runtime.py
--engines; README, "The fast engine"): CTranslate2 converts
gemma3-270m in ~20 s, runs int8 weights *and* int8 matrix products, and batches well (several prompts share one
decoding loop). ONNX Runtime GenAI's int8 matched it single-stream but batched at less than half its rate, and
its int4 changed greedy outputs within the first few tokens; OpenVINO's exporter (optimum-intel) requires
transformers < 5.6 and torchvision, which this project cannot take; llama.cpp needs a compiler here.

What runs where:
- generation, token losses, next-token / choice scores: CTranslate2, at the converted precision. Scoring runs on
  one engine spread over every thread; greedy and beam decoding on one single-thread replica per thread, each
  decoding its own batch (faster on a small CPU: `_decoder`, bench/ct2_decoding.py); sampling on a fresh
  engine per call, so that a seed gives the same draws on every call;
- embeddings and token states (hidden states of chosen layers): CTranslate2 does not expose them, so a
  transformers copy of the same weights is loaded on first use and answers them exactly as the default backend.

Any causal transformers model converts: a built-in (its GGUF goes through the same safetensors cache as the
transformers backend), a local folder, a fine-tuned run (`slmkit.train`: full weights directly, a LoRA adapter
merged into its base first), a merged run. The conversion runs once per (weights, quantization) and is cached
under `cache_dir()/ctranslate2/`, built in a temp folder and renamed into place (an interrupted conversion leaves
nothing a later load would trust).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from slmkit._files import atomic_dir
from slmkit.errors import ConfigError, MissingExtraError
from slmkit.models._base import (
    Generation,
    GenerationParams,
    LanguageModel,
    cut_at_stop,
    default_num_threads,
    keep_token_texts,
    kept_token_ids,
    length_sorted_batches,
    log_softmax,
    newline_ids_of,
    progress_bar,
    resolve_params,
)
from slmkit.models._spec import ModelSpec
from slmkit.models._weights import cache_dir, weights_checksum

logger = logging.getLogger(__name__)

QUANTIZATIONS = ("int8", "float32")  # what CTranslate2 computes in on a CPU (no int4 kernels there)
DEFAULT_QUANTIZATION = "int8"
MARKER = "slmkit_ct2.json"
VOCAB_ORDER = "kept_token_ids.npy"  # a trimmed engine's output id i is the tokenizer's id VOCAB_ORDER[i]


def _import_ctranslate2():
    try:
        import ctranslate2
    except ImportError as exc:
        raise MissingExtraError(
            "the ctranslate2 backend needs the ctranslate2 package; run: pip install 'slmkit[fast]' (a wheel)"
        ) from exc
    return ctranslate2


class CTranslate2LM(LanguageModel):
    """A causal LM converted to CTranslate2, behind the LanguageModel interface."""

    def __init__(self, spec: ModelSpec, model_dir: Path, source_dir: Path | str, tokenizer, info: dict,
                 *, quantize: str, num_threads: int) -> None:
        self.spec, self.tokenizer, self.info = spec, tokenizer, info
        self.model_dir, self.source_dir, self.quantize = Path(model_dir), source_dir, quantize
        self.num_threads = num_threads
        # Scoring (token losses, next-token scores, prompts' first tokens) runs whole sequences through large
        # matrix products, which one engine spreads over every thread.
        self._generator = self._engine(intra_threads=num_threads, replicas=1)
        # greedy / beam decoding of several prompts: one single-thread replica per thread (see `_decoder`)
        self._replicas = self._engine(intra_threads=1, replicas=num_threads) if num_threads > 1 else None
        self._facts = json.loads((self.model_dir / MARKER).read_text())["source_config"]
        # A vocabulary-trimmed model outputs ids over the kept tokens only: engine id -> the tokenizer's id.
        order = self.model_dir / VOCAB_ORDER
        self._order = np.load(order) if order.is_file() else None
        self._hf = None  # the transformers twin for embeddings / token states, loaded on first use
        self._window = _sliding_window(self.source_dir)
        self._end_ids = _end_ids(tokenizer, self.source_dir, self._order)
        self._newline_ids: list[int] | None = None

    def _engine(self, *, intra_threads: int, replicas: int):
        return _import_ctranslate2().Generator(
            str(self.model_dir), device="cpu", compute_type=self.quantize, intra_threads=intra_threads,
            inter_threads=replicas,
        )

    @property
    def _decoder(self):
        """The engine for greedy and beam decoding of several prompts: `num_threads` single-thread replicas
        sharing one copy of the weights, each decoding its own batch.

        Why: a decoding step multiplies a few rows by each weight matrix, too little work to split over threads.
        Measured on the 2-core AVX-512 EPYC (bench/ct2_decoding.py: gemma3-270m int8, output layer trimmed, 48
        new tokens, medians): one engine on two threads decoded 41 tokens/s single-stream, 115 for 8 prompts and
        115 for 16 in batches of 8; one thread alone 51 / 146 / 153; two single-thread replicas 53 / 229 / 271.
        Scoring keeps the multi-threaded engine: on whole sequences it was as fast as the replicas or faster
        (next-token forward passes 1.6-1.9x, a side check). The replicas cost one more copy of the converted
        weights in memory (~300 MB for gemma3-270m at int8).
        """
        return self._generator if self._replicas is None else self._replicas

    def _single_stream_engine(self):
        """The engine for one prompt alone. The whole output layer (262k x 640 for Gemma 3) is a matrix-vector
        product large enough to share between threads: 26 tokens/s on two threads against 22 on one (int8);
        trimmed to a language's tokens it is not, and one thread is faster: 51-53 against 41-50. At float32 on the
        Zen 5 EPYC two threads decoded a trimmed model faster at first (76.5 against 57.2 tokens/s) but not once
        the process had run other engines (45 against 58; bench/ct2_decoding.py --quantize float32), so a trimmed
        model of either precision decodes one prompt on a single-thread replica."""
        return self._decoder if self._order is not None else self._generator

    # tokens -------------------------------------------------------------------------------------------------
    def _ids(self, text: str, bos: bool = True) -> list[int]:
        """The text's token ids, with the tokenizer's own special tokens (BOS) as the transformers backend
        encodes it (`bos=False`: none), cut to the model's context like there."""
        ids = list(self.tokenizer(text, add_special_tokens=bos)["input_ids"])
        return ids[: self.max_length]

    @property
    def max_length(self) -> int:
        limit = self._facts.get("max_position_embeddings") or 2048
        return int(min(limit, 8192))  # the transformers backend's cut, so both backends see the same tokens

    def _tokens(self, ids: Sequence[int]) -> list[str]:
        # The engine's vocabulary holds the same token strings (reordered when trimmed), so strings are exact.
        return self.tokenizer.convert_ids_to_tokens(list(ids))

    def _own_ids(self, engine_ids: Sequence[int]) -> list[int]:
        return list(engine_ids) if self._order is None else [int(self._order[i]) for i in engine_ids]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(self._ids(t, bos=False)) for t in texts]

    # model facts --------------------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return int(self._facts["hidden_size"])

    @property
    def n_layers(self) -> int | None:
        return int(self._facts["num_hidden_layers"])

    # the transformers twin ----------------------------------------------------------------------------------
    def _twin(self):
        if self._hf is None:
            from slmkit.models._transformers import load_transformers

            logger.info("loading the transformers copy of %s for embeddings / token states", self.spec.name)
            # float32 whatever $SLMKIT_DTYPE says: its embeddings are cached under this engine's checksum
            self._hf = load_transformers(ModelSpec(name=self.spec.name, path=str(self.source_dir)),
                                         num_threads=self.num_threads, device="cpu", dtype="float32")
        return self._hf

    def embed(self, texts, **kwargs) -> np.ndarray:
        return self._twin().embed(texts, **kwargs)

    def token_states(self, texts, **kwargs):
        return self._twin().token_states(texts, **kwargs)

    # scoring ------------------------------------------------------------------------------------------------
    def token_losses(self, texts, *, batch_size=8, progress=False, reverse=False) -> list[np.ndarray]:
        self._require_full_vocabulary("token_losses")
        if reverse:
            from slmkit.models._transformers import reverse_content

            bos, eos = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
            seqs = [reverse_content(self._ids(t), bos, eos) for t in texts]
        else:
            seqs = [self._ids(t) for t in texts]
        out: list[np.ndarray | None] = [None] * len(seqs)
        long = [i for i, seq in enumerate(seqs) if self._over_window(len(seq))]
        if long:  # CTranslate2 cannot score past a sliding-attention window: the float32 twin scores those
            losses = self._twin().token_losses([texts[i] for i in long], batch_size=batch_size, reverse=reverse)
            for i, value in zip(long, losses):
                out[i] = value
        with progress_bar(len(seqs), "token losses", progress) as bar:
            bar.update(len(long))
            short = [i for i in range(len(seqs)) if out[i] is None]
            for part in equal_length_batches([len(seqs[i]) for i in short], batch_size):
                batch = [short[k] for k in part]
                results = self._generator.score_batch([self._tokens(seqs[i]) for i in batch])
                for i, result in zip(batch, results):
                    out[i] = -np.asarray(result.log_probs, dtype=np.float32)  # log p(token t | < t), t >= 1
                bar.update(len(batch))
        return out

    def _over_window(self, n_tokens: int) -> bool:
        """Whether a sequence is longer than CTranslate2 can score: its Gemma 3 sliding-attention cache holds
        `sliding_window` positions, and score_batch / forward_batch raised ValueError past that (gemma3-270m:
        texts over ~513 tokens). Generation is not affected."""
        return self._window is not None and n_tokens > self._window

    def _last_logits(self, prompts_ids: list[list[int]]) -> np.ndarray:
        self._require_full_vocabulary("next-token scores")
        out: list[np.ndarray | None] = [None] * len(prompts_ids)
        for batch in equal_length_batches([len(ids) for ids in prompts_ids], len(prompts_ids)):
            logits = np.asarray(self._generator.forward_batch([self._tokens(prompts_ids[i]) for i in batch]))
            for row, i in enumerate(batch):
                out[i] = logits[row, -1]
        return np.stack(out).astype(np.float64)

    def single_token_ids(self, tokens) -> list[int] | None:
        ids = [self._ids(t, bos=False) for t in tokens]
        return [x[0] for x in ids] if ids and all(len(x) == 1 for x in ids) else None

    def next_token_logprobs(self, prompts, tokens, *, batch_size=16) -> np.ndarray:
        ids = self.single_token_ids(tokens)
        if ids is None:
            raise ConfigError(f"next_token_logprobs needs candidates of one token each, got {list(tokens)!r}")
        return self._next_token_scores(prompts, [ids] * len(prompts), batch_size)

    def _next_token_scores(self, prompts, candidates, batch_size: int = 16) -> np.ndarray:
        rows = []
        for start in range(0, len(prompts), batch_size):
            chunk = [self._ids(p) for p in prompts[start : start + batch_size]]
            if any(self._over_window(len(ids)) for ids in chunk):  # see _over_window: the twin scores them
                wanted = [candidates[start + r] for r in range(len(chunk))]
                rows.extend(self._twin()._next_token_scores(chunk, wanted, batch_size))
                continue
            logp = log_softmax(self._last_logits(chunk))
            rows.extend(logp[r, candidates[start + r]] for r in range(len(chunk)))
        return np.array(rows).reshape(len(prompts), -1)

    def score_choices(self, prompts, choices, *, reduction="sum", batch_size=16) -> np.ndarray:
        from slmkit.models._transformers import _choices_per_prompt

        if reduction not in ("sum", "mean"):
            raise ConfigError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        per_prompt = _choices_per_prompt(prompts, choices)
        single = [self.single_token_ids(options) for options in per_prompt]
        if per_prompt and all(ids is not None for ids in single):  # one forward pass per prompt
            return self._next_token_scores(prompts, single, batch_size)
        scores = np.zeros((len(prompts), len(per_prompt[0]) if per_prompt else 0))
        for i, (prompt, options) in enumerate(zip(prompts, per_prompt)):
            p_ids = self._ids(prompt)
            seqs = []
            for option in options:
                c_ids = self._ids(option, bos=False)
                if not c_ids:
                    raise ConfigError("a choice tokenizes to nothing; choices must be non-empty text")
                seqs.append((p_ids + c_ids, len(c_ids)))
            self._require_full_vocabulary("score_choices")
            if any(self._over_window(len(seq)) for seq, _ in seqs):  # see _over_window: the twin scores them
                scores[i] = self._twin().score_choices([prompt], [list(options)], reduction=reduction)[0]
                continue
            for batch in equal_length_batches([len(seq) for seq, _ in seqs], len(seqs)):
                results = self._generator.score_batch([self._tokens(seqs[j][0]) for j in batch])
                for j, result in zip(batch, results):
                    picked = np.asarray(result.log_probs[-seqs[j][1]:], dtype=np.float64)
                    scores[i, j] = picked.sum() if reduction == "sum" else picked.mean()
        return scores

    # generation ---------------------------------------------------------------------------------------------
    def newline_token_ids(self) -> list[int]:
        """Tokens made only of whitespace with a line break (banned first by `suppress_leading_newline`)."""
        if self._newline_ids is None:
            self._newline_ids = newline_ids_of(self.tokenizer)
        return self._newline_ids

    def generate(self, prompts, params: GenerationParams | None = None, *, batch_size=8, progress=False,
                 **overrides) -> list[str]:
        details = self.generate_detailed(prompts, params, batch_size=batch_size, progress=progress, **overrides)
        return [g.text for g in details]

    def generate_detailed(self, prompts, params: GenerationParams | None = None, *, batch_size=8, progress=False,
                          **overrides) -> list[Generation]:
        params = resolve_params(params, overrides)
        ct2 = _import_ctranslate2()
        knobs = dict(
            beam_size=params.num_beams,
            length_penalty=params.length_penalty,
            repetition_penalty=params.repetition_penalty,
            no_repeat_ngram_size=params.no_repeat_ngram_size,
            include_prompt_in_result=False,
            end_token=self._tokens(self._end_ids) or None,  # every id transformers' generate stops on
            sampling_topk=(params.top_k or 0) if params.do_sample else 1,  # 1 = greedy; 0 = the whole vocabulary
            **params.extra,
        )
        if params.do_sample:
            knobs.update(sampling_topp=params.top_p, sampling_temperature=params.temperature)
        engine = self._generator
        if params.do_sample:
            # CTranslate2 takes no seed per call: each engine thread draws from its own generator, seeded from
            # `set_random_seed` when that thread first samples and never again. So a sampling call gets a fresh
            # engine (0.4-2 s to load) that decodes batch after batch on one thread: the same seed then draws
            # the same numbers on every call, whatever ran before, as on the transformers backend.
            ct2.set_random_seed(params.seed)
            engine = self._engine(intra_threads=self.num_threads, replicas=1)
        ids = [self._ids(p) for p in prompts]
        first: list[list[int]] = [[] for _ in ids]
        budget = params.max_new_tokens
        if params.suppress_leading_newline:
            # CTranslate2 can ban tokens only for a whole generation, so the first token is decoded on its own
            # with the newline tokens banned, then generation goes on from prompt + that token.
            first = self._first_tokens(engine, ids, knobs, params, batch_size)
            budget -= 1
        ends = set(self._end_ids)
        todo = [i for i in range(len(ids)) if not (first[i] and first[i][0] in ends)]
        if not params.do_sample:
            engine = self._single_stream_engine() if len(todo) == 1 else self._decoder
        # Greedy and beam batches run in parallel on the decoding replicas, split so that each replica has work.
        parallel = engine is self._replicas
        size = min(batch_size, -(-len(todo) // self.num_threads)) if parallel and todo else batch_size
        pending = []
        new: dict[int, list[int]] = {}

        def collect(rows, results) -> None:
            for i, result in zip(rows, results):
                new[i] = self._own_ids((result.result() if parallel else result).sequences_ids[0])
            bar.update(len(rows))

        with progress_bar(len(ids), "generate", progress) as bar:
            bar.update(len(ids) - len(todo) if budget > 0 else len(ids))  # ended at their first token, or no budget
            if budget > 0:
                min_left = max(0, params.min_new_tokens - (1 if params.suppress_leading_newline else 0))
                for rows in _prompt_batches([len(ids[i]) + len(first[i]) for i in todo], size, todo):
                    results = engine.generate_batch(
                        [self._tokens(ids[i] + first[i]) for i in rows], max_length=budget, min_length=min_left,
                        max_batch_size=len(rows), asynchronous=parallel,
                        # the step callback exists for greedy / sampling only; beams are cut at the stop string
                        callback=self._stop_callback(params.stop, [first[i] for i in rows])
                        if params.stop and params.num_beams == 1 else None,
                        **knobs,
                    )
                    if parallel:  # the replicas decode while later batches are submitted; collected below
                        pending.append((rows, results))
                    else:
                        collect(rows, results)
            for rows, results in pending:  # in submission order: the bar moves as each batch is done
                collect(rows, results)
        out: list[Generation] = []
        for i in range(len(ids)):
            # CTranslate2 leaves the end token out of its results; a first token decoded apart may be EOS
            tokens = first[i] + new.get(i, [])
            tokens = tokens[: next((k for k, t in enumerate(tokens) if t in ends), len(tokens))]
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            cut = cut_at_stop(text, params.stop)
            ended = cut != text or len(tokens) < params.max_new_tokens
            out.append(Generation(cut, len(tokens), "stop" if ended else "length"))
        return out

    def _first_tokens(self, engine, ids, knobs, params, batch_size: int) -> list[list[int]]:
        """Each prompt's first new token, newline tokens banned, `batch_size` prompts at a time."""
        banned = [[t] for t in self._tokens(self.newline_token_ids())]
        first: list[list[int]] = [[] for _ in ids]
        for batch in _prompt_batches([len(x) for x in ids], batch_size, range(len(ids))):
            results = engine.generate_batch(
                [self._tokens(ids[i]) for i in batch], max_length=1, min_length=1 if params.min_new_tokens else 0,
                max_batch_size=len(batch), suppress_sequences=banned or None, **knobs,
            )
            for i, result in zip(batch, results):
                first[i] = self._own_ids(result.sequences_ids[0][:1])
        return first

    def _stop_callback(self, stop, prefixes):
        """A CTranslate2 step callback that ends a row once its new text contains a stop string."""
        new: dict[int, list[int]] = {}

        def on_step(step) -> bool:
            tokens = new.setdefault(step.batch_id, list(prefixes[step.batch_id]))
            tokens.append(self._own_ids([step.token_id])[0])
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            return any(s in text for s in stop)  # True stops this row

        return on_step


def equal_length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped by equal length, at most `batch_size` per group.

    CTranslate2 4.8's scoring and forward passes fail on a padded batch of real Gemma 3 sequences ("Length mask
    has size ... different than the current batch size"; generation is not affected), so scoring batches hold
    sequences of one length only and need no padding.
    """
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(n, []).append(i)
    return [idx[k : k + batch_size] for idx in groups.values() for k in range(0, len(idx), batch_size)]


# conversion -------------------------------------------------------------------------------------------------
def converted_path(spec: ModelSpec, quantize: str, keep_tokens: Sequence[str] | None = None,
                   checksum: str | None = None) -> Path:
    """The cache folder of `spec` at `quantize` (`checksum`: its weights_checksum, if already computed)."""
    key = hashlib.sha256(f"{checksum or weights_checksum(spec)}|{quantize}".encode())
    if spec.path and Path(spec.path).is_dir():
        # A folder's checksum covers its weight files only; the engine also takes its vocabulary and end tokens
        # from these, so two folders with the same weights and another tokenizer get their own conversions.
        for name in _TEXT_FILES:
            if (Path(spec.path) / name).is_file():
                key.update(name.encode() + b"\x00" + (Path(spec.path) / name).read_bytes())
    if keep_tokens is not None:
        key.update("\x00".join(keep_tokens).encode())
    trimmed = "-trimmed" if keep_tokens is not None else ""
    return cache_dir() / "ctranslate2" / f"{spec.name}-{key.hexdigest()[:16]}{trimmed}-{quantize}"


def _source_dir(spec: ModelSpec, scratch: Path) -> Path | str:
    """A transformers folder (or hub id) holding `spec`'s weights as one plain causal LM."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slmkit.models._transformers import _convert_gguf, load_transformers
    from slmkit.models._weights import ensure_converted, locate_weights

    if spec.kind != "causal":
        raise ConfigError(f"the ctranslate2 backend runs causal LMs; {spec.name!r} is {spec.kind}")
    if spec.adapter:
        lm = load_transformers(replace(spec, backend="transformers"), device="cpu", dtype="float32")
        if getattr(lm, "prompt_tuned", False):
            raise ConfigError(f"{spec.name!r} is P-tuned (virtual tokens): only the transformers backend runs it")
        lm.model.save_pretrained(str(scratch))
        lm.tokenizer.save_pretrained(str(scratch))
        return scratch
    if spec.source == "hub":
        return spec.hub_id
    location, gguf_file = locate_weights(spec)
    if gguf_file:
        return ensure_converted(
            location / gguf_file,
            lambda tmp: _convert_gguf(AutoModelForCausalLM, AutoTokenizer, location, gguf_file, tmp),
        )
    return location


def make_compatible(model) -> None:
    """Bring a transformers 5 Gemma 3 into the form CTranslate2's converter reads (in place, exact).

    The converter reads `rope_theta` / `rope_local_base_freq` attributes, which transformers 5 moved into
    `rope_parameters` (without them it silently falls back to 1e6 / 1e4), and scales attention by
    head_dim**-0.5 where Gemma 3 uses query_pre_attn_scalar**-0.5: the ratio is folded into the query norm's
    weight (Gemma's RMSNorm multiplies by 1 + weight, and RoPE is linear, so the scores come out the same).
    """
    import torch

    config = getattr(model.config, "text_config", model.config)
    if getattr(config, "model_type", "") not in ("gemma3_text", "gemma3"):
        return
    rope = getattr(config, "rope_parameters", None) or {}
    if "full_attention" in rope:
        config.rope_theta = rope["full_attention"]["rope_theta"]
        config.rope_local_base_freq = rope["sliding_attention"]["rope_theta"]
    for name in ("attn_logit_softcapping", "final_logit_softcapping"):
        if getattr(config, name, None):
            raise ConfigError(f"CTranslate2 cannot run this Gemma: {name}={getattr(config, name)}")
    scalar = getattr(config, "query_pre_attn_scalar", None)
    if scalar and scalar != config.head_dim:
        ratio = (config.head_dim / scalar) ** 0.5
        text_model = getattr(model.model, "language_model", model.model)
        with torch.no_grad():
            for layer in text_model.layers:
                weight = layer.self_attn.q_norm.weight
                weight.copy_(ratio * (1.0 + weight) - 1.0)


def _convert(source: Path | str, out_dir: Path, quantize: str, keep: list[int] | None = None) -> None:
    """Convert with CTranslate2's converter; with `keep`, trim the output layer to those tokens.

    Trimming (hand-written: no engine offers it) reorders the vocabulary so the kept tokens come first, keeps the
    whole input embedding table (any prompt still encodes exactly) and gives the output projection only the kept
    rows: each decoding step projects onto len(keep) tokens instead of Gemma's 262k. The engine then returns
    positions in the kept list, mapped back through VOCAB_ORDER. Greedy output equals the full model's wherever
    the full model would pick a kept token (it is the full model with the other tokens masked out).
    """
    import torch

    ct2 = _import_ctranslate2()
    order = None
    if keep is not None:
        kept = set(keep)

    class Converter(ct2.converters.TransformersConverter):
        def load_model(self, model_class, model_name_or_path, **kwargs):
            nonlocal order
            model = super().load_model(model_class, model_name_or_path, **kwargs)
            make_compatible(model)
            if keep is not None:
                embed = model.get_input_embeddings()
                order = keep + [i for i in range(embed.weight.shape[0]) if i not in kept]
                weight = embed.weight.data[order].clone()
                embed.weight = torch.nn.Parameter(weight)
                head = torch.nn.Linear(weight.shape[1], len(keep), bias=False)
                head.weight = torch.nn.Parameter(model.get_output_embeddings().weight.data[keep].clone())
                model.lm_head = head
            return model

        def load_tokenizer(self, tokenizer_class, model_name_or_path, **kwargs):
            tokenizer = super().load_tokenizer(tokenizer_class, model_name_or_path, **kwargs)
            return tokenizer if keep is None else _Reordered(tokenizer, lambda: order)

    Converter(str(source)).convert(str(out_dir), quantization=quantize, force=True)
    if keep is not None:
        np.save(out_dir / VOCAB_ORDER, np.asarray(keep, dtype=np.int64))


class _Reordered:
    """A tokenizer whose vocabulary lists its tokens in a new order (what the converter writes as the engine's)."""

    def __init__(self, tokenizer, order) -> None:
        self._tokenizer, self._order = tokenizer, order

    def get_vocab(self) -> dict[str, int]:
        by_id = {i: token for token, i in self._tokenizer.get_vocab().items()}
        return {by_id[old]: new for new, old in enumerate(self._order())}

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


def ensure_ct2(spec: ModelSpec, quantize: str, keep_tokens: Sequence[str] | None = None,
               checksum: str | None = None) -> tuple[Path, Path | str, float | None]:
    """The cached CTranslate2 folder for `spec` at `quantize` (converted now if missing), its source, seconds.
    `keep_tokens`: texts whose tokens the output layer keeps (see `_convert`); None keeps the whole vocabulary."""
    # a local folder's checksum hashes every weight file: compute it once per load, not once per use
    checksum = checksum or weights_checksum(spec)
    final = converted_path(spec, quantize, keep_tokens, checksum)
    if (final / MARKER).is_file():
        source = json.loads((final / MARKER).read_text())["source"]
        if spec.hub_id or Path(source).exists():
            return final, source, None
        # the folder it was converted from has moved or gone: convert again from where the model is now
        logger.warning("%s: the conversion's source %s is gone; converting again", spec.name, source)
    start = time.perf_counter()
    logger.warning("converting %s to CTranslate2 (%s) once; later loads use the cache", spec.name, quantize)
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(final) as tmp, tempfile.TemporaryDirectory(dir=final.parent, prefix=".merge-") as scratch:
        # A LoRA run is merged into its base first. The converter empties its output folder, so the merged
        # weights wait outside it, then move beside the engine's files, where the transformers twin
        # (embeddings) loads them.
        source = _source_dir(spec, Path(scratch))
        from transformers import AutoConfig, AutoTokenizer

        keep = None
        if keep_tokens is not None:
            keep = kept_token_ids(AutoTokenizer.from_pretrained(str(source)), keep_tokens, _config_end_ids(source))
        _convert(source, tmp, quantize, keep)

        text = AutoConfig.from_pretrained(str(source))
        text = getattr(text, "text_config", text)
        if Path(str(source)) == Path(scratch):
            shutil.move(scratch, tmp / "source")
            Path(scratch).mkdir()  # for TemporaryDirectory's own cleanup
            source = final / "source"
        marker = {
            "source": str(source),
            "quantize": quantize,
            "checksum": checksum,
            "ctranslate2": _import_ctranslate2().__version__,
            "seconds": round(time.perf_counter() - start, 1),
            "kept_tokens": None if keep is None else len(keep),
            "source_config": {"hidden_size": text.hidden_size, "num_hidden_layers": text.num_hidden_layers,
                              "max_position_embeddings": getattr(text, "max_position_embeddings", None)},
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))
    return final, str(source), round(time.perf_counter() - start, 1)


def _config_end_ids(source_dir) -> list[int]:
    """The `eos_token_id`s of a model folder's generation_config.json ([] where there is none)."""
    config = Path(str(source_dir)) / "generation_config.json"
    if not config.is_file():
        return []
    eos = json.loads(config.read_text()).get("eos_token_id")
    return [int(i) for i in (eos if isinstance(eos, list) else [eos] if eos is not None else [])]


_TEXT_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json")


def _end_ids(tokenizer, source_dir, order) -> list[int]:
    """The ids generation ends on, as transformers' generate takes them: the tokenizer's EOS and every
    `eos_token_id` of the source's generation_config.json (Gemma 3 instruction models: <eos> and <end_of_turn>);
    for a trimmed engine, those it kept."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    ids |= set(_config_end_ids(source_dir))
    if order is not None:
        ids &= {int(i) for i in order}
    return sorted(int(i) for i in ids)


def _sliding_window(source_dir) -> int | None:
    """The source model's sliding-attention window (None where it has none), from its config.json."""
    config = Path(str(source_dir)) / "config.json"
    if not config.is_file():
        return None
    values = json.loads(config.read_text())
    values = values.get("text_config", values)
    window = values.get("sliding_window")
    return int(window) if window else None


def _prompt_batches(lengths: Sequence[int], size: int, rows: Sequence[int]) -> Iterator[list[int]]:
    """`rows` in batches of similar length, a one-token prompt (BOS alone, from an empty text) never beside a
    longer one: in such a batch CTranslate2 (4.x, include_prompt_in_result=False) decoded the other rows' prompts
    as their "new" text."""
    rows = list(rows)
    for group in ([k for k, n in enumerate(lengths) if n <= 1], [k for k, n in enumerate(lengths) if n > 1]):
        for batch in length_sorted_batches([lengths[k] for k in group], size):
            yield [rows[group[b]] for b in batch]


def load_ctranslate2(spec: ModelSpec, *, num_threads: int | None = None, quantize: str | None = DEFAULT_QUANTIZATION,
                     keep_tokens: Sequence[str] | None = None, device: str | None = None) -> CTranslate2LM:
    """Load `spec` with CTranslate2 at `quantize` ("int8", the default, or "float32" / None), converting once.

    `keep_tokens`: texts in the language(s) the model will write (e.g. the training summaries); the output layer
    keeps only their tokens (plus special and byte tokens), which makes each decoding step cheaper. Such an
    engine generates only; scores need the whole vocabulary.
    """
    from transformers import AutoTokenizer

    ct2 = _import_ctranslate2()
    keep_tokens = keep_token_texts(keep_tokens)
    quantize = quantize or "float32"
    if (device or "auto").lower() not in ("auto", "cpu"):
        raise ConfigError(f"the ctranslate2 backend runs on the CPU here; got device={device!r} (use transformers)")
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"ctranslate2 quantize must be one of {QUANTIZATIONS} (or None), got {quantize!r}")
    start = time.perf_counter()
    checksum = weights_checksum(spec)
    model_dir, source, seconds = ensure_ct2(spec, quantize, keep_tokens, checksum)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    info = {
        "name": spec.name,
        "backend": "ctranslate2",
        "source": spec.source,
        # as the transformers backend does, a reduced-precision load names its precision in the checksum
        "checksum": checksum + ("" if quantize == "float32" else f"+ctranslate2-{quantize}")
        + ("" if keep_tokens is None else f"+trimmed:{model_dir.name.split('-')[-3]}"),
        "weights_checksum": checksum,
        "dtype": quantize,
        "quantize": quantize,
        "engine": f"ctranslate2 {ct2.__version__}",
        "converted_seconds": seconds,
        "converted_cached": seconds is None,
        "device": "cpu",
        "kept_tokens": json.loads((model_dir / MARKER).read_text()).get("kept_tokens"),
    }
    lm = CTranslate2LM(spec, model_dir, source, tokenizer, info, quantize=quantize,
                       num_threads=num_threads or default_num_threads())
    lm.info["load_seconds"] = round(time.perf_counter() - start, 2)
    return lm


__all__ = ["QUANTIZATIONS", "CTranslate2LM", "ensure_ct2", "load_ctranslate2", "make_compatible"]
