"""POST /v1/quality/score: texts in, forward/reverse losses and the reverse-modeling score S out."""

from __future__ import annotations

import math

from fastapi import APIRouter, Depends

from slmkit.serve._protocol import QualityScoreRequest
from slmkit.serve._state import ServerState, check_texts, get_state

router = APIRouter(prefix="/v1", tags=["quality"])


def _clean(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@router.post("/quality/score")
async def quality_score(body: QualityScoreRequest, state: ServerState = Depends(get_state)) -> dict:
    from slmkit.quality import REJECT_COLUMN, SCORE_COLUMNS

    check_texts(state, body.texts, "texts")
    entry = state.registry.get(body.model, ("scorer",))
    pair = await state.run(state.scorer, entry)

    def run(texts: list[str]) -> list[dict]:
        frame = pair.score_texts(texts)
        return [{c: _clean(row[c]) for c in (*SCORE_COLUMNS, REJECT_COLUMN)} for _, row in frame.iterrows()]

    rows = await state.batcher.submit(("quality", entry.target), body.texts, run)
    return {"model": entry.name, "columns": list(SCORE_COLUMNS), "results": rows}
