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
    out = []
    for err in exc.errors():
        loc = _clean_loc(tuple(err["loc"]))
        path = (*prefix, *loc)
        field = ".".join(str(p) for p in loc) if loc else ""
        # a missing field has no position of its own: point at the mapping that lacks it
        at = path[:-1] if err["type"] == "missing" else path
        out.append(doc.problem(at, _message(err, field)))
    return out
