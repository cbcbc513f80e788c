"""This process's line to the others: one dedicated connection that holds the owner lock and LISTENs.

The owner lock (a session advisory lock named by a random ``owner_key``) says the process is alive: runs it
executes carry the key, and a run whose key is free belonged to a dead process. The same connection receives
the run queue's notifications (:mod:`server.runtime.queue`) and hands them to the run manager; followers of a
run in another process wait on :meth:`Bus.wait` instead of polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

import psycopg

from server.runtime import queue

log = logging.getLogger(__name__)

OWNER_CLASS = 0x52554E53  # "RUNS": namespace of the owner advisory locks (two-key form)


class Bus:
    """Owner lock + LISTEN; ``on_runs``/``on_cancel`` are called with a run id for each notification."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], owner_key: int) -> None:
        self.conn = conn
        self.owner_key = owner_key
        self.on_runs: Callable[[str], None] = lambda _: None
        self.on_cancel: Callable[[str], None] = lambda _: None
        self._waiters: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str) -> Bus:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        try:
            while True:
                key = random.randint(1, 2**31 - 1)
                cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (OWNER_CLASS, key))
                row = await cur.fetchone()
                if row and row[0]:
                    break
            for channel in (queue.RUNS, queue.CANCEL, queue.EVENTS):
                await conn.execute(f"LISTEN {channel}")
        except BaseException:
            await conn.close()
            raise
        return cls(conn, key)

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="run-bus")

    async def _listen(self) -> None:
        try:
            async for note in self.conn.notifies():
                try:
                    if note.channel == queue.RUNS:
                        self.on_runs(note.payload)
                    elif note.channel == queue.CANCEL:
                        self.on_cancel(note.payload)
                    self.wake(note.payload)
                except Exception:
                    log.exception("a run notification could not be handled", extra={"channel": note.channel})
        except (psycopg.OperationalError, asyncio.CancelledError):
            return

    def wake(self, run_id: str) -> None:
        """Wake whoever waits on ``run_id`` (new events, the run ended, it was claimed here)."""
        event = self._waiters.pop(run_id, None)
        if event is not None:
            event.set()

    def waiter(self, run_id: str) -> asyncio.Event:
        """An event set by the next thing that happens to ``run_id``. Take it *before* reading the run's
        state, then wait on it: a notification arriving in between is not lost."""
        return self._waiters.setdefault(run_id, asyncio.Event())

    @staticmethod
    async def wait(event: asyncio.Event, seconds: float) -> None:
        """Until ``event`` is set, or ``seconds`` pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.conn.close()
