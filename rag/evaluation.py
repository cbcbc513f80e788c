"""Retrieval evaluation: recall@1, recall@5 and MRR of dense, sparse and hybrid search.

The labelled set (``rag/content/retrieval_eval.yaml``) lists realistic questions with the policy
sections that answer them, plus off-topic questions. A question counts as found at k when any answering
section is among the top k hits; MRR uses the rank of the first answering section within the top 10.
Ranking metrics are measured without the minimum score; the off-topic rejection rate and the on-topic
answer rate show what the minimum score does to hybrid search.

Questions marked ``held_out: true`` are kept out of tuning (chunking, thresholds, fusion weights): every
metric is reported for the tuning questions, the held-out questions and all of them, and only the tuning
questions' misses and per-topic figures are listed, so tuning cannot be steered by held-out answers.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from qdrant_client import QdrantClient

from rag.documents import CONTENT_DIR, load_policy_documents
from rag.embeddings import Embedder, load_static_embedder
from rag.service import KnowledgeBase
from rag.store import SearchMode

LOG = logging.getLogger(__name__)

EVAL_SET_PATH = CONTENT_DIR / "retrieval_eval.yaml"
MODES: tuple[SearchMode, ...] = ("dense", "sparse", "hybrid")
TUNING = "tuning"
HELD_OUT = "held_out"
SPLITS: tuple[str, ...] = (TUNING, HELD_OUT)
RANK_DEPTH = 10


class EvalSetError(ValueError):
    """The evaluation set is malformed or cites a section that does not exist."""


@dataclass(frozen=True)
class EvalQuestion:
    question: str
    relevant: tuple[str, ...]
    topic: str
    held_out: bool = False

    @property
    def split(self) -> str:
        return HELD_OUT if self.held_out else TUNING


@dataclass(frozen=True)
class EvalSet:
    questions: tuple[EvalQuestion, ...]
    off_topic: tuple[str, ...]


@dataclass
class ModeMetrics:
    recall_at_1: float
    recall_at_5: float
    mrr: float
    questions: int


@dataclass
class EvalReport:
    """Metrics per mode over all questions (``modes``) and per split (``splits[split][mode]``).

    ``hybrid_recall_at_5_by_topic`` and ``hybrid_misses`` cover the tuning questions only; held-out misses
    are counted in ``held_out_missed`` and listed in ``held_out_misses`` only when asked for.
    """

    embedder: str
    modes: dict[str, ModeMetrics]
    hybrid_recall_at_5_by_topic: dict[str, float]
    hybrid_misses: list[dict[str, Any]]
    min_score: float
    strong_score: float
    off_topic_rejected: int
    off_topic_total: int
    on_topic_answered: float
    ingest_seconds: float
    eval_seconds: float
    policy_chunks: int = 0
    notes: list[str] = field(default_factory=list)
    splits: dict[str, dict[str, ModeMetrics]] = field(default_factory=dict)
    on_topic_answered_by_split: dict[str, float] = field(default_factory=dict)
    held_out_missed: int = 0
    held_out_misses: list[dict[str, Any]] = field(default_factory=list)

    def recall_at_5(self, split: str | None = None, mode: str = "hybrid") -> float | None:
        """Recall@5 of ``mode`` on a split (None: all questions); None when the split has no question."""
        if split is None:
            return self.modes[mode].recall_at_5
        metrics = self.splits.get(split, {}).get(mode)
        return metrics.recall_at_5 if metrics is not None else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_eval_set(path: Path | None = None, check_citations: bool = True) -> EvalSet:
    """Load and validate the labelled set; every cited section must exist in the policy documents."""
    source = path or EVAL_SET_PATH
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise EvalSetError(f"{source}: expected a mapping with a 'questions' list")
    questions = []
    for i, item in enumerate(data["questions"]):
        if not isinstance(item, dict) or not item.get("q") or not item.get("relevant"):
            raise EvalSetError(f"{source}: questions[{i}] needs q and relevant")
        held_out = item.get("held_out", False)
        if not isinstance(held_out, bool):
            raise EvalSetError(f"{source}: questions[{i}].held_out must be true or false, got {held_out!r}")
        questions.append(
            EvalQuestion(str(item["q"]), tuple(item["relevant"]), str(item.get("topic", "other")), held_out)
        )
    if check_citations:
        known = {s.citation_id for d in load_policy_documents() for s in d.sections}
        for i, question in enumerate(questions):
            unknown = [c for c in question.relevant if c not in known]
            if unknown:
                raise EvalSetError(f"{source}: questions[{i}] cites unknown section(s) {', '.join(unknown)}")
    return EvalSet(tuple(questions), tuple(str(q) for q in data.get("off_topic") or []))


def _first_rank(citations: list[str], relevant: tuple[str, ...]) -> int | None:
    for rank, citation in enumerate(citations, start=1):
        if citation in relevant:
            return rank
    return None


def _ranked_citations(kb: KnowledgeBase, question: str, mode: SearchMode) -> list[str]:
    hits = kb.search(question, k=RANK_DEPTH, mode=mode, gate=False)
    return list(dict.fromkeys(h.citation_id for h in hits))


def _metrics(ranks: list[int | None]) -> ModeMetrics:
    n = len(ranks)
    at1 = sum(1 for r in ranks if r == 1)
    at5 = sum(1 for r in ranks if r is not None and r <= 5)
    reciprocal = sum(1.0 / r for r in ranks if r)
    return ModeMetrics(round(at1 / n, 4), round(at5 / n, 4), round(reciprocal / n, 4), n)


def evaluate(kb: KnowledgeBase, eval_set: EvalSet | None = None, *, list_held_out_misses: bool = False) -> EvalReport:
    """Run every question in every mode against an already-ingested knowledge base.

    Held-out misses are only counted unless ``list_held_out_misses`` (for after tuning is over).
    """
    eval_set = eval_set or load_eval_set()
    if not eval_set.questions:
        raise EvalSetError("the evaluation set has no questions")
    started = time.perf_counter()
    modes: dict[str, ModeMetrics] = {}
    splits: dict[str, dict[str, ModeMetrics]] = {}
    by_topic: dict[str, list[bool]] = {}
    misses: list[dict[str, Any]] = []
    held_out_misses: list[dict[str, Any]] = []
    for mode in MODES:
        ranks: list[int | None] = []
        for question in eval_set.questions:
            citations = _ranked_citations(kb, question.question, mode)
            rank = _first_rank(citations, question.relevant)
            ranks.append(rank)
            if mode != "hybrid":
                continue
            found = rank is not None and rank <= 5
            if not question.held_out:
                by_topic.setdefault(question.topic, []).append(found)
            if not found:
                miss = {"question": question.question, "expected": list(question.relevant),
                        "got": citations[:3], "rank": rank}
                (held_out_misses if question.held_out else misses).append(miss)
        modes[mode] = _metrics(ranks)
        for split in SPLITS:
            split_ranks = [r for r, q in zip(ranks, eval_set.questions, strict=True) if q.split == split]
            if split_ranks:
                splits.setdefault(split, {})[mode] = _metrics(split_ranks)
    rejected = sum(1 for q in eval_set.off_topic if not kb.search(q, k=5))
    answered: dict[str, list[bool]] = {}
    for question in eval_set.questions:
        gated = [h.citation_id for h in kb.search(question.question, k=5)]
        answered.setdefault(question.split, []).append(any(c in question.relevant for c in gated))
    every = [a for split in SPLITS for a in answered.get(split, [])]
    return EvalReport(
        embedder=kb.embedder.name,
        modes=modes,
        hybrid_recall_at_5_by_topic={t: round(sum(v) / len(v), 4) for t, v in sorted(by_topic.items())},
        hybrid_misses=misses,
        min_score=kb.min_score,
        strong_score=kb.strong_score,
        off_topic_rejected=rejected,
        off_topic_total=len(eval_set.off_topic),
        on_topic_answered=round(sum(every) / len(every), 4),
        ingest_seconds=0.0,
        eval_seconds=round(time.perf_counter() - started, 3),
        splits=splits,
        on_topic_answered_by_split={s: round(sum(v) / len(v), 4) for s, v in answered.items()},
        held_out_missed=len(held_out_misses),
        held_out_misses=held_out_misses if list_held_out_misses else [],
    )


def run_retrieval_eval(
    embedder: Embedder | None = None,
    *,
    url: str | None = None,
    path: str | None = None,
    eval_set: EvalSet | None = None,
    list_held_out_misses: bool = False,
) -> EvalReport:
    """Build a knowledge base (temporary local store by default), ingest the policies, evaluate."""
    embedder = embedder or load_static_embedder()
    with tempfile.TemporaryDirectory(prefix="rimas-eval-") as tmp:
        if url:
            client = QdrantClient(url=url)
            prefix = f"rimas_eval_{int(time.time())}_"
        else:
            client = QdrantClient(path=path or tmp)
            prefix = "eval_" if path else ""
        try:
            kb = KnowledgeBase(client, embedder, prefix=prefix)
            ingest = kb.ingest_policy_documents()
            report = evaluate(kb, eval_set, list_held_out_misses=list_held_out_misses)
            report.ingest_seconds = ingest.seconds
            report.policy_chunks = kb.collection_sizes()["policies"]
            if url or path:
                for name in ("policies", "cases"):
                    client.delete_collection(kb.store.physical(name))
        finally:
            client.close()
    return report


_SPLIT_LABELS = {TUNING: "tuning", HELD_OUT: "held-out"}


def format_report(report: EvalReport) -> str:
    """A plain-text table of the metrics per mode and split, plus the min-score figures."""
    counts = {split: report.splits[split]["hybrid"].questions for split in SPLITS if split in report.splits}
    lines = [
        f"retrieval evaluation: {report.modes['hybrid'].questions} questions "
        f"({counts.get(TUNING, 0)} tuning, {counts.get(HELD_OUT, 0)} held out), embedder {report.embedder}, "
        f"{report.policy_chunks} policy chunks",
        "",
        f"{'mode':<8} {'questions':<9} {'n':>4} {'recall@1':>9} {'recall@5':>9} {'MRR@10':>8}",
    ]
    for mode in MODES:
        rows = [(_SPLIT_LABELS[s], report.splits[s][mode]) for s in SPLITS if s in report.splits]
        rows.append(("all", report.modes[mode]))
        for label, m in rows:
            lines.append(
                f"{mode:<8} {label:<9} {m.questions:>4} {m.recall_at_1:>9.3f} {m.recall_at_5:>9.3f} {m.mrr:>8.3f}"
            )
    summary = ", ".join(
        f"{_SPLIT_LABELS[s]} {report.splits[s]['hybrid'].recall_at_5:.3f}" for s in SPLITS if s in report.splits
    )
    answered = ", ".join(
        f"{_SPLIT_LABELS[s]} {report.on_topic_answered_by_split[s]:.3f}"
        for s in SPLITS
        if s in report.on_topic_answered_by_split
    )
    lines += [
        "",
        f"hybrid recall@5: {summary}, all {report.modes['hybrid'].recall_at_5:.3f}",
        "hybrid recall@5 by topic (tuning questions): "
        + ", ".join(f"{t} {v:.2f}" for t, v in report.hybrid_recall_at_5_by_topic.items()),
        f"relevance gate (min score {report.min_score:.2f}, lexical support below {report.strong_score:.2f}): "
        f"off-topic questions answered with nothing "
        f"{report.off_topic_rejected}/{report.off_topic_total}; on-topic questions still answered "
        f"(relevant hit in the top 5) {report.on_topic_answered:.3f} ({answered})",
    ]
    for miss in report.hybrid_misses:
        lines.append(f"  hybrid miss: {miss['question']!r} expected {miss['expected']} got {miss['got']}")
    if HELD_OUT in report.splits:
        total = report.splits[HELD_OUT]["hybrid"].questions
        lines.append(f"held-out hybrid misses: {report.held_out_missed} of {total}"
                     + ("" if report.held_out_misses else " (not listed: they must not steer tuning)"))
        for miss in report.held_out_misses:
            lines.append(f"  held-out miss: {miss['question']!r} expected {miss['expected']} got {miss['got']}")
    return "\n".join(lines)


def write_json(report: EvalReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
