"""`record`: take a message from the caller into a file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from ivr.durations import Duration
from ivr.flow import prompts
from ivr.flow.channel import RecordRequest
from ivr.flow.loader import Path_
from ivr.flow.model import Node
from ivr.flow.prompts import PromptSpec

if TYPE_CHECKING:
    from ivr.flow.context import CallContext
    from ivr.flow.validate import Checker


class RecordSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: PromptSpec | None = None
    max: Duration = Field(60.0, gt=0, le=3600)
    beep: bool = True
    into: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class RecordNode(Node):
    kind = "record"

    record: RecordSpec
    next: str | None = None

    def check(self, checker: Checker, path: Path_) -> None:
        prompts.check(checker, (*path, "record", "prompt"), self.record.prompt)

    def prompts(self, language: str) -> list[str]:
        return prompts.texts(self.record.prompt)

    async def run(self, ctx: CallContext) -> str | None:
        spec = self.record
        # no reset of the loop guard here: a record-only goto cycle has no caller decision in it,
        # and a scripted channel (ivr test / simulate) would otherwise record forever
        await ctx.play(prompts.build(ctx, spec.prompt), barge_in=False)
        path = await ctx.channel.record(
            RecordRequest(max_seconds=spec.max, beep=spec.beep, name=spec.into or ctx.node_id)
        )
        if spec.into:
            ctx.assign(spec.into, path)
        return self.next
