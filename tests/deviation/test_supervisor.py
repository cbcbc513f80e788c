"""The supervisor: the rules' choices and their reasons, the LLM policy over real ``ChatOpenAI`` against a scripted
OpenAI-compatible server (its answer validated, customer data redacted before it leaves), the fall-back to the
rules when the model fails in any way, and the specialist list checked when the graph is built."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_openai import ChatOpenAI
from scripted_llm import scripted_llm, text, tools

from graphs.common.specialists import Specialist, SpecialistError, SpecialistRegistry, SpecialistResult
from graphs.deviation.specialists import REGISTRY
from graphs.deviation.supervisor import plan_for, rule_plan
from rag.policy import get_policy
from tools import deps as tool_deps
from tools.deps import ToolDeps

ORDER = {"order_id": "EXT-1", "customer_ref": "C00017", "order_status": "shipped", "payment_status": "paid",
         "days_late": 0, "customer_care_calls": 1, "warehouse_block": "B", "mode_of_shipment": "Ship",
         "email": "ada@example.com", "phone": "+44 20 7946 0958"}  # fmt: skip


def state(**changes: Any) -> dict[str, Any]:
    order = {**ORDER, **changes.pop("order", {})}
    return {"order": order, "severity": "critical", "reasons": ["delay probability 0.91 above 0.7"], **changes}


def test_rules_pick_specialists_from_severity_status_payment_and_history() -> None:
    policy = get_policy()
    in_transit = rule_plan(state(), policy)
    assert in_transit["specialists"] == ["shipment", "customer", "payment"]  # goodwill credit while in transit
    assert in_transit["decided_by"] == "rules" and all(": " in r for r in in_transit["rationale"])

    late = rule_plan(state(order={"order_status": "delivered", "days_late": 5}), policy)
    assert late["specialists"] == ["shipment", "customer", "payment"]  # carrier claim after 2 days; refund tier

    calls = rule_plan(state(order={"customer_care_calls": 6}), policy)
    assert calls["specialists"] == ["shipment", "payment", "escalation"]  # a person calls back: no automated message
    assert any("6 customer care calls" in r for r in calls["rationale"])

    info = rule_plan(state(severity="info", order={"payment_status": "pending"}), policy)
    assert info["specialists"] == ["customer"]  # nothing else applies: the customer is kept informed


def test_the_specialist_list_is_checked_when_the_graph_is_built() -> None:
    async def act(_: Any) -> SpecialistResult:
        return SpecialistResult(summary="")

    def registry(*specs: Specialist) -> SpecialistRegistry:
        return SpecialistRegistry(specs, known_tools={"get_order"}, reserved=("supervisor",))

    with pytest.raises(SpecialistError, match="registered twice"):
        registry(Specialist("a", "", (), act), Specialist("a", "", (), act))
    with pytest.raises(SpecialistError, match="collides with the graph's own node"):
        registry(Specialist("supervisor", "", (), act))
    with pytest.raises(SpecialistError, match=r"add them to the scopes or fix the names \(known: get_order\)"):
        registry(Specialist("a", "", ("refund_everything",), act))
    with pytest.raises(SpecialistError, match="not registered; register them"):
        registry(Specialist("a", "", (), act, after=("b",)))
    with pytest.raises(SpecialistError, match=r"cycle \(a -> b -> a\)"):
        registry(Specialist("a", "", (), act, after=("b",)), Specialist("b", "", (), act, after=("a",)))
    assert REGISTRY.next_wave(["customer", "payment", "shipment"], set()) == ["shipment", "payment"]
    assert REGISTRY.next_wave(["customer", "payment", "shipment"], {"shipment", "payment"}) == ["customer"]
    assert REGISTRY.next_wave(["customer"], set()) == ["customer"]  # shipment not chosen: nothing to wait for


@pytest.fixture
def installed() -> Any:
    def install(llm: Any) -> ToolDeps:
        deps = ToolDeps(pool=None, llm=llm)  # type: ignore[arg-type]  # the supervisor reads no table
        tool_deps.install(deps)
        return deps

    yield install
    tool_deps.install(None)


async def test_the_llm_supervisor_decides_when_its_answer_is_valid_and_never_sees_contact_details(
    installed: Any,
) -> None:
    async with scripted_llm() as llm:
        installed(ChatOpenAI(base_url=llm.base_url, api_key="test", model="scripted", max_retries=0))
        llm.script.append(tools("payment", "escalation"))
        plan = await plan_for(state(), REGISTRY)
        assert (plan["decided_by"], plan["specialists"], plan["fallback"]) == ("llm", ["payment", "escalation"], None)
        [request] = llm.requests
        sent = json.dumps(request)
        assert "ada@example.com" not in sent and "7946" not in sent and "EXT-1" in sent
        assert {t["function"]["name"] for t in request["tools"]} == set(REGISTRY)


FAILURES = [
    (tools("refund_everything"), "unknown specialist"), (text("I think shipment."), "chose no specialist"),
    (500, "Error code: 500"), (None, "the script has no more answers"),
]  # fmt: skip


@pytest.mark.parametrize(("answer", "why"), FAILURES)
async def test_the_rules_decide_when_the_model_fails_and_the_plan_says_so(
    installed: Any, answer: Any, why: str
) -> None:
    async with scripted_llm() as llm:
        installed(ChatOpenAI(base_url=llm.base_url, api_key="test", model="scripted", max_retries=0))
        if answer is not None:  # None: the script is empty, the server answers 500
            llm.script.append(answer)
        plan = await plan_for(state(), REGISTRY)
    assert plan["decided_by"] == "rules"
    assert plan["specialists"] == rule_plan(state(), get_policy())["specialists"]
    assert plan["fallback"].startswith("the LLM supervisor failed") and why in plan["fallback"]
