"""The chat workflow's evaluation (``rimas eval chat``): labelled questions through the real graph, scored.

``eval_questions.yaml`` holds questions written apart from the classifier's training utterances, each with the
intent and the entities it must be read as, and the facts its answer must state. A fact is a SQL query run on the
evaluated database at evaluation time (so it stays true when the data changes) whose single value, formatted the
way answers format numbers (``count``, ``money``, ``pct``, ``text``), must appear in the answer. Ids and names the
questions use are bound the same way (``bind``: a query per placeholder), so the set runs on any seeded database.
A question may be the last turn of a conversation (``before``: the earlier turns, asked on the same thread).

The figures: intent accuracy, entity accuracy (every expected entity kind read exactly), and answer correctness
(the answer has the expected kind and states every fact). The graph runs with an in-memory saver on the process's
tools (:func:`tools.deps.current`); it only reads, except "start a plan" questions, which this set does not ask.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from langgraph.checkpoint.memory import InMemorySaver
from psycopg.rows import dict_row

from graphs.chat.graph import build_graph
from tools.deps import current

QUESTIONS_PATH: Final = Path(__file__).with_name("eval_questions.yaml")
MIN_CORRECT: Final = 0.9
"""The answer correctness the evaluation must reach."""
FORMATS: Final = ("count", "money", "pct", "text")
ENTITY_KINDS: Final = ("stores", "skus", "order_ids", "customer_ids", "warehouse_blocks", "modes", "categories",
                       "limit")  # fmt: skip
PRINCIPAL: Final = {"id": "eval:chat", "role": "viewer"}


class QuestionError(ValueError):
    """The question file cannot be used; the message names the question and the field."""


@dataclass(frozen=True)
class Fact:
    sql: str
    format: str = "count"


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    intent: str
    entities: dict[str, Any] = field(default_factory=dict)
    facts: tuple[Fact, ...] = ()
    kind: str = "answer"
    bind: dict[str, str] = field(default_factory=dict)
    before: tuple[str, ...] = ()


@dataclass
class QuestionResult:
    id: str
    question: str
    intent: str | None
    intent_ok: bool
    entities_ok: bool
    answer_ok: bool
    seconds: float
    answer: str
    problems: list[str] = field(default_factory=list)


@dataclass
class ChatEvalReport:
    results: list[QuestionResult]

    def _share(self, name: str) -> float:
        return sum(getattr(r, name) for r in self.results) / len(self.results) if self.results else 0.0

    @property
    def intent_accuracy(self) -> float:
        return self._share("intent_ok")

    @property
    def entity_accuracy(self) -> float:
        return self._share("entities_ok")

    @property
    def answer_correctness(self) -> float:
        return self._share("answer_ok")

    @property
    def passed(self) -> bool:
        return bool(self.results) and self.answer_correctness >= MIN_CORRECT

    def to_dict(self) -> dict[str, Any]:
        return {"questions": len(self.results), "intent_accuracy": round(self.intent_accuracy, 4),
                "entity_accuracy": round(self.entity_accuracy, 4),
                "answer_correctness": round(self.answer_correctness, 4), "passed": self.passed,
                "results": [r.__dict__ for r in self.results]}  # fmt: skip


def _str_map(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise QuestionError(f"{where}: must map names to SQL strings")
    return {str(k): v for k, v in raw.items()}


def _question(raw: Any, index: int) -> Question:
    if not isinstance(raw, dict):
        raise QuestionError(f"question {index}: must be a mapping")
    qid = str(raw.get("id") or f"q{index}")
    for name in ("question", "intent"):
        if not isinstance(raw.get(name), str) or not raw[name].strip():
            raise QuestionError(f"{qid}: {name} must be a non-empty string")
    facts = []
    for f in raw.get("facts") or []:
        if not isinstance(f, dict) or not isinstance(f.get("sql"), str) or f.get("format", "count") not in FORMATS:
            raise QuestionError(f"{qid}: each fact needs sql and a format of {', '.join(FORMATS)}")
        facts.append(Fact(f["sql"], f.get("format", "count")))
    entities = raw.get("entities") or {}
    unknown = sorted(set(entities) - set(ENTITY_KINDS))
    if unknown:
        raise QuestionError(f"{qid}: unknown entity kind(s) {unknown}; allowed: {', '.join(ENTITY_KINDS)}")
    return Question(qid, raw["question"], raw["intent"], dict(entities), tuple(facts), str(raw.get("kind", "answer")),
                    _str_map(raw.get("bind"), f"{qid}.bind"), tuple(str(t) for t in raw.get("before") or ()))


def load_questions(path: Path | None = None) -> list[Question]:
    """The labelled questions of ``path`` (default: the packaged set)."""
    source = path or QUESTIONS_PATH
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise QuestionError(f"cannot read {source.name}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list) or not data["questions"]:
        raise QuestionError(f"{source.name}: must hold a non-empty list under 'questions'")
    questions = [_question(raw, i) for i, raw in enumerate(data["questions"])]
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise QuestionError(f"{source.name}: question ids must be unique")
    return questions


def formatted(value: Any, fmt: str) -> str:
    """A value as answers write it."""
    if fmt == "count":
        return f"{float(value):,.0f}"
    if fmt == "money":
        return f"${float(value):,.2f}"
    if fmt == "pct":
        return f"{float(value):.1f} %"
    return str(value)


async def _scalar(query: str, params: dict[str, Any]) -> Any:
    async with current().pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)  # the evaluator's own queries, from the packaged file
        row = await cur.fetchone()
    if row is None:
        raise QuestionError(f"no row for {query!r}")
    return next(iter(row.values()))


_LISTED: Final = ("order_ids", "customer_ids", "warehouse_blocks", "modes", "categories")


def _read(state: dict[str, Any]) -> dict[str, Any]:
    entities = (state.get("understanding") or {}).get("entities") or {}
    return {
        "stores": [s["store_id"] for s in entities.get("stores") or []],
        "skus": [p["sku"] for p in entities.get("products") or []],
        **{k: list(entities.get(k) or []) for k in _LISTED},
        "limit": entities.get("limit"),
    }


def _expected(value: Any, bound: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return bound[value[1:-1]]
    if isinstance(value, list):
        return [_expected(v, bound) for v in value]
    return value


async def _ask(graph: Any, thread: str, text: str) -> dict[str, Any]:
    config = {"configurable": {"thread_id": thread}}
    result: dict[str, Any] = await graph.ainvoke({"messages": [{"role": "user", "content": text}]}, config,
                                                 context={"principal": PRINCIPAL})  # fmt: skip
    return result


async def evaluate_question(graph: Any, q: Question, as_of: dt.date) -> QuestionResult:
    """Ask one question (after its earlier turns) and score the answer."""
    params: dict[str, Any] = {"as_of": as_of}
    bound = {name: await _scalar(query, params) for name, query in q.bind.items()}
    params.update(bound)
    thread = f"eval-{uuid.uuid4()}"
    for turn in q.before:
        await _ask(graph, thread, turn.format(**bound))
    text = q.text.format(**bound)
    started = time.perf_counter()
    state = await _ask(graph, thread, text)
    seconds = time.perf_counter() - started
    seen, answer = state.get("understanding") or {}, state.get("answer") or {}
    reply = str(state["messages"][-1].content)
    problems: list[str] = []
    intent_ok = seen.get("intent") == q.intent
    if not intent_ok:
        problems.append(f"intent {seen.get('intent')} (expected {q.intent})")
    read = _read(state)
    entities_ok = True
    for kind, want in q.entities.items():
        expected = _expected(want, bound)
        if read[kind] != expected:
            entities_ok = False
            problems.append(f"{kind} {read[kind]} (expected {expected})")
    answer_ok = answer.get("kind") == q.kind
    if not answer_ok:
        problems.append(f"answer kind {answer.get('kind')} (expected {q.kind})")
    for fact in q.facts:
        value = formatted(await _scalar(fact.sql, params), fact.format)
        if value not in reply:
            answer_ok = False
            problems.append(f"the answer does not state {value!r}")
    return QuestionResult(q.id, text, seen.get("intent"), intent_ok, entities_ok, answer_ok, round(seconds, 4), reply,
                          problems)  # fmt: skip


async def run_evaluation(questions: Sequence[Question]) -> ChatEvalReport:
    """Every question through a chat graph compiled with an in-memory saver."""
    graph = build_graph(checkpointer=InMemorySaver())
    as_of = await _scalar("SELECT max(date) AS as_of FROM sales_daily", {})
    if as_of is None:
        raise QuestionError("the database holds no sales: seed it first (`rimas seed`)")
    return ChatEvalReport([await evaluate_question(graph, q, as_of) for q in questions])


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def format_report(report: ChatEvalReport) -> str:
    """The report as a table, the misses with what went wrong, and the totals."""
    width = max([len("question"), *(len(r.id) for r in report.results)])
    lines = [f"chat evaluation: {len(report.results)} questions", "",
             f"{'question':<{width}}  {'intent':<6}  {'entities':<8}  {'answer':<6}  seconds"]  # fmt: skip
    for r in report.results:
        lines.append(f"{r.id:<{width}}  {_mark(r.intent_ok):<6}  {_mark(r.entities_ok):<8}  {_mark(r.answer_ok):<6}  "
                     f"{r.seconds:.3f}")  # fmt: skip
    missed = [r for r in report.results if r.problems]
    if missed:
        lines += ["", "misses:"]
        for r in missed:
            lines += [f"  {r.id}: {r.question}", *(f"    {p}" for p in r.problems), f"    answer: {r.answer[:300]}"]
    lines += ["", f"intent accuracy {report.intent_accuracy:.1%}, entity accuracy {report.entity_accuracy:.1%}, "
              f"answer correctness {report.answer_correctness:.1%} (at least {MIN_CORRECT:.0%} to pass): "
              f"{'PASS' if report.passed else 'FAIL'}"]  # fmt: skip
    return "\n".join(lines)
