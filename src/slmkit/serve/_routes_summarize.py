"""POST /v1/summarize: dialogues in, summaries out, with any built-in or fine-tuned model and any method."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from slmkit.serve._protocol import SummarizeRequest, SummarizeResponse
from slmkit.serve._registry import ApiError, Entry
from slmkit.serve._state import ServerState, check_texts, get_state

router = APIRouter(prefix="/v1", tags=["summarize"])


def summarizer_key(entry: Entry, method: str, language: str, max_new_tokens: int, num_beams: int, seed: int):
    return ("summarize", entry.target, method, language, max_new_tokens, num_beams, seed)


def build(state: ServerState, key: tuple):
    """The summarizer for `key` (made once, on the model thread); shares the loaded LM with other endpoints."""
    from slmkit.summarize import PredictConfig, build_summarizer

    _, target, method, language, max_new_tokens, num_beams, seed = key
    config = PredictConfig(method=method, model=target, language=language, max_new_tokens=max_new_tokens,
                           num_beams=num_beams, seed=seed)

    def make():
        lm = None
        if method not in ("lead", "longest"):
            lm = state.loaded_lm(target)
        return build_summarizer(config, language, lm=lm)  # the request's budget, a fine-tuned run's included

    return state.cached(key, make)


def resolve_language(language: str, dialogues: list[str]) -> str:
    from slmkit.summarize import detect_language

    return detect_language(dialogues) if language == "auto" else language


@router.post("/summarize", response_model=SummarizeResponse)
async def summarize(body: SummarizeRequest, state: ServerState = Depends(get_state)) -> dict:
    check_texts(state, body.dialogues, "dialogues")
    max_new_tokens = body.max_new_tokens or min(64, state.config.max_new_tokens)
    if max_new_tokens > state.config.max_new_tokens:
        raise ApiError(400, f"max_new_tokens={max_new_tokens} is over the server's limit of "
                            f"{state.config.max_new_tokens} (server option --max-new-tokens)", param="max_new_tokens")
    entry = state.lm_entry(body.model)
    language = resolve_language(body.language, body.dialogues)
    seed = state.config.seed if body.seed is None else body.seed
    key = summarizer_key(entry, body.method, language, max_new_tokens, body.num_beams, seed)
    summarizer = await state.run(build, state, key)
    summaries = await state.batcher.submit(key, body.dialogues, summarizer.summarize)
    return {"model": entry.name, "method": body.method, "language": language, "summaries": summaries}
