"""Runs: admit and queue them, execute the claimed ones in this process's workers, stream, record outcomes.

Every run is a row in the run queue (:mod:`server.runtime.queue`). ``start`` checks a request, applies its
``multitask_strategy`` and queues the run in one transaction; the ``metadata`` event exists from then on.
The process that accepted it claims it at once when it has a free worker (its listeners then read events
from memory); otherwise any process's worker does (``RIMAS_WORKERS`` per process, ``rimas worker`` for
workers alone), and its events reach listeners elsewhere through ``run_events`` and LISTEN/NOTIFY.

A run does not belong to the request that started it: a client that disconnects does not stop it unless
it asked for ``on_disconnect='cancel'``. The worker renews the run's lease while it executes. A run whose
lease lapsed, or whose process's owner lock is free (the process died), is queued again and resumes from
its last checkpoint, at most ``RIMAS_RUN_MAX_ATTEMPTS`` times (then it ends as an error). On SIGTERM a
process claims nothing more, lets its runs finish for ``RIMAS_DRAIN_SECONDS`` and queues the rest again.
Every run ends by recording its status and re-deriving its thread's index row from the checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.constants import END
from langgraph.types import Command, Send

from server.auth import Principal
from server.errors import ApiError
from server.runtime import queue, store
from server.runtime.admission import check_config, check_context, check_size, schema_fields
from server.runtime.assistants import Assistants, Resolved
from server.runtime.authority import Authority, check_authority
from server.runtime.bus import OWNER_CLASS, Bus
from server.runtime.decisions import check_fork, missing_checkpoint
from server.runtime.events import EventTranslator, graph_modes, resumed_checkpoint
from server.runtime.interrupts import (
    DecisionError,
    MalformedApproval,
    looks_like_approval,
    parse_approval,
    stamp,
    validate_decisions,
)
from server.runtime.registry import Assistant
from server.runtime.schemas import THREAD_ID, RunCreate
from server.runtime.serde import to_jsonable
from server.runtime.state import pending_interrupts, since_of
from server.runtime.streams import RunStream, StreamEvent
from server.runtime.webhooks import WebhookRefused, WebhookSettings, check_webhook_url, deliver, run_payload
from server.settings import Role, Settings

log = logging.getLogger(__name__)

RunKind = Literal["stream", "wait", "background"]
_RESERVED_METADATA = ("run_id", "thread_id", "assistant_id", "graph_id", "actor_id", "actor_role")


@dataclass
class ActiveRun:
    """A run as this process sees it: queued by it, executing in it, or recently finished here."""

    run_id: str
    thread_id: str
    assistant: Assistant
    principal: Principal
    modes: list[str]
    on_disconnect: str
    stream: RunStream
    spec: dict[str, Any]
    attempt: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    status: store.RunStatus = "pending"
    error: str | None = None
    result: dict[str, Any] | None = None
    cancel_reason: str | None = None
    cancel_action: str = "interrupt"
    requeue: bool = False
    finishing: bool = False
    task: asyncio.Task[None] | None = None
    writer: EventWriter | None = None
    queued_at: float = field(default_factory=time.monotonic)

    @property
    def executing(self) -> bool:
        """Whether this process executes (or executed) the run, so its stream here is complete."""
        return self.task is not None


class EventWriter:
    """Copies a run's events to ``run_events`` in batches, for listeners in other processes and replay."""

    def __init__(self, pool: store.Pool, run_id: str) -> None:
        self.pool = pool
        self.run_id = run_id
        self._buffer: list[tuple[int, str, str]] = []
        self._flushing: asyncio.Task[None] | None = None

    def add(self, item: StreamEvent) -> None:
        self._buffer.append((item.seq, item.event, item.data))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer, []
            try:
                await queue.write_events(self.pool, self.run_id, batch)
            except Exception:
                log.exception("could not record a run's events", extra={"run_id": self.run_id})

    async def close(self) -> None:
        while self._flushing is not None and not self._flushing.done():
            await self._flushing
        await self._flush()


def _accepts_principal(schema: Any) -> bool:
    """Whether a graph's context schema has room for the ``principal`` the server passes."""
    fields = schema_fields(schema)
    return schema is None or (fields is not None and "principal" in fields)


@dataclass(frozen=True)
class Admitted:
    """A run's checked request: its assistant, the graph built for its config, and what the graph gets."""

    resolved: Resolved
    assistant: Assistant
    config: dict[str, Any]
    config_metadata: dict[str, Any]
    context: dict[str, Any]
    webhook: str | None


TEMPORARY_THREAD_GRACE_SECONDS = 15.0  # how long a stateless run's thread outlives the run (see _discard_thread)


def graph_of(row: store.Row) -> str:
    """The graph a run row executes (recorded in its kwargs; older rows named the graph as the assistant)."""
    return str((row.get("kwargs") or {}).get("graph_id") or row["assistant_id"])


def waits_on_approval(row: store.Row) -> bool:
    """Whether the thread is paused at an approval (a decision, not a new input, must come next)."""
    pending = row.get("interrupts") or []
    return row["status"] == "interrupted" and any(looks_like_approval(p.get("value")) for p in pending)


def _goto(value: Any) -> Any:
    if isinstance(value, dict) and "node" in value:
        return Send(value["node"], value.get("input"))
    if isinstance(value, list):
        return [_goto(item) for item in value]
    return value


class RunManager:
    """Admits, queues, executes, follows, cancels and recovers runs for one process."""

    def __init__(
        self,
        settings: Settings,
        pool: store.Pool,
        assistants: Assistants,
        checkpointer: BaseCheckpointSaver[Any],
        authority: Authority | None,
        bus: Bus,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.assistants = assistants
        self.registry = assistants.registry
        self.checkpointer = checkpointer
        self.authority = authority
        self.bus = bus
        self.owner_key = bus.owner_key
        self.active: dict[str, ActiveRun] = {}
        self._executing: set[str] = set()
        self._closing = False
        self._kick = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self.webhooks = WebhookSettings(
            allowed_hosts=tuple(settings.webhook_hosts),
            secret=settings.webhook_secret.get_secret_value() if settings.webhook_secret else None,
            max_attempts=settings.webhook_max_attempts,
        )  # fmt: skip
        self._backlog = True  # runs may be waiting for a free worker (cleared when a claim finds none)
        bus.on_runs = self._runs_notified
        bus.on_cancel = self._cancel_notified

    # -- lookups --------------------------------------------------------------------------------------------

    def queued_here(self, run_id: str) -> bool:
        """Whether this process queued the run and has not seen it start (nothing of it is recorded yet)."""
        run = self.active.get(run_id)
        return run is not None and not run.executing and run.status == "pending" and not run.done.is_set()

    def local(self, thread_id: str, run_id: str) -> ActiveRun | None:
        """The run if this process executes it (or did, recently)."""
        run = self.active.get(run_id)
        return run if run is not None and run.thread_id == thread_id and run.executing else None

    # -- admitting ------------------------------------------------------------------------------------------

    async def admit(self, body: RunCreate, thread_id: str | None, *, stored: bool = False) -> Admitted:
        """Check what a run hands its graph, without queuing anything: 404 unknown assistant, 413 sizes, 422 config,
        context and webhook. Config or context that does not fit the graph is a 409 instead when the assistant is
        a created one, or when ``stored`` (the body was merged with a stored one, as a cron's on PATCH).
        ``thread_id`` None: a run whose thread is not known yet (a cron's)."""
        resolved = await self.assistants.resolve(body.assistant_id)
        graph = resolved.graph.graph
        check_size("metadata", body.metadata, self.settings.max_metadata_bytes, "RIMAS_MAX_METADATA_BYTES")
        check_size("config.metadata", body.config.metadata if body.config else None, self.settings.max_metadata_bytes,
                   "RIMAS_MAX_METADATA_BYTES")  # fmt: skip
        for name in ("input", "command", "context"):
            value = getattr(body, name)
            check_size(name, value.model_dump(exclude_unset=True) if name == "command" and value else value,
                       self.settings.max_input_bytes, "RIMAS_MAX_INPUT_BYTES")  # fmt: skip
        mismatch = 409 if resolved.stored or stored else 422
        config = resolved.merge_config(check_config(body.config, graph, thread_id, mismatch=mismatch))
        config_metadata = config.pop("metadata", None) or {}
        context = resolved.merge_context(body.context)
        check_context(graph.context_schema, context, mismatch=mismatch)
        webhook = None
        if body.webhook is not None:
            try:
                webhook = check_webhook_url(body.webhook, self.webhooks.allowed_hosts)
            except WebhookRefused as exc:
                raise ApiError(422, "validation_error", str(exc)) from None
        return Admitted(resolved, resolved.graph.for_config(config), config, config_metadata, context, webhook)

    async def start(
        self, thread_id: str, body: RunCreate, principal: Principal, kind: RunKind, *, interrupt_id: str | None = None,
        within: queue.Within | None = None, priority: int = 0, on_completion: str = "keep",
    ) -> ActiveRun:  # fmt: skip
        """Check the request and queue the run (raises ApiError 404/409/422/403 before anything is recorded);
        this process executes it at once when it has a free worker. ``interrupt_id`` makes a resume answer
        that interrupt only (409 if it is no longer pending); ``within(conn)`` commits with the run's row;
        ``priority`` below 0 lets the runs people wait on go first (runs the system starts by itself);
        ``on_completion='delete'`` deletes the thread after the run (a stateless run's temporary thread)."""
        if self._closing:
            raise ApiError(503, "shutting_down", "the server is shutting down; retry on another instance")
        if body.if_not_exists == "create" and not THREAD_ID.match(thread_id):
            raise ApiError(422, "validation_error", "thread_id: must be 1-128 characters of letters, digits and "
                           ". _ : - (starting with a letter or digit)")  # fmt: skip
        admitted = await self.admit(body, thread_id)
        resolved, assistant, user_config, context = (admitted.resolved, admitted.assistant, admitted.config,
                                                     admitted.context)  # fmt: skip
        checkpoint_id = body.resolved_checkpoint_id
        if checkpoint_id is not None:
            found = await self.checkpointer.aget_tuple(
                {"configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}}
            )
            if found is None:
                raise missing_checkpoint(thread_id, checkpoint_id, in_body=True)
            await check_fork(self.checkpointer, thread_id, checkpoint_id)

        run_id = str(uuid.uuid4())
        command = body.command
        resolving = command is not None and command.resolves
        options: dict[str, Any] = {"subgraphs": body.stream_subgraphs}
        for name in ("interrupt_before", "interrupt_after", "durability"):
            if getattr(body, name) is not None:
                options[name] = getattr(body, name)
        spec: dict[str, Any] = {
            "kind": kind, "modes": list(body.modes) if kind != "wait" else [],
            "on_disconnect": body.on_disconnect or "continue",  # as the official server: a run outlives its client
            "input": body.input, "command": None, "resolve": None, "config": user_config, "context": context or None,
            "assistant_id": resolved.assistant_id, "graph_id": assistant.graph_id,
            "assistant_version": resolved.version, "on_completion": on_completion,
            "options": options, "checkpoint_id": checkpoint_id,
            "principal": {"id": principal.id, "role": principal.role},
        }  # fmt: skip

        async def prepare(row: store.Row) -> None:
            if command is not None and not resolving:
                spec["command"] = {"resumes": command.resumes, "resume": None, "update": command.update,
                                   "goto": command.goto}  # fmt: skip
            if resolving:
                spec["resolve"] = self._prepare_resolve(row, principal)
            elif command is not None and command.resumes:
                spec["command"]["resume"] = self._prepare_resume(row, command.resume, principal, interrupt_id)
            elif waits_on_approval(row) and checkpoint_id is None:
                raise ApiError(
                    409, "awaiting_approval",
                    f"thread {thread_id} waits for an approval: decide it (POST /approvals/{thread_id}/decision or "
                    "command.resume) or mark it resolved (command.goto '__end__') before starting another run",
                )  # fmt: skip

        given = {**admitted.config_metadata, **(body.metadata or {})}
        metadata = {k: v for k, v in given.items() if k not in _RESERVED_METADATA}
        new = queue.NewRun(
            run_id=run_id, thread_id=thread_id, assistant_id=resolved.assistant_id, graph_id=assistant.graph_id,
            multitask_strategy=body.multitask_strategy, kwargs=spec, metadata=to_jsonable(metadata),
            actor=principal.id, accepted_by=self.owner_key, persist_events=body.stream_resumable,
            after_seconds=body.after_seconds, webhook=admitted.webhook, priority=priority,
        )  # fmt: skip
        run = self._handle(run_id, thread_id, assistant, principal, spec, attempt=1)
        self.active[run_id] = run  # before it is recorded: a newer run displacing it finds it here
        # spec is recorded as the run's kwargs when the transaction inserts it, after prepare filled it in
        answers = resolving or (command is not None and command.resumes)  # only while the interrupt waits
        here = len(self._executing) < self.settings.workers and not body.after_seconds and not self._closing
        if here:
            self._executing.add(run_id)  # the worker slot is this run's from now on (others see it taken)
        try:  # a free thread's run is claimed by this process in the same transaction (it streams from memory)
            _, stopped, claimed = await queue.enqueue(
                self.pool, new, create=body.if_not_exists == "create", prepare=prepare, exclusive=answers,
                claim_for=self.owner_key if here else None, lease_s=self.settings.run_lease_seconds, within=within,
            )  # fmt: skip
        except BaseException:
            self._executing.discard(run_id)
            self.active.pop(run_id, None)
            raise
        await self._stop(stopped, body.multitask_strategy)
        if claimed is not None:
            self._launch(claimed)
        else:  # it waits behind the thread's runs in flight; whoever is free when they end takes it
            self._executing.discard(run_id)
        log.info("run queued", extra={"run_id": run_id, "thread_id": thread_id, "assistant_id": assistant.assistant_id,
                                      "kind": kind, "actor": principal.id})  # fmt: skip
        return run

    def _handle(
        self, run_id: str, thread_id: str, assistant: Assistant, principal: Principal, spec: dict[str, Any],
        *, attempt: int, start_seq: int = 0,
    ) -> ActiveRun:  # fmt: skip
        stream = RunStream(self.settings.run_buffer_events, start_seq=start_seq)
        run = ActiveRun(run_id=run_id, thread_id=thread_id, assistant=assistant, principal=principal,
                        modes=list(spec["modes"]), on_disconnect=spec["on_disconnect"], stream=stream, spec=spec,
                        attempt=attempt)  # fmt: skip
        if start_seq == 0 or attempt > 1:  # sent as soon as the run is recorded (or re-executed)
            stream.publish("metadata", {"run_id": run_id, "thread_id": thread_id, "attempt": attempt})
        return run

    async def _stop(self, stopped: list[store.Row], action: str) -> None:
        """Apply ``interrupt``/``rollback`` to the runs a new run displaced."""
        for row in stopped:
            run_id = str(row["run_id"])
            if row["status"] == "pending":
                await queue.drop_pending(self.pool, run_id, action)
                self.active.pop(run_id, None)
            elif (run := self.active.get(run_id)) is not None:
                self.request_cancel(run, f"stopped by a newer run ({action})", action)

    def _prepare_resume(self, row: store.Row, value: Any, principal: Principal, interrupt_id: str | None) -> Any:
        """Check a resume against the thread's pending interrupts; approvals get validated and stamped."""
        thread_id = row["thread_id"]
        pending: list[dict[str, Any]] = row.get("interrupts") or []
        if row["status"] != "interrupted" or not pending:
            raise ApiError(
                409, "not_interrupted",
                f"thread {thread_id} is not waiting at an interrupt (status {row['status']}); there is nothing to "
                "resume",
            )  # fmt: skip
        by_id = {p["id"]: p for p in pending}
        if interrupt_id is not None:
            if interrupt_id not in by_id:
                raise ApiError(409, "not_pending", f"interrupt {interrupt_id} of thread {thread_id} is no longer "
                               f"pending; pending: {', '.join(by_id)}")  # fmt: skip
            targets, keyed = {interrupt_id: value}, True
        elif isinstance(value, dict) and value and set(value) <= set(by_id):
            targets, keyed = dict(value), True
        elif len(pending) == 1:
            targets, keyed = {pending[0]["id"]: value}, False
        else:
            raise ApiError(
                422, "validation_error",
                f"command.resume: thread {thread_id} waits on {len(pending)} interrupts "
                f"({', '.join(by_id)}); resume with an object of interrupt id -> value",
            )  # fmt: skip
        prepared: dict[str, Any] = {}
        for interrupt_id, answer in targets.items():
            try:
                request = parse_approval(by_id[interrupt_id]["value"])
            except MalformedApproval as exc:
                raise ApiError(
                    409, "malformed_approval", f"interrupt {interrupt_id} asks for an approval in a form the server "
                    f"cannot check ({exc}); nobody may decide it. Fix the graph",
                ) from exc  # fmt: skip
            if request is None:
                prepared[interrupt_id] = answer
                continue
            if not principal.has("approver"):
                raise ApiError(403, "forbidden", f"deciding an approval needs the approver role; your key has "
                               f"{principal.role}")  # fmt: skip
            try:
                decisions = validate_decisions(answer, request)
            except DecisionError as exc:
                raise ApiError(422, "invalid_decision", f"command.resume.{exc}", {"field": exc.field}) from exc
            problems = check_authority(principal, request, decisions, self.authority)
            if problems:
                raise ApiError(403, "insufficient_authority", "; ".join(problems))
            prepared[interrupt_id] = stamp(decisions, request, principal.id, principal.role)
        return prepared if keyed else next(iter(prepared.values()))

    def _prepare_resolve(self, row: store.Row, principal: Principal) -> list[str]:
        """Check a "mark resolved" (``command.goto='__end__'`` on an interrupted thread): the pending interrupts
        end without a decision, so nothing they asked for runs. Approvals need the approver role."""
        pending: list[dict[str, Any]] = row.get("interrupts") or []
        if row["status"] != "interrupted" or not pending:
            raise ApiError(409, "not_interrupted", f"thread {row['thread_id']} is not waiting at an interrupt "
                           f"(status {row['status']}); there is nothing to mark resolved")  # fmt: skip
        needed: Role = "approver" if any(looks_like_approval(p.get("value")) for p in pending) else "operator"
        if not principal.has(needed):
            raise ApiError(403, "forbidden", f"marking this interrupt resolved needs the {needed} role; your key has "
                           f"{principal.role}")  # fmt: skip
        return [p["id"] for p in pending]

    # -- executing ------------------------------------------------------------------------------------------

    def start_workers(self) -> None:
        """Start the dispatcher (claims runs while workers are free), the lease renewer and the sweeper."""
        self._tasks = [
            asyncio.create_task(self._dispatch_forever(), name="run-dispatcher"),
            asyncio.create_task(self._renew_forever(), name="run-lease-renewer"),
            asyncio.create_task(self._sweep_forever(), name="run-sweeper"),
        ]

    def _runs_notified(self, _: str) -> None:
        self._backlog = True
        self._kick.set()

    async def _dispatch_forever(self) -> None:
        while not self._closing:
            self._kick.clear()
            try:
                while len(self._executing) < self.settings.workers and not self._closing:
                    row = await queue.claim(self.pool, self.owner_key, self.settings.run_lease_seconds)
                    if row is None:
                        self._backlog = False
                        break
                    self._launch(row)
            except Exception:
                log.exception("claiming runs failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.settings.run_poll_seconds)

    def _launch(self, row: store.Row) -> None:
        """Execute a run this process just claimed."""
        run_id = str(row["run_id"])
        self._executing.add(run_id)
        run = self.active.get(run_id)
        if run is not None and not run.executing and row["attempt"] == 1:  # queued here: its stream is here
            self._begin(run, row)
        else:
            task = asyncio.create_task(self._adopt(row), name=f"adopt-{run_id}")

            def failed(done: asyncio.Task[None]) -> None:
                if done.cancelled() or done.exception() is not None:
                    log.error("could not take over a run", extra={"run_id": run_id}, exc_info=done.exception())
                    self._executing.discard(run_id)

            task.add_done_callback(failed)

    async def _adopt(self, row: store.Row) -> None:
        """Take over a run queued by another process (or by this one before a re-execution)."""
        run_id = str(row["run_id"])
        spec = dict(row["kwargs"])
        assistant = self.registry.get(graph_of(row))
        if assistant is not None:
            assistant = assistant.for_config(spec.get("config"))
        if assistant is None:
            self._executing.discard(run_id)
            await self._record(run_id, row["thread_id"], None, "error",
                               f"graph {graph_of(row)!r} is not served by this process")  # fmt: skip
            return
        # seq 1 is the metadata its acceptor sent its own listener; recorded nowhere yet, it is recorded now
        start_seq = await queue.last_seq(self.pool, run_id)
        principal = Principal(id=spec["principal"]["id"], role=spec["principal"]["role"])
        run = self._handle(run_id, row["thread_id"], assistant, principal, spec, attempt=row["attempt"],
                           start_seq=start_seq)  # fmt: skip
        self.active[run_id] = run
        self._begin(run, row)

    def _begin(self, run: ActiveRun, row: store.Row) -> None:
        run.attempt = row["attempt"]
        run.status = "running"
        if row["persist_events"] or row["accepted_by"] != self.owner_key or run.attempt > 1:
            run.writer = EventWriter(self.pool, run.run_id)
            for item in run.stream.buffered():
                run.writer.add(item)
            run.stream.on_publish = run.writer.add
        run.task = asyncio.create_task(self._execute(run, row), name=f"run-{run.run_id}")
        run.task.add_done_callback(lambda _: self._executing.discard(run.run_id))
        self.bus.wake(run.run_id)

    async def _graph_input(self, run: ActiveRun, row: store.Row) -> Any:
        """What the graph is invoked with: the run's input or command; on a re-execution that already wrote
        checkpoints, nothing (LangGraph resumes the pending tasks of the last checkpoint)."""
        if row["attempt"] > 1:
            config = {"configurable": {"thread_id": run.thread_id, "checkpoint_ns": ""}}
            async for _ in self.checkpointer.alist(cast(Any, config), filter={"run_id": run.run_id}, limit=1):
                return None
        command = run.spec.get("command")
        if command is None:
            return run.spec.get("input")
        return Command(
            resume=command["resume"] if command["resumes"] else None,
            update=command["update"],
            goto=_goto(command["goto"]) if command["goto"] is not None else (),
        )

    def _config(self, run: ActiveRun, row: store.Row) -> dict[str, Any]:
        spec = run.spec
        configurable = {**(spec["config"].get("configurable") or {}), "thread_id": run.thread_id}
        if spec.get("checkpoint_id") is not None and row["attempt"] == 1:
            configurable["checkpoint_id"] = spec["checkpoint_id"]
            configurable["checkpoint_ns"] = ""
        config: dict[str, Any] = {
            "configurable": configurable,
            "metadata": {
                **(row.get("metadata") or {}),
                "run_id": run.run_id, "thread_id": run.thread_id,
                "assistant_id": spec.get("assistant_id", run.assistant.assistant_id),
                "graph_id": run.assistant.graph_id, "actor_id": run.principal.id, "actor_role": run.principal.role,
                "run_attempt": row["attempt"],
            },
            "run_id": uuid.UUID(run.run_id),
        }  # fmt: skip
        for key in ("recursion_limit", "tags", "max_concurrency", "run_name"):
            if key in spec["config"]:
                config[key] = spec["config"][key]
        return config

    async def _execute(self, run: ActiveRun, row: store.Row) -> None:
        status: store.RunStatus = "success"
        error: str | None = None
        spec = run.spec
        translator = EventTranslator(run.modes, run.stream.publish)
        try:
            if run.cancel_reason is not None:  # stopped before it started
                raise asyncio.CancelledError
            async with asyncio.timeout(self.settings.run_timeout_seconds):
                if spec.get("resolve") is not None:
                    await self._resolve(run, spec["resolve"], self._config(run, row))
                    return await self._finish(run, status, error)
                context: dict[str, Any] = dict(spec.get("context") or {})
                if _accepts_principal(run.assistant.graph.context_schema):
                    context["principal"] = {"id": run.principal.id, "role": run.principal.role}
                graph_input, config = await self._graph_input(run, row), self._config(run, row)
                graph, modes = run.assistant.graph, cast(Any, graph_modes(run.modes) or ["values"])
                options = spec.get("options") or {}
                if graph_input is None and {"debug", "checkpoints"} & set(run.modes):
                    start = await graph.aget_state(cast(Any, config))
                    if start.created_at is not None:
                        for part in resumed_checkpoint(start):
                            translator.handle(part)
                if "events" in run.modes:
                    events: Any = graph.astream_events(
                        graph_input, cast(Any, config), version="v2", context=context or None, stream_mode=modes,
                        **options,
                    )
                    async for event in events:
                        translator.handle_event(event)
                else:
                    stream: Any = graph.astream(graph_input, cast(Any, config), context=context or None,
                                                stream_mode=modes, version="v2", **options)  # fmt: skip
                    async for part in stream:
                        translator.handle(part)
            run.finishing = True  # the graph is done: from here a cancellation would only lose the record
            translator.flush()
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # the cancellation is handled: record the outcome below
            if run.requeue:
                return await self._hand_over(run)
            if self._closing:
                status, error = "error", "the server shut down while the run was executing"
                run.stream.publish("error", {"error": "ServerShutdown", "message": error})
            elif run.cancel_action == "rollback":
                return await self._roll_back(run)
            else:
                status, error = "interrupted", run.cancel_reason or "cancelled"
        except TimeoutError:
            status, error = "timeout", f"the run exceeded {self.settings.run_timeout_seconds:g} s"
            run.stream.publish("error", {"error": "TimeoutError", "message": error})
        except Exception as exc:
            log.exception("run failed", extra={"run_id": run.run_id, "thread_id": run.thread_id})
            status, error = "error", f"{type(exc).__name__}: {exc}"
            run.stream.publish("error", {"error": type(exc).__name__, "message": str(exc)})
        await self._finish(run, status, error)

    async def _resolve(self, run: ActiveRun, resolve: list[str], run_config: dict[str, Any]) -> None:
        """End the pending interrupts without a decision: a state update as ``__end__``, stamped in the
        checkpoint metadata with who resolved what (the audit shows it)."""
        metadata = {**run_config["metadata"], "resolution": "ignored", "resolved_interrupts": resolve}
        config = {"configurable": {"thread_id": run.thread_id, "checkpoint_ns": ""}, "metadata": metadata}
        await run.assistant.graph.aupdate_state(cast(Any, config), None, as_node=END)
        if "values" in run.modes:
            snapshot = await run.assistant.graph.aget_state(cast(Any, {"configurable": {"thread_id": run.thread_id}}))
            run.stream.publish("values", to_jsonable(snapshot.values))

    async def _thread_outcome(
        self, assistant: Assistant | None, thread_id: str
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
        """The thread's current values, pending interrupts, and whether it stopped before its next nodes (an
        interrupt, static or not), read from the checkpoint."""
        if assistant is None:
            return None, [], False
        snapshot = await assistant.graph.aget_state({"configurable": {"thread_id": thread_id}})
        values = to_jsonable(snapshot.values)
        return (values if isinstance(values, dict) else {"value": values}), pending_interrupts(snapshot), bool(
            snapshot.next
        )

    async def _record(
        self, run_id: str, thread_id: str, assistant: Assistant | None, status: store.RunStatus, error: str | None
    ) -> tuple[store.RunStatus, dict[str, Any] | None, list[dict[str, Any]]]:
        """Record a run's end and re-derive its thread's index row from the checkpoint."""
        values: dict[str, Any] | None = None
        pending: list[dict[str, Any]] = []
        stopped = False
        try:
            values, pending, stopped = await self._thread_outcome(assistant, thread_id)
        except Exception:
            log.exception("could not read the thread state after a run", extra={"run_id": run_id})
        paused = status == "success" and stopped  # at an interrupt, or at interrupt_before/after a node
        if paused:
            status = "interrupted"
        thread_status: store.ThreadStatus = (
            "error" if status in ("error", "timeout") else "interrupted" if pending or paused else "idle"
        )
        try:
            await queue.finish(
                self.pool, run_id=run_id, thread_id=thread_id, status=status, error=error,
                thread_status=thread_status, interrupts=pending, interrupted_at=since_of(pending),
            )  # fmt: skip
        except Exception:
            log.exception("could not record the end of a run", extra={"run_id": run_id})
        log.info("run finished", extra={"run_id": run_id, "status": status, "thread_status": thread_status})
        return status, values, pending

    async def _finish(self, run: ActiveRun, status: store.RunStatus, error: str | None) -> None:
        run.finishing = True
        status, values, pending = await self._record(run.run_id, run.thread_id, run.assistant, status, error)
        run.status, run.error = status, error
        run.result = self._result(values, pending, status, error)
        await self._close_stream(run)
        if self.webhooks.allowed_hosts:
            self._send_webhook(run.run_id, run.thread_id, values)
        if run.spec.get("on_completion") == "delete":
            self._spawn(self._discard_thread(run.thread_id), f"discard-{run.thread_id}")

    async def _discard_thread(self, thread_id: str) -> None:
        """A stateless run's temporary thread goes once its followers in other processes had time to read the
        events recorded for them (they are deleted with it)."""
        await asyncio.sleep(TEMPORARY_THREAD_GRACE_SECONDS)
        try:
            async with self.pool.connection() as conn:
                await store.delete_thread(conn, thread_id)
            await self.checkpointer.adelete_thread(thread_id)
        except ApiError as exc:  # gone already, or another run was queued on it: keep it
            log.info("temporary thread kept", extra={"thread_id": thread_id, "reason": exc.message})

    async def _close_stream(self, run: ActiveRun) -> None:
        run.stream.publish("end", None)
        run.stream.close()
        if run.writer is not None:
            await run.writer.close()
        run.done.set()  # listeners elsewhere were woken when the end was recorded (queue.finish)
        self.bus.wake(run.run_id)
        if self._backlog:  # a worker is free again: take the next queued run now, not at the next poll
            self._kick.set()
        asyncio.get_running_loop().call_later(self.settings.run_buffer_ttl_seconds, self._evict, run.run_id)

    async def _roll_back(self, run: ActiveRun) -> None:
        """``rollback``: the run's checkpoints and its record are removed, as if it never ran."""
        discard = getattr(self.checkpointer, "discard", None)
        if discard is not None:  # checkpoints still being saved in the background: wait for them, drop later ones
            await discard(run.run_id)
        async with self.pool.connection() as conn, conn.transaction():
            removed = await queue.delete_run_checkpoints(conn, run.thread_id, run.run_id)
            await conn.execute("DELETE FROM runs WHERE run_id = %s", (run.run_id,))
        _, pending, _ = await self._thread_outcome(run.assistant, run.thread_id)
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "UPDATE threads SET status = %s, interrupts = %s, interrupted_at = %s, current_run_id = NULL, "
                "updated_at = now() WHERE thread_id = %s AND current_run_id = %s",
                ("interrupted" if pending else "idle", store.Jsonb(pending), since_of(pending), run.thread_id,
                 run.run_id),
            )  # fmt: skip
            await queue.notify(conn, queue.EVENTS, run.run_id)
            await queue.notify(conn, queue.RUNS, run.run_id)  # the run that displaced it comes next
        run.status, run.error = "interrupted", "rolled back by a newer run"
        run.result = self._result(None, [], "interrupted", run.error)
        run.stream.publish("error", {"error": "RolledBack", "message": run.error})
        await self._close_stream(run)
        log.info("run rolled back", extra={"run_id": run.run_id, "checkpoints_removed": removed})

    async def _hand_over(self, run: ActiveRun) -> None:
        """Draining: the run goes back to the queue and resumes elsewhere from its last checkpoint."""
        await queue.requeue(self.pool, [run.run_id])
        if run.writer is not None:
            await run.writer.close()
        run.stream.close()
        log.info("run handed back to the queue", extra={"run_id": run.run_id})

    def _send_webhook(self, run_id: str, thread_id: str, values: dict[str, Any] | None) -> None:
        async def send() -> None:
            row = await store.get_run(self.pool, thread_id, run_id)
            if row.get("webhook"):
                result = await deliver(row["webhook"], run_payload(row, values), self.webhooks)
                log.info("webhook delivered" if result.ok else "webhook failed",
                         extra={"run_id": run_id, "attempts": result.attempts, "status": result.status})  # fmt: skip

        self._spawn(send(), f"webhook-{run_id}")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` in the background, kept referenced until it ends (cancelled at shutdown)."""
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _evict(self, run_id: str) -> None:
        run = self.active.get(run_id)
        if run is not None and run.done.is_set():
            del self.active[run_id]

    @staticmethod
    def _result(
        values: dict[str, Any] | None, pending: list[dict[str, Any]], status: str, error: str | None
    ) -> dict[str, Any]:
        """What ``/runs/wait`` and ``/join`` answer: the thread values, with ``__interrupt__`` or ``__error__``."""
        if status in ("error", "timeout"):
            kind, sep, message = (error or "").partition(": ")
            if status == "timeout" or not sep or not kind.isidentifier():
                kind, message = ("TimeoutError" if status == "timeout" else "RunError"), error or status
            return {"__error__": {"error": kind, "message": message}}
        result = dict(values or {})
        if pending:
            result["__interrupt__"] = [{"value": p["value"], "id": p["id"]} for p in pending]
        return result

    # -- following and cancelling ---------------------------------------------------------------------------

    async def result(self, thread_id: str, run_id: str) -> dict[str, Any]:
        """Wait for a run (executing here or anywhere) to end and return its result."""
        run = self.local(thread_id, run_id)
        if run is not None:
            await run.done.wait()
            assert run.result is not None
            return run.result
        row = await self.wait_row(thread_id, run_id)
        assistant = self.registry.get(graph_of(row))
        values, pending, _ = await self._thread_outcome(assistant, thread_id)
        return self._result(values, pending, row["status"], row.get("error"))

    async def wait_row(self, thread_id: str, run_id: str) -> store.Row:
        """The run's record once it has ended (woken by its process's notification; checked every second)."""
        while True:
            woken = self.bus.waiter(run_id)  # before reading, so a notification in between is not lost
            run = self.local(thread_id, run_id)
            if run is not None:
                await run.done.wait()
            row = await store.get_run(self.pool, thread_id, run_id)
            if row["status"] in store.ENDED:
                return row
            await self.bus.wait(woken, 1.0)

    def request_cancel(self, run: ActiveRun, reason: str, action: str = "interrupt") -> None:
        """Stop the run's graph (a run whose graph already ended is left to record its outcome)."""
        if not run.done.is_set() and not run.finishing and run.cancel_reason is None:
            run.cancel_reason, run.cancel_action = reason, action
            if run.task is not None:
                run.task.cancel()  # (not started yet: it stops as it starts, see _execute)

    def cancel_soon(self, thread_id: str, run_id: str, reason: str) -> None:
        """Cancel a run whose client went away (``on_disconnect='cancel'``), wherever it executes."""
        run = self.local(thread_id, run_id)
        if run is not None:
            self.request_cancel(run, reason)
            return

        async def cancel() -> None:
            with contextlib.suppress(ApiError):
                await self.cancel(thread_id, run_id, wait=False)

        self._spawn(cancel(), f"cancel-{run_id}")

    def _cancel_notified(self, run_id: str) -> None:
        run = self.active.get(run_id)
        if run is None or run.done.is_set():
            return

        async def cancel() -> None:
            action = await queue.cancel_action(self.pool, run_id) or "interrupt"
            self.request_cancel(run, f"cancelled ({action})", action)

        self._spawn(cancel(), f"cancel-{run_id}")

    async def cancel(self, thread_id: str, run_id: str, *, wait: bool, action: str = "interrupt") -> None:
        """Stop a run wherever it executes (a queued one never starts); ``wait`` until it has stopped."""
        row = await queue.request_cancel(self.pool, thread_id, run_id, action)
        if row is None:
            ended = await store.get_run(self.pool, thread_id, run_id)
            raise ApiError(409, "conflict", f"run {run_id} already ended with status {ended['status']}")
        if row["status"] == "pending":
            await queue.drop_pending(self.pool, run_id, action)
            self.active.pop(run_id, None)
            return
        run = self.local(thread_id, run_id)
        if run is not None:
            self.request_cancel(run, "cancelled by request", action)
        if wait:
            with contextlib.suppress(ApiError):  # a rolled-back run's record is gone
                await self.wait_row(thread_id, run_id)

    # -- leases, recovery and shutdown ----------------------------------------------------------------------

    async def _renew_forever(self) -> None:
        interval = self.settings.run_lease_seconds / 3
        while not self._closing:
            await asyncio.sleep(interval)
            try:
                await queue.renew(self.pool, sorted(self._executing), self.settings.run_lease_seconds)
            except Exception:
                log.exception("renewing run leases failed")

    async def _owner_alive(self, owner_key: int | None) -> bool:
        if owner_key is None:
            return False
        if owner_key == self.owner_key:
            return True
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS got", (OWNER_CLASS, owner_key))
            row = await cur.fetchone()
            got = bool(row and row["got"])
            if got:
                await conn.execute("SELECT pg_advisory_unlock(%s, %s)", (OWNER_CLASS, owner_key))
        return not got

    async def recover_orphans(self) -> int:
        """Queue again the runs whose process died or whose lease lapsed (or end them as errors after
        ``RIMAS_RUN_MAX_ATTEMPTS``); returns how many were recovered."""
        recovered = 0
        alive: dict[int | None, bool] = {}
        for row in await store.active_runs(self.pool):
            run_id = str(row["run_id"])
            if row["status"] != "running" or run_id in self._executing:
                continue
            key = row.get("owner_key")
            if key not in alive:
                alive[key] = await self._owner_alive(key) and key != self.owner_key
            lapsed = row.get("lease_expires_at") is None or row["lease_expires_at"] < dt.datetime.now(dt.UTC)
            if alive[key] and not lapsed:
                continue
            recovered += 1
            if row["attempt"] < self.settings.run_max_attempts:
                await queue.requeue(self.pool, [run_id])
                log.warning("run queued again after its worker stopped", extra={
                    "run_id": run_id, "thread_id": row["thread_id"], "attempt": row["attempt"]})  # fmt: skip
                continue
            await self._record(run_id, row["thread_id"], self.registry.get(graph_of(row)), "error",
                               f"the run's worker stopped {row['attempt']} times (RIMAS_RUN_MAX_ATTEMPTS)")  # fmt: skip
        return recovered

    def _forget_queued(self) -> None:
        """Drop the handles of runs queued here that no worker here took within the buffer TTL (they ran
        elsewhere, were dropped, or still wait: whoever claims them later adopts them from their record)."""
        horizon = time.monotonic() - self.settings.run_buffer_ttl_seconds
        for run_id, run in list(self.active.items()):
            if not run.executing and run.queued_at < horizon and run_id not in self._executing:
                del self.active[run_id]

    async def _sweep_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(max(self.settings.run_lease_seconds / 2, 0.5))
            self._forget_queued()
            try:
                if await self.recover_orphans():
                    self._kick.set()
            except Exception:
                log.exception("recovering runs failed")

    async def close(self) -> None:
        """Claim nothing more; let executing runs finish for ``RIMAS_DRAIN_SECONDS``, then queue the rest again
        (another process resumes them from their last checkpoint)."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        running = [r.task for r in self.active.values() if r.task is not None and not r.task.done()]
        if running:
            await asyncio.wait(running, timeout=self.settings.drain_seconds)
        left = [r for r in self.active.values() if r.task is not None and not r.task.done()]
        for run in left:
            run.requeue = True
            run.task.cancel()  # type: ignore[union-attr]
        if left:
            await asyncio.wait([r.task for r in left if r.task is not None], timeout=10)
        for task in list(self._background):
            task.cancel()
        log.info("run manager closed", extra={"handed_back": len(left)})
