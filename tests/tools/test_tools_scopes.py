"""Tool scopes: every scoped name exists, each specialist proposes only its actions, and the LangChain read tools
return redacted JSON (errors come back to the model as messages)."""

from __future__ import annotations

import json

import pytest
from langchain_core.tools import StructuredTool

from tools.actions import ACTION_NAMES, ACTION_SCOPES, SPECIALISTS
from tools.scopes import READ_TOOLS, SCOPES, TOOL_SCOPES, may_use, read_tools


def test_every_scoped_name_exists() -> None:
    assert SCOPES is TOOL_SCOPES and set(TOOL_SCOPES) == set(SPECIALISTS)
    for specialist, names in TOOL_SCOPES.items():
        assert set(names) <= set(READ_TOOLS) | set(ACTION_NAMES), specialist
        assert set(ACTION_SCOPES[specialist]) <= set(names)
    assert {n for names in ACTION_SCOPES.values() for n in names} == set(ACTION_NAMES)


def test_specialists_stay_in_their_lane() -> None:
    assert may_use("payment", "issue_refund") and not may_use("shipment", "issue_refund")
    assert may_use("customer", "draft_message") and not may_use("payment", "send_notification")
    assert not may_use("nobody", "get_order")


@pytest.mark.parametrize("specialist", SPECIALISTS)
def test_read_tools_have_schemas(specialist) -> None:
    tools = read_tools(specialist)
    assert all(isinstance(t, StructuredTool) and t.description for t in tools)
    names = [t.name for t in tools]
    assert "get_order" in names and not set(names) & set(ACTION_NAMES)
    assert "order_id" in tools[0].args


def test_unknown_specialist() -> None:
    with pytest.raises(ValueError, match="specialist"):
        read_tools("cashier")


@pytest.mark.usefixtures("tools")
async def test_a_tool_call_returns_redacted_json(seed_order) -> None:
    order_id = seed_order(prediction={})
    tool = next(t for t in read_tools("payment") if t.name == "get_order")
    result = await tool.ainvoke({"order_id": order_id})
    assert result["order_id"] == order_id and result["customer_ref"]
    json.dumps(result)  # JSON-ready: dates as ISO strings
    history = next(t for t in read_tools("payment") if t.name == "customer_history")
    assert (await history.ainvoke({"order_id": order_id}))["order_id"] == order_id
    missing = await tool.ainvoke({"order_id": "NOPE-3"})
    assert isinstance(missing, str) and "NOPE-3" in missing
