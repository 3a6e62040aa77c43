"""`say`: play text or audio, then go on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ivr.flow import prompts
from ivr.flow.loader import Path_
from ivr.flow.model import Node
from ivr.flow.prompts import PromptSpec

if TYPE_CHECKING:
    from ivr.flow.context import CallContext
    from ivr.flow.validate import Checker


class SayNode(Node):
    kind = "say"

    say: PromptSpec
    barge_in: bool | None = None
    next: str | None = None

    def check(self, checker: Checker, path: Path_) -> None:
        prompts.check(checker, (*path, "say"), self.say)

    def prompts(self, language: str) -> list[str]:
        return prompts.texts(self.say)

    async def run(self, ctx: CallContext) -> str | None:
        barge = self.barge_in if self.barge_in is not None else ctx.flow.header.defaults.barge_in
        await ctx.play(prompts.build(ctx, self.say), barge_in=barge)
        return self.next
