"""`hangup`: end the call (any node may also say `hangup: true`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ivr.flow.model import Node

if TYPE_CHECKING:
    from ivr.flow.context import CallContext


class HangupNode(Node):
    kind = "hangup"

    hangup: Literal[True] = Field(description="ends the call")

    async def run(self, ctx: CallContext) -> str | None:
        ctx.end("hangup", by="ivr")
        return None
