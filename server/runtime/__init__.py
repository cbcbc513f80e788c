"""The graph runtime: a LangGraph Server-compatible execution layer over the graphs in ``langgraph.json``.

``registry`` loads and compiles the assistants, ``store`` keeps the threads index and the runs record,
``manager`` executes runs in asyncio tasks with per-thread exclusivity, ``streams``/``events``/``responses``
turn them into SSE, ``state``/``audit`` render checkpoints, ``interrupts``/``authority``/``inbox`` handle
approvals. :class:`Runtime` ties them together for one server process.
"""

from server.runtime.core import Runtime

__all__ = ["Runtime"]
