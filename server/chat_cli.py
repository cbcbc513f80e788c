"""``rimas chat`` and ``rimas eval chat``.

``rimas chat "question"`` asks a running server (``POST /chat/stream``) and prints the answer as it streams, then
the table behind it; ``rimas chat`` alone is an interactive session on one thread (an empty line or Ctrl-D ends
it). The server is ``--url`` (default ``RIMAS_URL``, else the configured host and port) and the key is read from
the environment variable ``--key-env`` names (default ``RIMAS_API_KEY``), never from the command line.

``rimas eval chat`` runs the labelled questions (``graphs/chat/eval_questions.yaml``) through the chat graph on the
configured database with its models and knowledge base (see :mod:`graphs.chat.evaluation`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TextIO

import httpx

from server.settings import Settings, get_settings

EXIT_USAGE = 2


def _write(out: TextIO, text: str) -> None:
    out.write(text)
    out.flush()


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """``(event, data)`` pairs of a server-sent event stream (data parsed as JSON)."""
    event, data = "message", list[str]()
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", list[str]()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    if data:
        yield event, json.loads("\n".join(data))


def format_table(table: dict[str, Any] | None, max_rows: int = 20) -> str:
    """A plain-text rendering of an answer's table ("" when there is none)."""
    if not table or not table.get("rows"):
        return ""
    columns = [str(c) for c in table["columns"]]
    rows = [[("" if v is None else str(v)) for v in row] for row in table["rows"][:max_rows]]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = [table.get("title") or "", "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
             "  ".join("-" * w for w in widths)]  # fmt: skip
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    if len(table["rows"]) > max_rows:
        lines.append(f"... {len(table['rows']) - max_rows} more rows")
    return "\n".join(lines)


async def ask(client: httpx.AsyncClient, question: str, thread_id: str | None, out: TextIO) -> str | None:
    """Ask once, printing the answer as it streams; returns the thread id (None when the server refused)."""
    body: dict[str, Any] = {"message": question}
    if thread_id:
        body["thread_id"] = thread_id
    printed: dict[str, str] = {}
    table = ""
    async with client.stream("POST", "/chat/stream", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            detail = response.json().get("detail") if "json" in response.headers.get("content-type", "") else None
            _write(sys.stderr, f"rimas chat: the server answered {response.status_code}: {detail or response.text}\n")
            return None
        async for event, data in sse_events(response):
            if event == "metadata":
                thread_id = data.get("thread_id", thread_id)
            elif event.startswith("messages"):
                chunk, _ = data if isinstance(data, list) else (data, None)
                if chunk.get("type", "").startswith("ai"):
                    text, seen = str(chunk.get("content") or ""), printed.get(chunk.get("id") or "", "")
                    # a partial carries the text so far, a full message all of it: print what is new
                    new = text[len(seen):] if text.startswith(seen) else text
                    _write(out, new)
                    printed[chunk.get("id") or ""] = text
            elif event == "custom" and isinstance(data, dict) and data.get("type") == "chat.answer":
                table = format_table(data.get("table"))  # printed under the answer
            elif event == "error":
                _write(sys.stderr, f"\nrimas chat: the run failed: {data.get('message') or data}\n")
    _write(out, "\n" + (f"\n{table}\n" if table else ""))
    return thread_id


def _client(args: argparse.Namespace, settings: Settings) -> httpx.AsyncClient:
    url = args.url or os.environ.get("RIMAS_URL") or f"http://{settings.host}:{settings.port}"
    key = os.environ.get(args.key_env)
    headers = {"x-api-key": key} if key else {}
    return httpx.AsyncClient(base_url=url, headers=headers, timeout=httpx.Timeout(120, connect=5))


async def chat_session(client: httpx.AsyncClient, question: str | None, out: TextIO,
                       read: Callable[[], str] = input) -> int:  # fmt: skip
    """One question, or an interactive session when ``question`` is None; the exit code."""
    if question is not None:
        return 0 if await ask(client, question, None, out) else 1
    thread: str | None = None
    _write(out, "Ask a question (an empty line or Ctrl-D ends).\n")
    while True:
        try:
            line = read().strip()
        except EOFError:
            return 0
        if not line:
            return 0
        thread = await ask(client, line, thread, out) or thread


def cmd_chat(args: argparse.Namespace) -> int:
    """``rimas chat [question]``."""
    settings = get_settings()

    async def run() -> int:
        async with _client(args, settings) as client:
            try:
                return await chat_session(client, args.question, sys.stdout)
            except httpx.TransportError as exc:
                _write(sys.stderr, f"rimas chat: cannot reach {client.base_url} ({exc}); start it with `rimas serve`"
                                   " or pass --url\n")  # fmt: skip
                return 1

    return asyncio.run(run())


async def _evaluate(settings: Settings, url: str, path: Path | None) -> tuple[Any, str]:
    """The chat evaluation on the database at ``url`` with its models (loaded, or trained when missing and the
    settings allow) and the knowledge base; deterministic (no LLM)."""
    from graphs.chat.evaluation import load_questions, run_evaluation
    from ml.data import load_orders_db, load_sales_db
    from ml.startup import ensure_models
    from rag.policy import get_policy
    from server.cli import evaluation_tools
    from server.db import connect

    questions = load_questions(path)
    with connect(url) as conn:
        statuses = ensure_models(settings.resolved_models_dir, lambda: load_orders_db(conn, labelled_only=True),
                                 lambda: load_sales_db(conn), settings.train_models_on_start,
                                 severity_thresholds=get_policy().severity.thresholds.model_dump())  # fmt: skip
    models = {name: s.model for name, s in statuses.items() if s.model is not None}
    async with evaluation_tools(settings, url, llm=False, models=models) as where:
        return await run_evaluation(questions), where


def cmd_eval_chat(args: argparse.Namespace) -> int:
    """``rimas eval chat``: 1 when answer correctness is under 90 %, 2 when the question file is unusable."""
    from graphs.chat.evaluation import QuestionError, format_report
    from server.cli import _out, describe_database
    from server.db import connect, running_database
    from server.migrate import migrate

    settings = get_settings()
    with running_database(settings) as url:
        with connect(url) as conn:
            migrate(conn)
        try:
            report, knowledge = asyncio.run(_evaluate(settings, url, Path(args.questions) if args.questions else None))
        except QuestionError as exc:
            _write(sys.stderr, f"rimas eval chat: {exc}\n")
            return EXIT_USAGE
    if args.json:
        _out(json.dumps({"database": describe_database(settings), "knowledge_base": knowledge, **report.to_dict()},
                        indent=2))  # fmt: skip
    else:
        _out(f"database: {describe_database(settings)}\nknowledge base: {knowledge}\n")
        _out(format_report(report))
    return 0 if report.passed else 1


def add_commands(sub: Any, eval_commands: Any) -> None:
    """Register ``rimas chat`` on ``sub`` and ``chat`` under ``rimas eval``."""
    chat = sub.add_parser("chat", help="ask the chat assistant of a running server (interactive without a question)",
                          description="Ask a running RIMAS server (POST /chat/stream) and print the streamed answer "
                          "and its table. Without a question: an interactive session on one conversation.")  # fmt: skip
    chat.add_argument("question", nargs="?", help="the question (leave out for an interactive session)")
    chat.add_argument("--url", help="the server (default RIMAS_URL, else http://RIMAS_HOST:RIMAS_PORT)")
    chat.add_argument("--key-env", default="RIMAS_API_KEY", metavar="NAME",
                      help="environment variable holding the API key (default RIMAS_API_KEY)")  # fmt: skip
    chat.set_defaults(func=cmd_chat)
    evaluation = eval_commands.add_parser(
        "chat", help="intent, entity and answer accuracy of the chat on its labelled questions",
        description="Ask every labelled question (graphs/chat/eval_questions.yaml) through the chat graph on the "
        "configured database and compare the intent, the entities and the answer with the facts SQL computes from "
        "the same database. Exit 1 when answer correctness is under 90 %%.",
    )  # fmt: skip
    evaluation.add_argument("--json", action="store_true", help="print the full report as JSON")
    evaluation.add_argument("--questions", metavar="PATH", help="question file (default: the packaged set)")
    evaluation.set_defaults(func=cmd_eval_chat)
