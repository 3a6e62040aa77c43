"""A SIP call under test hooks: the case's queue and transfer outcomes instead of real ones.

`ivr test --sip` sends a case's stubs with the call (ivr/sip/test_hooks.py); on a server with
`test_hooks: true` the worker runs that call on `StubbedSipChannel`. Prompts, DTMF, speech, hold
music and the queue wait's announcements are the real SIP ones; what the case stubs is decided
as offline: the wait runs against the scripted ACD (`ivr.flow.scripted.ScriptedAcd`, in
virtual time) and its agents answer at once (`ScriptedAgents`); a transfer succeeds or fails as
the case says, and nothing leaves the worker; a `record` beeps and keeps nothing (as offline).

Virtual time makes a 5 minute wait's position updates arrive back to back; over SIP each is a
real prompt, so an announcement the caller has just heard word for word is not played again
(the wait is as immediate as offline, and the caller still hears every distinct sentence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ivr.acd.wait import QueueRequest, QueueResult, QueueWait
from ivr.flow.channel import Prompt, RecordRequest, TransferRequest
from ivr.flow.scripted import ScriptedAcd, ScriptedAgents, simulated_recording
from ivr.flow.stubs import Stubs
from ivr.sip.channel import SipChannel
from ivr.sip.control import SipCallControl


@dataclass
class StubbedAgents(ScriptedAgents):
    """The real caller (prompts, keys, hold music, hangup) waiting for scripted agents."""

    control: SipCallControl
    said: set[tuple[str, ...]] = field(default_factory=set)
    """The announcements already played in this wait (see the module doc)."""

    @property
    def call_id(self) -> str:
        return self.control.call_id

    @property
    def gone(self) -> bool:
        return self.control.gone

    async def hung_up(self) -> None:
        await self.control.hung_up()

    async def key_pressed(self) -> None:
        await self.control.key_pressed()

    def take_key(self, wanted: str) -> str | None:
        return self.control.take_key(wanted)

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool) -> None:
        words = tuple(p.text or p.audio or "" for p in prompts)
        if words in self.said:
            self.control.check()
            return
        self.said.add(words)
        await self.control.play(prompts, barge_in=barge_in)

    def hold(self, on: bool) -> None:
        self.control.hold(on)


@dataclass
class StubbedSipChannel(SipChannel):
    stubs: Stubs = field(default_factory=Stubs)

    async def enqueue(self, request: QueueRequest) -> QueueResult:
        self._check()
        acd = ScriptedAcd(request, self.stubs.queue_outcome(request.name))
        await self.control.prepare_hold(Path(self.audio_dir) / "hold.wav")
        wait = QueueWait(StubbedAgents(self.control), acd, request, self._handoff(),
                         front=self.front, clock=acd.clock)
        return await wait.run()

    async def transfer(self, request: TransferRequest) -> bool:
        self._check()
        return self.stubs.transfer_outcome(request.to)

    async def record(self, request: RecordRequest) -> str | None:
        """The beep, then what a scripted record keeps (a case may expect its name)."""
        self._check()
        if request.beep and self.beep is not None:
            await self.session.play_files([str(self.beep)], barge_in=False)
        self._check()
        return simulated_recording(request)
