"""`hours`: branch on a named calendar of the engine config."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from ivr.flow.loader import Path_
from ivr.flow.model import Node

if TYPE_CHECKING:
    from ivr.flow.context import CallContext
    from ivr.flow.validate import Checker


class HoursSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calendar: str


class HoursNode(Node):
    kind = "hours"

    hours: HoursSpec
    open: str
    closed: str

    def check(self, checker: Checker, path: Path_) -> None:
        checker.calendar((*path, "hours", "calendar"), self.hours.calendar)

    async def run(self, ctx: CallContext) -> str | None:
        calendar = ctx.config.calendars[self.hours.calendar]
        return self.open if calendar.is_open(ctx.now()) else self.closed
