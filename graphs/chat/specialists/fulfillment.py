"""The fulfillment specialist: why an order is at risk, which open orders are likely late, the fulfillment KPIs and
the deviations on record.

Intents: ``fulfillment.order_risk`` (an order's facts, its stored prediction or else the in-memory score of the
open orders, its factors in words and its deviation: ``tools.orders.require_order``, ``tools.risk``),
``fulfillment.late_orders`` (``tools.risk.likely_late`` by warehouse block and shipping mode),
``fulfillment.kpis`` (``tools.kpis.dashboard``) and ``fulfillment.deviations`` (``tools.deviations
.list_deviations``). Reading writes nothing: an order scored for an answer is scored in memory only.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any, Final

from graphs.chat.specialists.base import Answer, Ask, Table, clarify, count, failed, names, pct, table
from tools import deviations, kpis, orders, risk
from tools.deps import current

LATE_AT: Final = 0.5
"""P(late) above which an open order counts as likely late."""
DEFAULT_LATE: Final = 10
MOST_LIKELY: Final = 3
"""Orders named in the text of a late-orders answer (the table has them all)."""
NEWEST: Final = 5
SEVERITIES: Final = ("critical", "warning", "info")
_STATUSES: Final[tuple[tuple[str, str], ...]] = (
    (r"\bopen\b", "open"), (r"\bin[ _-]?progress\b", "in_progress"), (r"\bawaiting\b|\bpending approval\b",
    "awaiting_approval"), (r"\bresolved\b", "resolved"), (r"\bescalated\b", "escalated"), (r"\bdismissed\b",
    "dismissed"),
)  # fmt: skip


async def answer(ask: Ask) -> Answer:
    """The answer to a ``fulfillment.*`` question."""
    if ask.intent == "fulfillment.late_orders":
        return await _late_orders(ask)
    if ask.intent == "fulfillment.kpis":
        return await _kpis()
    if ask.intent == "fulfillment.deviations":
        return await _deviations(ask)
    return await _order_risk(ask)


def _p(probability: float) -> str:
    """A probability as a percentage (``72.0 %``)."""
    return pct(100 * probability)


# -- one order ----------------------------------------------------------------------------------------------------


def _order_id(ask: Ask) -> str | None:
    """The order asked about: named in the question, else the previous answer's first order."""
    if ask.entities.order_ids:
        return ask.entities.order_ids[0]
    previous = ask.previous.get("order_ids") or []
    if isinstance(previous, str):
        previous = [previous]
    return str(previous[0]) if previous else None


@dataclasses.dataclass(frozen=True)
class _Score:
    probability: float
    severity: str | None
    factors: list[str]
    source: str
    """``stored`` (the scoring pipeline's prediction) or ``now`` (scored in memory for this answer)."""


def _stored_score(facts: orders.OrderFacts) -> _Score | None:
    if facts.delay_probability is None:
        return None
    factors = [str(f.get("text") or f.get("feature")) for f in facts.top_features if f.get("text") or
               f.get("feature")]  # fmt: skip
    return _Score(facts.delay_probability, facts.severity, factors, "stored")


async def _order_risk(ask: Ask) -> Answer:
    order_id = _order_id(ask)
    if order_id is None:
        return clarify("Which order do you mean? Give its order id (for example ORD-000123).")
    try:
        facts = await orders.require_order(order_id)
    except orders.OrderNotFound:
        return Answer(f"There is no order {order_id}: neither the seeded orders nor the scoring pipeline know it.",
                      kind="unknown", tools=["order_risk"], focus={"order_ids": [order_id]})  # fmt: skip
    except Exception as exc:  # any tool failure becomes an error answer naming the tool
        return failed("order_risk", exc)
    tools = ["order_risk"]
    score = _stored_score(facts)
    if score is None and facts.order_status in risk.OPEN:
        tools.append("likely_late")
        try:
            found = next((r for r in await risk.open_order_risks() if r.order_id == facts.order_id), None)
        except Exception as exc:
            return failed("likely_late", exc)
        if found is not None:
            score = _Score(found.delay_probability, found.severity, list(found.factors), found.scored)
    focus: dict[str, Any] = {"order_ids": [facts.order_id]}
    if facts.customer_id is not None:
        focus["customer_ids"] = [facts.customer_id]
    return Answer(_order_text(facts, score), table=_order_table(facts, score), tools=tools, focus=focus)


def _order_head(facts: orders.OrderFacts) -> str:
    where = [f"warehouse {facts.warehouse_block}" if facts.warehouse_block else None,
             f"by {facts.mode_of_shipment}" if facts.mode_of_shipment else None,
             f"status {facts.order_status}" if facts.order_status else None,
             f"promised for {facts.promised_delivery_date}" if facts.promised_delivery_date else None]  # fmt: skip
    details = ", ".join(w for w in where if w)
    return f"Order {facts.order_id} ({details})" if details else f"Order {facts.order_id}"


def _order_text(facts: orders.OrderFacts, score: _Score | None) -> str:
    parts = [_order_head(facts)]
    if score is None:
        reason = "it is not an open order" if facts.order_status not in risk.OPEN else "no delay model is loaded"
        parts[0] += f" has no delay score: {reason}."
    else:
        severity = f", severity {score.severity}" if score.severity else ""
        how = ("the scoring pipeline's stored prediction" if score.source == "stored"
               else "scored now with the delay model, nothing stored")  # fmt: skip
        parts[0] += f": P(late) {_p(score.probability)}{severity} ({how})."
        if score.factors:
            parts.append(f"What drives it: {'; '.join(score.factors)}.")
    if facts.delivery_date is not None:
        parts.append(f"Delivered on {facts.delivery_date}.")
    if facts.days_late > 0:
        parts.append(f"It is {count(facts.days_late)} days past its promised date (as of {facts.as_of}).")
    if facts.block_backlog_hours is not None and facts.block_backlog_hours >= 1:
        parts.append(f"Warehouse {facts.warehouse_block} has about {count(facts.block_backlog_hours)} hours of "
                     "orders waiting to ship.")  # fmt: skip
    if facts.deviation_id is not None:
        parts.append(f"Deviation {facts.deviation_id}: {facts.deviation_status}.")
    else:
        parts.append("No deviation has been raised for it.")
    return " ".join(parts)


def _order_table(facts: orders.OrderFacts, score: _Score | None) -> Table:
    rows: list[list[Any]] = [
        ["order_id", facts.order_id], ["status", facts.order_status], ["warehouse_block", facts.warehouse_block],
        ["mode_of_shipment", facts.mode_of_shipment],
        ["promised_delivery_date", str(facts.promised_delivery_date) if facts.promised_delivery_date else None],
        ["delivery_date", str(facts.delivery_date) if facts.delivery_date else None], ["days_late", facts.days_late],
        ["delay_probability", round(100 * score.probability, 1) if score else None],
        ["severity", score.severity if score else None], ["scored", score.source if score else None],
        ["factors", "; ".join(score.factors) if score else None], ["deviation_id", facts.deviation_id],
        ["deviation_status", facts.deviation_status],
    ]  # fmt: skip
    return table(f"Order {facts.order_id}", ["field", "value"], rows, units={"delay_probability": "%",
                                                                          "days_late": "days"})  # fmt: skip


# -- orders likely late ---------------------------------------------------------------------------------------------


def _scope_words(blocks: Sequence[str | None], mode: str | None) -> str:
    named = [b for b in blocks if b]
    words = ""
    if named:
        words = f" from warehouse{'s' if len(named) > 1 else ''} {names(named)}"
    if mode:
        words += f" shipped by {mode}"
    return words


async def _likely_late(blocks: Sequence[str | None], mode: str | None, limit: int) -> tuple[list[risk.OrderRisk], int]:
    rows: list[risk.OrderRisk] = []
    total = 0
    for block in blocks:
        found, n = await risk.likely_late(warehouse_block=block, mode=mode, at_least=LATE_AT, limit=limit)
        rows.extend(found)
        total += n
    rows.sort(key=lambda r: (-r.delay_probability, r.order_id))
    return rows[:limit], total


def _has_delay_model() -> bool:
    try:
        return current().models.get("delay") is not None
    except Exception:  # no tools installed: the tool call reports it
        return True


async def _late_orders(ask: Ask) -> Answer:
    blocks: list[str | None] = list(ask.entities.warehouse_blocks) or [None]
    mode = ask.entities.modes[0] if ask.entities.modes else None
    limit = ask.entities.limit or DEFAULT_LATE
    try:
        rows, total = await _likely_late(blocks, mode, limit)
    except Exception as exc:
        return failed("likely_late", exc)
    scope = _scope_words(blocks, mode)
    threshold = f"P(late) > {pct(100 * LATE_AT, 0)}"
    if total == 0:
        text = f"No open orders{scope} are likely late ({threshold})."
    else:
        top = names([f"{r.order_id} ({_p(r.delay_probability)}, {r.severity})" for r in rows[:MOST_LIKELY]])
        noun = "open order" if total == 1 else "open orders"
        verb = "is" if total == 1 else "are"
        text = f"{count(total)} {noun}{scope} {verb} likely late ({threshold}); the most likely: {top}."
        now = sum(1 for r in rows if r.scored == "now")
        if now:
            text += f" {count(now)} of the {count(len(rows))} listed were scored now with the delay model " \
                    "(nothing stored)."  # fmt: skip
    if not _has_delay_model():
        text += " No delay model is loaded, so only orders the scoring pipeline has scored count."
    grid = table(f"Open orders likely late{scope}", ["order_id", "warehouse_block", "mode_of_shipment",
                                                     "order_status", "promised_delivery_date", "delay_probability",
                                                     "severity", "factors", "scored"],
                 [[r.order_id, r.warehouse_block, r.mode_of_shipment, r.order_status, r.promised_delivery_date,
                   round(100 * r.delay_probability, 1), r.severity, "; ".join(r.factors), r.scored] for r in rows],
                 units={"delay_probability": "%"})  # fmt: skip
    return Answer(text, table=grid, tools=["likely_late"], focus={"order_ids": [r.order_id for r in rows]})


# -- KPIs ---------------------------------------------------------------------------------------------------------


def _riskiest(board: kpis.KpiDashboard, n: int = 3) -> list[tuple[str, kpis.SegmentRisk]]:
    flat = [(dimension, seg) for dimension, segs in board["segments"].items() for seg in segs]
    flat.sort(key=lambda ds: (-ds[1]["mean_delay_probability"], ds[0], ds[1]["segment"]))
    return flat[:n]


def _segment_words(dimension: str, seg: kpis.SegmentRisk) -> str:
    label = {"warehouse_block": "warehouse", "mode_of_shipment": "mode", "product_importance": "importance"}
    alert = ", above the alert level" if seg["alert"] else ""
    return (f"{label.get(dimension, dimension)} {seg['segment']} (mean P(late) {_p(seg['mean_delay_probability'])} "
            f"over {count(seg['orders'])} orders{alert})")  # fmt: skip


def _kpi_text(board: kpis.KpiDashboard) -> str:
    window = f"Over the last {count(board['window_days'])} days"
    if board["orders_scored"] == 0:
        return f"{window} no orders were scored, so there are no predicted on-time rates yet."
    parts = [f"{window}, {count(board['orders_scored'])} orders were scored."]
    target = pct(board["on_time_target_pct"])
    if board["predicted_on_time_pct"] is not None:
        versus = "below" if board["below_target"] else "at or above"
        parts.append(f"Predicted on-time rate: {pct(board['predicted_on_time_pct'])}, {versus} the target of "
                     f"{target}.")  # fmt: skip
    if board["expected_on_time_pct"] is not None:
        parts.append(f"Expected on-time rate: {pct(board['expected_on_time_pct'])}.")
    actual = board["actual_on_time"]
    if actual["on_time_pct"] is not None:
        parts.append(f"Actual on-time rate: {pct(actual['on_time_pct'])} ({count(actual['on_time'])} of "
                     f"{count(actual['orders'])} delivered orders on time).")  # fmt: skip
    else:
        parts.append("No scored order has been delivered yet, so there is no actual on-time rate.")
    parts.append(f"High-risk (critical) orders: {count(board['high_risk_orders'])}.")
    riskiest = _riskiest(board)
    if riskiest:
        parts.append(f"Riskiest segments: {names([_segment_words(d, s) for d, s in riskiest])}.")
    return " ".join(parts)


async def _kpis() -> Answer:
    try:
        board = await kpis.dashboard()
    except Exception as exc:
        return failed("kpis", exc)
    rows = [[dimension, seg["segment"], seg["orders"], round(100 * seg["mean_delay_probability"], 1),
             seg["predicted_on_time_pct"], seg["alert"], seg["below_target"]]
            for dimension, segs in board["segments"].items() for seg in segs]  # fmt: skip
    grid = table(f"Segment risk over the last {board['window_days']} days",
                 ["dimension", "segment", "orders", "mean_delay_probability", "predicted_on_time_pct", "alert",
                  "below_target"], rows,
                 units={"orders": "orders", "mean_delay_probability": "%", "predicted_on_time_pct": "%"},
                 period={"start": board["since"][:10], "end": board["generated_at"][:10],
                         "label": f"last {board['window_days']} days"})  # fmt: skip
    return Answer(_kpi_text(board), table=grid, tools=["kpis"])


# -- deviations -----------------------------------------------------------------------------------------------------


def deviation_filter(ask: Ask) -> deviations.DeviationFilter:
    """The filter the question asks for: severities and statuses named, the first warehouse block, mode, order."""
    text = ask.text.lower()
    severity = [s for s in SEVERITIES if re.search(rf"\b{s}\b", text)]
    status = [name for pattern, name in _STATUSES if re.search(pattern, text)]
    ents = ask.entities
    return deviations.DeviationFilter(
        severity=severity or None, status=status or None,
        warehouse_block=ents.warehouse_blocks[0] if ents.warehouse_blocks else None,
        mode_of_shipment=ents.modes[0] if ents.modes else None,
        order_id=ents.order_ids[0] if ents.order_ids else None,
    )  # fmt: skip


def _filter_words(where: deviations.DeviationFilter, n: int = 2) -> str:
    """``open critical deviations from warehouse F`` (``deviation`` when ``n`` is 1)."""
    words = []
    if where.status:
        words.append(names([s.replace("_", " ") for s in where.status]))
    if where.severity:
        words.append(names(where.severity))
    noun = "deviation" if n == 1 else "deviations"
    phrase = " ".join([*words, noun])
    if where.warehouse_block:
        phrase += f" from warehouse {where.warehouse_block}"
    if where.mode_of_shipment:
        phrase += f" shipped by {where.mode_of_shipment}"
    if where.order_id:
        phrase += f" on order {where.order_id}"
    return phrase


async def _deviation_counts(where: deviations.DeviationFilter) -> dict[str, int]:
    out: dict[str, int] = {}
    for severity in where.severity or SEVERITIES:
        page = await deviations.list_deviations(dataclasses.replace(where, severity=[severity]), limit=0)
        out[severity] = page["total"]
    return out


async def _deviations(ask: Ask) -> Answer:
    where = deviation_filter(ask)
    try:
        page = await deviations.list_deviations(where, limit=NEWEST)
        by_severity = await _deviation_counts(where)
    except Exception as exc:
        return failed("deviations", exc)
    what = _filter_words(where)
    items = page["items"]
    if page["total"] == 0:
        text = f"There are no {what} on record."
    else:
        split = names([f"{count(n)} {s}" for s, n in by_severity.items() if n])
        newest = names([f"{d['order_id']} ({d['severity']}, {str(d['status']).replace('_', ' ')}, created "
                        f"{d['created_at']:%Y-%m-%d %H:%M})" for d in items])  # fmt: skip
        text = f"{count(page['total'])} {_filter_words(where, page['total'])} on record: {split}. The newest: {newest}."
    grid = table(f"Newest {what}", ["deviation_id", "order_id", "severity", "status", "delay_probability",
                                    "warehouse_block", "mode_of_shipment", "created_at", "thread_url"],
                 [[d["deviation_id"], d["order_id"], d["severity"], d["status"],
                   round(100 * d["delay_probability"], 1) if d["delay_probability"] is not None else None,
                   d["warehouse_block"], d["mode_of_shipment"], d["created_at"].isoformat(), d["thread_url"]]
                  for d in items], units={"delay_probability": "%"})  # fmt: skip
    return Answer(text, table=grid, tools=["deviations"], focus={"order_ids": [d["order_id"] for d in items]})
