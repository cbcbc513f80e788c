"""Assistants come from langgraph.json; a listed graph that cannot load stops start-up naming file and entry."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import GRAPHS, write_langgraph_json
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.pregel import Pregel

from server.app import create_app
from server.runtime.registry import GraphEntry, RegistryError, load_registry, read_entries

REPO = Path(__file__).resolve().parents[2]
REPO_CONFIG = REPO / "langgraph.json"


def test_every_listed_graph_is_compiled_with_the_given_checkpointer(tmp_path: Path) -> None:
    saver = InMemorySaver()
    config = write_langgraph_json(tmp_path)
    registry = load_registry(config, saver, required=True)
    assert list(registry) == list(json.loads(config.read_text())["graphs"])
    assert {"approval", "chain", "chat"} <= set(registry)
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


def _absolute(target: str) -> str:
    return str(REPO / target) if _is_path(target) else target


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


# ---------------------------------------------------------------- the repository's langgraph.json


def _is_path(target: str) -> bool:
    """Whether an entry's target is a file path (else a dotted module name), as the registry decides."""
    return target.endswith(".py") or "/" in target


def _import_fresh(entry: GraphEntry, base: Path) -> ModuleType:
    """The entry's module, imported on its own (not through the registry) to inspect what it exposes."""
    if not _is_path(entry.target):
        return importlib.import_module(entry.target)
    name = f"registry_check_{entry.assistant_id}"
    spec = importlib.util.spec_from_file_location(name, base / entry.target)
    assert spec is not None and spec.loader is not None, entry
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pydantic look their module up while it executes
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def assert_every_graph_loads(config: Path) -> list[str]:
    """Load every graph ``config`` lists and check what the server and Studio rely on; returns the ids.

    The server compiles each with its checkpointer through ``build_graph``; Studio imports the module-level
    attribute the entry names, a compiled graph without a checkpointer of its own.
    """
    listed = list(json.loads(config.read_text())["graphs"])
    saver = InMemorySaver()
    registry = load_registry(config, saver, required=True)
    assert list(registry) == listed, "every listed graph must be served, in the file's order"
    for assistant_id, assistant in registry.items():
        assert assistant.graph.checkpointer is saver, assistant_id
        module = _import_fresh(assistant.entry, config.resolve().parent)
        assert callable(getattr(module, "build_graph", None)), f"{assistant_id}: no build_graph"
        studio_graph = getattr(module, assistant.entry.attr, None)
        assert isinstance(studio_graph, Pregel), f"{assistant_id}: {assistant.entry.attr} is not a compiled graph"
        assert studio_graph.checkpointer is None, f"{assistant_id}: Studio's graph must not bring a checkpointer"
    return list(registry)


def test_the_repository_langgraph_json_has_the_shape_the_server_studio_and_image_expect() -> None:
    document = json.loads(REPO_CONFIG.read_text())
    assert isinstance(document, dict)
    assert document.get("dependencies") == ["."], "Studio installs the project itself as the dependency"
    assert isinstance(document.get("graphs"), dict), "'graphs' must be an object of assistant id -> 'path:attr'"
    entries = read_entries(REPO_CONFIG)
    assert [entry.assistant_id for entry in entries] == list(document["graphs"])
    for entry in entries:
        if _is_path(entry.target):
            target = (REPO / entry.target).resolve()
            assert target.is_file(), f"{entry.assistant_id}: {entry.target} does not exist"
            # The image ships langgraph.json next to graphs/ only (see the Dockerfile).
            assert target.is_relative_to(REPO / "graphs"), f"{entry.assistant_id}: {entry.target} is outside graphs/"
    assert assert_every_graph_loads(REPO_CONFIG) == list(document["graphs"])


def test_every_test_graph_module_exposes_build_graph_and_its_studio_graph(tmp_path: Path) -> None:
    """The check above, on a file listing every module of the test graphs folder (one module per graph)."""
    modules = sorted(path.stem for path in GRAPHS.glob("*.py") if path.name != "__init__.py")
    assert {"approval", "chain", "chat"} <= set(modules)
    config = write_langgraph_json(tmp_path, {name: f"{GRAPHS / name}.py:graph" for name in modules})
    assert assert_every_graph_loads(config) == modules


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def build_graph(checkpointer=None, store=None):\n    raise AssertionError\n", "has no attribute 'graph'"),
        (None, "no file"),
    ],
    ids=["missing-studio-attribute", "missing-file"],
)
def test_the_repository_file_plus_a_broken_entry_is_refused(tmp_path: Path, source: str | None, expected: str) -> None:
    graphs = {e.assistant_id: f"{_absolute(e.target)}:{e.attr}" for e in read_entries(REPO_CONFIG)}
    if source is not None:
        (tmp_path / "broken.py").write_text(source)
    config = write_langgraph_json(tmp_path, {**graphs, "broken": "./broken.py:graph"})
    with pytest.raises(RegistryError, match=rf"graph 'broken' \(./broken.py:graph\) failed to load: .*{expected}"):
        load_registry(config, InMemorySaver(), required=True)
