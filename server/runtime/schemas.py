"""Request bodies of the LangGraph-compatible endpoints, as the ``langgraph-sdk`` client sends them.

Fields the SDK always sends but that change nothing here (``stream_resumable``, ``feedback_keys``,
``langsmith_tracer``...) are accepted and ignored; fields whose meaning is not implemented (``webhook``,
``after_seconds``, multitask strategies other than ``reject``) are refused with a 422 naming them.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from server.runtime.events import STREAM_MODES

THREAD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
ThreadSortBy = Literal["thread_id", "status", "created_at", "updated_at"]


def check_thread_id(value: str) -> str:
    if not THREAD_ID.match(value):
        raise ValueError("must be 1-128 characters of letters, digits and . _ : - (starting with a letter or digit)")
    return value


class CheckpointRef(BaseModel):
    """A LangGraph ``Checkpoint`` reference."""

    model_config = ConfigDict(extra="ignore")

    thread_id: str | None = None
    checkpoint_ns: str = ""
    checkpoint_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None


class CommandIn(BaseModel):
    """``Command``: resume an interrupt, and/or update the state, and/or go to nodes."""

    model_config = ConfigDict(extra="forbid")

    resume: Any = None
    update: dict[str, Any] | list[Any] | None = None
    goto: str | list[Any] | dict[str, Any] | None = None

    @property
    def resumes(self) -> bool:
        return "resume" in self.model_fields_set

    @property
    def resolves(self) -> bool:
        """Agent Chat UI's "mark as resolved": ``goto: "__end__"`` alone ends the pending interrupts."""
        return self.goto in ("__end__", ["__end__"]) and not self.resumes and self.update is None


class RunCreate(BaseModel):
    """The body of ``POST /threads/{id}/runs[/stream|/wait]``."""

    model_config = ConfigDict(extra="ignore")

    assistant_id: str = Field(min_length=1)
    input: Any = None
    command: CommandIn | None = None
    stream_mode: list[str] = Field(default_factory=lambda: ["values"])
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    context: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    checkpoint: CheckpointRef | None = None
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] = "reject"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    webhook: str | None = None
    after_seconds: float | None = None

    @field_validator("stream_mode", mode="before")
    @classmethod
    def _modes(cls, value: Any) -> Any:
        if value is None:
            return ["values"]
        return [value] if isinstance(value, str) else value

    @field_validator("stream_mode")
    @classmethod
    def _known_modes(cls, value: list[str]) -> list[str]:
        for mode in value:
            if mode not in STREAM_MODES:
                raise ValueError(f"{mode!r} is not supported; allowed: {', '.join(STREAM_MODES)}")
        return list(dict.fromkeys(value))

    @field_validator("multitask_strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        if value != "reject":
            raise ValueError(f"{value!r} is not supported; allowed: reject (a busy thread answers 409)")
        return value

    @field_validator("webhook", "after_seconds")
    @classmethod
    def _unsupported(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("is not supported by this server; leave it unset")
        return value

    @model_validator(mode="after")
    def _input_xor_command(self) -> RunCreate:
        if self.command is not None and self.input in ({}, [], ""):
            self.input = None  # Agent Chat UI sends an empty input next to every command
        if self.input is not None and self.command is not None:
            raise ValueError("send either input or command, not both")
        return self

    @property
    def resolved_checkpoint_id(self) -> str | None:
        if self.checkpoint_id:
            return self.checkpoint_id
        if self.checkpoint is not None and self.checkpoint.checkpoint_id:
            return self.checkpoint.checkpoint_id
        return None

    def recorded_kwargs(self) -> dict[str, Any]:
        """What the runs table keeps of the request."""
        return self.model_dump(
            include={"input", "command", "stream_mode", "context", "config", "checkpoint_id", "interrupt_before",
                     "interrupt_after", "durability", "on_disconnect", "if_not_exists", "stream_subgraphs"},
            exclude_none=True,
        )  # fmt: skip


class ThreadCreate(BaseModel):
    """The body of ``POST /threads``."""

    model_config = ConfigDict(extra="ignore")

    thread_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    supersteps: list[Any] | None = None
    ttl: Any = None

    @field_validator("thread_id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        return None if value is None else check_thread_id(value)

    @field_validator("supersteps", "ttl")
    @classmethod
    def _unsupported(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("is not supported by this server; leave it unset")
        return value


class ThreadPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any]


class ThreadSearch(BaseModel):
    """The body of ``POST /threads/search`` and ``/threads/count``."""

    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    ids: list[str] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    sort_by: ThreadSortBy = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[str] | None = None

    @field_validator("values")
    @classmethod
    def _no_values(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value:
            raise ValueError("searching by state values is not supported; search by metadata or status")
        return value


class StateUpdate(BaseModel):
    """The body of ``POST /threads/{id}/state``: write values as if ``as_node`` had returned them."""

    model_config = ConfigDict(extra="forbid")

    values: dict[str, Any] | list[Any] | None = Field(
        description="The update (null with as_node '__end__' ends a pending interrupt without a decision)."
    )
    as_node: str | None = Field(None, description="The node the update is attributed to.")
    checkpoint: CheckpointRef | None = Field(None, description="Write on top of this checkpoint (a fork).")
    checkpoint_id: str | None = None

    @property
    def resolves(self) -> bool:
        """Agent Inbox's "ignore": ``{"values": null, "as_node": "__end__"}``."""
        return self.values is None and self.as_node == "__end__"

    @property
    def resolved_checkpoint_id(self) -> str | None:
        return self.checkpoint_id or (self.checkpoint.checkpoint_id if self.checkpoint is not None else None)


class HistoryRequest(BaseModel):
    """The body (or query) of ``/threads/{id}/history``."""

    model_config = ConfigDict(extra="ignore")

    limit: int = Field(10, ge=1, le=1000)
    before: str | CheckpointRef | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: CheckpointRef | None = None

    @property
    def before_id(self) -> str | None:
        if isinstance(self.before, CheckpointRef):
            return self.before.checkpoint_id
        return self.before


class DecisionRequest(BaseModel):
    """The body of ``POST /approvals/{thread_id}/decision``."""

    model_config = ConfigDict(extra="forbid")

    decisions: list[Any] = Field(
        description="One per action request, in order: {type: approve} | {type: edit, edited_action: {name, args}} "
        "| {type: reject, message} (the older {type, args, comment} is accepted too)."
    )
    interrupt_id: str | None = Field(None, description="The interrupt decided (guards against deciding a newer one).")
    wait: bool = Field(True, description="Wait for the resumed run to finish (else answer 202 at once).")
