"""A small progress bar for long steps, written to stderr.

On a terminal it redraws one line in place; elsewhere (logs, CI, tests) it writes nothing until the step
ends and then one summary line, so captured output stays readable. Library code takes an optional
:class:`Progress` factory; pass :func:`silent` (the default) to show nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO


class Progress:
    """Progress of one named step with ``total`` units of work."""

    def __init__(self, desc: str, total: int, *, stream: TextIO | None = None, width: int = 28) -> None:
        self.desc = desc
        self.total = max(int(total), 1)
        self.done = 0
        self.width = width
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.perf_counter()
        self._last_draw = 0.0
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)
        now = time.perf_counter()
        if self.tty and (now - self._last_draw > 0.1 or self.done == self.total):
            self._last_draw = now
            self._draw(final=False)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._draw(final=True)

    def _draw(self, *, final: bool) -> None:
        frac = self.done / self.total
        filled = round(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self.started
        line = f"{self.desc:<28} [{bar}] {self.done}/{self.total} {elapsed:6.1f}s"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        elif final:
            self.stream.write(line + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _Silent(Progress):
    def __init__(self, desc: str, total: int) -> None:
        self.desc, self.total, self.done = desc, max(int(total), 1), 0
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)

    def close(self) -> None:
        self._closed = True


ProgressFactory = Callable[[str, int], Progress]


def silent(desc: str, total: int) -> Progress:
    """A progress object that shows nothing."""
    return _Silent(desc, total)


def stderr_bar(desc: str, total: int) -> Progress:
    """A progress bar on stderr."""
    return Progress(desc, total)
