"""Group commit: writes from many concurrent runs share transactions.

Every op queued while a transaction is in flight joins the next one, so a busy worker
commits many checkpoints per fsync while an idle one commits each at once. A caller's
future resolves only after its op's transaction committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from lockgate.store import Store
from lockgate.store.ops import Op

MAX_BATCH = 512
T = TypeVar("T")


class Committer:
    """Applies queued ops in batches on the store's single writer connection."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._queue: asyncio.Queue[tuple[Op[Any], asyncio.Future[Any]]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lockgate-commit")
        self._task: asyncio.Task[None] | None = None
        #: (transactions, ops) committed, for the benchmarks.
        self.batches = 0
        self.ops = 0

    def start(self) -> None:
        """Begin committing on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="committer")

    def submit(self, op: Op[T]) -> asyncio.Future[T]:
        """Queue ``op``; the future resolves after its transaction commits."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, fut))
        return fut

    async def apply(self, op: Op[T]) -> T:
        """Queue ``op`` and wait for its result (or its error)."""
        return await self.submit(op)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            ops = [op for op, _ in batch]
            try:
                results = await loop.run_in_executor(self._executor, self._store.apply_batch, ops)
            except Exception as exc:
                results = [exc] * len(batch)
            self.batches += 1
            self.ops += len(batch)
            for (_, fut), result in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        while not self._queue.empty():
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)
