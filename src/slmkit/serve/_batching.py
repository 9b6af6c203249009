"""Micro-batching: concurrent requests for the same model call are merged into one batched call.

All model work runs on one worker thread (the models are not thread-safe and the CPU is already used by
torch's own threads). While that thread is busy, new requests queue per key (model + call kind + options);
when it frees up, every queued request of the oldest key goes in one call, up to `max_items` texts.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


@dataclass
class _Pending:
    items: list
    future: asyncio.Future
    fn: Callable[[list], Sequence]


@dataclass
class BatchStats:
    """Counters for /v1/stats and the benchmark: requests, texts and model calls per call kind."""

    requests: dict = field(default_factory=dict)
    items: dict = field(default_factory=dict)
    calls: dict = field(default_factory=dict)
    busy_seconds: float = 0.0

    def record(self, kind: str, n_requests: int, n_items: int, seconds: float) -> None:
        self.requests[kind] = self.requests.get(kind, 0) + n_requests
        self.items[kind] = self.items.get(kind, 0) + n_items
        self.calls[kind] = self.calls.get(kind, 0) + 1
        self.busy_seconds += seconds

    def to_dict(self) -> dict:
        return {"requests": self.requests, "items": self.items, "model_calls": self.calls,
                "busy_seconds": round(self.busy_seconds, 3)}


class MicroBatcher:
    """Queue per key; one consumer task feeds the single model thread.

    Args:
        executor: the one-thread executor every model call runs on.
        wait_s: how long the consumer waits after the first request for others to join.
        max_items: most items per call; 1 means every request is its own call (micro-batching off).
    """

    def __init__(self, executor: ThreadPoolExecutor, *, wait_s: float = 0.0, max_items: int = 32) -> None:
        self.executor, self.wait_s, self.max_items = executor, wait_s, max_items
        self.stats = BatchStats()
        self._queues: OrderedDict[Hashable, list[_Pending]] = OrderedDict()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def submit(self, key: Hashable, items: list, fn: Callable[[list], Sequence]) -> list:
        """Run `fn` over `items`, possibly merged with other requests of the same key; returns this request's
        outputs. `fn(all_items)` must return one output per item, in order."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._consume())
        pending = _Pending(list(items), loop.create_future(), fn)
        self._queues.setdefault(key, []).append(pending)
        self._wake.set()
        return await pending.future

    def _take(self) -> tuple[Hashable, list[_Pending]]:
        key, queue = next(iter(self._queues.items()))
        batch, n = [], 0
        while queue and (not batch or (self.max_items > 1 and n + len(queue[0].items) <= self.max_items)):
            item = queue.pop(0)
            batch.append(item)
            n += len(item.items)
        if queue:
            self._queues.move_to_end(key)  # fairness: other keys go next
        else:
            del self._queues[key]
        return key, batch

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            if self.wait_s > 0 and self.max_items > 1:
                await asyncio.sleep(self.wait_s)
            while self._queues:
                key, batch = self._take()
                items = [x for p in batch for x in p.items]
                tic = time.perf_counter()
                try:
                    outputs = await loop.run_in_executor(self.executor, batch[0].fn, items)
                    outputs = list(outputs)
                    if len(outputs) != len(items):
                        raise RuntimeError(f"batched call returned {len(outputs)} outputs for {len(items)} items")
                except Exception as exc:  # every request of the batch gets the error
                    for p in batch:
                        if not p.future.done():
                            p.future.set_exception(exc)
                    continue
                finally:
                    kind = key[0] if isinstance(key, tuple) else str(key)
                    self.stats.record(str(kind), len(batch), len(items), time.perf_counter() - tic)
                start = 0
                for p in batch:
                    if not p.future.done():
                        p.future.set_result(outputs[start : start + len(p.items)])
                    start += len(p.items)
            self._wake.clear()
