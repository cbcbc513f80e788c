"""Schemathesis hooks for the fuzz test: a generated delayed start becomes an immediate one.

A run body may ask to start up to a day later (``after_seconds``). Sent to ``/runs/wait`` or ``/runs/stream``, or
queued ahead of one on the same thread, such a run holds the request for that long. The hook sets every valid
delay to 0 (start now), still a valid value, so the fuzzer spends its time on requests, not on waiting.
Out-of-range values (the negative cases) are sent unchanged."""

from __future__ import annotations

from typing import Any

import schemathesis

SHORTEST = 0.0


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    body = case.body
    if not isinstance(body, dict):
        return
    delay = body.get("after_seconds")
    if isinstance(delay, int | float) and not isinstance(delay, bool) and SHORTEST < delay <= 86_400:
        body["after_seconds"] = SHORTEST
