"""The layout is a contract: one-way layers (import-linter, in ``pyproject.toml``) and no
import cycle anywhere, lazy imports inside functions included."""

from __future__ import annotations

import grimp
import pytest

PACKAGES = (
    "cli",
    "worker",
    "bot",
    "stream",
    "sync",
    "api",
    "commands",
    "store",
    "briefs",
    "segments",
)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Groups of two or more modules that import each other, directly or round a loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.find_modules_directly_imported_by(module)):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_no_module_takes_part_in_an_import_cycle(graph: grimp.ImportGraph) -> None:
    cycles = strongly_connected(graph)
    details = []
    for group in cycles:
        pairs = [
            f"{a} -> {b}"
            for a in group
            for b in sorted(graph.find_modules_directly_imported_by(a))
            if b in group
        ]
        details.append(", ".join(pairs))
    assert cycles == [], "import cycles: " + " | ".join(details)


def test_the_cycle_check_sees_lazy_imports(graph: grimp.ImportGraph) -> None:
    # cli.app imports the use cases inside its command functions only
    assert "commands.refresh" in graph.find_modules_directly_imported_by("cli.app")
