"""Time periods named in a question, resolved against the data's "today" (``as_of``).

:func:`parse_periods` finds every period phrase in a text and returns the period asked about and, for a
comparison ("last week compared with the week before", "this month vs last month", "... than last month"),
the period it is compared with. Periods are inclusive ``[start, end]`` and never end after ``as_of``.

Supported phrases (case-insensitive):

* days: "today", "yesterday", "the day before yesterday", "on 2026-10-03", "on Monday", "last Monday";
* weeks: "this week" / "week to date", "last week" / "previous week", "last weekend", "past week";
* months: "this month" / "month to date", "last month", "in October", "October 2026", "Oct 2026";
* quarters and years: "Q3", "Q3 2026", "this quarter", "last quarter", "this year" / "year to date",
  "last year", "2025" after "in" / "during";
* rolling windows: "last 7 days", "past 30 days", "previous 4 weeks", "last 3 months";
* open ranges: "since Monday", "since 2026-10-01", "since October";
* explicit ranges: "2026-10-01 to 2026-10-15", "from 2026-10-01 until 2026-10-15", "between ... and ...";
* relative to the other period: "the week before", "the previous week", "the month before", "the prior
  period", "the period before", "the same period last year", "the year before".

Weeks run Monday to Sunday. A month or quarter without a year is its latest occurrence that has started by
``as_of``. A comparison with no second period named ("how did last week compare?") is compared with the period
just before it, of the same kind and length.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Period", "PeriodParse", "parse_periods", "previous_period"]


@dataclass(frozen=True)
class Period:
    """An inclusive date range with the words it was asked with."""

    start: dt.date
    end: dt.date
    label: str
    grain: str = field(default="days", compare=False)
    """The calendar unit it is aligned to (day, week, month, quarter, year; "days" for any span)."""

    @property
    def days(self) -> int:
        """Number of days in the period (inclusive)."""
        return (self.end - self.start).days + 1

    def to_dict(self) -> dict[str, str]:
        """JSON-friendly form."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "label": self.label,
                "grain": self.grain}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Period:
        """The period :meth:`to_dict` gave."""
        start, end = dt.date.fromisoformat(data["start"]), dt.date.fromisoformat(data["end"])
        return cls(start, end, data.get("label", f"{start} to {end}"), data.get("grain", "days"))


@dataclass(frozen=True)
class PeriodParse:
    """What :func:`parse_periods` found: the period, the comparison period, and date-like words it could not read."""

    period: Period | None = None
    compare_period: Period | None = None
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Relative:
    """A period named relative to another one ("the week before")."""

    grain: str
    label: str


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    value: Period | _Relative


_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_MONTHS["sept"] = 9
_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
_WEEKDAYS.update({name.lower()[:3]: i for i, name in enumerate(calendar.day_name)})
_NUMBER_WORDS = {
    "a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14, "thirty": 30, "sixty": 60, "ninety": 90,
}  # fmt: skip

_MONTH_RE = (
    r"(?:january|february|march|april|may|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)"
)
_WEEKDAY_RE = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|wed|thu|fri|sat|sun)"
_DATE_RE = r"\d{4}-\d{1,2}-\d{1,2}"
_COUNT_RE = r"(\d{1,3}|" + "|".join(k for k in _NUMBER_WORDS if k != "a") + ")"
_COMPARE_CUE = re.compile(
    r"\b(?:compar\w*|vs\.?|versus|against|than|relative to|over the|change|growth|grew|up or down|"
    r"week over week|month over month|year over year|wow|mom|yoy)\b",
    re.IGNORECASE,
)


# --- date arithmetic -------------------------------------------------------------------------------------


def _month_end(year: int, month: int) -> dt.date:
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def _add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by whole months, the day of month clamped to the target month's length."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _clip(start: dt.date, end: dt.date, as_of: dt.date, label: str, grain: str) -> Period:
    return Period(start, min(end, as_of), label, grain)


def _latest_month(month: int, as_of: dt.date) -> int:
    """Year of the latest occurrence of ``month`` that has started by ``as_of``."""
    return as_of.year if dt.date(as_of.year, month, 1) <= as_of else as_of.year - 1


def _latest_weekday(weekday: int, as_of: dt.date, *, strictly_before: bool = False) -> dt.date:
    back = (as_of.weekday() - weekday) % 7
    if back == 0 and strictly_before:
        back = 7
    return as_of - dt.timedelta(days=back)


def _grain(period: Period) -> str:
    return period.grain


def _shift(period: Period, grain: str, label: str) -> Period:
    """The period one ``grain`` before ``period``, of the same length (a full month maps to a full month)."""
    if grain in ("month", "quarter", "year"):
        months = {"month": 1, "quarter": 3, "year": 12}[grain]
        start = _add_months(period.start, -months)
        full = period.end == _month_end(period.end.year, period.end.month)
        end = _add_months(period.end, -months)
        if full:
            end = _month_end(end.year, end.month)
        return Period(start, end, label, period.grain)
    step = 7 if grain == "week" else period.days
    delta = dt.timedelta(days=step)
    return Period(period.start - delta, period.end - delta, label, period.grain)


def previous_period(period: Period, label: str = "the previous period") -> Period:
    """The period just before ``period``, of the same kind: the previous week, month, quarter, year or span."""
    return _shift(period, _grain(period), label)


def _resolve_relative(rel: _Relative, base: Period) -> Period:
    if rel.grain == "same_last_year":
        return _shift(base, "year", rel.label)
    if rel.grain == "period":
        return previous_period(base, rel.label)
    if rel.grain == "week" and base.days > 7:
        end = base.start - dt.timedelta(days=1)
        return Period(end - dt.timedelta(days=6), end, rel.label, "days")
    return _shift(base, rel.grain, rel.label)


# --- phrase finders ----------------------------------------------------------------------------------------

_Resolver = Callable[[re.Match[str], dt.date], "Period | _Relative | None"]


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat("-".join(part.zfill(2) for part in text.split("-")))
    except ValueError:
        return None


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBER_WORDS[word.lower()]


def _range(m: re.Match[str], as_of: dt.date) -> Period | None:
    first, second = _date(m.group(1)), _date(m.group(2))
    if first is None or second is None:
        return None
    first, second = min(first, second), max(first, second)
    return Period(first, second, f"{first.isoformat()} to {second.isoformat()}", "days")


def _since_date(m: re.Match[str], as_of: dt.date) -> Period | None:
    day = _date(m.group(1))
    return None if day is None or day > as_of else Period(day, as_of, f"since {day.isoformat()}", "days")


def _since_weekday(m: re.Match[str], as_of: dt.date) -> Period:
    day = _latest_weekday(_WEEKDAYS[m.group(1).lower()], as_of)
    return Period(day, as_of, f"since {calendar.day_name[day.weekday()]}", "days")


def _since_month(m: re.Match[str], as_of: dt.date) -> Period:
    month = _MONTHS[m.group(1).lower()]
    start = dt.date(_latest_month(month, as_of), month, 1)
    return Period(start, as_of, f"since {calendar.month_name[month]} {start.year}", "days")


def _single_date(m: re.Match[str], as_of: dt.date) -> Period | None:
    day = _date(m.group(1))
    return None if day is None else Period(day, day, day.isoformat(), "day")


def _fixed(kind: str) -> _Resolver:
    def resolve(m: re.Match[str], as_of: dt.date) -> Period:
        return _named(kind, as_of)

    return resolve


def _named(kind: str, as_of: dt.date) -> Period:
    """The fixed-name periods ("today", "last week", "this month"...)."""
    monday = _monday(as_of)
    quarter_start = dt.date(as_of.year, 3 * ((as_of.month - 1) // 3) + 1, 1)
    last_month_start = _add_months(as_of.replace(day=1), -1)
    table: dict[str, tuple[dt.date, dt.date]] = {
        "today": (as_of, as_of),
        "yesterday": (as_of - dt.timedelta(days=1),) * 2,
        "the day before yesterday": (as_of - dt.timedelta(days=2),) * 2,
        "this week": (monday, as_of),
        "last week": (monday - dt.timedelta(days=7), monday - dt.timedelta(days=1)),
        "last weekend": (monday - dt.timedelta(days=2), monday - dt.timedelta(days=1)),
        "past week": (as_of - dt.timedelta(days=6), as_of),
        "this month": (as_of.replace(day=1), as_of),
        "last month": (last_month_start, _month_end(last_month_start.year, last_month_start.month)),
        "past month": (_add_months(as_of, -1) + dt.timedelta(days=1), as_of),
        "this quarter": (quarter_start, as_of),
        "last quarter": (_add_months(quarter_start, -3), quarter_start - dt.timedelta(days=1)),
        "this year": (dt.date(as_of.year, 1, 1), as_of),
        "last year": (dt.date(as_of.year - 1, 1, 1), dt.date(as_of.year - 1, 12, 31)),
        "past year": (_add_months(as_of, -12) + dt.timedelta(days=1), as_of),
    }
    start, end = table[kind]
    return Period(start, end, kind, _NAMED_GRAIN[kind])


_NAMED_GRAIN = {
    "today": "day", "yesterday": "day", "the day before yesterday": "day", "this week": "week", "last week": "week",
    "last weekend": "week", "past week": "days", "this month": "month", "last month": "month", "past month": "month",
    "this quarter": "quarter", "last quarter": "quarter", "this year": "year", "last year": "year", "past year": "year",
}  # fmt: skip


def _rolling(m: re.Match[str], as_of: dt.date) -> Period | None:
    n, unit = _count(m.group(1)), m.group(2).lower().rstrip("s")
    if n < 1 or n > 3660:
        return None
    if unit == "month":
        start = _add_months(as_of, -n) + dt.timedelta(days=1)
    else:
        start = as_of - dt.timedelta(days=n * (7 if unit == "week" else 1) - 1)
    return Period(start, as_of, f"last {n} {unit}{'s' if n > 1 else ''}", "days")


def _month(m: re.Match[str], as_of: dt.date) -> Period | None:
    month = _MONTHS[m.group(1).lower()]
    year = int(m.group(2)) if m.group(2) else _latest_month(month, as_of)
    if dt.date(year, month, 1) > as_of:
        return None
    return _clip(
        dt.date(year, month, 1), _month_end(year, month), as_of, f"{calendar.month_name[month]} {year}", "month"
    )


def _year(m: re.Match[str], as_of: dt.date) -> Period | None:
    year = int(m.group(1))
    if not 2000 <= year <= as_of.year:
        return None
    return _clip(dt.date(year, 1, 1), dt.date(year, 12, 31), as_of, str(year), "year")


def _relative(grain: str, label: str) -> _Resolver:
    def resolve(m: re.Match[str], as_of: dt.date) -> _Relative:
        return _Relative(grain, label)

    return resolve


_REL_WORDS = r"(?:the\s+|that\s+|a\s+)?"
_FINDERS: tuple[tuple[re.Pattern[str], _Resolver], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), resolver)
    for pattern, resolver in (
        (rf"\b(?:from|between)?\s*({_DATE_RE})\s*(?:to|until|till|through|thru|and|-|–)\s*({_DATE_RE})\b", _range),
        (rf"\bsince\s+({_DATE_RE})\b", _since_date),
        (rf"\bsince\s+(?:last\s+)?({_WEEKDAY_RE})\b", _since_weekday),
        (rf"\bsince\s+(?:the\s+start\s+of\s+)?({_MONTH_RE})\b", _since_month),
        (rf"\b(?:on\s+)?({_DATE_RE})\b", _single_date),
        (
            r"\bthe\s+same\s+(?:period|week|month|time)\s+(?:last|a|the\s+previous|the\s+prior)\s+year\b",
            _relative("same_last_year", "the same period last year"),
        ),
        (
            r"\b(?:the|that)\s+year\s+before\b|\b(?:a|one)\s+year\s+(?:earlier|before)\b",
            _relative("same_last_year", "the year before"),
        ),
        (
            rf"\b{_REL_WORDS}week\s+(?:before|prior|earlier)\b|\b(?:the|a)\s+(?:previous|prior|preceding)\s+week\b",
            _relative("week", "the week before"),
        ),
        (
            rf"\b{_REL_WORDS}month\s+(?:before|prior|earlier)\b|\b(?:the|a)\s+(?:previous|prior|preceding)\s+month\b",
            _relative("month", "the month before"),
        ),
        (
            rf"\b{_REL_WORDS}quarter\s+(?:before|prior|earlier)\b|\bthe\s+(?:previous|prior|preceding)\s+quarter\b",
            _relative("quarter", "the quarter before"),
        ),
        (
            r"\b(?:the\s+)?(?:period|time)\s+(?:before|prior)\b|\bthe\s+(?:previous|prior|preceding)\s+(?:period|one)\b",
            _relative("period", "the previous period"),
        ),
        (r"\bthe\s+day\s+before\s+yesterday\b", _fixed("the day before yesterday")),
        (r"\btoday'?s?\b|\bso\s+far\s+today\b", _fixed("today")),
        (r"\byesterday'?s?\b", _fixed("yesterday")),
        (r"\b(?:this|current|the\s+current)\s+week\b|\bweek[\s-]+to[\s-]+date\b|\bwtd\b", _fixed("this week")),
        (r"\b(?:last|previous|prior)\s+week'?s?\b", _fixed("last week")),
        (r"\b(?:last|past)\s+weekend\b", _fixed("last weekend")),
        (r"\b(?:the\s+)?past\s+week\b", _fixed("past week")),
        (r"\b(?:this|current|the\s+current)\s+month\b|\bmonth[\s-]+to[\s-]+date\b|\bmtd\b", _fixed("this month")),
        (r"\b(?:last|previous|prior)\s+month'?s?\b", _fixed("last month")),
        (r"\b(?:the\s+)?past\s+month\b", _fixed("past month")),
        (r"\b(?:this|current|the\s+current)\s+quarter\b|\bquarter[\s-]+to[\s-]+date\b|\bqtd\b", _fixed("this quarter")),
        (r"\b(?:last|previous|prior)\s+quarter\b", _fixed("last quarter")),
        (r"\b(?:this|current|the\s+current)\s+year\b|\byear[\s-]+to[\s-]+date\b|\bytd\b", _fixed("this year")),
        (r"\b(?:last|previous|prior)\s+year'?s?\b", _fixed("last year")),
        (r"\b(?:the\s+)?past\s+(?:12\s+months|year)\b", _fixed("past year")),
        (rf"\b(?:last|past|previous|prior|the\s+last|the\s+past)\s+{_COUNT_RE}\s+(days?|weeks?|months?)\b", _rolling),
        (rf"\b({_MONTH_RE})\.?\s*,?\s*(\d{{4}})\b", _month),
        (rf"\b(?:in|of|during|for|over|from|through|throughout)\s+({_MONTH_RE})()\b", _month),
        (r"\b(?:in|during|for|over|throughout)\s+(?:the\s+year\s+)?(20\d\d)\b", _year),
    )
)


def _quarter_hits(text: str, as_of: dt.date) -> list[_Hit]:
    hits = []
    for m in re.finditer(
        r"\b(?:q|quarter\s*)([1-4])\b(?:\s+(?:of\s+)?(\d{4}))?|\b([1-4])(?:st|nd|rd|th)\s+quarter\b"
        r"(?:\s+(?:of\s+)?(\d{4}))?",
        text,
        re.IGNORECASE,
    ):
        q = m.group(1) or m.group(3)
        year = m.group(2) or m.group(4)
        period = _quarter_from(int(q), int(year) if year else None, as_of)
        if period is not None:
            hits.append(_Hit(m.start(), m.end(), period))
    return hits


def _quarter_from(q: int, year: int | None, as_of: dt.date) -> Period | None:
    start_month = 3 * (q - 1) + 1
    year = year if year is not None else _latest_month(start_month, as_of)
    start = dt.date(year, start_month, 1)
    if start > as_of:
        return None
    return _clip(start, _month_end(year, start_month + 2), as_of, f"Q{q} {year}", "quarter")


def _weekday_hits(text: str, as_of: dt.date) -> list[_Hit]:
    hits = []
    for m in re.finditer(rf"\b(?:(last)\s+|on\s+)({_WEEKDAY_RE})\b", text, re.IGNORECASE):
        day = _latest_weekday(_WEEKDAYS[m.group(2).lower()], as_of, strictly_before=bool(m.group(1)))
        hits.append(
            _Hit(m.start(), m.end(), Period(day, day, f"{calendar.day_name[day.weekday()]} {day.isoformat()}", "day"))
        )
    return hits


def _find(text: str, as_of: dt.date) -> tuple[list[_Hit], list[str]]:
    """Every period phrase in ``text``, earliest first, overlaps resolved in favour of the longer phrase."""
    found: list[_Hit] = []
    unknown: list[str] = []
    for pattern, resolver in _FINDERS:
        for m in pattern.finditer(text):
            value = resolver(m, as_of)
            if value is None:
                if not any(m.group(0).strip() in u for u in unknown):
                    unknown.append(m.group(0).strip())
                continue
            found.append(_Hit(m.start() + len(m.group(0)) - len(m.group(0).lstrip()), m.end(), value))
    found += _quarter_hits(text, as_of) + _weekday_hits(text, as_of)
    kept: list[_Hit] = []
    for hit in sorted(found, key=lambda h: (h.start - h.end, h.start)):
        if all(hit.end <= k.start or hit.start >= k.end for k in kept):
            kept.append(hit)
    return sorted(kept, key=lambda h: h.start), unknown


def _latest_full(rel: _Relative, as_of: dt.date) -> Period:
    """A relative period with nothing to be relative to: the latest full week, month or quarter."""
    kind = {"week": "last week", "month": "last month", "quarter": "last quarter"}.get(rel.grain)
    if kind is None:
        return _resolve_relative(rel, _named("this week", as_of))
    named = _named(kind, as_of)
    return Period(named.start, named.end, rel.label, named.grain)


def parse_periods(text: str, as_of: dt.date, base: Period | None = None) -> PeriodParse:
    """The period a question is about and the one it is compared with, relative to ``as_of``.

    ``base`` is the period already in focus (a follow-up's "what about the week before?" is read against it).
    """
    hits, unknown = _find(text, as_of)
    absolute = [h.value for h in hits if isinstance(h.value, Period)]
    relative = [h.value for h in hits if isinstance(h.value, _Relative)]
    comparing = bool(_COMPARE_CUE.search(text))
    if absolute:
        period = absolute[0]
        if len(absolute) > 1:
            compare: Period | None = absolute[1]
        elif relative:
            compare = _resolve_relative(relative[0], period)
        else:
            compare = previous_period(period) if comparing else None
        return PeriodParse(period, compare, tuple(unknown))
    if relative:
        anchor = base or _named("this week", as_of)
        shifted = _resolve_relative(relative[0], anchor) if base else _latest_full(relative[0], as_of)
        if comparing and base is not None:
            return PeriodParse(base, shifted, tuple(unknown))
        return PeriodParse(shifted, None, tuple(unknown))
    return PeriodParse(None, None, tuple(unknown))
