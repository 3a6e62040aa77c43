"""The package layering, read from the source: engines take no flow types, packages form no cycle.

Imports inside functions and under TYPE_CHECKING count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

IVR = Path(__file__).resolve().parents[2] / "ivr"


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(IVR.rglob("*.py")):
        parts = path.relative_to(IVR.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(path: Path) -> set[str]:
    """Every `ivr...` module a file imports (for `from ivr import x`, `ivr.x`)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "ivr":
                out.update(f"ivr.{a.name}" for a in node.names)
            else:
                out.add(node.module)
    return {m for m in out if m == "ivr" or m.startswith("ivr.")}


def _unit(module: str) -> str:
    """The package (or top-level module) a module belongs to: ivr.flow, ivr.config, ..."""
    return ".".join(module.split(".")[:2])


IMPORTS = {name: _imports(path) for name, path in _modules()}


@pytest.mark.parametrize("package", ["ivr.speech", "ivr.lang"])
def test_speech_and_language_do_not_import_the_flow_layer(package: str) -> None:
    bad = {m: sorted(i for i in deps if _unit(i) == "ivr.flow")
           for m, deps in IMPORTS.items() if _unit(m) == package}
    assert not {m: d for m, d in bad.items() if d}


def test_language_package_stands_alone() -> None:
    bad = {m: sorted(i for i in deps if _unit(i) != "ivr.lang")
           for m, deps in IMPORTS.items() if _unit(m) == "ivr.lang"}
    assert not {m: d for m, d in bad.items() if d}


def test_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for module, deps in IMPORTS.items():
        src = _unit(module)
        graph.setdefault(src, set()).update(_unit(d) for d in deps if _unit(d) != src)
    assert "ivr.lang" in graph and "ivr.flow" in graph  # the walk found the packages

    cycles: list[list[str]] = []

    def visit(node: str, path: list[str], done: set[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in done:
                visit(nxt, [*path, nxt], done)
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start], done)
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)
