"""Text output for the ML commands: aligned tables on stdout, problems on stderr, JSON files."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from ml.errors import InputError
from ml.registry import dumps


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return str(value)


def format_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain aligned table (first column left-aligned, the others right-aligned)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    lines = [fmt(list(header)), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells]
    return "\n".join(lines)


class Output:
    """Where a command writes: results to ``out`` (stdout), problems to ``err`` (stderr)."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def table(self, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self.line(format_table(header, rows))

    def problem(self, text: str) -> None:
        self.err.write(text + "\n")

    def row_errors(self, errors: Sequence[InputError], what: str = "skipped") -> None:
        for err in errors:
            self.problem(f"{what} {err}")


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON (NaN written as null)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(dumps(data), encoding="utf-8")
    return p
