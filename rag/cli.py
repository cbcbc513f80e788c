"""``rimas eval retrieval``: the retrieval evaluation as a command (argparse sub-commands).

The lead's console script calls :func:`add_commands` with its sub-parsers; each registered command
stores its handler in ``func`` (``args.func(args) -> int``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from rag.embeddings import Embedder, load_static_embedder, make_embedder


class _Writer:
    """Small stdout writer for command output (library code logs instead)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")


def _embedder(choice: str) -> Embedder:
    if choice == "openai":
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            raise SystemExit("--embedder openai: OPENAI_API_KEY is not set")
        return make_embedder(key, os.environ.get("OPENAI_BASE_URL"), os.environ.get("RIMAS_EMBEDDING_MODEL"))
    return load_static_embedder()


def run_eval_retrieval(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handler of ``rimas eval retrieval``; returns the exit code (1 when below ``--min-recall``)."""
    from rag.evaluation import format_report, load_eval_set, run_retrieval_eval, write_json

    writer = _Writer(out)
    eval_set = load_eval_set(Path(args.eval_set)) if args.eval_set else None
    report = run_retrieval_eval(
        _embedder(args.embedder),
        url=args.qdrant_url,
        path=args.path,
        eval_set=eval_set,
        list_held_out_misses=args.show_held_out_misses,
    )
    writer.line(format_report(report))
    if args.json:
        write_json(report, Path(args.json))
        writer.line(f"\nwrote {args.json}")
    code = 0
    if args.min_recall is not None and report.modes["hybrid"].recall_at_5 < args.min_recall:
        writer.line(f"hybrid recall@5 {report.modes['hybrid'].recall_at_5:.3f} is below --min-recall {args.min_recall}")
        code = 1
    if args.min_held_out_recall is not None:
        held_out = report.recall_at_5("held_out")
        if held_out is None:
            writer.line("--min-held-out-recall: the evaluation set has no held-out question")
            code = 1
        elif held_out < args.min_held_out_recall:
            writer.line(
                f"held-out hybrid recall@5 {held_out:.3f} is below --min-held-out-recall {args.min_held_out_recall}"
            )
            code = 1
    return code


def _fraction(text: str) -> float:
    """An argparse type: a number from 0 to 1 (recall is a fraction, not a percentage)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1 (a fraction such as 0.8), got {text}")
    return value


def _nested_subparsers(parser: argparse.ArgumentParser) -> Any:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def add_commands(subparsers: Any) -> None:
    """Register ``eval retrieval`` on an argparse sub-parsers object.

    An ``eval`` command registered by another package (``eval model``, say) is reused, not replaced.
    """
    eval_parser = subparsers.choices.get("eval") or subparsers.add_parser(
        "eval", help="score policy retrieval (recall@1, recall@5, MRR)"
    )
    eval_sub = _nested_subparsers(eval_parser)
    if eval_sub is None:
        eval_sub = eval_parser.add_subparsers(dest="eval_command", metavar="WHAT")
        eval_sub.required = True
    retrieval = eval_sub.add_parser(
        "retrieval",
        help="recall@1, recall@5 and MRR of dense, sparse and hybrid policy search (tuning and held-out questions)",
        description="Ingest the policy documents into a fresh store and score the labelled questions, "
        "separately for the tuning questions, the held-out questions and all of them.",
    )
    target = retrieval.add_mutually_exclusive_group()
    target.add_argument("--qdrant-url", help="evaluate against a Qdrant server (temporary collections, removed after)")
    target.add_argument("--path", help="local-mode Qdrant folder to use (default: a temporary folder)")
    retrieval.add_argument("--embedder", choices=["static", "openai"], default="static",
                           help="static: packaged offline model (default); openai: needs OPENAI_API_KEY")
    retrieval.add_argument("--eval-set", help="labelled questions YAML (default: the packaged set)")
    retrieval.add_argument("--json", metavar="PATH", help="also write the full report as JSON")
    retrieval.add_argument("--min-recall", type=_fraction, metavar="X",
                           help="exit 1 when hybrid recall@5 over all questions is below X (a fraction from 0 to 1)")
    retrieval.add_argument("--min-held-out-recall", type=_fraction, metavar="X",
                           help="exit 1 when hybrid recall@5 on the held-out questions is below X")
    retrieval.add_argument("--show-held-out-misses", action="store_true",
                           help="also list the held-out questions hybrid search misses (only once tuning is over)")
    retrieval.set_defaults(func=run_eval_retrieval)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m rag.cli eval retrieval``) until the console script wires it."""
    parser = argparse.ArgumentParser(prog="rimas")
    sub = parser.add_subparsers(dest="command", metavar="{eval}")
    sub.required = True
    add_commands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
