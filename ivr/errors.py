"""A short exception hierarchy: bad input from a person versus a broken process.

`ProblemsError` carries positioned problems in files someone edits (flows, tests, config); the CLI
prints them as `file:line:col: message` and exits 1. `FlowRuntimeError` ends one call's flow with a
clear reason. Anything else is a bug and is logged as one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a file, at a position a person can jump to."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"

    def as_json(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "col": self.col, "message": self.message}


class IvrError(Exception):
    """Base of the errors the engine expects and reports without a traceback."""


class ProblemsError(IvrError):
    """One or more problems in files a person wrote."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(IvrError):
    """The engine config cannot be used as it stands (e.g. a secret it names is not set)."""


class FlowRuntimeError(IvrError):
    """A flow cannot go on for this call (loop bound, sandbox violation, missing exit)."""

    def __init__(self, message: str, node: str | None = None) -> None:
        self.node = node
        super().__init__(message)


class CallerHangup(IvrError):
    """The caller hung up; every node unwinds and the interpreter records the end."""


class InputsExhausted(IvrError):
    """A scripted channel ran out of caller input while the flow waited for some."""
