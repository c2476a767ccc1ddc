"""Group commit: judgements from concurrent requests share one transaction and one fsync.

With `synchronous=FULL` every commit waits for the disk; one commit per rating caps ingest at
the disk's fsync rate. Requests that arrive while a batch is being written wait for the next
batch and are acknowledged only after it commits, so "201 Created" still means "on disk".
Each write runs in its own savepoint: one bad judgement fails alone, not its batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from feedback import Store

log = logging.getLogger("flywheel.writes")

BATCH = 512


class GroupCommit:
    def __init__(self, store: Store):
        self.store = store
        self.queue: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._drain())

    async def run(self, write: Callable[..., Any], *args: Any) -> Any:
        """Run `write(*args)` in the next batch; return its result or raise its error."""
        if self._task is None:  # not started (offline use, tests): write directly
            return await asyncio.to_thread(write, *args)
        done = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((write, args, done))
        return await done

    def _write(self, batch: list) -> list:
        outcomes = []
        with self.store.transaction():
            for write, args, _ in batch:
                try:
                    with self.store.transaction():  # a savepoint per write
                        outcomes.append(write(*args))
                except Exception as exc:
                    outcomes.append(exc)
        return outcomes

    async def _drain(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                outcomes = await asyncio.to_thread(self._write, batch)
            except Exception as exc:  # the commit itself failed: nothing in the batch is stored
                log.exception("committing %d judgements failed", len(batch))
                outcomes = [exc] * len(batch)
            for (_, _, done), outcome in zip(batch, outcomes, strict=True):
                if not done.cancelled():
                    if isinstance(outcome, Exception):
                        done.set_exception(outcome)
                    else:
                        done.set_result(outcome)
                self.queue.task_done()

    async def close(self) -> None:
        """Commit what was queued, then stop."""
        if self._task:
            await self.queue.join()
            self._task.cancel()
