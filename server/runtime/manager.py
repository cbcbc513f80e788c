"""Runs: claim the thread, execute the graph in an asyncio task, stream its events, record the outcome.

A run is started by a request but does not belong to it: it executes in its own task, so a client that
disconnects does not stop it (unless it asked for ``on_disconnect='cancel'``, the default for a streaming
request). Every run ends by recording its status and re-deriving its thread's index row (idle, interrupted
with the pending interrupts, or error) from the checkpoint.

Each server process holds a Postgres advisory lock named by its ``owner_key`` for as long as it lives and
stamps the runs it executes with it. A run left ``running`` whose owner's lock is free belonged to a process
that died: it is marked ``error`` (at start-up and then every minute) and its thread is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.constants import END
from langgraph.types import Command, Send

from server.auth import Principal
from server.errors import ApiError
from server.runtime import store
from server.runtime.admission import check_config, check_context, check_size, schema_fields
from server.runtime.authority import Authority, check_authority
from server.runtime.decisions import check_fork, missing_checkpoint
from server.runtime.events import EventTranslator, graph_modes
from server.runtime.interrupts import (
    DecisionError,
    MalformedApproval,
    looks_like_approval,
    parse_approval,
    stamp,
    validate_decisions,
)
from server.runtime.registry import Assistant, Registry
from server.runtime.schemas import THREAD_ID, RunCreate
from server.runtime.serde import to_jsonable
from server.runtime.state import pending_interrupts, since_of
from server.runtime.streams import RunStream
from server.settings import Role, Settings

log = logging.getLogger(__name__)

RunKind = Literal["stream", "wait", "background"]
OWNER_CLASS = 0x52554E53  # "RUNS": namespace of the owner advisory locks (two-key form)
RECOVERY_INTERVAL_S = 60.0
_RESERVED_METADATA = ("run_id", "thread_id", "assistant_id", "graph_id", "actor_id", "actor_role")


@dataclass
class ActiveRun:
    """A run executing (or recently finished) in this process."""

    run_id: str
    thread_id: str
    assistant: Assistant
    principal: Principal
    modes: list[str]
    on_disconnect: str
    stream: RunStream
    graph_input: Any
    config: dict[str, Any]
    context: Any
    options: dict[str, Any]
    done: asyncio.Event = field(default_factory=asyncio.Event)
    status: store.RunStatus = "running"
    error: str | None = None
    result: dict[str, Any] | None = None
    cancel_reason: str | None = None
    task: asyncio.Task[None] | None = None
    resolve: list[str] | None = None  # "mark resolved": the interrupt ids ended without a decision

    @property
    def location(self) -> str:
        return f"/threads/{self.thread_id}/runs/{self.run_id}"


def _accepts_principal(schema: Any) -> bool:
    """Whether a graph's context schema has room for the ``principal`` the server passes."""
    fields = schema_fields(schema)
    return schema is None or (fields is not None and "principal" in fields)


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
    """Starts, follows, cancels and recovers runs for one server process."""

    def __init__(
        self,
        settings: Settings,
        pool: store.Pool,
        registry: Registry,
        checkpointer: BaseCheckpointSaver[Any],
        authority: Authority | None,
        owner_key: int,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.registry = registry
        self.checkpointer = checkpointer
        self.authority = authority
        self.owner_key = owner_key
        self.active: dict[str, ActiveRun] = {}
        self._closing = False
        self._sweeper: asyncio.Task[None] | None = None

    # -- lookups --------------------------------------------------------------------------------------------

    def assistant(self, assistant_id: str) -> Assistant:
        try:
            return self.registry[assistant_id]
        except KeyError:
            known = ", ".join(self.registry) or "none"
            raise ApiError(404, "not_found", f"assistant {assistant_id!r} not found; served: {known}") from None

    def local(self, thread_id: str, run_id: str) -> ActiveRun | None:
        run = self.active.get(run_id)
        return run if run is not None and run.thread_id == thread_id else None

    # -- starting -------------------------------------------------------------------------------------------

    async def start(
        self, thread_id: str, body: RunCreate, principal: Principal, kind: RunKind, *, interrupt_id: str | None = None
    ) -> ActiveRun:
        """Claim the thread and start executing; raises ApiError (404/409/422/403) before anything runs.
        ``interrupt_id`` makes a resume answer that interrupt only (409 if it is no longer pending)."""
        if self._closing:
            raise ApiError(503, "shutting_down", "the server is shutting down; retry on another instance")
        assistant = self.registry.get(body.assistant_id)
        if assistant is None:
            raise ApiError(422, "validation_error", f"assistant_id: {body.assistant_id!r} is not served; served: "
                           f"{', '.join(self.registry) or 'none'}")  # fmt: skip
        if body.if_not_exists == "create" and not THREAD_ID.match(thread_id):
            raise ApiError(422, "validation_error", "thread_id: must be 1-128 characters of letters, digits and "
                           ". _ : - (starting with a letter or digit)")  # fmt: skip
        graph = assistant.graph
        for name in ("interrupt_before", "interrupt_after"):
            nodes = getattr(body, name)
            if isinstance(nodes, list):
                unknown = [n for n in nodes if n not in graph.nodes]
                if unknown:
                    raise ApiError(422, "validation_error", f"{name}: unknown node(s) {unknown}; nodes: "
                                   f"{', '.join(n for n in graph.nodes if not n.startswith('__'))}")  # fmt: skip
        check_size("metadata", body.metadata, self.settings.max_metadata_bytes, "RIMAS_MAX_METADATA_BYTES")
        for name in ("input", "command", "context"):
            value = getattr(body, name)
            check_size(name, value.model_dump(exclude_unset=True) if name == "command" and value else value,
                       self.settings.max_input_bytes, "RIMAS_MAX_INPUT_BYTES")  # fmt: skip
        checkpoint_id = body.resolved_checkpoint_id
        if checkpoint_id is not None:
            found = await self.checkpointer.aget_tuple(
                {"configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}}
            )
            if found is None:
                raise missing_checkpoint(thread_id, checkpoint_id, in_body=True)
            await check_fork(self.checkpointer, thread_id, checkpoint_id)

        run_id = str(uuid.uuid4())
        resume: dict[str, Any] = {}
        command = body.command
        resolving = command is not None and command.resolves

        async def prepare(row: store.Row) -> None:
            if resolving:
                resume["resolve"] = self._prepare_resolve(row, principal)
            elif command is not None and command.resumes:
                resume["value"] = self._prepare_resume(row, command.resume, principal, interrupt_id)
            elif waits_on_approval(row) and checkpoint_id is None:
                raise ApiError(
                    409, "awaiting_approval",
                    f"thread {thread_id} waits for an approval: decide it (POST /approvals/{thread_id}/decision or "
                    "command.resume) or mark it resolved (command.goto '__end__') before starting another run",
                )  # fmt: skip

        metadata = {k: v for k, v in (body.metadata or {}).items() if k not in _RESERVED_METADATA}
        claim = store.NewRun(
            run_id=run_id,
            thread_id=thread_id,
            assistant_id=assistant.assistant_id,
            graph_id=assistant.graph_id,
            multitask_strategy=body.multitask_strategy,
            kwargs=to_jsonable(body.recorded_kwargs()),
            metadata=to_jsonable(metadata),
            actor=principal.id,
            owner_key=self.owner_key,
        )
        run = self._build(run_id, thread_id, assistant, body, principal, kind, metadata, checkpoint_id)
        self.active[run_id] = run  # before the claim commits, so the orphan sweep never mistakes it
        try:
            await store.claim_thread(self.pool, claim, create=body.if_not_exists == "create", prepare=prepare)
        except BaseException:
            del self.active[run_id]
            raise
        if resolving:
            run.resolve = resume["resolve"]
        elif command is not None:
            run.graph_input = Command(
                resume=resume["value"] if command.resumes else None,
                update=command.update,
                goto=_goto(command.goto) if command.goto is not None else (),
            )
        run.task = asyncio.create_task(self._execute(run), name=f"run-{run_id}")
        log.info("run started", extra={"run_id": run_id, "thread_id": thread_id, "assistant_id": assistant.assistant_id,
                                       "kind": kind, "actor": principal.id})  # fmt: skip
        return run

    def _build(
        self,
        run_id: str,
        thread_id: str,
        assistant: Assistant,
        body: RunCreate,
        principal: Principal,
        kind: RunKind,
        metadata: dict[str, Any],
        checkpoint_id: str | None,
    ) -> ActiveRun:
        user_config = check_config(body.config, assistant.graph, thread_id)
        check_context(assistant.graph.context_schema, body.context)
        configurable = {**(user_config.get("configurable") or {}), "thread_id": thread_id}
        if checkpoint_id is not None:
            configurable["checkpoint_id"] = checkpoint_id
            configurable["checkpoint_ns"] = ""
        config: dict[str, Any] = {
            "configurable": configurable,
            "metadata": {
                **metadata,
                "run_id": run_id,
                "thread_id": thread_id,
                "assistant_id": assistant.assistant_id,
                "graph_id": assistant.graph_id,
                "actor_id": principal.id,
                "actor_role": principal.role,
            },
            "run_id": uuid.UUID(run_id),
        }
        for key in ("recursion_limit", "tags", "max_concurrency", "run_name"):
            if key in user_config:
                config[key] = user_config[key]
        context: dict[str, Any] = dict(body.context or {})
        if _accepts_principal(assistant.graph.context_schema):
            context["principal"] = {"id": principal.id, "role": principal.role}
        options: dict[str, Any] = {"subgraphs": body.stream_subgraphs}
        for name in ("interrupt_before", "interrupt_after", "durability"):
            if getattr(body, name) is not None:
                options[name] = getattr(body, name)
        on_disconnect = body.on_disconnect or "continue"  # as the official server: a run outlives its client
        return ActiveRun(
            run_id=run_id,
            thread_id=thread_id,
            assistant=assistant,
            principal=principal,
            modes=list(body.modes) if kind != "wait" else [],
            on_disconnect=on_disconnect,
            stream=RunStream(self.settings.run_buffer_events),
            graph_input=body.input,
            config=config,
            context=context or None,
            options=options,
        )

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

    async def _execute(self, run: ActiveRun) -> None:
        status: store.RunStatus = "success"
        error: str | None = None
        run.stream.publish("metadata", {"run_id": run.run_id, "thread_id": run.thread_id, "attempt": 1})
        translator = EventTranslator(run.modes, run.stream.publish)
        try:
            async with asyncio.timeout(self.settings.run_timeout_seconds):
                if run.resolve is not None:
                    await self._resolve(run)
                    return await self._finish(run, status, error)
                graph, modes = run.assistant.graph, cast(Any, graph_modes(run.modes) or ["values"])
                if "events" in run.modes:
                    events: Any = graph.astream_events(
                        run.graph_input, cast(Any, run.config), version="v2", context=run.context, stream_mode=modes,
                        **run.options,
                    )
                    async for event in events:
                        translator.handle_event(event)
                else:
                    stream: Any = graph.astream(run.graph_input, cast(Any, run.config), context=run.context,
                                                stream_mode=modes, version="v2", **run.options)  # fmt: skip
                    async for part in stream:
                        translator.handle(part)
            translator.flush()
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # the cancellation is handled: record the outcome below
            if self._closing:
                status, error = "error", "the server shut down while the run was executing"
                run.stream.publish("error", {"error": "ServerShutdown", "message": error})
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

    async def _resolve(self, run: ActiveRun) -> None:
        """End the pending interrupts without a decision: a state update as ``__end__``, stamped in the
        checkpoint metadata with who resolved what (the audit shows it)."""
        metadata = {**run.config["metadata"], "resolution": "ignored", "resolved_interrupts": run.resolve}
        config = {"configurable": {"thread_id": run.thread_id, "checkpoint_ns": ""}, "metadata": metadata}
        await run.assistant.graph.aupdate_state(cast(Any, config), None, as_node=END)
        if "values" in run.modes:
            snapshot = await run.assistant.graph.aget_state(cast(Any, {"configurable": {"thread_id": run.thread_id}}))
            run.stream.publish("values", to_jsonable(snapshot.values))

    async def _thread_outcome(
        self, assistant: Assistant | None, thread_id: str
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The thread's current values and pending interrupts, read from the checkpoint."""
        if assistant is None:
            return None, []
        snapshot = await assistant.graph.aget_state({"configurable": {"thread_id": thread_id}})
        values = to_jsonable(snapshot.values)
        return (values if isinstance(values, dict) else {"value": values}), pending_interrupts(snapshot)

    async def _finish(self, run: ActiveRun, status: store.RunStatus, error: str | None) -> None:
        values: dict[str, Any] | None = None
        pending: list[dict[str, Any]] = []
        try:
            values, pending = await self._thread_outcome(run.assistant, run.thread_id)
        except Exception:
            log.exception("could not read the thread state after a run", extra={"run_id": run.run_id})
        if status == "success" and pending:
            status = "interrupted"
        thread_status: store.ThreadStatus = (
            "error" if status in ("error", "timeout") else "interrupted" if pending else "idle"
        )
        try:
            await store.finish_run(
                self.pool, run_id=run.run_id, thread_id=run.thread_id, status=status, error=error,
                thread_status=thread_status, interrupts=pending, interrupted_at=since_of(pending),
            )  # fmt: skip
        except Exception:
            log.exception("could not record the end of a run", extra={"run_id": run.run_id})
        run.status, run.error = status, error
        run.result = self._result(values, pending, status, error)
        run.stream.publish("end", None)
        run.stream.close()
        run.done.set()
        log.info("run finished", extra={"run_id": run.run_id, "status": status, "thread_status": thread_status})
        asyncio.get_running_loop().call_later(self.settings.run_buffer_ttl_seconds, self._evict, run.run_id)

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

    async def result(self, thread_id: str, run_id: str, poll_s: float = 0.5) -> dict[str, Any]:
        """Wait for a run (in this process or another) to end and return its result."""
        run = self.local(thread_id, run_id)
        if run is not None:
            await run.done.wait()
            assert run.result is not None
            return run.result
        row = await self.wait_row(thread_id, run_id, poll_s)
        assistant = self.registry.get(row["assistant_id"])
        values, pending = await self._thread_outcome(assistant, thread_id)
        return self._result(values, pending, row["status"], row.get("error"))

    async def wait_row(self, thread_id: str, run_id: str, poll_s: float = 0.5) -> store.Row:
        """Poll the runs table until the run has ended (it executes in another process)."""
        row = await store.get_run(self.pool, thread_id, run_id)
        while row["status"] in ("pending", "running"):
            await asyncio.sleep(poll_s)
            row = await store.get_run(self.pool, thread_id, run_id)
        return row

    def request_cancel(self, run: ActiveRun, reason: str) -> None:
        if run.task is not None and not run.done.is_set() and run.cancel_reason is None:
            run.cancel_reason = reason
            run.task.cancel()

    async def cancel(self, thread_id: str, run_id: str, *, wait: bool) -> None:
        run = self.local(thread_id, run_id)
        if run is None:
            row = await store.get_run(self.pool, thread_id, run_id)
            if row["status"] in ("pending", "running"):
                raise ApiError(409, "conflict", f"run {run_id} executes in another server process; cancel it there")
            raise ApiError(409, "conflict", f"run {run_id} already ended with status {row['status']}")
        if run.done.is_set():
            raise ApiError(409, "conflict", f"run {run_id} already ended with status {run.status}")
        self.request_cancel(run, "cancelled by request")
        if wait:
            await run.done.wait()

    # -- recovery and shutdown ------------------------------------------------------------------------------

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
        """Mark runs whose process died as errors and release their threads; returns how many."""
        recovered = 0
        alive: dict[int | None, bool] = {}
        for row in await store.active_runs(self.pool):
            run_id = str(row["run_id"])
            if run_id in self.active:
                continue
            key = row.get("owner_key")
            if key not in alive:
                alive[key] = await self._owner_alive(key)
            if alive[key] and key != self.owner_key:
                continue
            pending: list[dict[str, Any]] = []
            try:
                _, pending = await self._thread_outcome(self.registry.get(row["assistant_id"]), row["thread_id"])
            except Exception:
                log.exception("could not read the state of an orphaned run's thread", extra={"run_id": run_id})
            await store.finish_run(
                self.pool, run_id=run_id, thread_id=row["thread_id"], status="error",
                error="the server process executing the run stopped before it ended",
                thread_status="interrupted" if pending else "idle", interrupts=pending,
                interrupted_at=since_of(pending),
            )  # fmt: skip
            recovered += 1
            log.warning("orphaned run marked as error", extra={"run_id": run_id, "thread_id": row["thread_id"]})
        return recovered

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(RECOVERY_INTERVAL_S)
            try:
                await self.recover_orphans()
            except Exception:
                log.exception("orphaned-run sweep failed")

    def start_sweeper(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="orphaned-run-sweeper")

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop accepting runs, cancel the executing ones (recorded as errors) and wait for them."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        tasks = [r.task for r in self.active.values() if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        log.info("run manager closed", extra={"cancelled_runs": len(tasks)})


async def hold_owner_lock(url: str) -> tuple[psycopg.AsyncConnection[Any], int]:
    """Open a dedicated connection holding this process's owner lock; returns it and the owner key."""
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        while True:
            key = random.randint(1, 2**31 - 1)
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (OWNER_CLASS, key))
            row = await cur.fetchone()
            if row and row[0]:
                return conn, key
    except BaseException:
        await conn.close()
        raise
