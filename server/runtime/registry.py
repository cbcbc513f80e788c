"""Assistants: the graphs listed in ``langgraph.json``, compiled once with the shared checkpointer.

The file is the one LangGraph Studio reads: ``{"graphs": {"<assistant id>": "<path or module>:<attr>"}}``
(an entry may also be ``{"path": ..., "description": ...}``). A path is relative to the file. The module
must expose ``build_graph(checkpointer=None, store=None)`` (the server compiles with its Postgres saver and
its store) and the module-level attribute the entry names (Studio's checkpointer-free graph). A listed graph
that cannot be imported or built stops start-up with an error naming the file and the entry.

A module whose ``build_graph`` also takes ``config`` builds its graph per run config (LangGraph Server's
"graph factory"): runs build it with their config, a thread's state is read with its last run's config.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import inspect
import json
import logging
import os
import sys
import typing
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from dotenv import dotenv_values
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore
from pydantic import ConfigDict, TypeAdapter, create_model

from server.runtime.serde import to_jsonable

log = logging.getLogger(__name__)

FACTORY_CACHE = 32  # graphs kept per graph factory, by config


class RegistryError(RuntimeError):
    """``langgraph.json`` is malformed or one of its graphs cannot be imported or built."""


@dataclass(frozen=True)
class GraphEntry:
    """One line of ``langgraph.json``: the assistant id and where its graph lives."""

    assistant_id: str
    target: str
    attr: str
    description: str | None = None


@dataclass
class Assistant:
    """A served graph: its id (the key in langgraph.json), the compiled graph and how to describe it."""

    assistant_id: str
    graph: Pregel[Any, Any, Any, Any]
    entry: GraphEntry
    description: str | None
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    factory: Callable[[RunnableConfig], Pregel[Any, Any, Any, Any]] | None = None
    """``build_graph``, when it takes the run's ``config`` (a graph built per config: a "graph factory")."""
    _built: OrderedDict[str, Assistant] = field(default_factory=OrderedDict, repr=False)

    @property
    def graph_id(self) -> str:
        return self.assistant_id

    def for_config(self, config: Mapping[str, Any] | None) -> Assistant:
        """This graph as built for ``config`` (itself unless its module builds a graph per config); the last
        few builds are kept."""
        if self.factory is None or not config:
            return self
        key = json.dumps(to_jsonable(config.get("configurable") or {}), sort_keys=True)
        built = self._built.get(key)
        if built is None:
            built = Assistant(self.assistant_id, self.factory(cast(RunnableConfig, dict(config))), self.entry,
                              self.description, self.created_at)  # fmt: skip
            self._built[key] = built
            if len(self._built) > FACTORY_CACHE:
                self._built.popitem(last=False)
        else:
            self._built.move_to_end(key)
        return built

    def info(self) -> dict[str, Any]:
        """The LangGraph ``Assistant`` object."""
        stamp = self.created_at.isoformat()
        return {
            "assistant_id": self.assistant_id,
            "graph_id": self.graph_id,
            "name": self.assistant_id,
            "description": self.description,
            "config": {},
            "context": {},
            "metadata": {"created_by": "system", "source": f"{self.entry.target}:{self.entry.attr}"},
            "version": 1,
            "created_at": stamp,
            "updated_at": stamp,
        }

    def drawable(self, xray: int | bool = False) -> dict[str, Any]:
        """The graph as ``{"nodes": [...], "edges": [...]}`` (what Studio draws)."""
        drawn: dict[str, Any] = to_jsonable(self.graph.get_graph(xray=xray).to_json())
        return drawn

    def schemas(self) -> dict[str, Any]:
        """Input, output, state, config and context JSON schemas (None where one cannot be derived)."""
        return graph_schemas(self.graph, self.graph_id)

    async def subgraphs(self, namespace: str | None = None, recurse: bool = False) -> dict[str, Any]:
        """The schemas of the graph's subgraphs, by namespace (``namespace`` keeps only that one)."""
        found = {}
        async for ns, subgraph in self.graph.aget_subgraphs(namespace=namespace, recurse=recurse):
            schemas = graph_schemas(subgraph, self.graph_id)
            # also under LangGraph.js's names (state, input, output, config), which its clients read
            found[ns] = schemas | {name: schemas[f"{name}_schema"] for name in ("state", "input", "output", "config")}
        return found


def graph_schemas(graph: Any, graph_id: str) -> dict[str, Any]:
    """The JSON schemas of a compiled graph (None where one cannot be derived)."""
    builder = getattr(graph, "builder", None)

    def typed(attr: str) -> dict[str, Any] | None:
        annotated = getattr(builder, attr, None)
        return _schema(lambda: _hinted_schema(annotated)) if annotated is not None else None

    return {
        "graph_id": graph_id,
        "input_schema": _schema(graph.get_input_jsonschema) or typed("input_schema"),
        "output_schema": _schema(graph.get_output_jsonschema) or typed("output_schema"),
        "state_schema": typed("state_schema"),
        "config_schema": _schema(lambda: _configurable(graph.config_schema().model_json_schema())),
        "context_schema": _schema(graph.get_context_jsonschema) or typed("context_schema"),
    }


def _configurable(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The schema of ``configurable`` alone (what LangGraph Server serves as ``config_schema``), not the
    ``{"configurable": ...}`` wrapper LangGraph builds; None when the graph declares none."""
    configurable = schema.get("properties", {}).get("configurable")
    if not isinstance(configurable, dict):
        return None
    defs = dict(schema.get("$defs") or {})
    ref = configurable.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        configurable = dict(defs.pop(ref.removeprefix("#/$defs/"), {}))
    else:
        configurable = {k: v for k, v in configurable.items() if k != "default"}
    if defs:
        configurable["$defs"] = defs
    return configurable


def _hinted_schema(annotated: Any) -> dict[str, Any]:
    """JSON schema of a state type; a ``typing.TypedDict`` (which pydantic refuses on Python 3.11) is read
    field by field, a field pydantic cannot describe becoming ``Any``."""
    try:
        schema: dict[str, Any] = TypeAdapter(annotated).json_schema()
        return schema
    except Exception:  # noqa: S110 - fall back to field-by-field below
        pass
    fields: dict[str, Any] = {}
    for name, hint in typing.get_type_hints(annotated).items():
        try:
            TypeAdapter(hint).json_schema()
            fields[name] = (hint | None, None)
        except Exception:
            fields[name] = (Any, None)
    model = create_model(
        getattr(annotated, "__name__", "State"), __config__=ConfigDict(arbitrary_types_allowed=True), **fields
    )
    return model.model_json_schema()


def _schema(build: Any) -> dict[str, Any] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            schema = build()
    except Exception as exc:  # a type pydantic cannot describe: report no schema rather than fail
        log.debug("no JSON schema", extra={"error": f"{type(exc).__name__}: {exc}"})
        return None
    return schema if isinstance(schema, dict) else None


class Registry(Mapping[str, Assistant]):
    """The assistants of this server, by id, in the order of ``langgraph.json``."""

    def __init__(self, assistants: list[Assistant], source: Path | None) -> None:
        self._by_id = {a.assistant_id: a for a in assistants}
        self.source = source

    def __getitem__(self, key: str) -> Assistant:
        return self._by_id[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)


def read_entries(config_path: Path) -> list[GraphEntry]:
    """Parse the ``graphs`` section of a langgraph.json; errors name the file and the entry."""
    try:
        document = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{config_path}: cannot read it as JSON: {exc}") from exc
    graphs = document.get("graphs", {}) if isinstance(document, dict) else None
    if not isinstance(graphs, dict):
        raise RegistryError(f"{config_path}: 'graphs' must be an object of assistant id -> 'path:attr'")
    entries: list[GraphEntry] = []
    for assistant_id, value in graphs.items():
        description = None
        if isinstance(value, dict):
            description = value.get("description")
            value = value.get("path")
        if not isinstance(value, str) or not value.strip():
            raise RegistryError(f"{config_path}: graph {assistant_id!r} must be a string like './module.py:graph'")
        target, sep, attr = value.strip().rpartition(":")
        if not sep or not target or not attr.isidentifier():
            raise RegistryError(
                f"{config_path}: graph {assistant_id!r} = {value!r} must look like './path/to/file.py:graph' "
                "or 'package.module:graph'"
            )
        entries.append(GraphEntry(assistant_id, target, attr, description))
    return entries


def _dotted_name(path: Path) -> str | None:
    """The importable module name of ``path`` when it lies in a package on ``sys.path`` (so it is not
    imported twice under two names), else None."""
    for entry in sys.path:
        try:
            root = Path(entry or ".").resolve()
            relative = path.relative_to(root)
        except (OSError, ValueError):
            continue
        parts = [*relative.parent.parts, path.stem]
        if not all(part.isidentifier() for part in parts):
            continue
        packages_ok = all((root.joinpath(*relative.parent.parts[: i + 1]) / "__init__.py").is_file()
                          for i in range(len(relative.parent.parts)))  # fmt: skip
        if not packages_ok:
            continue
        name = ".".join(parts)
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if found is not None and found.origin and Path(found.origin).resolve() == path:
            return name
    return None


def _import_entry(entry: GraphEntry, base: Path) -> ModuleType:
    target = entry.target
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = (base / target).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no file {target} (looked for {path})")
        name = _dotted_name(path)
        if name is not None:
            return importlib.import_module(name)
        module_name = f"rimas_graphs_{entry.assistant_id.replace('-', '_')}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path} as a module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return module
    return importlib.import_module(target)


def load_assistant(
    entry: GraphEntry, base: Path, checkpointer: BaseCheckpointSaver[Any] | None, store: BaseStore | None = None
) -> Assistant:
    """Import one entry and compile its graph with ``checkpointer`` and ``store`` through the module's
    ``build_graph``."""
    module = _import_entry(entry, base)
    if not hasattr(module, entry.attr):
        raise AttributeError(f"module {module.__name__} has no attribute {entry.attr!r}")
    build = getattr(module, "build_graph", None)
    if not callable(build):
        raise AttributeError(f"module {module.__name__} has no build_graph(checkpointer=None, store=None)")
    graph = build(checkpointer=checkpointer, store=store)
    if not isinstance(graph, Pregel):
        raise TypeError(f"build_graph() of {module.__name__} returned {type(graph).__name__}, not a compiled graph")
    description = entry.description
    if description is None and module.__doc__:
        description = module.__doc__.strip().splitlines()[0]
    factory = None
    if "config" in inspect.signature(build).parameters:

        def factory(config: RunnableConfig) -> Pregel[Any, Any, Any, Any]:
            return cast(Pregel[Any, Any, Any, Any], build(checkpointer=checkpointer, store=store, config=config))

    return Assistant(entry.assistant_id, graph, entry, description, factory=factory)


def apply_env(config_path: Path) -> None:
    """Set the ``env`` of a langgraph.json (an object of variables, or the path of a ``.env`` file relative to
    it) in this process's environment; a variable already set keeps its value."""
    try:
        document = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return  # read_entries reports it
    env = document.get("env") if isinstance(document, dict) else None
    if isinstance(env, str):
        env = dotenv_values(config_path.resolve().parent / env)
    if not isinstance(env, dict):
        return
    for name, value in env.items():
        if value is not None and name not in os.environ:
            os.environ[name] = value if isinstance(value, str) else json.dumps(value)


def load_registry(
    config_path: Path, checkpointer: BaseCheckpointSaver[Any] | None, *, required: bool = False,
    store: BaseStore | None = None,
) -> Registry:
    """Load every graph of ``config_path`` (after applying its ``env``). A missing file gives an empty registry
    (or an error when ``required``); any entry that fails raises :class:`RegistryError` naming the file and the
    entry."""
    config_path = config_path.expanduser()
    if not config_path.is_file():
        if required:
            raise RegistryError(f"{config_path}: no such file (set RIMAS_LANGGRAPH_CONFIG to a langgraph.json)")
        log.warning("no langgraph.json: serving no assistants", extra={"path": str(config_path)})
        return Registry([], None)
    base = config_path.resolve().parent
    apply_env(config_path)
    assistants: list[Assistant] = []
    for entry in read_entries(config_path):
        try:
            assistants.append(load_assistant(entry, base, checkpointer, store))
        except Exception as exc:
            raise RegistryError(
                f"{config_path}: graph {entry.assistant_id!r} ({entry.target}:{entry.attr}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    log.info("assistants loaded", extra={"path": str(config_path), "assistants": [a.assistant_id for a in assistants]})
    return Registry(assistants, config_path)
