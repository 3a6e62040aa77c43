"""A channel driven by steps instead of a phone: `ivr simulate` and `ivr test` run on it.

DTMF behaves as on a real line: digits go into a type-ahead buffer and each `listen` takes what the
waiting node asks for (up to a terminator, a whole menu key, or max digits), so `dtmf: "12345678#"`
followed by `dtmf: "1"` fills a collect and then answers its confirmation.

A queue runs the real wait (`ivr.acd.wait.QueueWait`) against a scripted ACD in virtual time: the
caller hears the position announcements and the callback offer a real caller would hear before
the case's outcome, and a `dtmf` step with the callback key right after the offer takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ivr.acd.client import AcdEvent
from ivr.acd.wait import Handoff, QueueRequest, QueueResult, QueueWait
from ivr.errors import CallerHangup, InputsExhausted
from ivr.flow.channel import (
    Channel,
    Input,
    ListenSpec,
    Prompt,
    RecordRequest,
    TransferRequest,
)
from ivr.flow.pauses import PauseLog

StepKind = Literal["expect_prompt", "dtmf", "say", "audio", "silence", "hangup"]
INPUT_KINDS = ("dtmf", "say", "audio", "silence", "hangup")


@dataclass(frozen=True)
class Step:
    kind: StepKind
    value: str = ""

    def describe(self) -> str:
        return f"{self.kind}: {self.value}" if self.value else self.kind


Recognizer = Callable[[str, ListenSpec], Input | None]
"""Turns a WAV file into the caller's input under a listen spec (the real ASR, issue 4)."""


def take_digits(buffer: str, spec: ListenSpec) -> tuple[str, str]:
    """Split a type-ahead buffer into (this entry, what stays buffered)."""
    for key in spec.dtmf_keys:
        if not key.isdigit() and buffer.startswith(key):
            return key, buffer[len(key):]
    if spec.terminator:
        end = buffer.find(spec.terminator)
        if 0 <= end <= spec.max_digits:
            return buffer[:end], buffer[end + 1:]
        n = min(len(buffer), spec.max_digits)
        return buffer[:n], buffer[n:]
    for n in range(1, min(len(buffer), spec.max_digits) + 1):
        head = buffer[:n]
        if head in spec.dtmf_keys and not any(
            len(k) > n and k.startswith(head) for k in spec.dtmf_keys
        ):
            return head, buffer[n:]
    n = min(len(buffer), spec.max_digits)
    return buffer[:n], buffer[n:]


@dataclass
class ScriptedChannel(Channel):
    """Plays into a list, listens from steps; checks `expect_prompt` steps as it goes."""

    steps: list[Step]
    recognizer: Recognizer | None = None
    queue_results: Mapping[str, str] = field(default_factory=dict)
    transfer_results: Mapping[str, bool] = field(default_factory=dict)
    on_prompt: Callable[[Prompt], None] | None = None
    read_step: Callable[[], Step | None] | None = None
    """Interactive source used once `steps` run out (the console simulator)."""
    speech: bool = True
    """False: a call without speech recognition (`say`/`audio` steps are heard as silence)."""

    played: list[str] = field(default_factory=list)
    spoken: list[str] = field(default_factory=list)
    """Every prompt's text as the caller hears it (unmasked: what a SIP run listens for)."""
    window: list[str] = field(default_factory=list)
    """Prompts since the last step as records show them (sensitive ones masked)."""
    _window_text: list[str] = field(default_factory=list)
    """The same prompts as the caller hears them, for `expect_prompt` to match."""
    failures: list[str] = field(default_factory=list)
    queued: list[QueueRequest] = field(default_factory=list)
    transfers: list[TransferRequest] = field(default_factory=list)
    hung_up: bool = False
    pauses: PauseLog = field(default_factory=PauseLog)
    """Private spans the flow asked for (what a recording of this call would hold silent)."""
    _digits: str = ""
    _window_pos: int = 0

    def private(self, node: str) -> contextlib.AbstractAsyncContextManager[None]:
        return self.pauses.span(node)

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool = True) -> None:
        for p in prompts:
            self.played.append(p.describe())
            self.spoken.append(p.text if p.text is not None else p.describe())
            self.window.append(p.describe())
            self._window_text.append(p.text if p.text is not None else p.describe())
            if self.on_prompt:
                self.on_prompt(p)

    def _expect(self, text: str) -> None:
        needle = text.lower()
        for i in range(self._window_pos, len(self._window_text)):
            if needle in self._window_text[i].lower():
                self._window_pos = i
                return
        heard = " | ".join(self.window) or "(nothing)"
        self.failures.append(f"expected a prompt containing {text!r}; prompts since the last "
                             f"step: {heard}")

    def _next_step(self) -> Step | None:
        while self.steps:
            step = self.steps.pop(0)
            if step.kind == "expect_prompt":
                self._expect(step.value)
                continue
            return step
        return self.read_step() if self.read_step else None

    def _new_window(self) -> None:
        self.window = []
        self._window_text = []
        self._window_pos = 0

    @property
    def speech_available(self) -> bool:
        return self.speech

    async def listen(self, spec: ListenSpec) -> Input | None:
        if self._digits:
            value, self._digits = take_digits(self._digits, spec)
            self._new_window()
            return Input("dtmf", value)
        step = self._next_step()
        if step is None:
            raise InputsExhausted()
        self._new_window()
        if step.kind == "dtmf":
            value, self._digits = take_digits(step.value, spec)
            return Input("dtmf", value)
        if step.kind in ("say", "audio") and not self.speech:
            return None  # nobody is listening for speech on this call
        if step.kind == "say":
            return Input("speech", step.value, 1.0)
        if step.kind == "audio":
            if self.recognizer is None:
                self.failures.append("audio input needs a speech recognizer; none is configured")
                raise InputsExhausted()
            return self.recognizer(step.value, spec)
        if step.kind == "silence":
            return None
        self.hung_up = True
        raise CallerHangup()

    def finish(self) -> None:
        """Check what is left once the flow ended: trailing expectations, unused input."""
        leftover: list[str] = []
        for step in self.steps:
            if step.kind == "expect_prompt":
                self._expect(step.value)
            else:
                leftover.append(step.describe())
        self.steps = []
        if self._digits:
            leftover.insert(0, f"dtmf: {self._digits} (buffered)")
        if leftover:
            self.failures.append(f"the flow ended before these steps were used: {leftover}")

    def take_key(self, wanted: str) -> str | None:
        """The caller's answer to an offer made while they wait: the next input step, when it
        is a `dtmf` step starting with a key in `wanted` (expectations before it are checked
        now); any other step is left for the nodes after the queue."""
        if not wanted:
            return None
        if self._digits:
            key, rest = self._digits[0], self._digits[1:]
            if key not in wanted:
                return None
            self._digits = rest
            return key
        for i, step in enumerate(self.steps):
            if step.kind == "expect_prompt":
                continue
            if step.kind != "dtmf" or step.value[:1] not in wanted:
                return None
            for before in self.steps[:i]:
                self._expect(before.value)
            del self.steps[: i + 1]
            self._new_window()
            self._digits = step.value[1:]
            return step.value[0]
        return None

    async def enqueue(self, request: QueueRequest) -> QueueResult:
        self.queued.append(request)
        acd = ScriptedAcd(request, self.queue_results.get(request.name, "connected"))
        wait = QueueWait(ScriptedCall(self), acd, request, Handoff(), clock=acd.clock)
        return await wait.run()

    async def transfer(self, request: TransferRequest) -> bool:
        self.transfers.append(request)
        return self.transfer_results.get(request.to, True)

    async def record(self, request: RecordRequest) -> str | None:
        return simulated_recording(request)

    async def hangup(self) -> None:
        self.hung_up = True


def simulated_recording(request: RecordRequest) -> str:
    """What a scripted `record` keeps: no audio, a name a case can expect."""
    return f"simulated://{request.name}.wav"


SCRIPTED_POSITION = 1
SCRIPTED_ETA = 120.0
"""What the scripted ACD announces: first in line, one agent at the default handle time."""
SCRIPTED_AGENT = "agent"


class ScriptedAcd:
    """The ACD's side of a scripted wait, in virtual time (a 5 minute wait takes none): position
    updates every `announce.every`, a resync at the callback offer's time, then the outcome the
    case names (connected after the offer; timeout at `max_wait`), or `callback` once asked."""

    def __init__(self, request: QueueRequest, outcome: str) -> None:
        self.request = request
        self.outcome = outcome
        self.now = 0.0
        self.answered = asyncio.Event()
        self.callback_asked = False

    def clock(self) -> float:
        return self.now

    def _end(self) -> float:
        r = self.request
        if self.outcome == "timeout" and r.max_wait:
            return r.max_wait
        end = max(r.announce.every, r.callback.offer_after if r.callback else 0.0) + 1.0
        return min(end, r.max_wait) if r.max_wait else end

    def _marks(self, end: float) -> list[tuple[float, str]]:
        """(time, kind) of the updates before the outcome: positions and the offer's resync."""
        every = self.request.announce.every
        marks = [(every * n, "position") for n in range(1, 50) if every > 0 and every * n < end]
        offer = self.request.callback
        if offer is not None and offer.offer_after < end:
            marks.append((offer.offer_after, "queued"))
        return sorted(marks)

    async def enqueue(self, call_id: str, queue: str, **_: Any) -> AsyncIterator[AcdEvent]:
        where = {"position": SCRIPTED_POSITION, "eta_s": SCRIPTED_ETA}
        if self.outcome == "error":
            yield AcdEvent("error", call_id, {"message": "scripted error"})
            return
        yield AcdEvent("queued", call_id, where)
        end = self._end()
        for at, kind in self._marks(end):
            if self.callback_asked:
                break
            self.now = at
            yield AcdEvent(kind, call_id, where)
        if self.callback_asked or self.outcome == "callback":
            yield AcdEvent("callback", call_id, {"position": SCRIPTED_POSITION})
            return
        self.now = end
        if self.outcome == "timeout":
            yield AcdEvent("timeout", call_id, {"reason": "max_wait", "overflow": None})
            return
        yield AcdEvent("offer", call_id, {"agent": {"name": SCRIPTED_AGENT, "uri": None},
                                          "attempt": 1})
        await self.answered.wait()
        yield AcdEvent("connected", call_id, {"agent": SCRIPTED_AGENT, "wait_s": end})

    def agent_answered(self, call_id: str, agent: str, attempt: int) -> None:
        self.answered.set()

    def agent_failed(self, call_id: str, agent: str, attempt: int, reason: str = "no_answer") -> None:
        """A scripted agent always answers."""

    def caller_gone(self, call_id: str) -> None:
        """Nothing to release: the scripted queue ends with the wait."""

    def call_ended(self, call_id: str, outcome: str | None = None) -> None:
        """Nothing to release: the scripted queue ends with the wait."""

    def callback(self, call_id: str, number: str, uri: str | None = None) -> None:
        self.callback_asked = True


class ScriptedAgents:
    """The agents of a scripted queue: every one answers at once and takes the call (the leg
    is the agent's address), so the flow ends at the queue. The offline caller (`ScriptedCall`)
    and a SIP test call with stubbed queues (`ivr.sip.stubbed`) wait against these."""

    async def dial(self, target: str, context: Mapping[str, Any]) -> tuple[str | None, str]:
        return target, ""

    async def drop(self, leg: str) -> None:
        """Nothing to hang up."""

    async def whisper(self, leg: str, prompt: Prompt) -> None:
        """The agent's ear is not scripted."""

    async def connect(self, leg: str) -> None:
        """The flow ends here: the call is the agent's."""

    async def refer(self, target: str, context: Mapping[str, Any], timeout: float) -> bool:
        return True


@dataclass
class ScriptedCall(ScriptedAgents):
    """The scripted caller as a queue wait drives it: prompts go to the channel's window, keys
    come from the steps, and every agent answers (`ScriptedAgents`).

    Nothing here suspends, so the wait's turn (offer, key, callback request) is over before the
    scripted ACD makes its next event: the order of a case never depends on timing."""

    channel: ScriptedChannel
    call_id: str = "scripted"
    gone: bool = False

    async def hung_up(self) -> None:
        await asyncio.Event().wait()  # a scripted caller stays while waiting

    async def key_pressed(self) -> None:
        await asyncio.Event().wait()  # keys are read from the steps by `take_key`

    def take_key(self, wanted: str) -> str | None:
        return self.channel.take_key(wanted)

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool) -> None:
        await self.channel.play(prompts, barge_in=barge_in)

    def hold(self, on: bool) -> None:
        """No music in a script."""
