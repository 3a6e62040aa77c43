"""Finding flow files; the YAML parsing with positions lives in ivr.yamldoc (the config uses it
too, so it sits outside the flow package)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ivr.yamldoc import Document, Path_, load_file

__all__ = ["Document", "Path_", "iter_yaml_files", "load_file"]


def iter_yaml_files(paths: list[Path], *, tests: bool | None = None) -> Iterator[Path]:
    """Yield YAML files under the given paths, sorted; `tests` picks *.test.yaml or the rest."""
    for p in paths:
        files = sorted([*p.rglob("*.yaml"), *p.rglob("*.yml")]) if p.is_dir() else [p]
        for f in files:
            is_test = f.name.endswith((".test.yaml", ".test.yml"))
            if tests is None or tests == is_test:
                yield f
