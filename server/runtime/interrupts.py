"""The approval interrupt: one payload schema for every graph, and validation of the decisions that resume it.

A graph asks for approval with ``interrupt({"action_requests": [...]})``; each action request says what
would be done (``name``, ``args``), why it needs a person (``description``, ``policy_reason``), how much is
at stake (``amount``), who may decide (``required_role``) and how (``allowed_decisions`` among approve, edit,
reject). It is resumed with ``{"decisions": [{"type", "args", "comment"}, ...]}``, one decision per action
request in order. The server checks the decisions against the request and stamps each with the deciding
principal and the time, so the graph state records who decided.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.settings import Role

log = logging.getLogger(__name__)

DecisionType = Literal["approve", "edit", "reject"]
DECISION_TYPES: tuple[DecisionType, ...] = ("approve", "edit", "reject")


class ActionRequest(BaseModel):
    """One action waiting for a person's decision."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, description="The action, e.g. issue_refund.")
    args: dict[str, Any] = Field(default_factory=dict, description="The arguments the action would run with.")
    description: str = Field(min_length=1, description="What is asked, in words.")
    allowed_decisions: list[DecisionType] = Field(default_factory=lambda: list(DECISION_TYPES), min_length=1)
    required_role: Role = "approver"
    amount: float | None = Field(None, description="Money at stake, checked against the role's authority.")
    policy_reason: str | None = Field(None, description="The policy rule that requires the approval.")
    policy_action: str | None = Field(
        None, description="The policy's approval action (refund, store_credit...) whose limits apply."
    )


class ApprovalRequest(BaseModel):
    """The value of an approval interrupt."""

    model_config = ConfigDict(extra="allow")

    action_requests: list[ActionRequest] = Field(min_length=1)


class Decision(BaseModel):
    """A person's answer to one action request."""

    model_config = ConfigDict(extra="forbid")

    type: DecisionType
    args: dict[str, Any] | None = None
    comment: str | None = Field(None, max_length=2000)


class ResumeValue(BaseModel):
    """The resume value of an approval interrupt."""

    model_config = ConfigDict(extra="forbid")

    decisions: list[Decision]


class DecisionError(ValueError):
    """A resume value that does not answer the approval request; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


def parse_approval(value: Any) -> ApprovalRequest | None:
    """The approval request carried by an interrupt value, or None when it is another kind of interrupt."""
    if not isinstance(value, dict) or "action_requests" not in value:
        return None
    try:
        return ApprovalRequest.model_validate(value)
    except ValidationError as exc:
        log.warning("interrupt has action_requests but does not match the approval schema", extra={"error": str(exc)})
        return None


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "resume"


def validate_decisions(raw: Any, request: ApprovalRequest) -> ResumeValue:
    """Check a resume value against the approval request; raise :class:`DecisionError` naming the problem."""
    if not isinstance(raw, dict):
        raise DecisionError("resume", 'must be an object like {"decisions": [{"type": "approve"}]}')
    try:
        value = ResumeValue.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise DecisionError(_field(first["loc"]), first["msg"]) from exc
    wanted = len(request.action_requests)
    if len(value.decisions) != wanted:
        raise DecisionError(
            "decisions",
            f"expected {wanted} decision(s), one per action request in order, got {len(value.decisions)}",
        )
    for index, (decision, action) in enumerate(zip(value.decisions, request.action_requests, strict=True)):
        where = f"decisions.{index}"
        if decision.type not in action.allowed_decisions:
            allowed = ", ".join(action.allowed_decisions)
            raise DecisionError(
                f"{where}.type", f"{decision.type!r} is not allowed for {action.name}; allowed: {allowed}"
            )
        if decision.type == "edit":
            if not decision.args:
                raise DecisionError(f"{where}.args", f"an edit must carry the edited arguments of {action.name}")
            unknown = sorted(set(decision.args) - set(action.args))
            if action.args and unknown:
                raise DecisionError(
                    f"{where}.args.{unknown[0]}",
                    f"not an argument of {action.name}; arguments: {', '.join(sorted(action.args))}",
                )
        elif decision.args is not None:
            raise DecisionError(f"{where}.args", f"only an edit carries args, not {decision.type!r}")
        if decision.type == "reject" and not (decision.comment or "").strip():
            raise DecisionError(f"{where}.comment", "a rejection needs a comment saying why")
    return value


def decided_amount(action: ActionRequest, decision: Decision) -> float | None:
    """The amount a decision commits to: the edited ``amount`` argument if any, else the request's."""
    if decision.type == "edit" and decision.args and isinstance(decision.args.get("amount"), int | float):
        return float(decision.args["amount"])
    return action.amount


def stamp(value: ResumeValue, actor_id: str, actor_role: Role) -> dict[str, Any]:
    """The resume value handed to the graph: each decision with the deciding principal and the time."""
    now = dt.datetime.now(dt.UTC).isoformat()
    return {
        "decisions": [
            {**d.model_dump(), "actor": {"id": actor_id, "role": actor_role}, "decided_at": now}
            for d in value.decisions
        ]
    }
