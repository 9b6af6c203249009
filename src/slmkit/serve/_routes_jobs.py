"""Background jobs: POST /v1/jobs/summarize (CSV upload), GET /v1/jobs/{id}, GET /v1/jobs/{id}/result."""

from __future__ import annotations

import re
import shutil

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import FileResponse

from slmkit.errors import SlmkitError
from slmkit.serve._protocol import JobStatus
from slmkit.serve._registry import ApiError
from slmkit.serve._routes_summarize import resolve_language, summarizer_key
from slmkit.serve._state import ServerState, get_state

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")
_METHODS = ("lead", "longest", "zero-shot", "few-shot")


def _job(state: ServerState, job_id: str):
    if not _JOB_ID.match(job_id) or job_id not in state.jobs.jobs:
        raise ApiError(404, f"no job {job_id!r} (job ids come from POST /v1/jobs/summarize)", param="job_id")
    return state.jobs.jobs[job_id]


@router.post("/summarize", response_model=JobStatus, status_code=202)
async def start_summarize(
    file: UploadFile = File(..., description="CSV/TSV/JSONL table with fname and dialogue columns"),
    model: str | None = Form(None),
    method: str = Form("few-shot"),
    language: str = Form("auto"),
    max_new_tokens: int | None = Form(None),
    seed: int | None = Form(None),
    state: ServerState = Depends(get_state),
) -> dict:
    from slmkit.summarize import load_dialogues

    if method not in _METHODS:
        raise ApiError(400, f"method must be one of {', '.join(_METHODS)}, got {method!r}", param="method")
    if language not in ("auto", "ko", "en"):
        raise ApiError(400, f"language must be auto, ko or en, got {language!r}", param="language")
    max_new_tokens = max_new_tokens or min(64, state.config.max_new_tokens)
    if not 1 <= max_new_tokens <= state.config.max_new_tokens:
        raise ApiError(400, f"max_new_tokens must be in 1..{state.config.max_new_tokens}, got {max_new_tokens}",
                       param="max_new_tokens")
    name = (file.filename or "upload.csv").replace("\\", "/").rsplit("/", 1)[-1]
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ".csv"
    if suffix not in (".csv", ".tsv", ".jsonl"):
        raise ApiError(400, f"upload {name!r}: expected a .csv, .tsv or .jsonl table", param="file")
    entry = state.lm_entry(model)
    job_id, folder = state.jobs.new_folder()
    path = folder / f"input{suffix}"
    path.write_bytes(await file.read())
    try:
        frame = await state.run(lambda: load_dialogues(path, strict=True))  # DataError -> 400 naming row + column
        if frame.empty:
            raise ApiError(400, f"upload {name!r} has no dialogue rows", param="file")
    except (ApiError, SlmkitError) as exc:
        # A rejected upload leaves no job folder behind, and its error names the client's file, not the server's
        # path to its copy.
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, ApiError):
            raise
        raise type(exc)(str(exc).replace(str(path), f"upload {name!r}")) from exc
    seed = state.config.seed if seed is None else seed
    key = summarizer_key(entry, method, resolve_language(language, list(frame["dialogue"])), max_new_tokens, 1, seed)
    return state.jobs.start_summarize(job_id, folder, frame, key, path.name).to_dict()


@router.get("", tags=["jobs"])
def list_jobs(state: ServerState = Depends(get_state)) -> dict:
    return {"jobs": [job.to_dict() for job in state.jobs.jobs.values()]}


@router.get("/{job_id}", response_model=JobStatus)
def job_status(job_id: str, state: ServerState = Depends(get_state)) -> dict:
    return _job(state, job_id).to_dict()


@router.get("/{job_id}/result")
def job_result(job_id: str, state: ServerState = Depends(get_state)):
    job = _job(state, job_id)
    if job.status != "done":
        raise ApiError(409, f"job {job_id} is {job.status} ({job.done}/{job.total}); the result exists once it is "
                            "done" + (f": {job.error}" if job.error else ""), param="job_id")
    return FileResponse(job.result, media_type="text/csv", filename=f"summaries-{job_id}.csv")
