"""Reading user CSV files robustly.

The files we accept come from other systems and from people: they may start with a UTF-8 byte-order mark,
spell column names in a different case, contain blank lines or rows with the wrong number of fields. This
module reads such a file into a frame of *strings* (type conversion belongs to the feature pipelines), keeps
the physical line number of every row in the :data:`LINE` column, and collects malformed rows as
:class:`~ml.errors.InputError` values instead of failing the whole file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ml.errors import InputError

LINE = "_line"
"""Name of the column holding each row's 1-based line number in the source file (the header is line 1)."""


@dataclass
class CsvRows:
    """A CSV read as strings: the header as written, the good rows, and one error per bad row."""

    header: list[str]
    frame: pd.DataFrame
    errors: list[InputError] = field(default_factory=list)


def read_csv_rows(path: str | Path) -> CsvRows:
    """Read ``path`` as UTF-8 CSV (BOM tolerated) into strings, reporting malformed rows by line number."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"file not found: {p.name}", field="path")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p.name} is not UTF-8 text (byte {exc.start})", field="path") from exc
    return parse_csv_text(text, source=p.name)


def parse_csv_text(text: str, *, source: str = "input") -> CsvRows:
    """Parse CSV text (see :func:`read_csv_rows`)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise InputError(f"{source} is empty: expected a header line and data rows", field="file")
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    errors: list[InputError] = []
    try:
        for record in reader:
            if not record or all(not cell.strip() for cell in record):
                continue
            if header is None:
                header = [cell.strip() for cell in record]
                continue
            if len(record) != len(header):
                errors.append(
                    InputError(
                        f"expected {len(header)} fields, found {len(record)}",
                        field="row",
                        row=reader.line_num,
                    )
                )
                continue
            rows.append(record)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", field="file", row=reader.line_num) from exc
    assert header is not None  # the text is not blank, so some record was read
    _check_header(header)
    frame = pd.DataFrame(rows, columns=header, dtype=object) if rows else pd.DataFrame(columns=header)
    frame[LINE] = pd.Series(lines, dtype="int64")
    return CsvRows(header=header, frame=frame, errors=errors)


def _check_header(header: Sequence[str]) -> None:
    seen: dict[str, str] = {}
    for name in header:
        if not name:
            raise InputError("the header has an empty column name", field="header", row=1)
        key = normalise_column(name)
        if key in seen:
            raise InputError(f"duplicate column {name!r} (also {seen[key]!r})", field="header", row=1)
        seen[key] = name


def normalise_column(name: str) -> str:
    """Column-name key used for matching: case-folded, trimmed, inner spaces turned into underscores."""
    return "_".join(name.strip().casefold().split())


def resolve_columns(
    columns: Iterable[str],
    aliases: Mapping[str, Sequence[str]],
    *,
    required: Iterable[str],
) -> dict[str, str]:
    """Map canonical names to the columns present, matching ``aliases`` case-insensitively.

    ``aliases`` maps each canonical name to the spellings accepted for it (the canonical name itself is
    always accepted). Returns ``{canonical: actual column}`` for every canonical name found; a required
    name that is absent raises :class:`InputError` naming it and the accepted spellings.
    """
    present = {normalise_column(c): c for c in columns if c != LINE}
    found: dict[str, str] = {}
    for canonical, spellings in aliases.items():
        keys = [normalise_column(canonical), *(normalise_column(s) for s in spellings)]
        hits = [present[k] for k in dict.fromkeys(keys) if k in present]
        if len(hits) > 1:
            raise InputError(f"columns {hits} all mean {canonical}; keep one", field=canonical)
        if hits:
            found[canonical] = hits[0]
    for canonical in required:
        if canonical not in found:
            spellings = list(dict.fromkeys([*aliases.get(canonical, ()), canonical]))
            raise InputError(f"missing column (accepted names: {', '.join(spellings)})", field=canonical)
    return found
