"""``POST /chat/stream``: ask the ``chat`` assistant a question and stream the answer (SSE).

A thin convenience over ``POST /threads/{thread_id}/runs/stream`` with assistant ``chat``: the message becomes the
run's input, the thread is created on first use (a new one when ``thread_id`` is left out), and the ``metadata``
event carries the thread id to send with the next question, so the conversation goes on. The events are the
run's: ``messages/partial`` or ``messages`` for the answer (``messages-tuple``), ``custom`` with the answer's
structured part (``{"type": "chat.answer", "table", "citations", ...}``); the stream then closes.

Its runs are saved with LangGraph's ``exit`` durability: one checkpoint per question, the state after the answer
(with the understanding, the answer and the tools it used), instead of one per node. An answer takes milliseconds
and only reads, except starting a plan, which is keyed on the question (a run executed again starts no second
plan); there is nothing to resume halfway, and a question costs about a fifth less database work
(``bench/bench_chat.py``). Runs started on ``/threads/{id}/runs`` (LangGraph Studio, Agent Chat UI) keep the
default and checkpoint every node.

Asking needs the viewer role: the chat only reads, except starting a plan, which needs an operator and still
waits for approval.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from ml.nlu.entities import MAX_TEXT_CHARS
from server.auth import Viewer
from server.openapi import errors
from server.routes.runs import SSE_ANSWER
from server.runtime.deps import RuntimeDep
from server.runtime.responses import stream_response
from server.runtime.schemas import ID_PATTERN, ID_RULE, RunCreate

router = APIRouter(tags=["chat"])

ASSISTANT = "chat"
DURABILITY: Literal["exit"] = "exit"
"""How the chat endpoints' runs are checkpointed (see the module docstring)."""
ChatStreamMode = Literal["messages-tuple", "custom", "values", "updates"]


class ChatRequest(BaseModel):
    """A question, and the thread of the conversation it continues."""

    model_config = ConfigDict(extra="forbid")

    message: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS, description="The question.")]
    thread_id: Annotated[str | None, Field(pattern=ID_PATTERN, description=f"The conversation to continue ({ID_RULE}"
                                           "); left out: a new conversation.")] = None  # fmt: skip
    stream_mode: Annotated[list[ChatStreamMode], Field(min_length=1, max_length=4, description="What to stream.")] = [
        "messages-tuple", "custom"]  # fmt: skip


@router.post("/chat/stream", summary="Ask the chat a question (SSE)", response_class=EventSourceResponse,
             responses={200: SSE_ANSWER, **errors(409)})  # fmt: skip
async def chat_stream(body: ChatRequest, runtime: RuntimeDep, principal: Viewer) -> EventSourceResponse:
    """``metadata`` (with ``thread_id``) first, then the answer's events; the stream closes after the last. A
    question sent while the thread is still answering the previous one waits for it (``multitask_strategy``
    enqueue)."""
    thread_id = body.thread_id or str(uuid.uuid4())
    run_body = RunCreate(assistant_id=ASSISTANT, input={"messages": [{"role": "user", "content": body.message}]},
                         stream_mode=list(dict.fromkeys(body.stream_mode)), if_not_exists="create",
                         metadata={"started_from": "chat/stream"}, durability=DURABILITY)  # fmt: skip
    run = await runtime.manager.start(thread_id, run_body, principal, "stream")
    return stream_response(runtime.manager, thread_id, run.run_id, handle=run)
