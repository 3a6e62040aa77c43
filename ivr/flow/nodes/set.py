"""`set`: assign variables from templates (native values: '{{ 1 + 1 }}' is 2); a copy of a
sensitive value stays sensitive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ivr.flow.loader import Path_
from ivr.flow.model import Node
from ivr.flow.templates import render_value
from ivr.lang.secret import HIDDEN, taint

if TYPE_CHECKING:
    from ivr.flow.context import CallContext
    from ivr.flow.validate import Checker


def assign_all(ctx: CallContext, values: dict[str, Any], *, sensitive: bool = False) -> None:
    """Render then assign, so `{a: '{{ b }}', b: 1}` reads the old b, as a person expects.

    A value whose template read a sensitive value is itself sensitive (`render_value` taints
    it); `sensitive` taints them all, fully masked (a sensitive menu's choice: `****`, since
    the last letters of a word give it away)."""
    rendered = {name: render_value(v, ctx.scope()) for name, v in values.items()}
    for name, value in rendered.items():
        ctx.assign(name, taint(value, HIDDEN) if sensitive else value)


class SetNode(Node):
    kind = "set"

    set: dict[str, Any]
    next: str | None = None

    def check(self, checker: Checker, path: Path_) -> None:
        checker.assignments((*path, "set"), self.set)

    async def run(self, ctx: CallContext) -> str | None:
        assign_all(ctx, self.set)
        return self.next
