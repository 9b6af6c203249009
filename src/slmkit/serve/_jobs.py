"""Background batch jobs: a CSV of dialogues summarized chunk by chunk, with progress and a result file.

Each chunk is one call on the model thread, so interactive requests still get served between chunks. The
result is written atomically when the job ends; a failed job keeps its one-line error.

A job's folder holds its upload, `job.json` (status, progress and the summarizer settings) and, while it runs,
the summaries so far (`partial.json`, rewritten atomically after each chunk). A server started on the same
`--jobs-dir` lists the jobs it finds there and resumes the unfinished ones from their last chunk, so a restart
loses neither finished results nor work done.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)
RESULT_NAME = "summaries.csv"
RECORD_NAME = "job.json"
PARTIAL_NAME = "partial.json"
CHUNK = 8


@dataclass
class Job:
    id: str
    folder: Path
    total: int
    input: str = ""  # the upload's file name inside `folder`
    key: tuple = ()  # the summarizer settings (see `summarizer_key`)
    status: str = "queued"
    done: int = 0
    error: str | None = None
    task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def result(self) -> Path:
        return self.folder / RESULT_NAME

    def to_dict(self) -> dict:
        return {"id": self.id, "status": self.status, "done": self.done, "total": self.total, "error": self.error,
                "result_url": f"/v1/jobs/{self.id}/result" if self.status == "done" else None}

    def save(self) -> None:
        from slmkit.data import write_json

        write_json(self.folder / RECORD_NAME, {k: v for k, v in self.to_dict().items() if k != "result_url"}
                   | {"input": self.input, "key": list(self.key)})


class JobManager:
    def __init__(self, state, folder: Path) -> None:
        self.state, self.folder = state, Path(folder)
        self.jobs: dict[str, Job] = {}
        self._load()

    def _load(self) -> None:
        """The jobs an earlier server left in this folder: finished and failed ones as they were, unfinished
        ones queued to resume (`resume_unfinished`, once the event loop runs)."""
        if not self.folder.is_dir():
            return
        for record_path in sorted(self.folder.glob(f"*/{RECORD_NAME}")):
            try:
                record = json.loads(record_path.read_text(encoding="utf-8"))
                job = Job(record["id"], record_path.parent, int(record["total"]), record.get("input", ""),
                          tuple(record.get("key") or ()), record["status"], int(record["done"]), record.get("error"))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("%s: not a readable job record (%s); skipped", record_path, exc)
                continue
            if job.status == "done" and not job.result.is_file():
                job.status, job.error = "failed", f"its result file {RESULT_NAME} is missing"
            self.jobs[job.id] = job

    def resume_unfinished(self) -> None:
        """Start again every queued or running job found at startup, from its last saved chunk."""
        for job in self.jobs.values():
            if job.status in ("queued", "running") and job.task is None:
                logger.info("resuming job %s at %d/%d", job.id, job.done, job.total)
                job.task = asyncio.get_running_loop().create_task(self._run_summarize(job, None))

    def new_folder(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex[:16]
        folder = self.folder / job_id
        folder.mkdir(parents=True, exist_ok=False)
        return job_id, folder

    def start_summarize(self, job_id: str, folder: Path, frame, key: tuple, input_name: str) -> Job:
        job = Job(job_id, folder, total=len(frame), input=input_name, key=tuple(key))
        job.save()
        self.jobs[job_id] = job
        job.task = asyncio.get_running_loop().create_task(self._run_summarize(job, frame))
        return job

    async def _run_summarize(self, job: Job, frame) -> None:
        import pandas as pd

        from slmkit.data import write_json, write_table
        from slmkit.errors import SlmkitError
        from slmkit.serve._routes_summarize import build

        try:
            if frame is None:  # resumed: the upload was checked when the job was made
                from slmkit.summarize import load_dialogues

                frame = await self.state.run(lambda: load_dialogues(job.folder / job.input, strict=True))
            partial = job.folder / PARTIAL_NAME
            summaries: list[str] = json.loads(partial.read_text(encoding="utf-8")) if partial.is_file() else []
            job.status, job.done = "running", len(summaries)
            await self.state.run(job.save)
            summarizer = await self.state.run(build, self.state, job.key)
            dialogues, ids = list(frame["dialogue"]), list(frame["fname"])
            for start in range(len(summaries), len(dialogues), CHUNK):
                part = dialogues[start : start + CHUNK]
                summaries += await self.state.run(summarizer.summarize, part, ids[start : start + CHUNK])
                job.done = len(summaries)
                await self.state.run(write_json, partial, summaries)
                await self.state.run(job.save)
            await self.state.run(write_table, job.result, pd.DataFrame({"fname": ids, "summary": summaries}))
            job.status = "done"
            partial.unlink(missing_ok=True)
        except asyncio.CancelledError:
            # Kept "running" in job.json: a server started on the same --jobs-dir resumes it.
            job.status, job.error = "failed", "the server stopped before the job finished"
            raise
        except SlmkitError as exc:
            job.status, job.error = "failed", str(exc)
        except Exception as exc:  # reported on the job, never as a traceback to the client
            logger.exception("job %s failed", job.id)
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
        if job.status != "running":
            job.save()

    def close(self) -> None:
        for job in self.jobs.values():
            if job.task is not None and not job.task.done():
                job.task.cancel()
