"""A scripted OpenAI-compatible chat server on 127.0.0.1, so tests run the real ``ChatOpenAI`` code over HTTP.

Each test queues the answers the "model" gives, in order: tool calls (``tools(name, ...)``), plain text, or an
HTTP error status; a request with ``stream: true`` gets the answer as server-sent chunks (text word by word).
Every request is kept, so a test can check what the client sent (e.g. that customer data was redacted before it
left the process). When the script runs out the server answers 500, which a policy must survive by falling back
to its rules.

    async with scripted_llm() as llm:
        llm.script.append(tools("shipment", "payment"))
        model = ChatOpenAI(base_url=llm.base_url, api_key="test", model="scripted", max_retries=0)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def tools(*names: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """An answer made of one tool call per name."""
    calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(arguments or {})}}
        for i, n in enumerate(names)
    ]
    return {"role": "assistant", "content": None, "tool_calls": calls}


def text(content: str) -> dict[str, Any]:
    """A plain text answer."""
    return {"role": "assistant", "content": content}


@dataclass
class ScriptedLLM:
    port: int
    script: list[dict[str, Any] | int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        if not self.script:
            return JSONResponse({"error": {"message": "the script has no more answers"}}, status_code=500)
        answer = self.script.pop(0)
        if isinstance(answer, int):
            return JSONResponse({"error": {"message": f"scripted status {answer}"}}, status_code=answer)
        finish = "tool_calls" if answer.get("tool_calls") else "stop"
        if body.get("stream"):
            return StreamingResponse(_chunks(answer, finish, body.get("model", "scripted")),
                                     media_type="text/event-stream")  # fmt: skip
        return JSONResponse({
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": answer, "finish_reason": finish}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })  # fmt: skip


def _chunks(answer: dict[str, Any], finish: str, model: str) -> Iterator[str]:
    """A streamed answer as the OpenAI API sends it: text word by word, tool calls whole, then [DONE]."""

    def chunk(delta: dict[str, Any], reason: str | None = None) -> str:
        body = {"id": "chatcmpl-stream", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}  # fmt: skip
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for word in re.findall(r"\S+\s*", answer.get("content") or ""):
        yield chunk({"content": word})
    for index, call in enumerate(answer.get("tool_calls") or []):
        yield chunk({"tool_calls": [{"index": index, **call}]})
    yield chunk({}, finish)
    yield "data: [DONE]\n\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def scripted_llm() -> AsyncIterator[ScriptedLLM]:
    """Serve a :class:`ScriptedLLM` for the duration of the block."""
    llm = ScriptedLLM(port=_free_port())
    app = Starlette(routes=[Route("/v1/chat/completions", llm.completions, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=llm.port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110  (uvicorn has no start event)
        await asyncio.sleep(0.01)
    try:
        yield llm
    finally:
        server.should_exit = True
        await task
