"""Assistants come from langgraph.json; a listed graph that cannot load stops start-up naming file and entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import GRAPHS, write_langgraph_json
from langgraph.checkpoint.memory import InMemorySaver

from server.app import create_app
from server.runtime.registry import RegistryError, load_registry, read_entries


def test_every_listed_graph_is_compiled_with_the_given_checkpointer(tmp_path: Path) -> None:
    saver = InMemorySaver()
    registry = load_registry(write_langgraph_json(tmp_path), saver, required=True)
    assert list(registry) == ["approval", "chain", "chat"]
    chain = registry["chain"]
    assert chain.graph.checkpointer is saver
    assert chain.description and "Five nodes" in chain.description
    info = chain.info()
    assert info["assistant_id"] == info["graph_id"] == "chain"
    assert {"nodes", "edges"} <= set(chain.drawable())
    assert {n["id"] for n in chain.drawable()["nodes"]} >= {"n1", "n5"}
    schemas = chain.schemas()
    assert set(schemas["state_schema"]["properties"]) == {"count", "steps", "delay", "fail_at"}
    assert registry["approval"].schemas()["context_schema"]["properties"].keys() == {"principal"}


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "tiny.py").write_text((GRAPHS / "chain.py").read_text())
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"tiny": {"path": "./graphs/tiny.py:graph", "description": "d"}}}))
    registry = load_registry(path, None)
    assert registry["tiny"].description == "d"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("raise ImportError('no module named planning_tools')", "ImportError: no module named planning_tools"),
        ("graph = None", "has no build_graph"),
        ("def build_graph(checkpointer=None, store=None):\n    return 42\ngraph = None", "not a compiled graph"),
    ],
)
def test_a_graph_that_fails_to_load_names_the_file_and_the_entry(tmp_path: Path, source: str, expected: str) -> None:
    (tmp_path / "broken.py").write_text(source + "\n")
    path = write_langgraph_json(tmp_path, {"chain": f"{GRAPHS / 'chain.py'}:graph", "broken": "./broken.py:graph"})
    with pytest.raises(RegistryError) as caught:
        load_registry(path, None)
    message = str(caught.value)
    assert str(path) in message
    assert "'broken'" in message
    assert expected in message


def test_malformed_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "langgraph.json"
    path.write_text("{not json")
    with pytest.raises(RegistryError, match="cannot read it as JSON"):
        read_entries(path)
    path.write_text(json.dumps({"graphs": {"x": "no_colon_here"}}))
    with pytest.raises(RegistryError, match=r"graph 'x'.*must look like"):
        read_entries(path)
    with pytest.raises(RegistryError, match="no such file"):
        load_registry(tmp_path / "missing.json", None, required=True)
    assert len(load_registry(tmp_path / "missing.json", None)) == 0


async def test_start_up_stops_on_a_broken_graph(settings_factory: Any, database_url: str, tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    config = write_langgraph_json(tmp_path, {"broken": "./broken.py:graph"})
    app = create_app(settings_factory(database_url=database_url, seed_on_start=False, langgraph_config=config))
    with pytest.raises(RegistryError, match=r"graph 'broken' \(./broken.py:graph\) failed to load: RuntimeError"):
        async with app.router.lifespan_context(app):
            pass


def test_the_repository_langgraph_json_lists_only_real_graphs() -> None:
    path = Path(__file__).resolve().parents[2] / "langgraph.json"
    registry = load_registry(path, InMemorySaver(), required=True)
    for assistant in registry.values():
        assert assistant.graph.checkpointer is not None
