"""The knowledge specialist: policy questions answered from the policy passages, with citations.

Intent ``knowledge.policy``: ``tools.knowledge.search_policies`` finds the passages best matching the question;
the answer quotes the best of them briefly, naming each citation id in brackets, and carries them as
``citations``. When the question says how late a parcel is ("a week late", "4 days late"), the refund tier of the
policy file (``tools.deps.current().policy.refunds``) for that many days is added, cited to the compensation-tiers
section. Without a knowledge base the answer says the policy base is not available (kind ``error``).
"""

from __future__ import annotations

import re
from typing import Any, Final

from graphs.chat.specialists.base import Answer, Ask, count, failed, names, pct, table
from rag.policy import Policy
from tools import knowledge
from tools.deps import current

PASSAGES: Final = 3
QUOTED: Final = 2
"""Passages quoted in the text (all of them are cited)."""
QUOTE_CHARS: Final = 280
TIERS_CITATION: Final = "policy:refunds#compensation-tiers"

_NUMBER_WORDS: Final = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                        "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14}  # fmt: skip
_LATE: Final = re.compile(r"\b(\d{1,3}|" + "|".join(_NUMBER_WORDS) + r")[\s-]+(days?|weeks?)\s+(?:late|overdue|"
                          r"delayed|behind)", re.IGNORECASE)  # fmt: skip
_REFUND_WORDS: Final = re.compile(r"\b(?:refund\w*|compensat\w*|money back|reimburs\w*)\b", re.IGNORECASE)


async def answer(ask: Ask) -> Answer:
    """The answer to a ``knowledge.policy`` question."""
    try:
        passages = await knowledge.search_policies(ask.text, k=PASSAGES)
    except Exception as exc:  # any tool failure becomes an error answer naming the tool
        return failed("search_policies", exc)
    if not passages:
        return Answer(_no_passages(), kind="error", tools=["search_policies"])
    citations = [{"id": p.citation, "title": p.title, "section": p.section, "text": p.text} for p in passages]
    text = "\n".join(_quote(p) for p in passages[:QUOTED])
    others = [f"[{p.citation}]" for p in passages[QUOTED:]]
    if others:
        text += f"\nSee also {names(others)}."
    tier = _tier_note(ask.text)
    if tier is not None:
        note, cited = tier
        text += f"\n{note}"
        if all(c["id"] != cited["id"] for c in citations):
            citations.append(cited)
    grid = table("Policy passages", ["citation", "title", "section", "score"],
                 [[p.citation, p.title, p.section, round(p.score, 4)] for p in passages])  # fmt: skip
    return Answer(text, table=grid, citations=citations, tools=["search_policies"])


def _no_passages() -> str:
    try:
        missing = current().knowledge is None
    except Exception:  # no tools installed at all
        missing = True
    if missing:
        return "The policy knowledge base is not available in this process, so I cannot quote the policy."
    return "The policy knowledge base returned no passage for that question."


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """The passage's prose (table rows left out unless there is nothing else), whitespace folded, cut at a word
    boundary within ``limit`` characters."""
    prose = [line for line in text.splitlines() if not line.lstrip().startswith("|")]
    flat = re.sub(r"\s+", " ", " ".join(prose) if "".join(prose).strip() else text).strip()
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0]
    return f"{cut.rstrip(',;:')} ..."


def _quote(passage: knowledge.Passage) -> str:
    return f'[{passage.citation}] {passage.title}, {passage.section}: "{quote(passage.text)}"'


def days_late(text: str) -> int | None:
    """How many days late the question says the order is ("a week late" -> 7), or None."""
    m = _LATE.search(text)
    if m is None:
        return None
    amount = m.group(1).lower()
    number = int(amount) if amount.isdigit() else _NUMBER_WORDS[amount]
    return number * (7 if m.group(2).lower().startswith("week") else 1)


def _tier_note(text: str) -> tuple[str, dict[str, Any]] | None:
    """The refund tier of the policy file for the days late the question names, with its citation."""
    days = days_late(text)
    if days is None or days < 1 or not _REFUND_WORDS.search(text):
        return None
    try:
        policy: Policy = current().policy
    except Exception:  # no policy in this process: the passages alone answer
        return None
    tier = policy.refunds.tier_for(days)
    if tier is None:
        return None
    span = (f"{count(tier.min_days_late)} to {count(tier.max_days_late)} days late" if tier.max_days_late is not None
            else f"{count(tier.min_days_late)} or more days late")  # fmt: skip
    cap = policy.refunds.high_discount
    capped = (f", at most {pct(cap.max_refund_pct, 0)} when it was bought with a discount above "
              f"{pct(cap.discount_over_pct, 0)}" if cap.max_refund_pct < tier.refund_pct else "")  # fmt: skip
    note = (f"For an order {count(days)} days late the policy file's tier \"{tier.name}\" ({span}) gives "
            f"{pct(tier.refund_pct, 0)} of the amount paid{capped} [{TIERS_CITATION}].")  # fmt: skip
    cited = {"id": TIERS_CITATION, "title": "Refund and compensation policy (policy file)",
             "section": f"refunds.tiers.{tier.name}",
             "text": f"{span}: {pct(tier.refund_pct, 0)} of the amount paid"}  # fmt: skip
    return note, cited
