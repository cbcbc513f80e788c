"""``rimas eval chat`` on the seeded data: the packaged questions reach the answer-correctness bar, and the scoring
catches an answer that does not state its fact, a misread intent and a misread entity."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphs.chat.evaluation import MIN_CORRECT, QuestionError, format_report, load_questions, run_evaluation
from tools.deps import ToolDeps


async def test_the_packaged_questions_reach_the_bar(deps: ToolDeps) -> None:
    questions = load_questions()
    assert len(questions) >= 40
    report = await run_evaluation(questions)
    text = format_report(report)
    assert report.answer_correctness >= MIN_CORRECT, text
    assert report.intent_accuracy >= MIN_CORRECT and report.entity_accuracy >= MIN_CORRECT, text


async def test_a_wrong_fact_intent_or_entity_is_a_miss(deps: ToolDeps, tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text("""
questions:
  - id: wrong-fact
    question: "how many units did store {store} sell yesterday?"
    bind: {store: "SELECT min(store_id) FROM stores"}
    intent: sales.summary
    entities: {stores: ["{store}"]}
    facts: [{sql: "SELECT sum(units) + 1 FROM sales_daily WHERE store_id = %(store)s AND date = %(as_of)s::date - 1"}]
  - id: wrong-intent
    question: "how many units did store 1 sell yesterday?"
    intent: sales.compare
  - id: wrong-entity
    question: "how many units did store 1 sell yesterday?"
    intent: sales.summary
    entities: {stores: [2]}
""")
    report = await run_evaluation(load_questions(path))
    by_id = {r.id: r for r in report.results}
    assert not by_id["wrong-fact"].answer_ok and by_id["wrong-fact"].intent_ok and by_id["wrong-fact"].entities_ok
    assert not by_id["wrong-intent"].intent_ok and by_id["wrong-intent"].answer_ok
    assert not by_id["wrong-entity"].entities_ok
    assert not report.passed


def test_an_unusable_question_file_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text("questions:\n  - id: a\n    question: hi\n    intent: chat.greeting\n    entities: {shops: [1]}\n")
    with pytest.raises(QuestionError, match="unknown entity kind"):
        load_questions(path)
