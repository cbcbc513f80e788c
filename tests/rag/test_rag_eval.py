"""The retrieval evaluation: labelled set, metric floors, and the ``eval retrieval`` command."""

from __future__ import annotations

import argparse
import io
import json
import re

import pytest

from rag.cli import add_commands, main, run_eval_retrieval
from rag.evaluation import HELD_OUT, TUNING, EvalReport, EvalSetError, load_eval_set, run_retrieval_eval

COVERAGE_TOPICS = (
    "item_issues", "cancellations", "final_sale", "fraud_review", "lost_parcels", "delivery_attempts",
    "international", "peak_season", "post_incident", "guaranteed_delivery", "refund_copies",
)
# Held-out floor: the held-out hybrid recall@5 measured 22/22 after tuning (21/22 before). With only 22
# questions, the 95% Wilson lower bound of 22/22 is 0.851; demanding more than 0.85 would claim more than
# the held-out set can show. 0.85 still fails at the fourth held-out miss (18/22 = 0.818).
HELD_OUT_FLOOR = 0.85


@pytest.fixture(scope="module")
def report() -> EvalReport:
    return run_retrieval_eval()


def test_eval_set_is_large_and_covers_every_topic() -> None:
    eval_set = load_eval_set()
    assert len(eval_set.questions) >= 40
    topics = {q.topic for q in eval_set.questions}
    assert {"refunds", "shipping", "escalation", "communication", "carriers", "warehouses", "planning"} <= topics
    assert len(eval_set.off_topic) >= 5


def test_coverage_topics_have_tuning_and_held_out_questions_by_a_fixed_rule() -> None:
    eval_set = load_eval_set()
    held_out = [q for q in eval_set.questions if q.held_out]
    assert len(held_out) >= 11
    for topic in COVERAGE_TOPICS:
        flags = [q.held_out for q in eval_set.questions if q.topic == topic]
        assert len(flags) >= 2, topic
        # the documented rule: alternate tuning / held out in listed order, starting with tuning
        assert flags == [i % 2 == 1 for i in range(len(flags))], topic
    assert all(q.topic in COVERAGE_TOPICS for q in held_out)  # questions tuned on earlier stay tuning questions


def test_eval_set_rejects_a_held_out_flag_that_is_not_a_boolean(tmp_path) -> None:
    path = tmp_path / "eval.yaml"
    path.write_text('questions:\n  - {q: "Who approves a refund?", relevant: [policy:refunds#approval-authority], '
                    'held_out: "yes"}\n', encoding="utf-8")
    with pytest.raises(EvalSetError, match=r"questions\[0\]\.held_out must be true or false, got 'yes'"):
        load_eval_set(path)


def test_report_separates_tuning_and_held_out(report: EvalReport) -> None:
    eval_set = load_eval_set()
    counts = {TUNING: sum(not q.held_out for q in eval_set.questions)}
    counts[HELD_OUT] = len(eval_set.questions) - counts[TUNING]
    for mode, overall in report.modes.items():
        tuning, held_out = report.splits[TUNING][mode], report.splits[HELD_OUT][mode]
        assert (tuning.questions, held_out.questions) == (counts[TUNING], counts[HELD_OUT])
        assert overall.questions == tuning.questions + held_out.questions
        found = tuning.recall_at_5 * tuning.questions + held_out.recall_at_5 * held_out.questions
        assert found / overall.questions == pytest.approx(overall.recall_at_5, abs=1e-3)
    assert report.recall_at_5() == report.modes["hybrid"].recall_at_5
    assert report.recall_at_5(HELD_OUT) == report.splits[HELD_OUT]["hybrid"].recall_at_5
    # held-out answers are counted, never listed by default, and never feed the per-topic figures
    held_out_questions = {q.question for q in eval_set.questions if q.held_out}
    assert not held_out_questions & {m["question"] for m in report.hybrid_misses}
    assert report.held_out_misses == []
    held_out_recall = report.recall_at_5(HELD_OUT)
    assert held_out_recall is not None
    assert report.held_out_missed == round((1 - held_out_recall) * counts[HELD_OUT])
    assert set(report.on_topic_answered_by_split) == {TUNING, HELD_OUT}


def test_held_out_recall_meets_its_floor(report: EvalReport) -> None:
    held_out = report.recall_at_5(HELD_OUT)
    assert held_out is not None and held_out >= HELD_OUT_FLOOR
    assert report.on_topic_answered_by_split[HELD_OUT] >= HELD_OUT_FLOOR


def test_hybrid_meets_the_floor_and_beats_each_alone(report: EvalReport) -> None:
    dense, sparse, hybrid = (report.modes[m] for m in ("dense", "sparse", "hybrid"))
    assert hybrid.recall_at_5 >= 0.9
    assert hybrid.recall_at_5 >= max(dense.recall_at_5, sparse.recall_at_5)
    assert hybrid.mrr > max(dense.mrr, sparse.mrr)
    assert dense.recall_at_5 >= 0.75  # the offline embedder is genuinely semantic, not noise


def test_relevance_gate_drops_off_topic_but_keeps_answers(report: EvalReport) -> None:
    assert report.off_topic_rejected >= report.off_topic_total - 1
    assert report.on_topic_answered >= 0.9


def test_command_prints_the_table_and_writes_json(tmp_path) -> None:
    parser = argparse.ArgumentParser(prog="rimas")
    sub = parser.add_subparsers(dest="command")
    existing = sub.add_parser("eval").add_subparsers(dest="eval_command")
    existing.add_parser("model")  # another package's `eval model` must survive
    add_commands(sub)
    target = tmp_path / "eval.json"
    args = parser.parse_args(["eval", "retrieval", "--json", str(target), "--min-recall", "0.9"])
    out = io.StringIO()
    assert run_eval_retrieval(args, out) == 0
    text = out.getvalue()
    assert "recall@1" in text and "hybrid" in text and "sparse" in text
    for mode in ("dense", "sparse", "hybrid"):
        for split in ("tuning", "held-out", "all"):
            assert re.search(rf"^{mode}\s+{split}\s+\d+\s+[01]\.\d{{3}}", text, re.MULTILINE), (mode, split)
    summary = r"^hybrid recall@5: tuning [01]\.\d{3}, held-out [01]\.\d{3}, all [01]\.\d{3}$"
    assert re.search(summary, text, re.MULTILINE)
    assert "(not listed: they must not steer tuning)" in text and "held-out miss:" not in text
    data = json.loads(target.read_text())
    assert set(data["modes"]) == {"dense", "sparse", "hybrid"}
    assert set(data["splits"]) == {"tuning", "held_out"} and set(data["splits"]["held_out"]) == set(data["modes"])
    assert parser.parse_args(["eval", "model"]).eval_command == "model"


def test_command_fails_below_the_floor(tmp_path, capsys) -> None:
    assert main(["eval", "retrieval", "--path", str(tmp_path / "q"), "--min-recall", "1"]) == 1
    assert "below --min-recall" in capsys.readouterr().out


def test_command_checks_and_lists_held_out_questions_only_when_asked(tmp_path, capsys) -> None:
    tuning = '  - {q: "Who has to approve a $350 refund?", relevant: [policy:refunds#approval-authority]}\n'
    held_out = '  - {q: "What is the capital of France?", relevant: [policy:planning#safety-stock], held_out: true}\n'
    both, tuning_only = tmp_path / "both.yaml", tmp_path / "tuning.yaml"
    both.write_text("questions:\n" + tuning + held_out, encoding="utf-8")
    tuning_only.write_text("questions:\n" + tuning, encoding="utf-8")
    assert main(["eval", "retrieval", "--eval-set", str(both), "--min-held-out-recall", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "held-out hybrid recall@5 0.000 is below --min-held-out-recall 0.5" in out
    assert "held-out hybrid misses: 1 of 1 (not listed" in out and "capital of France" not in out
    assert main(["eval", "retrieval", "--eval-set", str(both), "--show-held-out-misses"]) == 0
    assert "held-out miss: 'What is the capital of France?'" in capsys.readouterr().out
    assert main(["eval", "retrieval", "--eval-set", str(tuning_only), "--min-held-out-recall", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "--min-held-out-recall: the evaluation set has no held-out question" in out
    assert "(1 tuning, 0 held out)" in out and not re.search(r"^\w+\s+held-out", out, re.MULTILINE)


@pytest.mark.parametrize(("value", "reason"), [("5", "must be from 0 to 1"), ("-0.1", "must be from 0 to 1"),
                                               ("80%", "'80%' is not a number"), ("nan", "must be from 0 to 1")])
def test_min_recall_must_be_a_fraction(value: str, reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "retrieval", "--min-recall", value])
    assert exit_info.value.code == 2
    assert f"argument --min-recall: {reason}" in capsys.readouterr().err


def test_help_promises_only_commands_that_exist(capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    [line] = [line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("eval ")]
    assert "model" not in line and "retrieval" in line
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--help"])
    assert "retrieval" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["eval", "model"])
    assert exit_info.value.code == 2
