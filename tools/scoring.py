"""The scoring pipeline: enriched order rows in, one prediction and at most one deviation per order out.

Every entry point (``POST /predict``, the batch jobs of ``POST /predict/batch``, the ``POST /events``
micro-batches, the deviation graph) goes through one vectorised path:

1. **Rows.** A CSV (:func:`read_csv_bytes`), a list of dicts or a frame, in the seed's enriched schema as
   upstream sends it (column names matched case-insensitively; the public shipping spellings accepted).
   ``order_id`` and ``customer_id`` are opaque ids ("C00123" as well as 17); orders and customers the seeded
   tables do not know are recorded, not rejected. A missing required column makes the whole input unusable
   (:class:`~ml.errors.InputError`); a bad value rejects its row only, reported with its line and field.
2. **Scores.** :meth:`DelayModel.score` (calibrated P(late), top factors in words) and, when loaded, the
   anomaly detector, on all good rows at once. An order sent twice in one input keeps its last row.
3. **Severity** from the policy file: the thresholds (a probability must be above one), then the escalators:
   an order value above ``order_value_over_usd`` raises info and warning to critical; more than
   ``care_calls_over`` customer care calls, and an anomalous order, add a reason; more than
   ``warehouse_critical_count_over`` critical deviations in one warehouse block within
   ``warehouse_window_hours`` add "warehouse cluster" to each of them (it routes to management). Every reason
   is a sentence, e.g. "delay probability 0.83 above the critical threshold 0.7".
4. **Writes**, in one transaction: the rows are COPYed into a temporary table, then upserted by order id into
   ``order_inputs`` (the row as received), ``predictions`` (one per order) and ``deviations`` (one per order,
   from info up). Sending an order again updates all three and never duplicates; an open deviation without a
   thread whose order now scores below info is dismissed (and reopened if it rises again).

The order value the escalator reads is the row's ``order_value`` when given, else the seeded order's, else
``cost_of_product * quantity * (1 - discount_offered / 100)`` (quantity 1 when not given).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from psycopg import AsyncConnection, errors

from ml.csvio import LINE, CsvRows, parse_csv_text, resolve_columns
from ml.delay.features import CATEGORICAL, COLUMN_ALIASES, FEATURES, NUMERIC, normalise_category
from ml.delay.model import severity_of
from ml.errors import InputError, rows_with_errors
from rag.policy import Policy, severity_at_least
from tools.deps import ToolDeps, current

log = logging.getLogger(__name__)

SOURCES = ("api", "batch", "stream", "agent")
ORDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
ORDER_ID_RULE = "1-128 letters, digits and . _ : - (starting with a letter or digit)"
PAYMENT_STATUSES = ("paid", "pending", "refunded")
ORDER_STATUSES = ("processing", "shipped", "delivered", "delayed")
DATES = ("order_date", "promised_delivery_date", "ship_date", "delivery_date")
TEXTS = ("carrier_name", "tracking_id")
MAX_TEXT = 200
MAX_CUSTOMER_ID = 128
SEVERITIES = ("critical", "warning", "info")
WRITE_ATTEMPTS = 3
"""Tries of a write that collides with a concurrent writer of the same orders (its own transaction only)."""

#: Accepted column spellings of the enriched schema (case-insensitive), beyond the canonical names.
ALIASES: dict[str, tuple[str, ...]] = {
    **{k: v for k, v in COLUMN_ALIASES.items() if k != "is_late"},
    "customer_id": ("customer_ref",),
    **{name: () for name in (*DATES, *TEXTS, "payment_status", "order_status", "order_value", "quantity")},
}
REQUIRED = ("order_id", *FEATURES)
OPTIONAL = tuple(k for k in ALIASES if k not in REQUIRED)


class ScoringUnavailable(RuntimeError):
    """The delay model (or, for anomaly scoring, the anomaly detector) is not loaded in this process."""


# -- result -----------------------------------------------------------------------------------------------------


@dataclass
class ScoringResult:
    """What one scoring call did. ``deviations`` maps a severity to the ids of this input's deviations at it;
    ``auto_start`` lists those at the policy's ``auto_start_at`` level that are open without a thread."""

    rows_total: int = 0
    rows_ok: int = 0
    rows_failed: int = 0
    superseded: int = 0
    errors: list[InputError] = field(default_factory=list)
    deviations: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in SEVERITIES})
    auto_start: list[str] = field(default_factory=list)
    dismissed: int = 0
    clusters: list[str] = field(default_factory=list)
    model_version: str | None = None
    anomaly_model_version: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def predictions(self) -> int:
        return self.rows_ok - self.superseded

    def merge(self, other: ScoringResult) -> ScoringResult:
        """Add ``other`` (a later chunk of the same input) to this result, in place."""
        self.rows_total += other.rows_total
        self.rows_ok += other.rows_ok
        self.rows_failed += other.rows_failed
        self.superseded += other.superseded
        self.errors.extend(other.errors)
        for level, ids in other.deviations.items():
            self.deviations.setdefault(level, []).extend(ids)
        self.auto_start.extend(other.auto_start)
        self.dismissed += other.dismissed
        self.clusters = sorted(set(self.clusters) | set(other.clusters))
        self.model_version = other.model_version or self.model_version
        self.anomaly_model_version = other.anomaly_model_version or self.anomaly_model_version
        for key, seconds in other.timings.items():
            self.timings[key] = round(self.timings.get(key, 0.0) + seconds, 4)
        return self

    def summary(self) -> dict[str, Any]:
        """JSON-friendly counts (no ids, no errors)."""
        return {
            "rows_total": self.rows_total,
            "rows_ok": self.rows_ok,
            "rows_failed": self.rows_failed,
            "superseded": self.superseded,
            "predictions": self.predictions,
            "deviations": {level: len(ids) for level, ids in self.deviations.items()},
            "auto_start": len(self.auto_start),
            "dismissed": self.dismissed,
            "warehouse_clusters": self.clusters,
            "model_version": self.model_version,
            "anomaly_model_version": self.anomaly_model_version,
            "timings": self.timings,
        }


# -- reading input ------------------------------------------------------------------------------------------------


def read_csv_bytes(data: bytes, *, source: str = "file") -> CsvRows:
    """A CSV upload as string rows with line numbers (UTF-8, BOM tolerated); raises InputError when unusable."""
    if b"\x00" in data:
        raise InputError(f"{source} is not a CSV text file (it contains NUL bytes)", field="file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{source} is not UTF-8 text (invalid byte at offset {exc.start})", field="file") from exc
    rows = parse_csv_text(text, source=source)
    enriched_columns(rows.frame)  # every required column is there, else the file is unusable
    return rows


def enriched_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the enriched schema's canonical column names (others dropped, the line column kept)."""
    mapping = resolve_columns(frame.columns, ALIASES, required=REQUIRED)
    out = frame[list(mapping.values())].copy()
    out.columns = pd.Index(list(mapping.keys()))
    for name in OPTIONAL:
        if name not in out.columns:
            out[name] = None
    out[LINE] = frame[LINE].to_numpy() if LINE in frame.columns else np.arange(1, len(frame) + 1)
    return out


def records_frame(records: Sequence[Mapping[str, Any]], lines: Sequence[int] | None = None) -> pd.DataFrame:
    """A frame of API or event payloads (values kept as sent: ids stay ids, not floats); ``lines`` numbers the
    rows in errors (the record's position from 1 by default; the event id for events)."""
    if not records:
        raise InputError("no orders given", field="orders")
    for i, rec in enumerate(records, start=1):
        if not isinstance(rec, Mapping):
            raise InputError(f"expected an order object, got {type(rec).__name__}", field="orders", row=i)
    frame = pd.DataFrame(list(records), dtype=object)
    frame[LINE] = np.asarray(lines if lines is not None else range(1, len(records) + 1), dtype=np.int64)
    return frame


# -- validation of the fields the model does not read -------------------------------------------------------------


def _text(col: pd.Series) -> pd.Series:
    text = col.astype("string").str.strip()
    return text.where(text != "")


def _dates(text: pd.Series) -> pd.Series:
    """Dates written ``YYYY-MM-DD``, optionally followed by a time (``T10:00:00Z``); NaT where not a date."""
    plain = text.str.len() == 10
    parsed = pd.to_datetime(text.where(plain), format="%Y-%m-%d", errors="coerce")
    rest = text.notna() & ~plain.fillna(False)
    if rest.any():  # the slower path only for values with a time part
        day = text[rest].str.extract(r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[T ][0-9:.+\-Z]*$")[0]
        parsed[rest] = pd.to_datetime(day, format="%Y-%m-%d", errors="coerce")
    return parsed


class _Problems:
    """Bad values found column by column: a mask of bad rows and one InputError per bad value."""

    def __init__(self, lines: np.ndarray) -> None:
        self.lines = lines
        self.bad = np.zeros(len(lines), dtype=bool)
        self.errors: list[InputError] = []

    def add(self, mask: np.ndarray, name: str, message: Any, allowed: Sequence[str] | None = None) -> None:
        for pos in np.flatnonzero(mask):
            text = message(int(pos)) if callable(message) else message
            self.errors.append(InputError(text, field=name, allowed=allowed, row=int(self.lines[pos])))
        self.bad |= mask


def _check_fields(canon: pd.DataFrame) -> tuple[pd.DataFrame, _Problems]:
    """Validate and normalise ids, dates, statuses, order value, quantity and texts (vectorised)."""
    lines = canon[LINE].to_numpy(dtype=np.int64)
    problems = _Problems(lines)
    out = pd.DataFrame(index=canon.index)

    order_id = _text(canon["order_id"])
    missing = order_id.isna().to_numpy()
    problems.add(missing, "order_id", "missing value")
    malformed = ~missing & ~order_id.fillna("").str.fullmatch(ORDER_ID_PATTERN).to_numpy(dtype=bool)
    raw_ids = order_id.to_numpy(dtype=object)
    problems.add(malformed, "order_id", lambda p: f"{raw_ids[p]!r} is not an order id: {ORDER_ID_RULE}")
    out["order_id"] = order_id

    customer = _text(canon["customer_id"])
    bad = (customer.str.len().fillna(0).to_numpy() > MAX_CUSTOMER_ID) | customer.fillna("").str.contains(
        r"[\x00-\x1f\x7f]", regex=True
    ).to_numpy(dtype=bool)
    problems.add(bad, "customer_id", f"must be at most {MAX_CUSTOMER_ID} printable characters")
    out["customer_ref"] = customer

    for name in DATES:
        text = _text(canon[name])
        parsed = _dates(text)
        bad = (text.notna() & parsed.isna()).to_numpy(dtype=bool)
        raw = text.to_numpy(dtype=object)
        problems.add(bad, name, lambda p, raw=raw: f"{raw[p]!r} is not a date (YYYY-MM-DD)")
        out[name] = parsed.dt.date.astype(object).where(parsed.notna(), None)

    for name, allowed in (("payment_status", PAYMENT_STATUSES), ("order_status", ORDER_STATUSES)):
        text = _text(canon[name]).str.lower()
        bad = (text.notna() & ~text.isin(allowed)).to_numpy(dtype=bool)
        raw = canon[name].to_numpy(dtype=object)
        problems.add(bad, name, lambda p, raw=raw: f"unknown value {raw[p]!r}", allowed)
        out[name] = text

    for name, minimum, integer in (("order_value", 0.0, False), ("quantity", 1.0, True)):
        text = _text(canon[name])
        nums = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(nums)
        bad = text.notna().to_numpy() & (~finite | (np.nan_to_num(nums, nan=minimum) < minimum))
        if integer:
            bad |= finite & (np.mod(np.nan_to_num(nums), 1) != 0)
        rule = "a whole number >= 1" if integer else "a number >= 0"
        raw = text.to_numpy(dtype=object)
        problems.add(bad, name, lambda p, raw=raw, rule=rule: f"{raw[p]!r} is not {rule}")
        out[name] = np.where(finite, nums, np.nan)

    for name in TEXTS:
        text = _text(canon[name])
        bad = text.str.len().fillna(0).to_numpy() > MAX_TEXT
        problems.add(bad, name, f"must be at most {MAX_TEXT} characters")
        out[name] = text
    return out, problems


def _clean_features(canon: pd.DataFrame) -> pd.DataFrame:
    """The ten features normalised as the model reads them (rows already validated)."""
    out = pd.DataFrame(index=canon.index)
    for name in FEATURES:
        col = canon[name]
        if name in CATEGORICAL:
            codes, uniques = pd.factorize(col, use_na_sentinel=True)
            canon_values = np.array([normalise_category(name, u) for u in uniques] + [None], dtype=object)
            out[name] = canon_values[codes]
        else:
            out[name] = pd.to_numeric(col.astype("string").str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    return out


# -- scoring and severity (no database) ---------------------------------------------------------------------------


@dataclass
class Scored:
    """The good rows of one input, scored, one row per order (the last row of an order sent twice)."""

    rows: pd.DataFrame
    errors: list[InputError]
    rows_total: int
    rows_ok: int
    superseded: int
    model_version: str
    anomaly_model_version: str | None
    timings: dict[str, float]


def score_frame_sync(frame: pd.DataFrame, deps: ToolDeps) -> Scored:
    """Validate, score and deduplicate ``frame`` (CPU only; run it in a thread). Raises InputError when the
    whole input is unusable and ScoringUnavailable without a delay model."""
    delay = deps.models.get("delay")
    if delay is None:
        raise ScoringUnavailable(
            "the delay model is not loaded: train one (`rimas train delay`) or let the "
            "server train it at start-up (RIMAS_TRAIN_MODELS_ON_START)"
        )
    anomaly = deps.models.get("anomaly")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if len(frame) == 0:
        raise InputError("no rows to score", field="rows")
    canon = enriched_columns(frame)
    fields, problems = _check_fields(canon)
    timings["validate"] = time.perf_counter() - started

    tick = time.perf_counter()
    keep = ~problems.bad
    scored = delay.score(canon[keep], explain=True) if keep.any() else None
    errors = problems.errors + (scored.errors if scored is not None else [])
    timings["model"] = time.perf_counter() - tick
    if scored is None or len(scored.predictions) == 0:
        errors.sort(key=lambda e: e.row or 0)
        return Scored(pd.DataFrame(), errors, len(frame), 0, 0, delay.model_version, None, timings)

    preds = scored.predictions
    rows = fields.loc[preds.index].join(_clean_features(canon.loc[preds.index]))
    rows["line"] = canon.loc[preds.index, LINE].to_numpy()
    rows["delay_probability"] = preds["delay_probability"].to_numpy(dtype=np.float64)
    rows["top_features"] = preds["top_features"].to_numpy()
    tick = time.perf_counter()
    rows["anomaly_score"] = np.nan
    rows["is_anomaly"] = False
    anomaly_version = None
    if anomaly is not None:
        flagged = anomaly.score(canon.loc[preds.index])
        rows.loc[flagged.predictions.index, "anomaly_score"] = flagged.predictions["anomaly_score"]
        rows.loc[flagged.predictions.index, "is_anomaly"] = flagged.predictions["is_anomaly"]
        anomaly_version = anomaly.model_version
    timings["anomaly"] = time.perf_counter() - tick

    duplicate = rows["order_id"].duplicated(keep="last").to_numpy()
    rows = rows.loc[~duplicate].reset_index(drop=True)
    errors.sort(key=lambda e: e.row or 0)
    return Scored(
        rows, errors, len(frame), len(preds), int(duplicate.sum()), delay.model_version, anomaly_version, timings
    )


def assess(rows: pd.DataFrame, seeded_values: Mapping[str, float], policy: Policy) -> pd.DataFrame:
    """Severity and reasons per order from the policy (vectorised); adds ``order_value``, ``base``, ``severity``
    and ``reasons`` (a JSON list) to ``rows``. ``seeded_values`` maps known order ids to their stored value."""
    sev = policy.severity
    thresholds = sev.thresholds.model_dump()
    prob = rows["delay_probability"].to_numpy(dtype=np.float64)
    given = rows["order_value"].to_numpy(dtype=np.float64)
    seeded = rows["order_id"].map(seeded_values).to_numpy(dtype=np.float64, na_value=np.nan)
    quantity = np.nan_to_num(rows["quantity"].to_numpy(dtype=np.float64), nan=1.0)
    estimated = (
        rows["cost_of_product"].to_numpy(dtype=np.float64)
        * quantity
        * (1 - rows["discount_offered"].to_numpy(dtype=np.float64) / 100)
    )
    value = np.round(np.where(np.isnan(given), np.where(np.isnan(seeded), estimated, seeded), given), 2)
    base = severity_of(prob, thresholds)
    limit = sev.escalators.order_value_over_usd
    over = value > limit
    raised = np.isin(base, ("info", "warning")) & over
    level = np.where(raised, "critical", base).astype(object)
    calls = rows["customer_care_calls"].to_numpy(dtype=np.float64)
    calls_over = policy.escalation.care_calls_over
    care_route = policy.escalation.routes.get("care_calls", "customer_care_lead").replace("_", " ")
    anomalous = rows["is_anomaly"].to_numpy(dtype=bool)
    score = rows["anomaly_score"].to_numpy(dtype=np.float64)
    reasons: list[str] = []
    for i in range(len(rows)):
        if level[i] == "none":
            reasons.append(
                json.dumps([f"delay probability {prob[i]:.2f} is not above the info threshold {thresholds['info']:g}"])
            )
            continue
        said = [f"delay probability {prob[i]:.2f} above the {base[i]} threshold {thresholds[base[i]]:g}"]
        if over[i]:
            said.append(f"order value {value[i]:.2f} above {limit:g}" + (": raised to critical" if raised[i] else ""))
        if calls[i] > calls_over:
            said.append(f"{calls[i]:g} customer care calls, above {calls_over} (routes to the {care_route})")
        if anomalous[i]:
            said.append(f"anomalous order: anomaly score {score[i]:.2f}")
        reasons.append(json.dumps(said))
    out = rows.copy()
    out["order_value"] = value
    out["base"] = base
    out["severity"] = level
    out["reasons"] = reasons
    return out


# -- writing --------------------------------------------------------------------------------------------------------

_STAGE_COLUMNS = (
    "order_id",
    "customer_ref",
    *DATES,
    *FEATURES,
    *TEXTS,
    "payment_status",
    "order_status",
    "order_value_given",
    "quantity",
    "order_value",
    "delay_probability",
    "severity",
    "top_features",
    "anomaly_score",
    "is_anomaly",
    "reasons",
)
_STAGE_TYPES = {
    **dict.fromkeys(
        ("order_id", "customer_ref", *CATEGORICAL, *TEXTS, "payment_status", "order_status", "severity"), "text"
    ),
    **dict.fromkeys(DATES, "date"),
    **dict.fromkeys(NUMERIC, "float8"),
    "order_value_given": "float8",
    "quantity": "int",
    "order_value": "float8",
    "delay_probability": "float8",
    "top_features": "jsonb",
    "anomaly_score": "float8",
    "is_anomaly": "boolean",
    "reasons": "jsonb",
}
_CREATE_STAGE = (
    "CREATE TEMP TABLE scoring_stage ("
    + ", ".join(f"{c} {_STAGE_TYPES[c]}" for c in _STAGE_COLUMNS)
    + ", known boolean NOT NULL DEFAULT false) ON COMMIT DROP"
)
_DATA = (
    "jsonb_build_object("
    + ", ".join(
        f"'{c}', s.{c}" for c in ("order_id", *DATES, *FEATURES, *TEXTS, "payment_status", "order_status", "quantity")
    )
    + ", 'customer_id', s.customer_ref, 'order_value', s.order_value_given)"
)
_FEATURES = "jsonb_build_object(" + ", ".join(f"'{c}', s.{c}" for c in FEATURES) + ")"

# Built from the constant column lists above: no input reaches the text of these statements.
_UPSERT_INPUTS = f"""
INSERT INTO order_inputs AS oi (order_id, customer_ref, data, source, batch_job_id, known_order)
SELECT s.order_id, s.customer_ref, {_DATA}, %(source)s, %(batch)s, s.known FROM scoring_stage s ORDER BY s.order_id
ON CONFLICT (order_id) DO UPDATE SET customer_ref = EXCLUDED.customer_ref, data = EXCLUDED.data,
    source = EXCLUDED.source, batch_job_id = EXCLUDED.batch_job_id, known_order = EXCLUDED.known_order,
    updated_at = now()
"""  # noqa: S608
_UPSERT_SCORES = f"""
WITH p AS (
    INSERT INTO predictions AS p (order_id, batch_job_id, source, delay_probability, severity, model_version,
        top_features, features, anomaly_score, is_anomaly, anomaly_model_version, order_value)
    SELECT s.order_id, %(batch)s, %(source)s, s.delay_probability, s.severity, %(model)s, s.top_features,
        {_FEATURES}, s.anomaly_score, s.is_anomaly, %(anomaly_model)s, s.order_value
    FROM scoring_stage s ORDER BY s.order_id
    ON CONFLICT (order_id) DO UPDATE SET batch_job_id = EXCLUDED.batch_job_id, source = EXCLUDED.source,
        delay_probability = EXCLUDED.delay_probability, severity = EXCLUDED.severity,
        model_version = EXCLUDED.model_version, top_features = EXCLUDED.top_features, features = EXCLUDED.features,
        anomaly_score = EXCLUDED.anomaly_score, is_anomaly = EXCLUDED.is_anomaly,
        anomaly_model_version = EXCLUDED.anomaly_model_version, order_value = EXCLUDED.order_value,
        updated_at = now()
    RETURNING p.prediction_id, p.order_id
)
INSERT INTO deviations AS d (deviation_id, prediction_id, order_id, severity, reasons, status, delay_probability,
    batch_job_id)
SELECT gen_random_uuid(), p.prediction_id, s.order_id, s.severity, s.reasons, 'open', s.delay_probability, %(batch)s
FROM scoring_stage s JOIN p ON p.order_id = s.order_id
WHERE s.severity <> 'none'
ORDER BY s.order_id
ON CONFLICT (order_id) DO UPDATE SET prediction_id = EXCLUDED.prediction_id, severity = EXCLUDED.severity,
    reasons = EXCLUDED.reasons, delay_probability = EXCLUDED.delay_probability, batch_job_id = EXCLUDED.batch_job_id,
    status = CASE WHEN d.status = 'dismissed' AND d.thread_id IS NULL THEN 'open' ELSE d.status END,
    updated_at = now()
RETURNING deviation_id::text AS deviation_id, severity, status, thread_id
"""  # noqa: S608
_DISMISS = """
UPDATE deviations d SET status = 'dismissed', updated_at = now(),
    reasons = (SELECT s.reasons FROM scoring_stage s WHERE s.order_id = d.order_id)
WHERE d.order_id = ANY(%(orders)s) AND d.status = 'open' AND d.thread_id IS NULL
"""
_CLUSTER = """
WITH blocks AS (
    SELECT oi.warehouse_block AS block, count(*) AS n
    FROM deviations d JOIN order_inputs oi ON oi.order_id = d.order_id
    WHERE d.severity = 'critical' AND d.created_at >= now() - make_interval(hours => %(hours)s)
      AND oi.warehouse_block IN (SELECT DISTINCT warehouse_block FROM scoring_stage WHERE severity = 'critical')
    GROUP BY oi.warehouse_block HAVING count(*) > %(over)s
), targets AS (  -- locked in id order, as every writer locks them, so concurrent writers cannot deadlock here
    SELECT d.deviation_id, b.n, b.block
    FROM deviations d JOIN order_inputs oi ON oi.order_id = d.order_id JOIN blocks b ON b.block = oi.warehouse_block
    WHERE d.severity = 'critical' AND d.created_at >= now() - make_interval(hours => %(hours)s)
      AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(d.reasons) r WHERE r LIKE 'warehouse cluster%%')
    ORDER BY d.deviation_id FOR UPDATE OF d
), marked AS (
    UPDATE deviations d SET reasons = d.reasons || jsonb_build_array(format(
        'warehouse cluster: %%s critical deviations in warehouse block %%s within %%s h, above %%s (routes to %%s)',
        b.n, b.block, %(hours)s, %(over)s, %(route)s::text)), updated_at = now()
    FROM targets b
    WHERE d.deviation_id = b.deviation_id
    RETURNING d.deviation_id
)
SELECT b.block, (SELECT count(*) FROM marked) AS marked FROM blocks b ORDER BY b.block
"""


def _stage_rows(rows: pd.DataFrame) -> list[tuple[Any, ...]]:
    """The staged rows as tuples in :data:`_STAGE_COLUMNS` order (None for missing values)."""
    cols: list[list[Any]] = []
    for name in _STAGE_COLUMNS:
        if name == "order_value_given":
            values = rows["order_value_given"]
        elif name == "top_features":
            values = pd.Series([json.dumps(v) for v in rows["top_features"]], index=rows.index)
        else:
            values = rows[name]
        array = values.to_numpy(dtype=object)
        if _STAGE_TYPES[name] in ("float8", "int"):
            nums = values.to_numpy(dtype=np.float64, na_value=np.nan)
            caster = int if _STAGE_TYPES[name] == "int" else float
            cols.append([caster(v) if v == v else None for v in nums.tolist()])
        else:
            cols.append([None if v is None or v is pd.NA or v != v else v for v in array.tolist()])
    return list(zip(*cols, strict=True))


async def _seeded_values(conn: AsyncConnection[Any], ids: Sequence[str]) -> dict[str, float]:
    cur = await conn.execute(
        "SELECT order_id, order_value::float8 AS v FROM orders WHERE order_id = ANY(%s)", (list(ids),)
    )
    return {row["order_id"]: row["v"] for row in await cur.fetchall()}


async def write_scored(
    conn: AsyncConnection[Any], scored: Scored, *, source: str, batch_job_id: str | None, policy: Policy
) -> ScoringResult:
    """Assess and upsert a scored input on ``conn`` (in its transaction, or one of its own); the result."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    result = ScoringResult(
        rows_total=scored.rows_total,
        rows_ok=scored.rows_ok,
        superseded=scored.superseded,
        rows_failed=rows_with_errors(scored.errors),
        errors=list(scored.errors),
        model_version=scored.model_version,
        anomaly_model_version=scored.anomaly_model_version,
        timings={k: round(v, 4) for k, v in scored.timings.items()},
    )
    if len(scored.rows) == 0:
        return result
    started = time.perf_counter()
    params = {
        "source": source,
        "batch": batch_job_id,
        "model": scored.model_version,
        "anomaly_model": scored.anomaly_model_version,
    }
    async with conn.transaction():
        seeded = await _seeded_values(conn, scored.rows["order_id"].tolist())
        tick = time.perf_counter()
        rows = assess(scored.rows, seeded, policy)
        rows["order_value_given"] = scored.rows["order_value"].to_numpy()
        staged = _stage_rows(rows)
        result.timings["assess"] = round(time.perf_counter() - tick, 4)
        await conn.execute("DROP TABLE IF EXISTS pg_temp.scoring_stage")
        await conn.execute(_CREATE_STAGE)
        async with conn.cursor().copy(f"COPY scoring_stage ({', '.join(_STAGE_COLUMNS)}) FROM STDIN") as copy:
            for row in staged:
                await copy.write_row(row)
        # the planner's row counts and an index for the per-order look-ups below
        await conn.execute("CREATE INDEX ON scoring_stage (order_id)")
        await conn.execute("ANALYZE scoring_stage (order_id, severity)")
        if seeded:
            await conn.execute("UPDATE scoring_stage s SET known = true FROM orders o WHERE o.order_id = s.order_id")
        tick = time.perf_counter()
        result.timings["db_stage"] = round(tick - started - result.timings["assess"], 4)
        await conn.execute(_UPSERT_INPUTS, params)
        cur = await conn.execute(_UPSERT_SCORES, params)  # predictions, then the deviations of this input
        devs = await cur.fetchall()
        below = rows.loc[rows["severity"] == "none", "order_id"].tolist()
        if below:  # by id (a hashed ANY): statistics of a table filled in this transaction would mislead a join
            cur = await conn.execute(_DISMISS, {"orders": below})
            result.dismissed = cur.rowcount
        escalators = policy.severity.escalators
        route = policy.escalation.routes.get("warehouse_cluster", "management").replace("_", " ")
        cur = await conn.execute(
            _CLUSTER,
            {
                "hours": escalators.warehouse_window_hours,
                "route": route,
                "over": escalators.warehouse_critical_count_over,
            },
        )
        clusters = await cur.fetchall()
        result.clusters = [row["block"] for row in clusters]
    auto = policy.severity.auto_start_at
    for dev in devs:
        result.deviations.setdefault(dev["severity"], []).append(dev["deviation_id"])
        if severity_at_least(dev["severity"], auto) and dev["thread_id"] is None and dev["status"] == "open":
            result.auto_start.append(dev["deviation_id"])
    result.timings["db_upsert"] = round(time.perf_counter() - tick, 4)
    if clusters and clusters[0]["marked"]:
        log.warning(
            "critical deviations cluster in warehouse blocks",
            extra={"blocks": result.clusters, "marked": clusters[0]["marked"]},
        )
    return result


# -- entry points ---------------------------------------------------------------------------------------------------


async def score_frame(
    frame: pd.DataFrame,
    *,
    source: str,
    batch_job_id: str | None = None,
    conn: AsyncConnection[Any] | None = None,
    deps: ToolDeps | None = None,
) -> ScoringResult:
    """Score and store a frame of enriched rows (a ``_line`` column numbers them in errors). With ``conn`` the
    writes join its transaction (the caller commits); otherwise a pooled connection commits them."""
    deps = deps or current()
    scored = await asyncio.to_thread(score_frame_sync, frame, deps)
    if conn is not None:
        return await write_scored(conn, scored, source=source, batch_job_id=batch_job_id, policy=deps.policy)
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            async with deps.pool.connection() as own:
                return await write_scored(own, scored, source=source, batch_job_id=batch_job_id, policy=deps.policy)
        except (errors.DeadlockDetected, errors.SerializationFailure):
            if attempt == WRITE_ATTEMPTS:
                raise
            log.warning("scoring write collided with another writer; retrying", extra={"attempt": attempt})
    raise AssertionError("unreachable")


async def score_records(
    records: Sequence[Mapping[str, Any]],
    *,
    source: str,
    batch_job_id: str | None = None,
    lines: Sequence[int] | None = None,
    conn: AsyncConnection[Any] | None = None,
    deps: ToolDeps | None = None,
) -> ScoringResult:
    """Score and store orders given as dicts (API bodies, events); see :func:`records_frame` for ``lines``."""
    frame = records_frame(records, lines)
    return await score_frame(frame, source=source, batch_job_id=batch_job_id, conn=conn, deps=deps)


async def score_chunks(
    frames: Iterable[pd.DataFrame], write: Callable[[Scored], Awaitable[ScoringResult]], deps: ToolDeps
) -> AsyncIterator[ScoringResult]:
    """Score each frame in a thread while the previous one is written by ``write``: the model (which releases
    the GIL) and PostgreSQL then work at the same time. Yields each frame's result, in order."""
    chunks = iter(frames)
    first = next(chunks, None)
    task = asyncio.ensure_future(asyncio.to_thread(score_frame_sync, first, deps)) if first is not None else None
    try:
        while task is not None:
            scored = await task
            following = next(chunks, None)
            task = None
            if following is not None:
                task = asyncio.ensure_future(asyncio.to_thread(score_frame_sync, following, deps))
            yield await write(scored)
    finally:
        if task is not None:  # a thread cannot be cancelled: let it finish, drop its result
            with contextlib.suppress(Exception):
                await task


async def score_csv(
    data: bytes,
    *,
    source: str = "batch",
    batch_job_id: str | None = None,
    chunk_rows: int = 20_000,
    deps: ToolDeps | None = None,
) -> ScoringResult:
    """Score a whole CSV upload, chunk by chunk (each chunk committed on its own); malformed lines are errors."""
    deps = deps or current()
    tick = time.perf_counter()
    rows = await asyncio.to_thread(read_csv_bytes, data)
    result = ScoringResult(
        rows_failed=rows_with_errors(rows.errors),
        rows_total=len(rows.errors),
        errors=list(rows.errors),
        timings={"parse": round(time.perf_counter() - tick, 4)},
    )
    policy = deps.policy

    async def write(scored: Scored) -> ScoringResult:
        async with deps.pool.connection() as conn:
            return await write_scored(conn, scored, source=source, batch_job_id=batch_job_id, policy=policy)

    frames = (rows.frame.iloc[start : start + chunk_rows] for start in range(0, len(rows.frame), chunk_rows))
    async for part in score_chunks(frames, write, deps):
        result.merge(part)
    return result


def score_anomaly(records: Sequence[Mapping[str, Any]], deps: ToolDeps | None = None) -> list[dict[str, Any]]:
    """Anomaly score, flag and model version of each order (nothing stored); raises InputError for a bad one."""
    deps = deps or current()
    model = deps.models.get("anomaly")
    if model is None:
        raise ScoringUnavailable(
            "the anomaly model is not loaded: let the server train it at start-up "
            "(RIMAS_TRAIN_MODELS_ON_START) from the seeded orders"
        )
    out: list[dict[str, Any]] = model.predict(records_frame(records))
    return out
