"""Feedback on answers: what a rated answer was based on, and the ``feedback`` table (migration 0009).

A rating (thumbs, 1-5 stars, a correction, or a preference pair) is tied to the thread checkpoint the answer
came from. :func:`snapshot_of` copies from that checkpoint's state values what the answer was based on: the
prompt (the last human message before the rated AI message, with the conversation up to it) and the context
(the answer's text, the tool results between the prompt and the answer, and the state's other keys). Graphs
whose state has no ``messages`` keep only the state's keys. Copies are bounded, so one row stays small.

The SQL: :func:`insert_feedback` (idempotent on the client's ``idempotency_key``), :func:`find_by_key`,
:func:`feedback_stats` (per assistant, through ``threads.assistant_id``) and :func:`export_rows` (keyset pages,
so a long export never holds a connection while the client reads). :func:`export_line` turns a row into one
JSONL line. Nothing here knows about HTTP: problems are the exceptions below.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

Kind = Literal["thumbs", "rating", "correction", "preference"]
KINDS: Final[tuple[Kind, ...]] = ("thumbs", "rating", "correction", "preference")
Pool = AsyncConnectionPool[Any]
Row = dict[str, Any]

MAX_MESSAGE_CHARS: Final = 8000
"""Longest text kept of one message (prompt, answer, tool result) in a snapshot."""
MAX_PROMPT_MESSAGES: Final = 20
"""Messages of the conversation kept before the rated answer."""
MAX_TOOL_RESULTS: Final = 20
"""Tool results kept in a snapshot's context."""
MAX_STATE_CHARS: Final = 32_000
"""Largest JSON of the state's other keys kept whole; beyond it, only their names."""
EXPORT_BATCH: Final = 500

COLUMNS: Final = (
    "feedback_id, kind, thread_id, run_id::text AS run_id, checkpoint_id, message_id, thumbs, rating, correction, "
    "chosen, rejected, comment, prompt, context, actor, idempotency_key, created_at"
)


class UnknownMessage(LookupError):
    """The message id named is not among the checkpoint's messages."""


class NotAnAnswer(ValueError):
    """The message named is not an AI message."""


class IdempotencyConflict(ValueError):
    """The idempotency key was already used for different feedback."""


@dataclass(frozen=True)
class NewFeedback:
    """One row to write; ``prompt`` and ``context`` come from :func:`snapshot_of`."""

    thread_id: str
    kind: Kind
    actor: str
    checkpoint_id: str
    prompt: dict[str, Any]
    context: dict[str, Any]
    run_id: str | None = None
    message_id: str | None = None
    thumbs: int | None = None
    rating: int | None = None
    correction: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    comment: str | None = None
    idempotency_key: str | None = None


# -- what the answer was based on ---------------------------------------------------------------------------------


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + " [...]"


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message as JSON (``content`` a string, or content blocks with ``text``)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content if isinstance(content, list) else []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "".join(parts)


def _messages(values: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The state's messages as JSON dicts, or None when the state has none (not a MessagesState graph)."""
    raw = values.get("messages")
    if not isinstance(raw, list):
        return None
    messages = [m for m in raw if isinstance(m, dict) and "type" in m]
    return messages if messages or not raw else None


def _answer_index(messages: Sequence[Mapping[str, Any]], message_id: str | None) -> int | None:
    """Where the rated AI message is: the one named, else the last AI message (None when there is none)."""
    if message_id is not None:
        for index, message in enumerate(messages):
            if message.get("id") == message_id:
                if message.get("type") != "ai":
                    raise NotAnAnswer(f"message {message_id} is a {message.get('type')} message, not an AI answer")
                return index
        raise UnknownMessage(f"message {message_id} is not among the checkpoint's messages")
    answers = [index for index, message in enumerate(messages) if message.get("type") == "ai"]
    return answers[-1] if answers else None


def _last_human(messages: Sequence[Mapping[str, Any]], before: int) -> int | None:
    humans = [index for index in range(before) if messages[index].get("type") == "human"]
    return humans[-1] if humans else None


def _brief(message: Mapping[str, Any]) -> dict[str, Any]:
    return {"role": message.get("type"), "content": _clip(message_text(message)), "id": message.get("id")}


def _tool_results(messages: Sequence[Mapping[str, Any]], start: int, end: int) -> list[dict[str, Any]]:
    results = [
        {"name": m.get("name"), "tool_call_id": m.get("tool_call_id"), "status": m.get("status"),
         "content": _clip(message_text(m))}
        for m in messages[start:end] if m.get("type") == "tool"
    ]  # fmt: skip
    return results[-MAX_TOOL_RESULTS:]


def _other_state(values: Mapping[str, Any]) -> dict[str, Any]:
    """The state's keys besides ``messages``: whole when small, else only their names."""
    others = {str(k): v for k, v in values.items() if k != "messages"}
    if not others:
        return {}
    if len(json.dumps(others, ensure_ascii=False, default=str)) <= MAX_STATE_CHARS:
        return {"state": others}
    return {"state_keys": sorted(others)}


def snapshot_of(values: Mapping[str, Any], message_id: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(prompt, context)`` of the answer rated in a checkpoint whose state values, as JSON (messages as their
    ``model_dump()``), are ``values``.

    prompt: ``{text, message_id, messages}`` (the last human message before the answer; the conversation up to
    the answer, at most :data:`MAX_PROMPT_MESSAGES`). context: ``{completion, message_id, tool_results?,
    state? | state_keys?}``. Without messages: prompt ``{}`` and context ``{state_keys}``."""
    messages = _messages(values)
    if messages is None:
        if message_id is not None:
            raise UnknownMessage(f"message {message_id}: this thread's state has no messages")
        return {}, {"state_keys": sorted(str(k) for k in values)}
    answer = _answer_index(messages, message_id)
    end = len(messages) if answer is None else answer
    human = _last_human(messages, end)
    prompt: dict[str, Any] = {
        "text": _clip(message_text(messages[human])) if human is not None else None,
        "message_id": messages[human].get("id") if human is not None else None,
        "messages": [_brief(m) for m in messages[:end][-MAX_PROMPT_MESSAGES:]],
    }
    context: dict[str, Any] = {
        "completion": _clip(message_text(messages[answer])) if answer is not None else None,
        "message_id": messages[answer].get("id") if answer is not None else None,
    }
    tools = _tool_results(messages, 0 if human is None else human, end)
    if tools:
        context["tool_results"] = tools
    return prompt, context | _other_state(values)


# -- the table --------------------------------------------------------------------------------------------------


def _row(row: Mapping[str, Any]) -> Row:
    """A row as JSON values (its timestamp in ISO 8601)."""
    return {key: value.isoformat() if isinstance(value, dt.datetime) else value for key, value in row.items()}


async def find_by_key(pool: Pool, idempotency_key: str) -> Row | None:
    """The feedback written with this idempotency key, if any."""
    async with pool.connection() as conn:
        cur = await conn.execute(f"SELECT {COLUMNS} FROM feedback WHERE idempotency_key = %s",  # noqa: S608
                                 (idempotency_key,))  # fmt: skip
        row = await cur.fetchone()
    return _row(row) if row is not None else None


def check_same(existing: Mapping[str, Any], claims: Mapping[str, Any]) -> None:
    """Raise :class:`IdempotencyConflict` unless the row written with a key has every value the retry claims."""
    differ = sorted(key for key, value in claims.items() if value is not None and existing.get(key) != value)
    if differ:
        raise IdempotencyConflict(f"idempotency_key {existing.get('idempotency_key')!r} was already used for "
                                  f"other feedback (it differs in {', '.join(differ)}); use a new key")  # fmt: skip


async def insert_feedback(pool: Pool, new: NewFeedback) -> tuple[Row, bool]:
    """Write ``new``; ``(row, True)``. With an idempotency key already used: ``(the existing row, False)``, or
    :class:`IdempotencyConflict` when that row is other feedback."""
    fields = asdict(new)
    fields["prompt"], fields["context"] = Jsonb(new.prompt), Jsonb(new.context)
    names = ", ".join(fields)
    slots = ", ".join(f"%({name})s" for name in fields)
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"INSERT INTO feedback ({names}) VALUES ({slots}) "  # noqa: S608 (column names are the dataclass's)
            f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING {COLUMNS}", fields,
        )  # fmt: skip
        row = await cur.fetchone()
    if row is not None:
        log.info("feedback written", extra={"feedback_id": row["feedback_id"], "kind": new.kind,
                                            "thread_id": new.thread_id, "actor": new.actor})  # fmt: skip
        return _row(row), True
    existing = await find_by_key(pool, new.idempotency_key or "")
    if existing is None:  # its thread was deleted between the two statements
        raise IdempotencyConflict(f"idempotency_key {new.idempotency_key!r} was used for feedback just deleted; "
                                  "use a new key")  # fmt: skip
    check_same(existing, {"thread_id": new.thread_id, "kind": new.kind, "actor": new.actor})
    return existing, False


# -- stats --------------------------------------------------------------------------------------------------------

_STATS_SQL: Final = """
SELECT t.assistant_id,
       count(*) AS total,
       count(*) FILTER (WHERE f.kind = 'thumbs') AS thumbs,
       count(*) FILTER (WHERE f.kind = 'rating') AS rating,
       count(*) FILTER (WHERE f.kind = 'correction') AS correction,
       count(*) FILTER (WHERE f.kind = 'preference') AS preference,
       count(*) FILTER (WHERE f.thumbs = 1) AS thumbs_up,
       count(*) FILTER (WHERE f.thumbs = -1) AS thumbs_down,
       coalesce(sum(f.rating), 0) AS rating_sum
  FROM feedback f JOIN threads t ON t.thread_id = f.thread_id
 WHERE (%(assistant_id)s::text IS NULL OR t.assistant_id = %(assistant_id)s)
   AND (%(since)s::timestamptz IS NULL OR f.created_at >= %(since)s)
 GROUP BY t.assistant_id
 ORDER BY t.assistant_id NULLS LAST
"""


def _summary(counts: Mapping[str, Any]) -> dict[str, Any]:
    rated = int(counts["rating"])
    return {
        "total": int(counts["total"]),
        "by_kind": {kind: int(counts[kind]) for kind in KINDS},
        "thumbs": {"up": int(counts["thumbs_up"]), "down": int(counts["thumbs_down"])},
        "rating": {"count": rated, "mean": round(int(counts["rating_sum"]) / rated, 4) if rated else None},
    }


async def feedback_stats(pool: Pool, assistant_id: str | None, since: dt.datetime | None) -> dict[str, Any]:
    """``{total, by_kind, thumbs {up, down}, rating {count, mean}, assistants: [{assistant_id, ...the same}]}``."""
    async with pool.connection() as conn:
        cur = await conn.execute(_STATS_SQL, {"assistant_id": assistant_id, "since": since})
        groups = [dict(row) for row in await cur.fetchall()]
    keys = ("total", *KINDS, "thumbs_up", "thumbs_down", "rating_sum")
    overall = {key: sum(int(group[key]) for group in groups) for key in keys}
    return _summary(overall) | {
        "assistants": [{"assistant_id": group["assistant_id"]} | _summary(group) for group in groups]
    }


# -- export -------------------------------------------------------------------------------------------------------


async def export_rows(
    pool: Pool, kind: Kind | None, since: dt.datetime | None, batch: int = EXPORT_BATCH
) -> AsyncIterator[Row]:
    """The feedback rows, oldest first, read a page at a time (each page on a connection held only for it)."""
    after = 0
    while True:
        async with pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {COLUMNS} FROM feedback WHERE feedback_id > %(after)s "  # noqa: S608
                "AND (%(kind)s::text IS NULL OR kind = %(kind)s) "
                "AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s) "
                "ORDER BY feedback_id LIMIT %(batch)s",
                {"after": after, "kind": kind, "since": since, "batch": batch},
            )  # fmt: skip
            rows = await cur.fetchall()
        for row in rows:
            yield _row(row)
        if len(rows) < batch:
            return
        after = rows[-1]["feedback_id"]


def export_line(row: Mapping[str, Any]) -> dict[str, Any]:
    """One JSONL record: a preference pair ``{prompt, chosen, rejected, ...}`` or a rated answer ``{prompt,
    completion, rating | thumbs | correction, context, ...}``; both with where it came from and who rated it."""
    prompt = row.get("prompt") or {}
    context = dict(row.get("context") or {})
    line: dict[str, Any] = {"kind": row["kind"], "prompt": prompt.get("text")}
    if row["kind"] == "preference":
        line |= {"chosen": row["chosen"], "rejected": row["rejected"]}
    else:
        line["completion"] = context.pop("completion", None)
        value_key = {"thumbs": "thumbs", "rating": "rating", "correction": "correction"}[row["kind"]]
        line[value_key] = row[value_key]
    if row.get("comment") is not None:
        line["comment"] = row["comment"]
    return line | {
        "prompt_messages": prompt.get("messages", []),
        "context": context,
        "thread_id": row["thread_id"],
        "run_id": row.get("run_id"),
        "checkpoint_id": row["checkpoint_id"],
        "message_id": row.get("message_id"),
        "feedback_id": row["feedback_id"],
        "rater": row["actor"],
        "created_at": row["created_at"],
    }
