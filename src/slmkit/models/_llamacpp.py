"""llama.cpp backend (optional extra `slmkit[llamacpp]`): inference only, same interface, GGUF models, and LoRA runs
of a GGUF model (the base file as quantised, the adapter applied by llama.cpp).

What llama.cpp cannot do is refused with a ConfigError rather than approximated: beam search,
no-repeat-ngram blocking and hidden states of layers other than the last.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from slmkit.errors import ConfigError, MissingExtraError
from slmkit.models._base import (
    Generation,
    GenerationParams,
    LanguageModel,
    check_embed_args,
    cut_at_stop,
    default_num_threads,
    format_template,
    is_newline_token,
    log_softmax,
    progress_bar,
    resolve_params,
)
from slmkit.models._spec import ModelSpec
from slmkit.models._weights import cache_dir, dir_checksum, gguf_path, sha256_file

# Part of the adapter cache key: bump it when the conversion below changes what it writes.
LORA_GGUF_VERSION = 1


def _import_llama_cpp():
    try:
        import llama_cpp
    except ImportError as exc:
        raise MissingExtraError(
            "the llama.cpp backend needs llama-cpp-python; run: pip install 'slmkit[llamacpp]' (compiles ~8 min)"
        ) from exc
    return llama_cpp


class LlamaCppLM(LanguageModel):
    """A GGUF model run by llama.cpp, with one context per use (the weights are mmap-shared between them).

    Generation gets a plain context; scoring one with `logits_all` (which would otherwise make every prompt
    token of a generation pay for a 262k-way projection); embeddings one in embedding mode. The last two open
    on first use.
    """

    def __init__(self, spec: ModelSpec, path, *, n_ctx: int = 1024, num_threads: int | None = None,
                 lora: Path | None = None) -> None:
        self.spec, self.path, self.n_ctx, self.lora = spec, path, n_ctx, lora
        self.n_threads = num_threads or default_num_threads()
        start = time.perf_counter()
        self._llm = self._open()
        self._scorer = self._emb = None
        self._newline_ids: list[int] | None = None
        gguf_sha256 = sha256_file(path)
        self.info = {
            "name": spec.name,
            "backend": "llamacpp",
            "source": spec.source,
            # The GGUF's sha256 names transformers' float32 model of the same file too, but llama.cpp computes
            # with the quantised weights (4-bit Q4_K_M) and q8 activations: other numbers, so another checksum, or
            # caches keyed by it (embeddings, zero-shot scores, predict's resume manifest) would mix the two.
            "checksum": f"{gguf_sha256}{_adapter_suffix(spec)}+llamacpp",
            "gguf_sha256": gguf_sha256,
            **({"lora_gguf": str(lora)} if lora else {}),
            "dtype": "gguf",
            "n_ctx": n_ctx,
            "load_seconds": round(time.perf_counter() - start, 2),
        }

    def _open(self, **kwargs):
        llama_cpp = _import_llama_cpp()
        return llama_cpp.Llama(
            model_path=str(self.path),
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            n_batch=self.n_ctx,
            verbose=False,
            **({"lora_path": str(self.lora)} if self.lora else {}),
            **kwargs,
        )

    def _tokens(self, text: str, bos: bool = True) -> list[int]:
        ids = self._llm.tokenize(text.encode("utf-8"), add_bos=bos, special=False)
        if len(ids) > self.n_ctx:
            raise ConfigError(f"text of {len(ids)} tokens exceeds llama.cpp n_ctx={self.n_ctx}; raise n_ctx")
        return ids

    def _logits(self, ids: list[int]) -> np.ndarray:
        """Logits of shape (len(ids), n_vocab): row t predicts token t+1."""
        if self._scorer is None:
            self._scorer = self._open(logits_all=True)
        self._scorer.reset()
        self._scorer.eval(ids)
        return np.asarray(self._scorer.scores[: len(ids)], dtype=np.float64)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(self._tokens(t, bos=False)) for t in texts]

    @property
    def hidden_size(self) -> int:
        return int(self._llm.n_embd())

    @property
    def n_layers(self) -> None:
        # llama.cpp hands out only the last layer's states, so no other layer can be addressed.
        return None

    def single_token_ids(self, tokens) -> list[int] | None:
        ids = [self._tokens(t, bos=False) for t in tokens]
        return [x[0] for x in ids] if ids and all(len(x) == 1 for x in ids) else None

    def next_token_logprobs(self, prompts, tokens) -> np.ndarray:
        ids = self.single_token_ids(tokens)
        if ids is None:
            raise ConfigError(f"next_token_logprobs needs candidates of one token each, got {list(tokens)!r}")
        return self._next_token_scores(prompts, [ids] * len(prompts))

    def _next_token_scores(self, prompts, candidates: list[list[int]]) -> np.ndarray:
        return np.array(
            [log_softmax(self.next_token_logits(self._tokens(p)))[c] for p, c in zip(prompts, candidates)]
        ).reshape(len(prompts), -1)

    def newline_token_ids(self) -> list[int]:
        """Tokens made only of whitespace with a line break (banned first by `suppress_leading_newline`)."""
        if self._newline_ids is None:
            self._newline_ids = [
                i
                for i in range(self._llm.n_vocab())
                if is_newline_token(self._llm.detokenize([i]).decode("utf-8", errors="replace"))
            ]
        return self._newline_ids

    def next_token_logits(self, ids: list[int]) -> np.ndarray:
        return self._logits(ids)[-1]

    def embed(
        self, texts, *, pooling="mean", layers=(-1,), template="{text}", batch_size=16, normalize=False, progress=False
    ) -> np.ndarray:
        poolings = check_embed_args(pooling, layers, template)
        if list(layers) != [-1]:
            raise ConfigError(f"llama.cpp exposes only the last layer; got layers={list(layers)} (use transformers)")
        if self._emb is None:
            self._emb = self._open(embedding=True, pooling_type=_import_llama_cpp().LLAMA_POOLING_TYPE_NONE)
        out = []
        for text in progress_bar(len(texts), "embed", progress, items=texts):
            states = np.asarray(self._emb.embed(format_template(template, text)), dtype=np.float32)
            # Skip BOS in mean pooling, as the transformers backend does (it is an attention sink).
            vec = np.concatenate([states[1:].mean(0) if how == "mean" and len(states) > 1 else states[-1]
                                  for how in poolings])
            out.append(vec / np.linalg.norm(vec) if normalize else vec)
        return np.stack(out).astype(np.float32)

    def token_losses(self, texts, *, batch_size=8, progress=False) -> list[np.ndarray]:
        out = []
        for text in progress_bar(len(texts), "token losses", progress, items=texts):
            ids = self._tokens(text)
            logp = log_softmax(self._logits(ids)[:-1])
            out.append(-logp[np.arange(len(ids) - 1), ids[1:]].astype(np.float32))
        return out

    def score_choices(self, prompts, choices, *, reduction="sum", batch_size=16) -> np.ndarray:
        from slmkit.models._transformers import _choices_per_prompt

        if reduction not in ("sum", "mean"):
            raise ConfigError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        per_prompt = _choices_per_prompt(prompts, choices)
        single = [self.single_token_ids(options) for options in per_prompt]
        if per_prompt and all(ids is not None for ids in single):  # one evaluation per prompt
            return self._next_token_scores(prompts, single)
        scores = np.zeros((len(prompts), len(per_prompt[0]) if per_prompt else 0))
        for i, (prompt, options) in enumerate(zip(prompts, per_prompt)):
            p_ids = self._tokens(prompt)
            for j, option in enumerate(options):
                c_ids = self._tokens(option, bos=False)
                if not c_ids:
                    raise ConfigError("a choice tokenizes to nothing; choices must be non-empty text")
                logp = log_softmax(self._logits(p_ids + c_ids)[len(p_ids) - 1 : -1])
                picked = logp[np.arange(len(c_ids)), c_ids]
                scores[i, j] = picked.sum() if reduction == "sum" else picked.mean()
        return scores

    def generate(
        self, prompts, params: GenerationParams | None = None, *, batch_size=8, progress=False, **overrides
    ) -> list[str]:
        details = self.generate_detailed(prompts, params, batch_size=batch_size, progress=progress, **overrides)
        return [g.text for g in details]

    def generate_detailed(
        self, prompts, params: GenerationParams | None = None, *, batch_size=8, progress=False, **overrides
    ) -> list[Generation]:
        params = resolve_params(params, overrides)
        if params.num_beams > 1 or params.no_repeat_ngram_size:
            raise ConfigError(
                "llama.cpp backend supports neither num_beams > 1 nor no_repeat_ngram_size; use transformers"
            )
        out = []
        for prompt in progress_bar(len(prompts), "generate", progress, items=prompts):
            result = self._llm.create_completion(
                prompt,
                max_tokens=params.max_new_tokens,
                temperature=params.temperature if params.do_sample else 0.0,
                top_k=params.top_k if params.do_sample else 1,
                top_p=params.top_p,
                repeat_penalty=params.repetition_penalty,
                seed=params.seed,  # llama.cpp seeds its own sampler: no global state is touched
                stop=list(params.stop) or None,
                logits_processor=self._constraints(params),
                **params.extra,
            )
            choice = result["choices"][0]
            text = cut_at_stop(choice["text"], params.stop)
            finish = "stop" if text != choice["text"] else choice.get("finish_reason") or "stop"
            out.append(Generation(text, int(result["usage"]["completion_tokens"]), finish))
        return out

    def _constraints(self, params: GenerationParams):
        """A llama.cpp logits processor for `suppress_leading_newline` and `min_new_tokens` (None if neither)."""
        if not params.suppress_leading_newline and not params.min_new_tokens:
            return None
        banned_first = np.asarray(self.newline_token_ids() if params.suppress_leading_newline else [], dtype=int)
        eos = self._llm.token_eos()
        start: list[int] = []  # the context length at the first new token (the processor's first call)

        def process(input_ids, scores):
            if not start:
                start.append(len(input_ids))
            n_new = len(input_ids) - start[0]
            if n_new == 0 and len(banned_first):
                scores[banned_first] = -np.inf
            if n_new < params.min_new_tokens:
                scores[eos] = -np.inf
            return scores

        return _import_llama_cpp().LogitsProcessorList([process])


def _adapter_suffix(spec: ModelSpec) -> str:
    """`+adapter:<hash>` for a fine-tuned run, as the other backends name it in the checksum."""
    return f"+adapter:{dir_checksum(spec.adapter)[:16]}" if spec.adapter else ""


def gguf_tensor_names(reader, path: Path):
    """(architecture, the `gguf` package's HF -> GGUF tensor name map) for an opened GGUF file."""
    import gguf

    arch = reader.fields["general.architecture"].contents()
    arch_id = {name: a for a, name in gguf.MODEL_ARCH_NAMES.items()}.get(arch)
    if arch_id is None:
        raise ConfigError(f"{path}: architecture {arch!r} is unknown to the gguf package here; cannot map "
                          "transformers tensors onto it (use backend 'transformers')")
    return arch, gguf.get_tensor_name_map(arch_id, int(reader.fields[f"{arch}.block_count"].contents()))


def lora_adapter_gguf(adapter_dir: str | Path, base_gguf: Path) -> Path:
    """A peft LoRA adapter folder as a llama.cpp LoRA adapter GGUF for `base_gguf`, converted once and cached.

    The base file stays as it is (4-bit for the built-in model) and llama.cpp adds the adapter's low-rank product in
    float32, so a fine-tune survives: re-quantising the merged weights to 4-bit instead erased much of it (top-1
    agreement with float32 63.5% against 95.8% this way on a trained Korean summarizer; README, quantisation study).
    Written here because llama.cpp's own converter (convert_lora_to_gguf.py) ships in its source tree, not in the
    llama-cpp-python wheel, and wants the base model as a transformers folder; names come from the `gguf` package's
    tensor map for the base file's architecture.
    """
    import gguf
    from safetensors import safe_open

    adapter_dir = Path(adapter_dir)
    config_file, weights_file = adapter_dir / "adapter_config.json", adapter_dir / "adapter_model.safetensors"
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{config_file}: unreadable peft adapter config ({exc})") from exc
    if config.get("peft_type") != "LORA":
        raise ConfigError(f"{adapter_dir}: a {config.get('peft_type')} adapter; the llama.cpp backend runs LoRA "
                          "adapters only (use backend 'transformers')")
    unsupported = [k for k in ("use_dora", "modules_to_save", "rank_pattern", "alpha_pattern", "fan_in_fan_out")
                   if config.get(k)]
    if config.get("bias", "none") != "none":
        unsupported.append("bias")
    if unsupported:
        raise ConfigError(f"{config_file}: {', '.join(unsupported)} cannot be expressed as a llama.cpp LoRA "
                          "adapter; use backend 'transformers' or 'ctranslate2'")
    if not weights_file.is_file():
        raise ConfigError(f"{adapter_dir}: no adapter_model.safetensors")
    # the config is part of the key: its alpha and rsLoRA flag set the scale written into the file
    config_sha = hashlib.sha256(config_file.read_bytes()).hexdigest()
    key = hashlib.sha256(f"{dir_checksum(adapter_dir)}:{config_sha}:{sha256_file(base_gguf)}:"
                         f"{LORA_GGUF_VERSION}".encode()).hexdigest()[:16]
    target = cache_dir() / "llamacpp" / f"lora-{key}.gguf"
    if target.is_file():
        return target
    reader = gguf.GGUFReader(str(base_gguf))
    arch, names = gguf_tensor_names(reader, base_gguf)
    rank = int(config["r"])
    # peft scales the product by alpha / r (alpha / sqrt(r) with rsLoRA); llama.cpp by its alpha / r
    scaling = float(config["lora_alpha"]) / (rank**0.5 if config.get("use_rslora") else rank)
    base_tensors = {t.name for t in reader.tensors}
    with safe_open(str(weights_file), "pt") as weights:
        keys = sorted(weights.keys())
        if not any(k.endswith(".lora_A.weight") for k in keys) or any(
                ".lora_A." not in k and ".lora_B." not in k for k in keys):
            raise ConfigError(f"{weights_file}: holds tensors other than LoRA A/B pairs (e.g. embedding adapters); "
                              "use backend 'transformers'")
        pairs = []
        for key_a in (k for k in keys if k.endswith(".lora_A.weight")):
            module = key_a.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
            name = names.get_name(f"{module}.weight", try_suffixes=(".weight",))
            key_b = key_a.replace(".lora_A.", ".lora_B.")
            if name is None or name not in base_tensors or key_b not in keys:
                raise ConfigError(f"{weights_file}: {module} has no tensor in {base_gguf.name}; the llama.cpp "
                                  "backend cannot apply this adapter (use backend 'transformers')")
            pairs += [(name + ".lora_a", weights.get_tensor(key_a)), (name + ".lora_b", weights.get_tensor(key_b))]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(str(partial), arch=arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, scaling * rank)
    for name, tensor in pairs:
        writer.add_tensor(name, np.ascontiguousarray(tensor.float().numpy(), dtype=np.float32))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(partial, target)  # whole or not at all: an interrupted conversion leaves no cache entry
    finally:
        partial.unlink(missing_ok=True)
    return target


def load_llamacpp(spec: ModelSpec, *, num_threads: int | None = None, n_ctx: int = 1024) -> LlamaCppLM:
    path = gguf_path(spec)  # for a LoRA run: its base model's file
    # A run's adapter is converted and applied by llama.cpp (never dropped: the base alone would serve the base
    # model under the fine-tuned model's name and prompt). P-tuning and other adapters are refused there.
    lora = lora_adapter_gguf(spec.adapter, path) if spec.adapter else None
    _import_llama_cpp()
    return LlamaCppLM(spec, path, n_ctx=n_ctx, num_threads=num_threads, lora=lora)
