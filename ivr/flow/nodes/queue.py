"""`queue`: hand the caller to an agent queue with what the IVR learned.

The node picks what the waiting caller hears (the call's language's message catalogue,
ivr/lang/messages) and puts every fixed form of it in the prompt catalogue (`prompts`), so it is
rendered when the flow loads; `ivr.acd.wait.QueueWait` says it while the caller waits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ivr.acd.wait import Announcements, CallbackOffer, QueueRequest, WaitWords
from ivr.durations import Duration
from ivr.flow.loader import Path_
from ivr.flow.model import Node
from ivr.flow.templates import render_value
from ivr.lang import messages

if TYPE_CHECKING:
    from ivr.flow.context import CallContext
    from ivr.flow.validate import Checker

PRERENDERED = 10
"""Positions and minutes 1..10 are rendered when the flow loads; a longer queue's numbers are
rendered the first time they are said (in a thread, under the hold music)."""


class Announce(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: bool = False
    wait_time: bool = False
    every: Duration = 30.0


class Callback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offer_after: Duration = 60.0
    dtmf: str = Field("1", pattern=r"^[0-9*#]$")


class QueueSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    priority: int | str = 0
    skills: dict[str, int] = Field(default_factory=dict)
    context: list[str] = Field(default_factory=list)
    announce: Announce = Field(default_factory=Announce)
    max_wait: Duration | None = None
    callback: Callback | None = None
    mode: Literal["bridge", "refer"] = "bridge"
    whisper: str | None = None


class QueueNode(Node):
    kind = "queue"

    queue: QueueSpec
    on_timeout: str | None = None
    on_error: str | None = None

    def check(self, checker: Checker, path: Path_) -> None:
        checker.queue((*path, "queue", "name"), self.queue.name)
        if isinstance(self.queue.priority, str):
            checker.template((*path, "queue", "priority"), self.queue.priority)
        if self.queue.whisper:
            checker.template((*path, "queue", "whisper"), self.queue.whisper)

    def words(self, language: str) -> WaitWords:
        """The wait's sentences for this node, in `language` (its message catalogue)."""
        key = self.queue.callback.dtmf if self.queue.callback else ""
        offer = messages.text(language, "callback_offer", key=messages.spoken_key(language, key))
        return WaitWords(language=language, position=messages.template(language, "queue_position"),
                         wait_time=messages.template(language, "queue_wait_time"),
                         callback_offer=offer,
                         callback_confirm=messages.text(language, "callback_confirm"))

    def prompts(self, language: str) -> list[str]:
        """What this node says on its own account: the whisper as written, and every fixed form
        of its wait words (ivr/flow/catalog.py collects them; the supervisor pre-renders them)."""
        spec, words = self.queue, self.words(language)
        out = [spec.whisper] if spec.whisper else []
        numbers = range(1, PRERENDERED + 1)
        if spec.announce.position:
            out += [words.position_text(n) for n in numbers]
        if spec.announce.wait_time:
            out += [words.wait_time_text(n) for n in numbers]
        if spec.callback is not None:
            out += [words.callback_offer, words.callback_confirm]
        return out

    def _priority(self, ctx: CallContext) -> int:
        value: Any = render_value(self.queue.priority, ctx.scope())
        try:
            return int(value)
        except (TypeError, ValueError):
            return 0

    async def run(self, ctx: CallContext) -> str | None:
        spec = self.queue
        context = ctx.context_of(spec.context)
        request = QueueRequest(
            name=spec.name, priority=self._priority(ctx), skills=spec.skills, context=context,
            announce=Announcements(**spec.announce.model_dump()), max_wait=spec.max_wait,
            callback=CallbackOffer(**spec.callback.model_dump()) if spec.callback else None,
            mode=spec.mode,
            whisper=ctx.mask_text(ctx.render(spec.whisper)) if spec.whisper else None,
            words=self.words(ctx.language),  # checked at load and on every switch
        )
        result = await ctx.channel.enqueue(request)
        if result.status in ("connected", "callback"):
            ctx.end("queue", queue=spec.name, context=context)
            return None
        target = self.on_timeout if result.status == "timeout" else self.on_error
        if target is None:
            ctx.end("error", queue=spec.name, message=f"queue {spec.name} {result.status}"
                    f"{': ' + result.detail if result.detail else ''} and the node has no exit")
        return target
