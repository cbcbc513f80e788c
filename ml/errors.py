"""Errors raised by the ML layer for bad input.

Every problem with user-supplied data (a missing column, a value of the wrong type, a category the model
never saw, an empty file) is reported as an :class:`InputError`. It names the field, the allowed values
when there is a closed set, and the line number of the offending row when the input came from a file, so
that the CLI and the HTTP layer can show a clear message instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class InputError(ValueError):
    """Bad input: names the field, what is allowed (optional) and the file line (optional)."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        allowed: Sequence[str] | None = None,
        row: int | None = None,
    ) -> None:
        self.field = field
        self.allowed: list[str] | None = list(allowed) if allowed is not None else None
        self.row = row
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        parts: list[str] = []
        if self.row is not None:
            parts.append(f"line {self.row}")
        if self.field is not None:
            parts.append(self.field)
        prefix = ": ".join(parts)
        text = f"{prefix}: {self.detail}" if prefix else self.detail
        if self.allowed is not None:
            text += f" (allowed: {', '.join(self.allowed)})"
        return text

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form, e.g. for a batch job's error list."""
        return {"row": self.row, "field": self.field, "allowed": self.allowed, "message": str(self)}


def rows_with_errors(errors: Sequence[InputError]) -> int:
    """How many input rows the errors are about (a row may have several; errors without a row count once)."""
    return len({e.row for e in errors if e.row is not None}) + sum(1 for e in errors if e.row is None)
