"""A run's event stream: a bounded, numbered buffer that any number of listeners follow and replay.

Events are numbered from 1 in the order the run produced them; the number is the SSE ``id``. A listener
that reconnects with ``Last-Event-ID: n`` gets every event after ``n`` still in the buffer, then follows the
live run. The buffer keeps the last ``maxlen`` events; older ones are dropped (a listener that fell further
behind resumes from the oldest one kept). Buffers live in the executing process's memory; ``on_publish``
copies each event elsewhere (the run manager's writer to ``run_events``, for listeners in other processes).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass

from server.runtime.serde import dumps

# Events every listener gets whatever stream modes it asked for.
CONTROL_EVENTS = frozenset({"metadata", "error", "end"})


@dataclass(frozen=True)
class StreamEvent:
    """One SSE event: its number, name (``values``, ``messages/partial``, ``updates|subgraph``...) and JSON."""

    seq: int
    event: str
    data: str

    @property
    def mode(self) -> str:
        """The stream mode the event belongs to (``messages/partial`` -> ``messages``)."""
        base = self.event.split("|", 1)[0]
        if base.startswith("messages/"):
            return "messages"
        if base == "messages":
            return "messages-tuple"
        return base


class RunStream:
    """The events of one run, shared by its producer (the run task) and its listeners (SSE responses)."""

    def __init__(self, maxlen: int, start_seq: int = 0) -> None:
        self._events: deque[StreamEvent] = deque(maxlen=maxlen)
        self._seq = start_seq
        self._changed = asyncio.Event()
        self.closed = False
        self.on_publish: Callable[[StreamEvent], None] | None = None

    @property
    def last_seq(self) -> int:
        return self._seq

    def publish(self, event: str, data: object) -> StreamEvent:
        """Append an event (``data`` is serialised once, here) and wake the listeners."""
        if self.closed:
            raise RuntimeError("the run's stream is closed")
        self._seq += 1
        item = StreamEvent(self._seq, event, dumps(data))
        self._events.append(item)
        if self.on_publish is not None:
            self.on_publish(item)
        self._wake()
        return item

    def buffered(self) -> list[StreamEvent]:
        return list(self._events)

    def close(self) -> None:
        """No more events: listeners drain what is buffered and stop."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def listen(self, after: int = 0, modes: Collection[str] | None = None) -> AsyncIterator[StreamEvent]:
        """Yield the buffered events numbered above ``after``, then the live ones, until the stream closes.
        ``modes`` keeps only those stream modes (control events always pass)."""
        cursor = after
        while True:
            changed = self._changed
            first = self._events[0].seq if self._events else self._seq + 1
            pending = list(itertools.islice(self._events, max(0, cursor + 1 - first), None))
            for item in pending:
                cursor = item.seq
                if modes is None or item.event in CONTROL_EVENTS or item.mode in modes:
                    yield item
            if self.closed and cursor >= self._seq:
                return
            if not pending:
                await changed.wait()
