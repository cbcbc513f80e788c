"""From LangGraph stream parts to the SSE events of the LangGraph Server protocol.

Requested modes map onto the graph's stream modes: ``values``, ``updates``, ``custom``, ``debug``, ``tasks``
and ``checkpoints`` pass through (``values`` carries ``__interrupt__`` when the run stops at an interrupt);
``messages`` becomes ``messages/metadata`` (first sight of a message), ``messages/partial`` (the message
accumulated so far, as LLM tokens arrive) and ``messages/complete`` (the finished message);
``messages-tuple`` passes the raw ``[message, metadata]`` pairs as ``messages``; ``events`` passes LangChain's
``astream_events`` (v2) events (``on_chain_start`` with ``metadata.langgraph_node``...), the run then being
driven by ``astream_events`` whose root ``on_chain_stream`` chunks feed the other modes. Events from
subgraphs are named ``<mode>|<namespace>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal, get_args

from langchain_core.messages import AIMessageChunk, BaseMessage, BaseMessageChunk, message_chunk_to_message

from server.runtime.serde import to_jsonable
from server.runtime.state import checkpoint_ref, task_checkpoint

StreamMode = Literal[
    "values", "updates", "messages", "messages-tuple", "custom", "debug", "tasks", "checkpoints", "events"
]  # fmt: skip
STREAM_MODES: tuple[str, ...] = get_args(StreamMode)
_PASS_THROUGH = {"values", "updates", "custom", "debug", "tasks", "checkpoints"}

Emit = Callable[[str, Any], object]


def graph_modes(requested: Iterable[str]) -> list[str]:
    """The LangGraph stream modes that produce the requested SSE modes."""
    modes: list[str] = []
    for mode in requested:
        if mode == "events":
            continue
        target = "messages" if mode in ("messages", "messages-tuple") else mode
        if target not in modes:
            modes.append(target)
    return modes


def resumed_checkpoint(snapshot: Any) -> list[dict[str, Any]]:
    """The stream parts announcing the checkpoint a run resumes from (LangGraph streams only the checkpoints a
    run writes; LangGraph Server also sends the one it starts from, so a client sees the whole history)."""
    payload = {
        "config": snapshot.config, "parent_config": snapshot.parent_config, "values": snapshot.values,
        "metadata": snapshot.metadata, "next": list(snapshot.next),
        "tasks": [{"id": t.id, "name": t.name, "interrupts": list(t.interrupts), "state": t.state}
                  for t in snapshot.tasks],
    }  # fmt: skip
    debug = {"type": "checkpoint", "timestamp": snapshot.created_at, "step": (snapshot.metadata or {}).get("step"),
             "payload": payload}  # fmt: skip
    return [{"type": "debug", "ns": (), "data": debug}, {"type": "checkpoints", "ns": (), "data": payload}]


def checkpoint_payload(payload: Any) -> Any:
    """A checkpoint event as LangGraph Server sends it: ``checkpoint`` and ``parent_checkpoint`` (as in the
    thread's history) instead of LangGraph's ``config`` and ``parent_config``; each task's subgraph
    ``state`` config as its ``checkpoint``."""
    if not isinstance(payload, dict):
        return payload
    converted = {k: v for k, v in payload.items() if k not in ("config", "parent_config")}
    converted["checkpoint"] = checkpoint_ref(payload.get("config"))
    converted["parent_checkpoint"] = checkpoint_ref(payload.get("parent_config"))
    tasks = []
    for task in payload.get("tasks") or []:
        if isinstance(task, dict) and isinstance(task.get("state"), dict):
            task = {**{k: v for k, v in task.items() if k != "state"}, "checkpoint": task_checkpoint(task["state"])}
        tasks.append(task)
    converted["tasks"] = tasks
    return converted


class EventTranslator:
    """Stateful translator for one run (it accumulates message chunks by message id)."""

    def __init__(self, requested: Iterable[str], emit: Emit) -> None:
        self.requested = set(requested)
        self.emit = emit
        self._partial: dict[str, BaseMessageChunk] = {}
        self._seen: set[str] = set()
        self._complete: set[str] = set()

    @staticmethod
    def _name(mode: str, ns: tuple[str, ...] | list[str]) -> str:
        return "|".join([mode, *ns]) if ns else mode

    def handle(self, part: dict[str, Any]) -> None:
        """Translate one ``version="v2"`` stream part."""
        mode, ns, data = part["type"], tuple(part.get("ns") or ()), part["data"]
        if mode == "values":
            if "values" not in self.requested:
                return
            payload = to_jsonable(data) if isinstance(data, dict) else {"value": to_jsonable(data)}
            interrupts = part.get("interrupts") or ()
            if interrupts:
                payload = {**payload, "__interrupt__": to_jsonable(list(interrupts))}
            self.emit(self._name("values", ns), payload)
        elif mode == "messages":
            message, metadata = data
            if "messages-tuple" in self.requested:
                self.emit(self._name("messages", ns), [to_jsonable(message), to_jsonable(metadata)])
            if "messages" in self.requested:
                self._message(message, metadata, ns)
        elif mode in _PASS_THROUGH and mode in self.requested:
            if mode == "debug" and isinstance(data, dict) and data.get("type") == "checkpoint":
                data = {**data, "payload": checkpoint_payload(data.get("payload"))}
            elif mode == "checkpoints":
                data = checkpoint_payload(data)
            self.emit(self._name(mode, ns), to_jsonable(data))

    def handle_event(self, event: dict[str, Any]) -> None:
        """Translate one ``astream_events`` v2 event: the root graph's stream chunks feed the stream modes, the
        rest are ``events``."""
        if event.get("event") == "on_chain_stream" and not event.get("parent_ids"):
            chunk = event.get("data", {}).get("chunk")
            if isinstance(chunk, tuple) and len(chunk) in (2, 3):
                ns, mode, data = chunk if len(chunk) == 3 else ((), *chunk)
                self.handle({"type": mode, "ns": ns, "data": data})
            return
        if "events" in self.requested:
            self.emit("events", to_jsonable(event))

    def _message(self, message: BaseMessage, metadata: Any, ns: tuple[str, ...]) -> None:
        key = message.id or f"anonymous-{id(message)}"
        if key not in self._seen:
            self._seen.add(key)
            self.emit(self._name("messages/metadata", ns), {key: {"metadata": to_jsonable(metadata)}})
        if isinstance(message, BaseMessageChunk):
            merged = self._partial[key] + message if key in self._partial else message
            self._partial[key] = merged
            self.emit(self._name("messages/partial", ns), [to_jsonable(merged)])
            if isinstance(message, AIMessageChunk) and message.chunk_position == "last":
                self._finish(key, ns)
        elif key not in self._complete:
            self._partial.pop(key, None)
            self._complete.add(key)
            self.emit(self._name("messages/complete", ns), [to_jsonable(message)])

    def _finish(self, key: str, ns: tuple[str, ...] = ()) -> None:
        chunk = self._partial.pop(key)
        self._complete.add(key)
        self.emit(self._name("messages/complete", ns), [to_jsonable(message_chunk_to_message(chunk))])

    def flush(self) -> None:
        """Complete every message still streaming (the run ended)."""
        for key in list(self._partial):
            self._finish(key)
