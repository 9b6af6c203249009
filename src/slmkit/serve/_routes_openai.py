"""OpenAI-compatible runtime endpoints: /v1/models, /v1/completions, /v1/chat/completions, /v1/embeddings."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import queue
import time
import uuid

import numpy as np
from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from slmkit.serve._protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from slmkit.serve._registry import ApiError, Entry
from slmkit.serve._state import LM_KINDS, ServerState, check_texts, get_state

router = APIRouter(prefix="/v1", tags=["openai"])
logger = logging.getLogger(__name__)
STREAM_POLL_S = 5.0  # how long a stream waits for its next piece before checking that its job still runs


def _model_card(entry: Entry) -> dict:
    return {"id": entry.name, "object": "model", "created": 0, "owned_by": "slmkit", "kind": entry.kind}


@router.get("/models")
def list_models(state: ServerState = Depends(get_state)) -> dict:
    entries = state.registry.scan().values()
    return {"object": "list", "data": [_model_card(e) for e in entries if e.kind in LM_KINDS]}


@router.get("/models/{name:path}")
def get_model(name: str, state: ServerState = Depends(get_state)) -> dict:
    return _model_card(state.registry.get(name, LM_KINDS))


# ---- generation -----------------------------------------------------------------------------------------------


def _params(state: ServerState, max_tokens: int | None, temperature, top_p, seed, stop=None, default_max=16):
    from slmkit.models import GenerationParams

    max_new = max_tokens or default_max
    if max_new > state.config.max_new_tokens:
        raise ApiError(400, f"max_tokens={max_new} is over the server's limit of {state.config.max_new_tokens} "
                            "(server option --max-new-tokens)", param="max_tokens")
    sample = bool(temperature) and temperature > 0  # temperature 0 or unset: greedy, deterministic
    # Stop strings go to the backend, which ends generation at them; `_cut` still finds them in a stream.
    stops = tuple(s for s in ([stop] if isinstance(stop, str) else list(stop or [])) if s)
    return GenerationParams(max_new_tokens=max_new, do_sample=sample, temperature=temperature if sample else 1.0,
                            top_p=top_p or 1.0, seed=state.config.seed if seed is None else seed, stop=stops)


def _batch_key(entry, params) -> tuple:
    """Requests with equal keys are decoded in one call. A sampled request gets a key of its own: one call seeds
    once, so merged rows would draw from one stream and a reply would depend on what else was in the batch."""
    alone = uuid.uuid4().hex if params.do_sample else None
    return ("generate", entry.target, params.max_new_tokens, params.do_sample, params.temperature, params.top_p,
            params.seed, params.stop, alone)


def _cut(text: str, stop) -> tuple[str, bool]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    hits = [text.index(s) for s in stops if s and s in text]
    return (text[: min(hits)], True) if hits else (text, False)


def _count(lm, texts: list[str]) -> list[int]:
    try:
        return list(lm.count_tokens(texts))
    except NotImplementedError:
        return [0] * len(texts)


async def _check_context(state: ServerState, lm, prompts: list[str], max_new: int, param: str) -> None:
    """A 400 for a prompt that does not fit the model's context with its max_tokens: the backend would keep the
    prompt's first tokens, dropping the latest chat turn and the answer cue, and answer something else."""
    limit = getattr(lm, "max_length", None)
    if not limit:
        return
    counts = await state.run(_count, lm, prompts)
    for i, n in enumerate(counts):
        if n + max_new > limit:
            where = f"prompt {i}" if len(prompts) > 1 else "the prompt"
            raise ApiError(400, f"{where} has {n} tokens; with max_tokens={max_new} that is over the model's context "
                                f"of {limit} tokens: shorten it or lower max_tokens", param=param)


def _generations(lm, prompts: list[str], params) -> list:
    """Each prompt's Generation (text, generated-token count, finish reason) from the backend's own ids; an
    object with only `generate` (a stand-in) gets an estimate from its re-tokenized text."""
    from slmkit.models import Generation

    detailed = getattr(lm, "generate_detailed", None)
    if detailed is not None:
        return detailed(prompts, params, batch_size=len(prompts))
    texts = lm.generate(prompts, params, batch_size=len(prompts))
    counts = _count(lm, texts)
    return [Generation(t, n, "stop" if n < params.max_new_tokens else "length") for t, n in zip(texts, counts)]


def _generate_fn(lm, params):
    def run(prompts: list[str]) -> list[tuple]:
        return list(zip(_generations(lm, prompts, params), _count(lm, prompts)))

    return run


async def _load_lm(state: ServerState, name: str):
    entry = state.lm_entry(name)
    return entry, await state.run(state.lm, entry)


def _sse(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def _stream_generate(state: ServerState, lm, prompt: str, params, chunk_of, stop, first: dict | None = None):
    """An SSE stream of OpenAI chunks, token by token where the backend exposes a tokenizer."""

    async def events():
        loop = asyncio.get_running_loop()
        if first is not None:
            yield _sse(first)
        tokenizer = getattr(lm, "tokenizer", None)
        emitted, stopped = "", False
        # A stop string can arrive split over pieces: the last (longest stop - 1) characters are held back until
        # the next piece shows whether they start one, so a stream never sends what the full reply would cut.
        stops = [stop] if isinstance(stop, str) else [s for s in (stop or []) if s]
        hold = max((len(s) for s in stops), default=1) - 1
        if tokenizer is not None:
            from dataclasses import replace

            from transformers import TextIteratorStreamer

            # A short wait per piece, retried while the job lives: a request queued behind long work on the model
            # thread waits as long as it takes (a single 600 s wait ended such a stream without [DONE]).
            streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True,
                                           timeout=STREAM_POLL_S)
            run_params = replace(params, extra={**params.extra, "streamer": streamer})
            job = loop.run_in_executor(state.executor, lambda: _generations(lm, [prompt], run_params))
            job.add_done_callback(lambda f: streamer.end() if f.exception() is not None else None)
            iterator = iter(streamer)
            received, drained = "", False
            while True:
                try:
                    piece = await asyncio.to_thread(next, iterator, None)
                except queue.Empty:
                    # A job that ended has put all it will put: one more wait drains what raced this timeout; an
                    # empty queue after that means it ended without ending the stream.
                    if job.done():
                        if drained:
                            break
                        drained = True
                    continue
                if piece is None:
                    break
                if not piece or stopped:
                    continue
                received = received + piece
                text, stopped = _cut(received, stop)
                safe = text if stopped else text[: max(len(emitted), len(text) - hold)]
                delta, emitted = safe[len(emitted):], safe
                if delta:
                    yield _sse(chunk_of(delta, None))
            if not stopped:  # the end: what was held back is no stop string's start
                text, stopped = _cut(received, stop)
                if text[len(emitted):]:
                    yield _sse(chunk_of(text[len(emitted):], None))
                emitted = text
            try:
                (generation,) = await job
            except Exception as exc:  # the headers are sent: report the error inside the stream
                logger.exception("streamed generation failed")
                yield _sse({"error": {"message": f"generation failed: {type(exc).__name__}: {exc}",
                                      "type": "server_error"}})
                yield _sse("[DONE]")
                return
        else:
            (generation,) = await state.run(_generations, lm, [prompt], params)  # no prompt count: no usage here
            emitted, stopped = _cut(generation.text, stop)
            yield _sse(chunk_of(emitted, None))
        yield _sse(chunk_of("", "stop" if stopped else generation.finish_reason))
        yield _sse("[DONE]")

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/completions")
async def completions(body: CompletionRequest, state: ServerState = Depends(get_state)):
    check_texts(state, body.prompt, "prompt")
    params = _params(state, body.max_tokens, body.temperature, body.top_p, body.seed, body.stop)
    entry, lm = await _load_lm(state, body.model)
    await _check_context(state, lm, body.prompt, params.max_new_tokens, "prompt")
    rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        if len(body.prompt) != 1:
            raise ApiError(400, "stream=true takes one prompt; send the prompts in separate requests", param="prompt")

        def chunk(text, finish):
            return {"id": rid, "object": "text_completion", "created": created, "model": entry.name,
                    "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}

        return _stream_generate(state, lm, body.prompt[0], params, chunk, body.stop)
    outputs = await state.batcher.submit(_batch_key(entry, params), body.prompt, _generate_fn(lm, params))
    choices, n_prompt, n_new = [], 0, 0
    for i, (generation, p_tokens) in enumerate(outputs):
        text, stopped = _cut(generation.text, body.stop)
        choices.append({"index": i, "text": text, "logprobs": None,
                        "finish_reason": "stop" if stopped else generation.finish_reason})
        n_prompt, n_new = n_prompt + p_tokens, n_new + generation.n_tokens
    return {"id": rid, "object": "text_completion", "created": created, "model": entry.name, "choices": choices,
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_new, "total_tokens": n_prompt + n_new}}


def chat_prompt(lm, messages: list[dict]) -> str:
    """The model's own chat template when its tokenizer has one, else a plain "Role: text" transcript."""
    tokenizer = getattr(lm, "tokenizer", None)
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        try:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:  # a template that rejects e.g. system turns: fall back to the plain transcript
            logger.warning("chat template of %s failed; using a plain transcript", lm.spec.name)
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, state: ServerState = Depends(get_state)):
    check_texts(state, [m.content for m in body.messages], "messages")
    # OpenAI's chat has no 16-token default (the legacy completions endpoint does): up to the server's limit
    params = _params(state, body.max_completion_tokens or body.max_tokens, body.temperature, body.top_p, body.seed,
                     body.stop, default_max=state.config.max_new_tokens)
    entry, lm = await _load_lm(state, body.model)
    prompt = chat_prompt(lm, [m.model_dump() for m in body.messages])
    await _check_context(state, lm, [prompt], params.max_new_tokens, "messages")
    rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        def chunk(text, finish):
            delta = {"content": text} if text else {}
            return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": entry.name,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        first = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": entry.name,
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                              "finish_reason": None}]}
        return _stream_generate(state, lm, prompt, params, chunk, body.stop, first=first)
    (generation, n_prompt), = await state.batcher.submit(_batch_key(entry, params), [prompt],
                                                         _generate_fn(lm, params))
    text, stopped = _cut(generation.text, body.stop)
    n_new = generation.n_tokens
    return {"id": rid, "object": "chat.completion", "created": created, "model": entry.name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                         "finish_reason": "stop" if stopped else generation.finish_reason}],
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_new, "total_tokens": n_prompt + n_new}}


@router.post("/embeddings")
async def embeddings(body: EmbeddingRequest, state: ServerState = Depends(get_state)):
    check_texts(state, body.input, "input")
    entry, lm = await _load_lm(state, body.model)

    def run(texts: list[str]) -> list[tuple[np.ndarray, int]]:
        vectors = lm.embed(texts, pooling="mean", normalize=True, batch_size=len(texts))
        return list(zip(vectors, _count(lm, texts)))

    outputs = await state.batcher.submit(("embed", entry.target), body.input, run)
    data = []
    for i, (vector, _) in enumerate(outputs):
        vector = np.asarray(vector, dtype="<f4")
        value = (base64.b64encode(vector.tobytes()).decode() if body.encoding_format == "base64"
                 else vector.tolist())
        data.append({"object": "embedding", "index": i, "embedding": value})
    n = sum(t for _, t in outputs)
    return {"object": "list", "data": data, "model": entry.name, "usage": {"prompt_tokens": n, "total_tokens": n}}
