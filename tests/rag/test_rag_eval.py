"""The retrieval evaluation: labelled set, metric floors, and the ``eval retrieval`` command."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from rag.cli import add_commands, main, run_eval_retrieval
from rag.evaluation import EvalReport, load_eval_set, run_retrieval_eval


@pytest.fixture(scope="module")
def report() -> EvalReport:
    return run_retrieval_eval()


def test_eval_set_is_large_and_covers_every_topic() -> None:
    eval_set = load_eval_set()
    assert len(eval_set.questions) >= 40
    topics = {q.topic for q in eval_set.questions}
    assert {"refunds", "shipping", "escalation", "communication", "carriers", "warehouses", "planning"} <= topics
    assert len(eval_set.off_topic) >= 5


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
    data = json.loads(target.read_text())
    assert set(data["modes"]) == {"dense", "sparse", "hybrid"}
    assert parser.parse_args(["eval", "model"]).eval_command == "model"


def test_command_fails_below_the_floor(tmp_path, capsys) -> None:
    assert main(["eval", "retrieval", "--path", str(tmp_path / "q"), "--min-recall", "1"]) == 1
    assert "below --min-recall" in capsys.readouterr().out


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
