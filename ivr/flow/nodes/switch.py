"""`switch`: the first true condition wins; `else` otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ivr.errors import FlowRuntimeError
from ivr.flow.loader import Path_
from ivr.flow.model import Edge, Node
from ivr.flow.nodes.set import assign_all
from ivr.flow.templates import evaluate

if TYPE_CHECKING:
    from ivr.flow.context import CallContext
    from ivr.flow.validate import Checker


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    if_: str | None = Field(None, alias="if")
    goto: str | None = None
    else_: str | None = Field(None, alias="else")
    set: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shape(self) -> Case:
        if self.else_ is not None:
            if self.if_ is not None or self.goto is not None:
                raise ValueError("an else entry has no if or goto")
        elif self.if_ is None or self.goto is None:
            raise ValueError("each entry needs if and goto (or a single else: node)")
        return self


class SwitchNode(Node):
    kind = "switch"

    switch: list[Case] = Field(min_length=1)

    def edges(self) -> list[Edge]:
        out = []
        for i, case in enumerate(self.switch):
            if case.else_ is not None:
                out.append(Edge(("switch", i, "else"), "else", case.else_))
            elif case.goto is not None:
                out.append(Edge(("switch", i, "goto"), case.if_ or "", case.goto))
        return out

    def check(self, checker: Checker, path: Path_) -> None:
        elses = [i for i, c in enumerate(self.switch) if c.else_ is not None]
        if len(elses) > 1:
            checker.error((*path, "switch", elses[1]), "switch has more than one else")
        if elses and elses[0] != len(self.switch) - 1:
            checker.error((*path, "switch", elses[0]), "else must be the last entry")
        for i, case in enumerate(self.switch):
            if case.if_ is not None:
                checker.template((*path, "switch", i, "if"), case.if_, expression=True)
            checker.assignments((*path, "switch", i, "set"), case.set)

    async def run(self, ctx: CallContext) -> str | None:
        for case in self.switch:
            if case.else_ is not None:
                return case.else_
            if case.if_ is not None and evaluate(case.if_, ctx.scope()):
                assign_all(ctx, case.set)
                return case.goto
        raise FlowRuntimeError("no switch condition was true and there is no else", ctx.node_id)
