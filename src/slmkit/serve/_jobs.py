"""Background batch jobs: a CSV of dialogues summarized chunk by chunk, with progress and a result file.

Each chunk is one call on the model thread, so interactive requests still get served between chunks. The
result is written atomically when the job ends; a failed job keeps its one-line error.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)
RESULT_NAME = "summaries.csv"
CHUNK = 8


@dataclass
class Job:
    id: str
    folder: Path
    total: int
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


class JobManager:
    def __init__(self, state, folder: Path) -> None:
        self.state, self.folder = state, Path(folder)
        self.jobs: dict[str, Job] = {}

    def new_folder(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex[:16]
        folder = self.folder / job_id
        folder.mkdir(parents=True, exist_ok=False)
        return job_id, folder

    def start_summarize(self, job_id: str, folder: Path, frame, key: tuple) -> Job:
        job = Job(job_id, folder, total=len(frame))
        self.jobs[job_id] = job
        job.task = asyncio.get_running_loop().create_task(self._run_summarize(job, frame, key))
        return job

    async def _run_summarize(self, job: Job, frame, key: tuple) -> None:
        import pandas as pd

        from slmkit.data import write_table
        from slmkit.errors import SlmkitError
        from slmkit.serve._routes_summarize import build

        job.status = "running"
        try:
            summarizer = await self.state.run(build, self.state, key)
            dialogues, ids = list(frame["dialogue"]), list(frame["fname"])
            summaries: list[str] = []
            for start in range(0, len(dialogues), CHUNK):
                part = dialogues[start : start + CHUNK]
                summaries += await self.state.run(summarizer.summarize, part, ids[start : start + CHUNK])
                job.done = len(summaries)
            await self.state.run(write_table, job.result, pd.DataFrame({"fname": ids, "summary": summaries}))
            job.status = "done"
        except asyncio.CancelledError:
            job.status, job.error = "failed", "the server stopped before the job finished"
            raise
        except SlmkitError as exc:
            job.status, job.error = "failed", str(exc)
        except Exception as exc:  # reported on the job, never as a traceback to the client
            logger.exception("job %s failed", job.id)
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        for job in self.jobs.values():
            if job.task is not None and not job.task.done():
                job.task.cancel()
