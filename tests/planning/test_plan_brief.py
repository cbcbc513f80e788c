"""The approver's brief: the template without a model; with one (a scripted OpenAI-compatible server driving the
real ``ChatOpenAI``), the model's summary and risks, unless it states a number the plan does not contain or answers
out of shape, when the template writes it and the state says why."""

from __future__ import annotations

import json
from typing import Any

from langchain_openai import ChatOpenAI
from scripted_llm import scripted_llm, tools
from test_planning_graph import plan, request

from graphs.common.grounding import ungrounded
from tools.deps import ToolDeps


def test_a_number_must_come_from_the_facts() -> None:
    known = {"cost": 1234.5, "confidence": 0.72, "lines": [{"qty": 40}], "note": "lead time 3 days"}
    assert ungrounded("orders 40 units for 1,234.50 at 72 % confidence, 3 days out", known) == []
    assert ungrounded("orders 41 units for 1,234.50", known) == ["41"]
    assert ungrounded("a 9.5 % lift", known) == ["9.5"]


async def test_without_a_model_the_template_writes_the_brief(graph: Any) -> None:
    _, values = await plan(graph, request())
    brief = values["reflection"]["brief"]
    assert brief["by"] == "rules" and f"{values['summary']['total_cost']:,.2f}" in brief["summary"]


async def test_a_grounded_model_brief_is_kept_and_an_invented_number_is_refused(graph: Any, deps: ToolDeps) -> None:
    async with scripted_llm() as llm:
        deps.llm = ChatOpenAI(base_url=llm.base_url, api_key="test", model="scripted", max_retries=0)
        try:
            _, first = await plan(graph, request(max_discount=0.0))
            summary = first["summary"]
            good = {"summary": f"Orders worth {summary['total_cost']:,.2f} within the budget.",
                    "risks": [{"risk": "supplier delays", "severity": "medium", "mitigation": "call the supplier"}]}
            llm.script.append(tools("record_brief", arguments=good))
            _, kept = await plan(graph, request(max_discount=0.0))
            llm.script.append(tools("record_brief", arguments={**good, "summary": "Orders worth 987,654.32."}))
            _, refused = await plan(graph, request(max_discount=0.0))
        finally:
            deps.llm = None
    assert first["reflection"]["brief"]["by"] == "rules"  # the script was empty: the server answered 500
    assert kept["reflection"]["brief"] == {"by": "llm", "summary": good["summary"],
                                           "risks": [good["risks"][0] | {"source": "llm"}]}  # fmt: skip
    assert good["risks"][0] | {"source": "llm"} in kept["reflection"]["risks"]
    assert refused["reflection"]["brief"]["by"] == "rules"
    assert any("987,654.32" in note for note in refused["notes"])
    shown = json.loads(llm.requests[-1]["messages"][-1]["content"])
    assert "p50" not in json.dumps(shown) and len(shown["lines"]) == 8
