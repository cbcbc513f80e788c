"""Specialists: the one list a supervisor graph is built from, checked when the graph is built.

A specialist is a name, what it handles (the LLM supervisor reads it), its tool scope, the specialists whose
proposals it needs first (``after``), and its deterministic policy (``act``: state in, analysis and proposed
actions out). Adding a specialist to a workflow is one :class:`Specialist` entry in that workflow's list plus
its tools. :class:`SpecialistRegistry` refuses a list it cannot run, with an error that says how to fix it;
:meth:`SpecialistRegistry.next_wave` gives the specialists that may run now, so independent ones run in
parallel and a dependent one runs after what it depends on.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class SpecialistError(ValueError):
    """A specialist list that cannot be built into a graph."""


@dataclass(frozen=True)
class SpecialistResult:
    """What a specialist hands back: its analysis in words and the actions it proposes (not yet executed)."""

    summary: str
    findings: list[str] = field(default_factory=list)
    proposals: list[Any] = field(default_factory=list)
    tools_used: list[str] = field(default_factory=list)


Act = Callable[[Mapping[str, Any]], Awaitable[SpecialistResult]]


@dataclass(frozen=True)
class Specialist:
    """One specialist of a supervisor graph."""

    name: str
    description: str
    tools: tuple[str, ...]
    act: Act
    after: tuple[str, ...] = ()


class SpecialistRegistry(Mapping[str, Specialist]):
    """The specialists of one graph, validated: unique names that do not collide with the graph's own nodes,
    tools that exist in the tool scopes, dependencies on registered specialists without cycles."""

    def __init__(
        self, specialists: Sequence[Specialist], *, known_tools: Collection[str], reserved: Collection[str] = ()
    ) -> None:
        self._items: dict[str, Specialist] = {}
        for spec in specialists:
            if not NAME.match(spec.name):
                raise SpecialistError(f"specialist name {spec.name!r} must be lowercase letters, digits and _ "
                                      "(it becomes a graph node name); rename it")  # fmt: skip
            if spec.name in reserved:
                raise SpecialistError(f"specialist {spec.name!r} collides with the graph's own node of that name "
                                      f"(reserved: {', '.join(sorted(reserved))}); rename the specialist")  # fmt: skip
            if spec.name in self._items:
                raise SpecialistError(f"specialist {spec.name!r} is registered twice; each entry needs its own name")
            unknown = [t for t in spec.tools if t not in known_tools]
            if unknown:
                raise SpecialistError(f"specialist {spec.name!r} lists tool(s) {unknown} that the tool scopes do not "
                                      f"define; add them to the scopes or fix the names (known: "
                                      f"{', '.join(sorted(known_tools))})")  # fmt: skip
            self._items[spec.name] = spec
        for spec in self._items.values():
            missing = [a for a in spec.after if a not in self._items]
            if missing:
                raise SpecialistError(f"specialist {spec.name!r} runs after {missing}, which are not registered; "
                                      f"register them or remove them from its 'after' (registered: "
                                      f"{', '.join(self._items)})")  # fmt: skip
        self._check_cycles()

    def _check_cycles(self) -> None:
        state: dict[str, int] = {}  # 1 visiting, 2 done

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = " -> ".join([*path[path.index(name) :], name])
                raise SpecialistError(f"specialists depend on each other in a cycle ({cycle}); break it in 'after'")
            state[name] = 1
            for dep in self._items[name].after:
                visit(dep, [*path, name])
            state[name] = 2

        for name in self._items:
            visit(name, [])

    def __getitem__(self, name: str) -> Specialist:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def unknown(self, names: Collection[str]) -> list[str]:
        """The names that are not registered specialists (to validate a supervisor's choice)."""
        return [n for n in names if n not in self._items]

    def next_wave(self, selected: Sequence[str], done: Collection[str]) -> list[str]:
        """The selected specialists that have not run and whose selected dependencies all have, in registry
        order; empty when every selected specialist has run."""
        chosen = set(selected)
        return [
            name
            for name in self._items
            if name in chosen and name not in done and all(d in done for d in self._items[name].after if d in chosen)
        ]
