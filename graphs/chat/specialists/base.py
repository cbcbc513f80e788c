"""What a chat specialist is given and what it hands back: :class:`Ask` in, :class:`Answer` out.

An :class:`Ask` is the understood question: the intent, the entities (already merged with the conversation's focus
for a follow-up), the data's "today" and the previous answer's focus (for "why?"). An :class:`Answer` is the reply
in words plus what it stands on: a :class:`Table` (rows, columns, units, period) a UI can draw, policy citations,
the tools it called, and the ids it was about (the next turn's focus). Every number in ``text`` is formatted from a
tool's result; a specialist never writes one of its own.

``kind`` says what the answer is: ``answer``, ``clarify`` (a question back: a missing or ambiguous entity),
``unknown`` (an entity that does not exist), ``error`` (a tool failed; the text says which and why) or ``refusal``
(a write the chat does not do, or an out-of-scope question).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, TypeVar

from ml.nlu import Entities
from tools.inventory import NotFound

T = TypeVar("T")

AnswerKind = Literal["answer", "clarify", "unknown", "error", "refusal"]


@dataclass(frozen=True)
class Ask:
    """One understood question."""

    text: str
    intent: str
    entities: Entities
    as_of: dt.date
    """The data's "today" (the latest day with sales), which relative periods are read against."""
    previous: dict[str, Any] = field(default_factory=dict)
    """The previous answer's ``focus`` (ids it was about), for "why?" and "the first one"."""


@dataclass(frozen=True)
class Table:
    """Structured rows behind an answer: ``units`` maps a column to its unit (``USD``, ``units``, ``%``, ``days``)."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    units: dict[str, str] = field(default_factory=dict)
    period: dict[str, str] | None = None
    """``{"start", "end", "label"}`` (ISO dates) when the rows cover a period."""


@dataclass(frozen=True)
class Answer:
    """A specialist's reply and what it stands on."""

    text: str
    kind: AnswerKind = "answer"
    table: Table | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    """Policy passages cited: ``{"id", "title", "section", "text"}``."""
    tools: list[str] = field(default_factory=list)
    """The tools called, in order."""
    focus: dict[str, Any] = field(default_factory=dict)
    """Ids the answer was about (``order_ids``, ``skus``, ``store_ids``, ``customer_ids``, ``plan_ids``)."""
    sql: str | None = None
    """The read-only query run, when the answer came from SQL."""
    by: Literal["rules", "llm"] = "rules"
    """Who wrote the text: the specialist's template, or the LLM agent (from the same tools)."""
    fallback: str | None = None
    """Why the LLM's answer was not used (the template's is), when it was tried."""
    message_id: str | None = None
    """The id of the streamed LLM message this answer's text came from (the AI message reuses it)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (what the ``custom`` stream event and the state carry)."""
        return asdict(self)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], units: dict[str, str] | None = None,
          period: Any = None) -> Table:  # fmt: skip
    """A :class:`Table`; ``period`` may be an :class:`ml.nlu.Period`, a dict or ``[start, end]``."""
    if period is not None and hasattr(period, "to_dict"):
        period = period.to_dict()
    elif isinstance(period, (list, tuple)):
        period = {"start": str(period[0]), "end": str(period[1]), "label": f"{period[0]} to {period[1]}"}
    return Table(title, list(columns), [list(r) for r in rows], dict(units or {}), period)


def money(value: float) -> str:
    """``$1,234.50``."""
    return f"${value:,.2f}"


def count(value: float) -> str:
    """``1,234`` (whole units)."""
    return f"{value:,.0f}"


def pct(value: float, digits: int = 1) -> str:
    """``12.5 %``."""
    return f"{value:.{digits}f} %"


def names(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def clarify(question: str, **focus: Any) -> Answer:
    """A question back to the user."""
    return Answer(question, kind="clarify", focus=focus)


def failed(tool: str, exc: BaseException) -> Answer:
    """The answer when ``tool`` failed: what failed, never a stack trace."""
    reason = str(exc).strip() or type(exc).__name__
    return Answer(f"I could not get that: the {tool} tool failed ({reason}).", kind="error", tools=[tool])


class Stop(Exception):
    """Ends an answer early: ``reply`` is what the user gets (a tool failed or found nothing)."""

    def __init__(self, reply: Answer) -> None:
        super().__init__(reply.text)
        self.reply = reply


async def call(tools: list[str], name: str, pending: Awaitable[T]) -> T:
    """Await one tool call, recorded in ``tools``; "not found" stops the answer with an ``unknown`` reply, any other
    failure with an error naming the tool."""
    if name not in tools:
        tools.append(name)
    try:
        return await pending
    except NotFound as exc:
        raise Stop(Answer(f"I could not find that: {exc.message}.", kind="unknown", tools=list(tools))) from exc
    except Exception as exc:
        raise Stop(replace(failed(name, exc), tools=list(tools))) from exc


def unresolved(entities: Entities) -> Answer | None:
    """The reply when the question names a store, sku or date that does not exist (``unknown``), or a store or
    product that could be several and none of that kind was named unambiguously (a question back)."""
    unknown = [u.text for u in entities.unknown if u.kind in ("store", "sku", "period", "warehouse_block")]
    if unknown:
        return Answer(f"I could not find {names(unknown)} in the data: check the id, name or date and ask again.",
                      kind="unknown")  # fmt: skip
    for amb in entities.ambiguous:
        if (amb.kind == "store" and not entities.stores) or (amb.kind == "product" and not entities.products):
            options = [f"{c} ({amb.kind} {i})" for c, i in zip(amb.candidates, amb.ids, strict=False)]
            return clarify(f"Which {amb.kind} do you mean by {amb.text!r}: {names(options)}?")
    return None


Handler = Callable[[Ask, list[str]], Awaitable[Answer]]
"""One intent's answer: it records the tools it calls in the list it is given, and may raise :class:`Stop`."""


async def dispatch(specialist: str, handlers: Mapping[str, Handler], ask: Ask) -> Answer:
    """The answer of the handler of ``ask.intent``: the entity problem first, else the handler's answer or the
    reply that stopped it."""
    handler = handlers.get(ask.intent)
    if handler is None:
        return Answer(f"The {specialist} specialist does not answer {ask.intent!r} questions.", kind="refusal")
    problem = unresolved(ask.entities)
    if problem is not None:
        return problem
    tools: list[str] = []
    try:
        return await handler(ask, tools)
    except Stop as stop:
        return stop.reply
