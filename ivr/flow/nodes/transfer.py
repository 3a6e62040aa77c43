"""`transfer`: send the call elsewhere (REFER, or a bridged second leg), if transfers.allow lets it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from ivr.flow.channel import TransferRequest
from ivr.flow.loader import Path_
from ivr.flow.model import Node
from ivr.lang.secret import reveal

if TYPE_CHECKING:
    from ivr.flow.context import CallContext
    from ivr.flow.validate import Checker

log = logging.getLogger(__name__)


class TransferSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(description="SIP URI, may be a template")
    mode: Literal["refer", "bridge"] = "refer"
    headers: dict[str, str] = Field(default_factory=dict)
    context: list[str] = Field(default_factory=list)


class TransferNode(Node):
    kind = "transfer"

    transfer: TransferSpec
    on_fail: str | None = None

    def check(self, checker: Checker, path: Path_) -> None:
        checker.template((*path, "transfer", "to"), self.transfer.to)
        for name, value in self.transfer.headers.items():
            checker.template((*path, "transfer", "headers", name), value)

    async def run(self, ctx: CallContext) -> str | None:
        spec = self.transfer
        target = ctx.render(spec.to)  # the real target (a far end routes on it); records mask it
        refusal = ctx.config.transfers.policy(ctx.config.agents).refusal(reveal(target))
        if refusal is not None:
            # toll fraud guard: nothing goes out; the log says why, and so does the CDR unless
            # the flow goes on at on_fail
            log.warning("%s", ctx.mask_text(refusal))
            if self.on_fail is None:
                ctx.end("error", target=ctx.mask_text(target), message=ctx.mask_text(refusal))
            return self.on_fail
        headers = {k: ctx.mask_text(ctx.render(v)) for k, v in spec.headers.items()}
        ok = await ctx.channel.transfer(
            TransferRequest(to=reveal(target), mode=spec.mode, headers=headers,
                            context=ctx.context_of(spec.context))
        )
        if ok:
            ctx.end("transfer", target=target)
            return None
        if self.on_fail is None:
            ctx.end("error", target=target, message=f"transfer to {target} failed")
        return self.on_fail
