"""Past resolutions as case documents for the ``cases`` collection.

The deviation workflow records each resolution (order context, severity, actions per agent, outcome);
:func:`case_document` turns it into a one-section document whose text reads like the seed's resolution
record ("Order 1234 | warehouse B | Road | 4.2 kg | delay probability 0.85 ...") and whose metadata
(warehouse, mode, severity, agents) feeds the search filters. The case id is the deviation id (else the
thread id, else the order id), so recording the same resolution again replaces it instead of adding a
duplicate.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rag.documents import Document, Section

CASE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
CASE_CATEGORY = "case"


class CaseAction(BaseModel):
    """One action a specialist took or proposed."""

    model_config = ConfigDict(extra="allow")

    agent_type: str = Field(min_length=1)
    action: str = Field(min_length=1)
    amount: float | None = None
    status: str | None = None
    detail: str | None = None


class CaseRecord(BaseModel):
    """The resolution written by the deviation workflow (unknown extra keys are kept as metadata)."""

    model_config = ConfigDict(extra="allow")

    deviation_id: str | None = None
    thread_id: str | None = None
    order_id: str | None = None
    warehouse_block: str | None = None
    mode_of_shipment: str | None = None
    weight_in_gms: float | None = Field(default=None, gt=0)
    product_importance: str | None = None
    delay_probability: float | None = Field(default=None, ge=0, le=1)
    severity: Literal["critical", "warning", "info"]
    summary: str = Field(min_length=1)
    actions: list[CaseAction] = Field(default_factory=list)
    outcome: str | None = None
    approved_by: str | None = None
    resolved_at: str | None = None

    @field_validator("warehouse_block")
    @classmethod
    def _block(cls, value: str | None) -> str | None:
        return value.strip().upper() if value else value

    @field_validator("mode_of_shipment")
    @classmethod
    def _mode(cls, value: str | None) -> str | None:
        return value.strip().capitalize() if value else value

    @model_validator(mode="after")
    def _has_id(self) -> CaseRecord:
        case_id = self.case_id
        if case_id is None:
            raise ValueError("one of deviation_id, thread_id or order_id is required")
        if not CASE_ID_PATTERN.match(case_id):
            raise ValueError(f"case id {case_id!r} must match {CASE_ID_PATTERN.pattern}")
        return self

    @property
    def case_id(self) -> str | None:
        return self.deviation_id or self.thread_id or self.order_id

    @property
    def agent_types(self) -> list[str]:
        return sorted({a.agent_type for a in self.actions})


class CaseError(ValueError):
    """A resolution could not be turned into a case; the message names the field."""


def parse_case(resolution: dict[str, Any]) -> CaseRecord:
    if not isinstance(resolution, dict):
        raise CaseError("resolution: must be a mapping")
    try:
        return CaseRecord.model_validate(resolution)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'resolution'}: {e['msg']}" for e in exc.errors()
        )
        raise CaseError(f"invalid resolution: {details}") from exc


def _action_line(action: CaseAction) -> str:
    text = f"{action.agent_type}: {action.action}"
    if action.amount is not None:
        text += f" ({action.amount:.2f} USD)"
    if action.status:
        text += f" [{action.status}]"
    if action.detail:
        text += f" - {action.detail}"
    return text


def case_text(record: CaseRecord) -> str:
    """The searchable text of a case."""
    facts = [f"Order {record.order_id}" if record.order_id else f"Case {record.case_id}"]
    if record.warehouse_block:
        facts.append(f"warehouse {record.warehouse_block}")
    if record.mode_of_shipment:
        facts.append(record.mode_of_shipment)
    if record.weight_in_gms is not None:
        facts.append(f"{record.weight_in_gms / 1000:.1f} kg")
    if record.product_importance:
        facts.append(f"{record.product_importance} importance")
    if record.delay_probability is not None:
        facts.append(f"delay probability {record.delay_probability:.2f}")
    lines = [" | ".join(facts), f"Severity: {record.severity}", f"Resolution: {record.summary}"]
    if record.actions:
        lines.append("Actions: " + "; ".join(_action_line(a) for a in record.actions))
    if record.outcome:
        lines.append(f"Outcome: {record.outcome}")
    return "\n".join(lines)


def case_document(record: CaseRecord) -> Document:
    """A one-section document for the ``cases`` collection."""
    case_id = record.case_id or ""
    title = f"Resolution of order {record.order_id}" if record.order_id else f"Resolution {case_id}"
    meta: dict[str, Any] = {"severity": record.severity}
    if record.agent_types:
        meta["agents"] = record.agent_types
    if record.warehouse_block:
        meta["warehouse"] = record.warehouse_block
    if record.mode_of_shipment:
        meta["mode"] = record.mode_of_shipment
    section = Section(
        doc_id=case_id,
        doc_title=title,
        heading=title,
        section_id="resolution",
        text=case_text(record),
        metadata=meta,
        citation_prefix="case",
    )
    return Document(doc_id=case_id, title=title, category=CASE_CATEGORY, sections=[section])


def case_extra(record: CaseRecord) -> dict[str, Any]:
    """Structured fields stored with the case (not embedded)."""
    data = record.model_dump(mode="json", exclude={"summary"}, exclude_none=True)
    data.pop("severity", None)
    return data
