"""Turn pydantic validation errors into positioned problems a person can act on."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ivr.errors import Problem
from ivr.flow.loader import Document, Path_

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
