"""Safe YAML loading that remembers where every value came from, for flows and the config alike.

Ops staff fix what they can find: every error a flow or the engine config reports points at
`file:line:col`. PyYAML's safe composer gives us a node tree with marks; we build plain Python values from it
ourselves so that we can (a) record a position for every path, (b) refuse duplicate keys, which
PyYAML silently overwrites, and (c) bound alias expansion so a "billion laughs" file is an error,
not an out-of-memory kill. pydantic's errors on such a document become problems at the same
positions (`validation_problems`).

It lives outside ivr.flow because the engine config is read the same way, and the flow layer
imports the config: one shared module keeps the two packages from importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ivr.errors import Problem, ProblemsError

MAX_FILE_BYTES = 1024 * 1024
"""Flows are hand-written; a megabyte is far beyond any real one and bounds parse time."""

MAX_VALUES = 100_000
"""Upper bound on scalars+collections after alias expansion (YAML bomb guard)."""

Path_ = tuple[str | int, ...]


@dataclass
class Document:
    """A parsed YAML document with a position for every path inside it."""

    file: str
    data: Any
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path_) -> tuple[int, int]:
        """Line and column of `path`, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.positions:
                return self.positions[p]
            p = p[:-1]
        return self.positions.get((), (1, 1))

    def problem(self, path: Path_, message: str) -> Problem:
        line, col = self.where(path)
        return Problem(self.file, line, col, message)


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[Path_, tuple[int, int]] = {}
        self.count = 0
        self._scalars = yaml.SafeLoader("")

    def _mark(self, node: yaml.Node) -> tuple[int, int]:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def _tick(self, node: yaml.Node) -> None:
        self.count += 1
        if self.count > MAX_VALUES:
            line, col = self._mark(node)
            raise ProblemsError(
                [
                    Problem(
                        self.file,
                        line,
                        col,
                        f"document expands to more than {MAX_VALUES} values "
                        "(an alias bomb?); refusing to load it",
                    )
                ]
            )

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self._tick(node)
        self.positions.setdefault(path, self._mark(node))
        if isinstance(node, yaml.ScalarNode):
            return self._scalars.construct_object(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        raise ProblemsError([Problem(self.file, *self._mark(node), "unsupported YAML node")])

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merged: list[dict[Any, Any]] = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                value = self.build(value_node, path)
                for item in value if isinstance(value, list) else [value]:
                    if not isinstance(item, dict):
                        raise ProblemsError(
                            [Problem(self.file, *self._mark(value_node), "merge key needs a mapping")]
                        )
                    merged.append(item)
                continue
            key = self.build(key_node, (*path, "<key>"))
            if isinstance(key, (dict, list)):
                raise ProblemsError(
                    [Problem(self.file, *self._mark(key_node), "mapping keys must be scalars")]
                )
            if key in out:
                raise ProblemsError(
                    [Problem(self.file, *self._mark(key_node), f"duplicate key {key!r}")]
                )
            self.positions[(*path, key)] = self._mark(key_node)
            out[key] = self.build(value_node, (*path, key))
        for item in merged:
            for k, v in item.items():
                out.setdefault(k, v)
        return out


def parse_text(text: str, file: str) -> Document:
    """Parse one YAML document; errors carry file:line:col."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or exc.context or "invalid YAML"
        raise ProblemsError([Problem(file, line, col, f"YAML syntax error: {what}")]) from None
    except yaml.YAMLError as exc:
        raise ProblemsError([Problem(file, 1, 1, f"YAML error: {exc}")]) from None
    if root is None:
        return Document(file, None, {(): (1, 1)})
    builder = _Builder(file)
    try:
        data = builder.build(root, ())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ProblemsError([Problem(file, line, col, f"YAML error: {exc.problem}")]) from None
    return Document(file, data, builder.positions)


def load_file(path: Path, max_bytes: int = MAX_FILE_BYTES) -> Document:
    """Read and parse a YAML file with a size limit checked before reading it all."""
    name = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ProblemsError([Problem(name, 1, 1, f"cannot read file: {exc.strerror}")]) from None
    if size > max_bytes:
        raise ProblemsError(
            [
                Problem(
                    name,
                    1,
                    1,
                    f"file is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB",
                )
            ]
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProblemsError([Problem(name, 1, 1, f"file is not UTF-8 text: {exc.reason}")]) from None
    except OSError as exc:
        raise ProblemsError([Problem(name, 1, 1, f"cannot read file: {exc.strerror}")]) from None
    return parse_text(text, name)


# -- pydantic errors as positioned problems ------------------------------------------------

_DROP = {"function-after", "function-before", "function-wrap", "function-plain"}


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic adds union member and validator names to loc; they are not paths in the file.
    return tuple(p for p in loc if not (isinstance(p, str) and (p in _DROP or "[" in p)))


def _value_at(data: Any, path: Path_) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _real_loc(data: Any, loc: tuple[Any, ...], missing: bool) -> tuple[Any, ...]:
    """Drop loc parts that are not in the document (union member and model names)."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        in_dict = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if in_dict or in_list:
            out.append(part)
            data = data[part]
        elif last and missing:
            out.append(part)
        elif isinstance(data, (dict, list)) or data is None:
            continue
    return tuple(out)


def _message(err: Any, field: str) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown field {field!r}"
    if kind == "missing":
        return f"missing required field {field!r}"
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return f"{field}: {msg}" if field else msg


def validation_problems(doc: Document, exc: ValidationError, prefix: Path_ = ()) -> list[Problem]:
    """One problem per place: a value that fits none of a union's forms is one mistake."""
    by_place: dict[tuple[Any, ...], list[str]] = {}
    for err in exc.errors():
        loc = _real_loc(_value_at(doc.data, prefix), _clean_loc(tuple(err["loc"])),
                        err["type"] == "missing")
        path = (*prefix, *loc)
        field = ".".join(str(p) for p in loc) if loc else ""
        # a missing field has no position of its own: point at the mapping that lacks it
        at = path[:-1] if err["type"] == "missing" else path
        messages = by_place.setdefault(at, [])
        message = _message(err, field)
        if message not in messages:
            messages.append(message)
    out = []
    for at, messages in by_place.items():
        if len(messages) > 1 and all(":" in m for m in messages):
            field = messages[0].split(":", 1)[0]
            reasons = "; or ".join(m.split(":", 1)[1].strip() for m in messages)
            out.append(doc.problem(at, f"{field}: {reasons}"))
        else:
            out.extend(doc.problem(at, m) for m in messages)
    return out
