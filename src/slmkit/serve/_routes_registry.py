"""What is served: GET /v1/registry (configs and metrics), learning-curve files, /v1/stats, /health."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse

from slmkit.serve._registry import KINDS, ApiError
from slmkit.serve._state import ServerState, get_state

router = APIRouter(tags=["registry"])
FILES = {"learning_curve.png": "image/png", "curve.png": "image/png"}
_MAX_HISTORY = 5000


@router.get("/health")
def health() -> dict:
    return {"status": "ok"}


@router.get("/v1/registry")
def registry(state: ServerState = Depends(get_state)) -> dict:
    entries = state.registry.scan()
    return {"served_dir": str(state.registry.served_dir) if state.registry.served_dir else None,
            "entries": [e.to_dict() for e in entries.values()]}


@router.get("/v1/registry/entry")
def entry(name: str = Query(...), state: ServerState = Depends(get_state)) -> dict:
    """One entry with its learning history (metrics.jsonl rows of a run, curve.json of a classifier)."""
    item = state.registry.get(name, KINDS, param="name")
    out = item.to_dict()
    history = []
    if item.path is not None and (item.path / "metrics.jsonl").is_file():
        for line in (item.path / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[:_MAX_HISTORY]:
            try:
                history.append(json.loads(line))
            except ValueError:
                continue
    out["history"] = history
    return out


@router.get("/v1/registry/file")
def entry_file(name: str = Query(...), file: str = Query(...), state: ServerState = Depends(get_state)):
    if file not in FILES:
        raise ApiError(400, f"file must be one of {', '.join(FILES)}, got {file!r}", param="file")
    item = state.registry.get(name, KINDS, param="name")
    if item.path is None or not (item.path / file).is_file():
        raise ApiError(404, f"{name!r} has no {file}", param="file")
    return FileResponse(item.path / file, media_type=FILES[file])


@router.get("/v1/stats")
def stats(state: ServerState = Depends(get_state)) -> dict:
    return {"batching": state.batcher.stats.to_dict(), "loaded": state.loaded(),
            "jobs": len(state.jobs.jobs), "config": state.config.to_dict()}
