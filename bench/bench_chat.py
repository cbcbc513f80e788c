"""Benchmark: ``POST /chat/stream``, concurrent conversations over HTTP, deterministic mode (no LLM).

Starts one ``rimas serve`` (auth off, loopback) on a fresh data folder: on its first start it seeds the demo data
(10 stores x 50 products x 3 years of sales) and trains its models, which takes a few minutes and is reported apart.
Then ``--rounds`` rounds of ``--conversations`` conversations at once, each a thread of ``--turns`` questions asked
one after the other: the next question goes out as soon as the previous answer's ``end`` arrives (no time to read
it: every conversation always has a question in flight), with the ``thread_id`` of the first answer's ``metadata``
event, so the follow-ups ("and at store 4?", "why?") lean on the conversation. The questions come from a fixed list
of short dialogues over the demo data; conversation ``i`` starts with dialogue ``i`` (rotating) and goes on with the
next ones. First, ``--warmup`` conversations (by default every dialogue once) are asked and reported apart: they
meet what a question computes once per data version (a store's demand forecast, prepared statements), the steady
state is what the rounds measure. The rounds' questions are pooled; each round's p95 is listed too, since these
machines are shared and their speed varies from one minute to the next. The server process's CPU per question
(from ``/proc``, own server only) is the figure that noise moves least.

Per question, from sending the request (monotonic clock): the time to the first SSE event (``metadata``), to the
first ``messages`` event carrying AI text, and to ``end`` (the complete answer). Reports p50 / p95 / max of each,
beside the targets (first event < 100 ms p95, complete answer < 500 ms p95), the errors (non-200 answers, ``error``
events, streams without ``end``, empty answers) and the answers' intents (the ``custom`` event's ``intent``).
``--against URL`` measures a server someone else started instead (auth off).

Figures, not pass/fail: the exit status is 1 only when there were errors. ``python bench/bench_chat.py
[--conversations 20] [--turns 5] [--rounds 3] [--warmup 10] [--against URL]``; JSON in bench/out/bench_chat.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from _serve import REPO, fresh_server
from _timing import percentile

OUT = Path(__file__).resolve().parent / "out" / "bench_chat.json"
TIMEOUT = 120.0
TARGETS_MS = {"first_event": 100.0, "complete": 500.0}  # p95
# Short dialogues over the demo data: a question, then follow-ups that make sense after it.
DIALOGUES: tuple[tuple[str, ...], ...] = (
    ("How many units did store 3 sell last week?", "and at store 4?", "what about the week before?"),
    ("Which orders from warehouse F are likely late?", "why?"),
    ("What should I reorder at store 2?", "and at store 5?"),
    ("Who are our most loyal customers?", "list the top 3 only"),
    ("top 5 sellers last month", "and at store 7?"),
    ("What's our refund policy for a parcel a week late?", "when do we have to escalate a complaint?"),
    ("price of 10 units of sku 1003", "should we mark down item 1003?"),
    ("how is our on-time delivery rate looking?", "show the critical deviations"),
    ("inventory position at store 6 please", "what needs restocking there?"),
    ("break down revenue by category for store 8 last week",
     "compare store 8's sales last week against the week prior"),
)  # fmt: skip


def conversation(index: int, turns: int) -> list[str]:
    """The questions of conversation ``index``: dialogue ``index`` first, then the next ones, ``turns`` in all."""
    questions: list[str] = []
    step = 0
    while len(questions) < turns:
        questions.extend(DIALOGUES[(index + step) % len(DIALOGUES)])
        step += 1
    return questions[:turns]


async def sse(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """``(event, data)`` of each SSE event as its block completes (data parsed as JSON, None when absent)."""
    name, data = "", list[str]()
    async for line in response.aiter_lines():
        if line:
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            continue
        if name or data:  # a blank line ends the event (heartbeat comments carry neither)
            text = "\n".join(data)
            yield name or "message", json.loads(text) if text else None
        name, data = "", []


def ai_text(data: Any) -> str:
    """The AI message's text of a ``messages`` event's data (``[chunk, metadata]``), "" for anything else."""
    chunk = data[0] if isinstance(data, list) and data else data
    if not isinstance(chunk, dict) or not str(chunk.get("type", "")).lower().startswith("ai"):
        return ""
    content = chunk.get("content")
    if isinstance(content, list):  # content blocks
        content = "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return str(content or "")


async def ask(client: httpx.AsyncClient, question: str, thread_id: str | None) -> dict[str, Any]:
    """One question: its timings (seconds since the request was sent), thread, intent, and error if any."""
    body: dict[str, Any] = {"message": question, **({"thread_id": thread_id} if thread_id else {})}
    result: dict[str, Any] = {"question": question, "thread_id": thread_id, "first_event": None, "first_text": None,
                              "complete": None, "intent": None, "kind": None, "answer": "", "error": None}  # fmt: skip
    started = time.perf_counter()
    try:
        async with client.stream("POST", "/chat/stream", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                result["error"] = f"status {response.status_code}: {response.text[:200]}"
                return result
            async for event, data in sse(response):
                now = time.perf_counter() - started
                if result["first_event"] is None:
                    result["first_event"] = now
                    if event != "metadata":
                        result["error"] = f"first event {event!r}, not metadata"
                if event == "metadata" and isinstance(data, dict):
                    result["thread_id"] = data.get("thread_id") or result["thread_id"]
                elif event.startswith("messages") and (text := ai_text(data)):
                    if result["first_text"] is None:
                        result["first_text"] = now
                    result["answer"] = text
                elif event == "custom" and isinstance(data, dict) and data.get("type") == "chat.answer":
                    result["intent"], result["kind"] = data.get("intent"), data.get("kind")
                elif event == "error":
                    result["error"] = f"error event: {json.dumps(data)[:200]}"
                elif event == "end":
                    result["complete"] = now
                    break
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    if result["error"] is None:
        if result["complete"] is None:
            result["error"] = "stream closed without end"
        elif not result["answer"].strip():
            result["error"] = "empty answer"
        elif not result["thread_id"]:
            result["error"] = "no thread_id in metadata"
    return result


async def converse(client: httpx.AsyncClient, questions: list[str]) -> list[dict[str, Any]]:
    """One conversation: each question after the previous answer's ``end``, on the first answer's thread."""
    results, thread_id = [], None
    for turn, question in enumerate(questions, 1):
        result = await ask(client, question, thread_id)
        results.append({**result, "turn": turn})
        thread_id = result["thread_id"] or thread_id
    return results


async def round_of(client: httpx.AsyncClient, conversations: int, turns: int, offset: int) -> list[dict[str, Any]]:
    """``conversations`` conversations at once; conversation ``i`` starts with dialogue ``offset + i``."""
    done = await asyncio.gather(*(converse(client, conversation(offset + i, turns)) for i in range(conversations)))
    return [result for results in done for result in results]


def stats_ms(values: list[float]) -> dict[str, float]:
    """p50 / p95 / max of ``values`` (seconds) in milliseconds; NaN when there are none."""
    if not values:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "max_ms": float("nan")}
    return {"p50_ms": round(percentile(values, 0.5) * 1000, 1), "p95_ms": round(percentile(values, 0.95) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1)}  # fmt: skip


def process_cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used so far, from ``/proc`` (nan without one)."""
    if pid is None:
        return float("nan")
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(url: str, conversations: int, turns: int, warmup: int, rounds: int = 1,
                  server_pid: int | None = None) -> dict[str, Any]:  # fmt: skip
    limits = httpx.Limits(max_connections=max(conversations, warmup) + 5,
                          max_keepalive_connections=max(conversations, warmup) + 5)  # fmt: skip
    results: list[dict[str, Any]] = []
    per_round: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=httpx.Timeout(TIMEOUT, connect=10)) as client:
        warm_started = time.perf_counter()
        warm = await round_of(client, warmup, turns, 0) if warmup else []
        warm_s = time.perf_counter() - warm_started
        cpu_before, server_before = resource.getrusage(resource.RUSAGE_SELF), process_cpu_s(server_pid)
        started = time.perf_counter()
        for _ in range(rounds):
            round_started = time.perf_counter()
            batch = await round_of(client, conversations, turns, 0)
            answered = [r["complete"] for r in batch if r["error"] is None]
            per_round.append({"wall_s": round(time.perf_counter() - round_started, 2),
                              "complete_p95_ms": stats_ms(answered)["p95_ms"] if answered else None})  # fmt: skip
            results += batch
        wall, cpu_after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
        server_cpu = process_cpu_s(server_pid) - server_before
    client_cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    good = [r for r in results if r["error"] is None]
    by_intent: dict[str, list[float]] = {}
    by_turn: dict[int, list[float]] = {}
    for r in good:
        by_intent.setdefault(str(r["intent"]), []).append(r["complete"])
        by_turn.setdefault(r["turn"], []).append(r["complete"])
    timings = {key: stats_ms([r[key] for r in good if r[key] is not None])
               for key in ("first_event", "first_text", "complete")}  # fmt: skip
    return {
        "conversations": conversations,
        "turns": turns,
        "rounds": per_round,
        "questions": len(results),
        "answered": len(good),
        "errors": len(results) - len(good),
        "error_samples": [{"question": r["question"], "error": r["error"]} for r in results if r["error"]][:5],
        "wall_s": round(wall, 2),
        "questions_per_s": round(len(good) / wall, 1) if wall else float("nan"),
        "client_cpu_ms_per_question": round(client_cpu * 1000 / max(1, len(results)), 1),
        "server_cpu_ms_per_question": round(server_cpu * 1000 / max(1, len(results)), 1),
        **timings,
        "targets_p95_ms": {"first_event": TARGETS_MS["first_event"], "complete": TARGETS_MS["complete"]},
        "targets_met": {key: timings[key]["p95_ms"] < limit for key, limit in TARGETS_MS.items()},
        "intents": dict(Counter(str(r["intent"]) for r in good).most_common()),
        "kinds": dict(Counter(str(r["kind"]) for r in good).most_common()),
        "complete_by_intent": {k: stats_ms(v) for k, v in sorted(by_intent.items())},
        "complete_by_turn": {str(k): stats_ms(v) for k, v in sorted(by_turn.items())},
        "answers": [{k: r[k] for k in ("question", "intent", "kind")} | {"answer": r["answer"][:200]}
                    for r in results[:turns * min(conversations, len(DIALOGUES))]],
        "warmup": {"conversations": warmup, "questions": len(warm), "errors": sum(1 for r in warm if r["error"]),
                   "wall_s": round(warm_s, 2), "complete": stats_ms([r["complete"] for r in warm if r["complete"]])},
    }  # fmt: skip



def report(figures: dict[str, Any]) -> str:
    """The figures as a few lines of text."""
    lines = [f"Chat: {figures['conversations']} concurrent conversations x {figures['turns']} turns, "
             f"{len(figures['rounds'])} round(s) = {figures['questions']} questions ({figures['answered']} answered, "
             f"{figures['errors']} errors) in {figures['wall_s']} s, {figures['questions_per_s']} questions/s; CPU a "
             f"question: server {figures['server_cpu_ms_per_question']} ms, this client "
             f"{figures['client_cpu_ms_per_question']} ms"]  # fmt: skip
    if "first_start_s" in figures:
        lines.insert(0, f"Server ready in {figures['first_start_s']} s (first start: seed + training)")
    lines.append(f"{'ms':<22}{'p50':>8}{'p95':>8}{'max':>8}  target (p95)")
    labels = {"first_event": "first event (metadata)", "first_text": "first AI text", "complete": "complete (end)"}
    for key, label in labels.items():
        t = figures[key]
        target = ""
        if key in TARGETS_MS:
            target = f"< {TARGETS_MS[key]:g} ms: {'met' if figures['targets_met'][key] else 'MISSED'}"
        lines.append(f"{label:<22}{t['p50_ms']:>8}{t['p95_ms']:>8}{t['max_ms']:>8}  {target}")
    lines.append("complete p95 by round: " + ", ".join(str(r["complete_p95_ms"]) for r in figures["rounds"]))
    lines.append("complete p95 by turn: " + ", ".join(f"{k}: {v['p95_ms']}" for k, v in
                                                    figures["complete_by_turn"].items()))  # fmt: skip
    lines.append("intents: " + ", ".join(f"{k} {v}" for k, v in figures["intents"].items()))
    lines.append("kinds: " + ", ".join(f"{k} {v}" for k, v in figures["kinds"].items()))
    for sample in figures["error_samples"]:
        lines.append(f"error: {sample['question']!r}: {sample['error']}")
    warm = figures["warmup"]
    lines.append(f"warm-up (not counted): {warm['questions']} questions, {warm['errors']} errors, complete p50 / max "
                 f"{warm['complete']['p50_ms']} / {warm['complete']['max_ms']} ms")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=20, help="concurrent conversations (default 20)")
    parser.add_argument("--turns", type=int, default=5, help="questions per conversation (default 5)")
    parser.add_argument("--warmup", type=int, default=len(DIALOGUES),
                        help=f"conversations run first, not counted (default {len(DIALOGUES)}: every dialogue once)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --conversations, pooled (default 3)")
    parser.add_argument("--against", help="a running server's URL (auth off); default: start one")
    args = parser.parse_args()
    figures: dict[str, Any] = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "cpu_count": os.cpu_count()}
    if args.against:
        figures |= asyncio.run(measure(args.against, args.conversations, args.turns, args.warmup, args.rounds))
    else:
        with fresh_server("bench-chat-") as (url, pid, ready):
            figures["first_start_s"] = round(ready, 1)
            figures |= asyncio.run(measure(url, args.conversations, args.turns, args.warmup, args.rounds, pid))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(report(figures) + f"JSON in {OUT.relative_to(REPO)}\n")
    sys.exit(1 if figures["errors"] else 0)


if __name__ == "__main__":
    main()
