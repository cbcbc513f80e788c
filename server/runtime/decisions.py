"""Decisions recorded in a thread's checkpoints, and the rule that keeps a decided approval decided.

A resume is saved by LangGraph as a pending write on the checkpoint where the graph was interrupted (channel
``__resume__``). Approval decisions carry the server's stamp (``actor`` and ``decided_at``), so the history
says which checkpoints had an approval decided. Forking a run (or writing state) at or before such a
checkpoint would replay the graph into the same approval, put it back in the inbox and let a second
decision execute the action again; :func:`check_fork` refuses that with 409.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from server.errors import ApiError

RESUME_CHANNEL = "__resume__"
NULL_TASK_ID = "00000000-0000-0000-0000-000000000000"


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


async def resume_values(checkpointer: BaseCheckpointSaver[Any], thread_id: str) -> list[tuple[str, list[Any]]]:
    """Every checkpoint of the thread (newest first) with the resume values written on it (often none)."""
    out: list[tuple[str, list[Any]]] = []
    async for saved in checkpointer.alist(_config(thread_id)):
        writes = [(task, value) for task, channel, value in saved.pending_writes or [] if channel == RESUME_CHANNEL]
        # the resume command itself is written by the null task; the resumed task's own copy is a list
        values = [value for task, value in writes if task == NULL_TASK_ID]
        if not values:
            values = [item for _, value in writes for item in (value if isinstance(value, list) else [value])]
        out.append((saved.config["configurable"]["checkpoint_id"], values))
    return out


def stamped_decisions(value: Any) -> list[dict[str, Any]]:
    """The server-stamped decisions inside a resume value (plain, per-call, or keyed by interrupt id)."""
    if isinstance(value, dict):
        if "actor" in value and "decided_at" in value:
            return [value]
        if isinstance(value.get("decisions"), list):
            return [d for d in value["decisions"] if isinstance(d, dict) and "decided_at" in d]
        return [d for v in value.values() for d in stamped_decisions(v)]
    return []


def missing_checkpoint(thread_id: str, checkpoint_id: str, in_body: bool) -> ApiError:
    """The error for a checkpoint the thread does not have: 404 when the path named it, 409 when the body did."""
    if in_body:
        return ApiError(409, "unknown_checkpoint", f"checkpoint {checkpoint_id} is not in the history of thread "
                        f"{thread_id}; pick one from GET /threads/{thread_id}/history")  # fmt: skip
    return ApiError(404, "not_found", f"checkpoint {checkpoint_id} not found in thread {thread_id}")


async def check_fork(checkpointer: BaseCheckpointSaver[Any], thread_id: str, checkpoint_id: str) -> None:
    """409 when ``checkpoint_id`` is at or before a checkpoint whose approval was decided."""
    history = await resume_values(checkpointer, thread_id)
    ids = [checkpoint for checkpoint, _ in history]
    if checkpoint_id not in ids:
        return
    position = ids.index(checkpoint_id)  # newest first: later checkpoints have smaller positions
    for index, (checkpoint, values) in enumerate(history[: position + 1]):
        decided = [d for value in values for d in stamped_decisions(value)]
        if decided:
            who = decided[0].get("actor", {}).get("id", "someone")
            raise ApiError(
                409, "approval_decided",
                f"checkpoint {checkpoint_id} is at or before checkpoint {checkpoint}, where an approval was already "
                f"decided by {who}; forking from there would ask for it again and could execute its action twice. "
                f"Fork from a later checkpoint ({ids[index - 1] if index else 'the thread head'}) instead",
            )  # fmt: skip
