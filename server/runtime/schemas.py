"""Request bodies of the LangGraph-compatible endpoints, as the ``langgraph-sdk`` client sends them.

Fields the SDK sends that change nothing here (``feedback_keys``, ``langsmith_tracer``...) are accepted and
ignored; a field outside the declared ones is a 422 naming it where the model forbids extras.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from rag.schemas import JSON_INTEGER
from rag.schemas import JsonBool as JsonBool
from server.runtime.events import StreamMode

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
ID_RULE = "1-128 letters, digits and . _ : - (starting with a letter or digit)"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"  # as LangGraph writes them
THREAD_ID = re.compile(ID_PATTERN)
CHECKPOINT_NS_PATTERN = r"^([^|:\x00]{1,200}:[0-9a-f-]{36}(\|[^|:\x00]{1,200}:[0-9a-f-]{36}){0,20})?$"
MAX_OFFSET = 1_000_000_000  # offsets reach SQL: bounded well inside PostgreSQL's bigint
ThreadSortBy = Literal["thread_id", "status", "created_at", "updated_at"]

#: Ids in bodies and filters.
ThreadId = Annotated[str, Field(pattern=ID_PATTERN, description=f"A thread id: {ID_RULE}.")]
AssistantId = Annotated[str, Field(pattern=ID_PATTERN, description=f"An assistant id: {ID_RULE}.")]
CheckpointId = Annotated[str, Field(pattern=UUID_PATTERN, description="A checkpoint id (a UUID).")]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET, description="Items to skip (paging)."), JSON_INTEGER]
Limit = Annotated[int, Field(ge=1, le=1000, description="Items per page."), JSON_INTEGER]
NodeNames = Annotated[
    Literal["*"] | list[Annotated[str, Field(min_length=1, max_length=200)]] | None,
    Field(description="'*' or node names (a name the graph lacks stops nothing, as in LangGraph).", max_length=200),
]

#: Ids in paths (a malformed one is a 422 naming it; a well-formed unknown one a 404).
ThreadIdPath = Annotated[str, Path(pattern=ID_PATTERN, description=f"The thread id: {ID_RULE}.")]
AssistantIdPath = Annotated[str, Path(pattern=ID_PATTERN, description=f"The assistant id: {ID_RULE}.")]
RunIdPath = Annotated[uuid.UUID, Path(description="The run id (a UUID).")]
CheckpointIdPath = Annotated[uuid.UUID, Path(description="The checkpoint id (a UUID).")]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip (paging).")]
LimitQuery = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]


def check_thread_id(value: str) -> str:
    if not THREAD_ID.match(value):
        raise ValueError(f"must be {ID_RULE}")
    return value


class RunConfig(BaseModel):
    """The run's ``config``: what a client may set (the runtime owns everything else in LangGraph's config)."""

    model_config = ConfigDict(extra="forbid")

    configurable: dict[str, Any] | None = Field(
        None, description="The keys of the graph's config schema when it declares one, else any key but the "
        "runtime's own (__*, checkpoint*, langgraph_*, run_id, assistant_id, graph_id); thread_id must be the run's."
    )
    recursion_limit: Annotated[int, Field(ge=1, le=10_000), JSON_INTEGER] | None = Field(
        None, description="Most supersteps the run may take."
    )
    tags: list[Annotated[str, Field(max_length=200)]] | None = Field(None, max_length=100)
    max_concurrency: Annotated[int, Field(ge=1, le=1000), JSON_INTEGER] | None = Field(
        None, description="Most tasks run at once."
    )
    run_name: str | None = Field(None, max_length=200)
    metadata: dict[str, Any] | None = Field(
        None, description="Merged under the run's metadata (as LangGraph's RemoteGraph sends it)."
    )


class CheckpointRef(BaseModel):
    """A LangGraph ``Checkpoint`` reference."""

    model_config = ConfigDict(extra="ignore")

    thread_id: ThreadId | None = None
    checkpoint_ns: str = Field(
        "", max_length=2000, pattern=CHECKPOINT_NS_PATTERN,
        description="'' for the root graph; a subgraph's namespace ('node:task id', joined by '|') for its state.",
    )
    checkpoint_id: CheckpointId | None = None
    checkpoint_map: dict[str, Any] | None = None


class RootCheckpointRef(CheckpointRef):
    """A checkpoint of the root graph (where a run can start)."""

    checkpoint_ns: Literal[""] = Field("", description="'': a run starts from a checkpoint of the root graph.")


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

    assistant_id: AssistantId
    input: Any = None
    command: CommandIn | None = None
    stream_mode: StreamMode | list[StreamMode] | None = Field(
        "values", description="One mode or a list of them (default: values)."
    )
    stream_subgraphs: JsonBool = False
    stream_resumable: JsonBool = False
    context: dict[str, Any] | None = None
    config: RunConfig | None = None
    metadata: dict[str, Any] | None = None
    checkpoint_id: CheckpointId | None = None
    checkpoint: RootCheckpointRef | None = None
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] = Field(
        "enqueue",
        description="With a run in flight on the thread: 'enqueue' runs after it (default), 'reject' answers 409, "
        "'interrupt' stops it (progress kept) and 'rollback' stops it and removes what it wrote, before this run.",
    )
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] | None = None
    interrupt_before: NodeNames = None
    interrupt_after: NodeNames = None
    durability: Literal["sync", "async", "exit"] | None = None
    webhook: str | None = Field(
        None, max_length=2000, description="POSTed the run and its final values when it ends (allowed hosts only)."
    )
    after_seconds: float | None = Field(
        None, ge=0, le=86_400, allow_inf_nan=False, strict=True,
        description="Start no sooner than this many seconds from now (a JSON number).",
    )

    @property
    def modes(self) -> list[StreamMode]:
        """The requested modes, each once, in order."""
        value = "values" if self.stream_mode is None else self.stream_mode
        return list(dict.fromkeys([value] if isinstance(value, str) else value))

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "not": {
                "description": "input and command together (an empty input beside a command is ignored)",
                "required": ["input", "command"],
                "properties": {"input": {"not": {"enum": [None, {}, [], ""]}}, "command": {"type": "object"}},
            }
        },
    )

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


class SuperstepUpdate(BaseModel):
    """One node's write in a superstep of ``POST /threads``."""

    model_config = ConfigDict(extra="forbid")

    values: Any = None
    as_node: str = Field(min_length=1, max_length=200, description="The node that 'returned' the values.")
    command: None = Field(None, description="Not supported; write values as a node.")


class Superstep(BaseModel):
    updates: list[SuperstepUpdate] = Field(min_length=1, max_length=100)


class ThreadCreate(BaseModel):
    """The body of ``POST /threads``."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "if": {"required": ["supersteps"], "properties": {"supersteps": {"type": "array", "minItems": 1}}},
            "then": {"required": ["metadata"], "properties": {"metadata": {
                "type": "object", "required": ["graph_id"], "properties": {"graph_id": {"type": "string"}}}}},
        },
    )  # fmt: skip

    thread_id: ThreadId | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    supersteps: list[Superstep] | None = Field(
        None, max_length=1000, description="Checkpoints to write into the new thread, one per superstep, as if each "
        "node had returned its values (copies a thread's history; needs metadata.graph_id and the admin role).",
    )
    ttl: Annotated[None, Field(description="Not supported; leave it unset.")] = None


class ThreadPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any]


class ThreadSearch(BaseModel):
    """The body of ``POST /threads/search`` and ``/threads/count``."""

    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    values: Annotated[
        dict[str, Any] | None,
        WithJsonSchema(
            {
                "anyOf": [{"type": "object", "maxProperties": 0}, {"type": "null"}],
                "description": "Not supported (search by metadata or status): empty or unset.",
            }
        ),
    ] = None
    ids: list[ThreadId] | None = Field(None, max_length=1000)
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: Limit = 10
    offset: Offset = 0
    sort_by: ThreadSortBy = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[Annotated[str, Field(max_length=64)]] | None = None

    @field_validator("values")
    @classmethod
    def _no_values(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value:
            raise ValueError("searching by state values is not supported; search by metadata or status")
        return value


class StateUpdate(BaseModel):
    """The body of ``POST /threads/{id}/state``: write values as if ``as_node`` had returned them."""

    model_config = ConfigDict(extra="forbid")

    values: dict[str, Any] | None = Field(
        description="The update (null with as_node '__end__' ends a pending interrupt without a decision)."
    )
    as_node: str | None = Field(None, max_length=200, description="The node the update is attributed to.")
    checkpoint: CheckpointRef | None = Field(None, description="Write on top of this checkpoint (a fork).")
    checkpoint_id: CheckpointId | None = None

    @property
    def resolves(self) -> bool:
        """Agent Inbox's "ignore": ``{"values": null, "as_node": "__end__"}``."""
        return self.values is None and self.as_node == "__end__"

    @property
    def resolved_checkpoint_id(self) -> str | None:
        return self.checkpoint_id or (self.checkpoint.checkpoint_id if self.checkpoint is not None else None)

    @property
    def checkpoint_ns(self) -> str:
        """The subgraph whose state is written ('' for the root graph)."""
        return self.checkpoint.checkpoint_ns if self.checkpoint is not None else ""


class HistoryRequest(BaseModel):
    """The body (or query) of ``/threads/{id}/history``."""

    model_config = ConfigDict(extra="ignore")

    limit: Limit = 10
    before: CheckpointId | CheckpointRef | None = None
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
    interrupt_id: str | None = Field(
        None, max_length=200, description="The interrupt decided (guards against deciding a newer one)."
    )
    wait: JsonBool = Field(True, description="Wait for the resumed run to finish (else answer 202 at once).")
