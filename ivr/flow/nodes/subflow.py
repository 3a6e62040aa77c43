"""`subflow`: run another flow (identification, a survey) and come back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from ivr.errors import FlowRuntimeError
from ivr.flow.loader import Path_
from ivr.flow.model import Node

if TYPE_CHECKING:
    from ivr.flow.context import CallContext
    from ivr.flow.validate import Checker


class SubflowSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flow: str


class SubflowNode(Node):
    kind = "subflow"

    subflow: SubflowSpec
    next: str | None = None

    def check(self, checker: Checker, path: Path_) -> None:
        checker.flow_ref((*path, "subflow", "flow"), self.subflow.flow)

    async def run(self, ctx: CallContext) -> str | None:
        if ctx.run_subflow is None:
            raise FlowRuntimeError("subflows are not available here", ctx.node_id)
        ended = await ctx.run_subflow(self.subflow.flow)
        return None if ended else self.next
