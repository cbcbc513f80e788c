"""The approval interrupt: one schema for every graph, and the decisions that resume it, in every client's form.

An approval is LangChain v1's ``HumanInTheLoopMiddleware`` request, so Agent Chat UI renders it and agents
built with that middleware work here unchanged::

    {"action_requests": [{"name", "args", "description", ...extras}],
     "review_configs": [{"action_name", "allowed_decisions": ["approve", "edit", "reject"]}]}

Our extras on an action request: ``amount`` and ``currency`` (money at stake, checked against the decider's
authority), ``required_role``, ``policy_action`` (whose limits apply), ``policy_reason`` and ``citations``.
The middleware's per-call form (``{"type": "tool_approval", "name", "args", "description"}``, answered with one
decision) is read as a one-action request.

A resume is accepted in three forms and normalised to the v1 decisions the graph receives:

- v1: ``{"decisions": [{"type": "approve"} | {"type": "edit", "edited_action": {"name", "args"}} |
  {"type": "reject", "message"} | {"type": "respond", "message"}]}``, one per action request in order;
- ours before v1: ``{"decisions": [{"type", "args", "comment"}]}`` (``args`` are the changed arguments);
- Agent Inbox's ``HumanResponse`` list: ``[{"type": "accept" | "edit" | "response" | "ignore", "args"}]``
  (accept -> approve, edit -> edit, response -> reject with the text as message, ignore -> reject recorded
  as ignored).

Both UIs' edit forms send values as strings, so where an argument was a number a numeric string is read as
that number before any check (``"5000"`` is then refused by the authority check, not waved through).

The server validates the decisions against the request (types allowed, edits of known arguments with the
same JSON types, amounts finite and >= 0), checks the decider's authority, and stamps each decision with the
decider's key name, role and the time.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from server.settings import Role

log = logging.getLogger(__name__)

DecisionType = Literal["approve", "edit", "reject", "respond"]
DEFAULT_DECISIONS: tuple[DecisionType, ...] = ("approve", "edit", "reject")
INBOX_TYPES = {"accept": "approve", "edit": "edit", "response": "reject", "ignore": "reject"}
MESSAGE_MAX = 2000


class ActionRequest(BaseModel):
    """One action waiting for a person's decision (v1 ``ActionRequest`` plus our extras)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, description="The action, e.g. issue_refund.")
    args: dict[str, Any] = Field(default_factory=dict, description="The arguments the action would run with.")
    description: str = Field("", description="What is asked, in words.")
    allowed_decisions: list[DecisionType] | None = Field(
        None, description="Decisions allowed (older form; v1 puts them in review_configs)."
    )
    required_role: Role = "approver"
    amount: float | None = Field(None, ge=0, allow_inf_nan=False, description="Money at stake.")
    currency: str | None = None
    policy_reason: str | None = Field(None, description="The policy rule that requires the approval.")
    policy_action: str | None = Field(
        None, description="The policy's approval action (refund, store_credit...) whose limits apply."
    )
    citations: list[Any] = Field(default_factory=list, description="Policy passages the request rests on.")


class ReviewConfig(BaseModel):
    """How an action may be decided (v1 ``ReviewConfig``)."""

    model_config = ConfigDict(extra="allow")

    action_name: str
    allowed_decisions: list[DecisionType] = Field(min_length=1)
    args_schema: dict[str, Any] | None = None


class ApprovalRequest(BaseModel):
    """The value of an approval interrupt. ``single`` marks the per-call form, answered by one decision."""

    model_config = ConfigDict(extra="allow")

    action_requests: list[ActionRequest] = Field(min_length=1)
    review_configs: list[ReviewConfig] = Field(default_factory=list)
    single: bool = False

    def allowed(self, index: int) -> list[DecisionType]:
        """The decisions allowed for action ``index``: its review config, else its own list, else the default."""
        action = self.action_requests[index]
        for config in self.review_configs:
            if config.action_name == action.name:
                return list(config.allowed_decisions)
        return list(action.allowed_decisions or DEFAULT_DECISIONS)


class EditedAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    args: dict[str, Any]


class Decision(BaseModel):
    """A person's answer to one action request, normalised to v1 (``edited_action`` holds the full args)."""

    model_config = ConfigDict(extra="forbid")

    type: DecisionType
    edited_action: EditedAction | None = None
    message: str | None = Field(None, max_length=MESSAGE_MAX)
    ignored: bool = False


class _RawDecision(BaseModel):
    """A decision as a client sends it: v1 fields, or the older ``args`` + ``comment``."""

    model_config = ConfigDict(extra="forbid")

    type: DecisionType
    edited_action: EditedAction | None = None
    message: str | None = Field(None, max_length=MESSAGE_MAX)
    args: dict[str, Any] | None = None
    comment: str | None = Field(None, max_length=MESSAGE_MAX)

    @field_validator("message", "comment")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return value.strip() if isinstance(value, str) else value


class ResumeValue(BaseModel):
    """The validated decisions, one per action request, in order."""

    decisions: list[Decision]


class DecisionError(ValueError):
    """A resume value that does not answer the approval request; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class MalformedApproval(ValueError):
    """An interrupt shaped like an approval that does not match the schema: nobody may decide it."""


def looks_like_approval(value: Any) -> bool:
    return isinstance(value, dict) and ("action_requests" in value or value.get("type") == "tool_approval")


def parse_approval(value: Any) -> ApprovalRequest | None:
    """The approval request of an interrupt value; None for other interrupts (a question).

    Raises :class:`MalformedApproval` for a value shaped like an approval that does not validate, so a
    broken graph fails closed (nobody decides it) instead of its approval being answered as a question."""
    if not looks_like_approval(value):
        return None
    try:
        if value.get("type") == "tool_approval":
            action = ActionRequest.model_validate({k: v for k, v in value.items() if k not in ("type", "tool_call_id")})
            return ApprovalRequest(action_requests=[action], single=True)
        return ApprovalRequest.model_validate(value)
    except ValidationError as exc:
        log.warning("interrupt looks like an approval but does not match the schema", extra={"error": str(exc)})
        raise MalformedApproval(str(exc.errors()[0]["msg"])) from exc


def approval_or_none(value: Any) -> ApprovalRequest | None:
    """Like :func:`parse_approval`, but a malformed approval is reported as None (for listings)."""
    try:
        return parse_approval(value)
    except MalformedApproval:
        return None


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "resume"


def _numbers_from_form(edited: dict[str, Any], action: ActionRequest) -> dict[str, Any]:
    """The UIs' edit forms send every value as a string: read a numeric string as a number where the original
    argument is one (every check, the authority check included, then applies to that number). Anything else
    is left as sent, so a non-numeric string for a number is refused by the type check, naming the field."""
    out = dict(edited)
    for key, value in edited.items():
        original = action.args.get(key)
        if isinstance(value, str) and isinstance(original, int | float) and not isinstance(original, bool):
            try:
                out[key] = float(value.strip())
            except ValueError:
                continue
    return out


def _raw_decisions(raw: Any, request: ApprovalRequest) -> list[tuple[_RawDecision, bool]]:
    """The decisions of any accepted form, each with whether it was an Agent Inbox 'ignore'."""
    if isinstance(raw, list):  # Agent Inbox: [{type: accept|edit|response|ignore, args}]
        out = []
        for index, item in enumerate(raw):
            where = str(index)
            if not isinstance(item, dict) or item.get("type") not in INBOX_TYPES:
                raise DecisionError(f"{where}.type", f"must be one of {', '.join(INBOX_TYPES)}")
            kind, args = item["type"], item.get("args")
            if kind == "edit":
                if not isinstance(args, dict) or not isinstance(args.get("args"), dict):
                    raise DecisionError(f"{where}.args", "an edit carries {action, args}")
                action = request.action_requests[min(index, len(request.action_requests) - 1)]
                edited = EditedAction(name=args.get("action") or action.name, args=args["args"])
                out.append((_RawDecision(type="edit", edited_action=edited), False))
            elif kind == "response":
                if not isinstance(args, str) or not args.strip():
                    raise DecisionError(f"{where}.args", "a response carries the text of the answer")
                out.append((_RawDecision(type="reject", message=args), False))
            else:
                out.append((_RawDecision(type=INBOX_TYPES[kind]), kind == "ignore"))
        return out
    if request.single and isinstance(raw, dict) and "decisions" not in raw:
        raw = {"decisions": [raw]}  # the per-call form is answered with one decision
    if not isinstance(raw, dict):
        raise DecisionError("resume", 'must be an object like {"decisions": [{"type": "approve"}]}')
    unknown = sorted(set(raw) - {"decisions"})
    if unknown:
        raise DecisionError(unknown[0], "is not allowed; send {\"decisions\": [...]}")
    if "decisions" not in raw:
        raise DecisionError("decisions", "Field required")
    if not isinstance(raw["decisions"], list):
        raise DecisionError("decisions", "must be a list, one decision per action request")
    decisions = []
    for index, item in enumerate(raw["decisions"]):
        try:
            decisions.append((_RawDecision.model_validate(item), False))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise DecisionError(_field(("decisions", index, *first["loc"])), first["msg"]) from exc
    return decisions


def _same_kind(old: Any, new: Any) -> bool:
    """Whether an edited argument keeps the JSON type of the original (numbers stay numbers...)."""
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, int | float):
        return isinstance(new, int | float)
    if isinstance(old, str):
        return isinstance(new, str)
    return old is None or isinstance(new, type(old))


def _check_edit(where: str, action: ActionRequest, edited: EditedAction) -> None:
    if edited.name != action.name:
        raise DecisionError(f"{where}.edited_action.name", f"an edit cannot change the action {action.name!r}")
    for key, value in edited.args.items():
        if action.args and key not in action.args:
            raise DecisionError(
                f"{where}.edited_action.args.{key}",
                f"not an argument of {action.name}; arguments: {', '.join(sorted(action.args))}",
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise DecisionError(f"{where}.edited_action.args.{key}", "must be a finite number")
        if key in action.args and not _same_kind(action.args[key], value):
            raise DecisionError(
                f"{where}.edited_action.args.{key}",
                f"must be a {type(action.args[key]).__name__} like the original ({action.args[key]!r})",
            )
    amount = edited.args.get("amount")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0):
        raise DecisionError(f"{where}.edited_action.args.amount", "must be a finite number >= 0")


def validate_decisions(raw: Any, request: ApprovalRequest) -> ResumeValue:
    """Check a resume value (any accepted form) against the request; raise :class:`DecisionError` naming
    the problem. Returns the normalised v1 decisions."""
    raw_decisions = _raw_decisions(raw, request)
    wanted = len(request.action_requests)
    if len(raw_decisions) != wanted:
        raise DecisionError(
            "decisions", f"expected {wanted} decision(s), one per action request in order, got {len(raw_decisions)}"
        )
    decisions = []
    for index, ((item, ignored), action) in enumerate(zip(raw_decisions, request.action_requests, strict=True)):
        where = f"decisions.{index}"
        allowed = request.allowed(index)
        if item.type not in allowed:
            raise DecisionError(
                f"{where}.type", f"{item.type!r} is not allowed for {action.name}; allowed: {', '.join(allowed)}"
            )
        message = item.message if item.message is not None else item.comment
        edited = item.edited_action
        if item.args is not None:
            if item.type != "edit" or edited is not None:
                raise DecisionError(f"{where}.args", f"only an edit carries args, not {item.type!r}")
            edited = EditedAction(name=action.name, args={**action.args, **item.args})
        if item.type == "edit":
            if edited is None or not edited.args:
                raise DecisionError(f"{where}.edited_action", f"an edit must carry the edited action of {action.name}")
            edited = EditedAction(name=edited.name, args=_numbers_from_form(edited.args, action))
            _check_edit(where, action, edited)
        elif edited is not None:
            raise DecisionError(f"{where}.edited_action", f"only an edit carries an edited action, not {item.type!r}")
        if ignored:
            message = "ignored"
        if item.type in ("reject", "respond") and not message:
            field = "message" if item.comment is None else "comment"
            raise DecisionError(f"{where}.{field}", f"a {item.type} needs a message saying why")
        decisions.append(Decision(type=item.type, edited_action=edited, message=message or None, ignored=ignored))
    return ResumeValue(decisions=decisions)


def decided_amount(action: ActionRequest, decision: Decision) -> float | None:
    """The amount a decision commits to: the edited ``amount`` argument if any, else the request's."""
    if decision.type == "edit" and decision.edited_action is not None and "amount" in decision.edited_action.args:
        return float(decision.edited_action.args["amount"])
    return action.amount


def stamp(value: ResumeValue, request: ApprovalRequest, actor_id: str, actor_role: Role) -> Any:
    """The resume value handed to the graph: v1 decisions, each with the decider and the time."""
    now = dt.datetime.now(dt.UTC).isoformat()
    actor = {"id": actor_id, "role": actor_role}
    decisions = [
        {**d.model_dump(exclude_none=True, exclude_defaults=True), "type": d.type, "actor": actor, "decided_at": now}
        for d in value.decisions
    ]
    return decisions[0] if request.single else {"decisions": decisions}
