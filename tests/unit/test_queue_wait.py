"""The caller's half of a queue wait (ivr/acd/wait.py) over a fake call control and a fake ACD:
announcements, the callback offer, agents who do not answer, a caller who leaves while an agent
rings; and the same wait under `ivr test` (the scripted caller)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers import Harness, channel_of

from ivr.acd.client import AcdEvent
from ivr.acd.wait import (
    Announcements,
    CallbackOffer,
    Handoff,
    QueueRequest,
    QueueResult,
    QueueWait,
)
from ivr.errors import CallerHangup
from ivr.flow.catalog import prompt_texts
from ivr.flow.channel import Prompt
from ivr.flow.nodes.queue import QueueNode, QueueSpec

TERMINAL = ("connected", "timeout", "callback", "error")


@dataclass
class FakeCall:
    """A caller's call: records what the wait did to it; agents answer as `answers` says
    ("answer", a failure reason, or "ring": ring until cancelled)."""

    answers: dict[str, str] = field(default_factory=dict)
    call_id: str = "c1"
    played: list[tuple[str, bool]] = field(default_factory=list)
    """(text, hold music was on when it played)"""
    holding: bool = False
    holds: list[bool] = field(default_factory=list)
    dialled: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    whispers: list[tuple[str, str]] = field(default_factory=list)
    connected: list[str] = field(default_factory=list)
    refer_ok: bool = True
    referred: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    key_event: asyncio.Event = field(default_factory=asyncio.Event)
    gone_event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def gone(self) -> bool:
        return self.gone_event.is_set()

    def press(self, key: str) -> None:
        self.keys.append(key)
        self.key_event.set()

    def hang_up(self) -> None:
        self.gone_event.set()

    async def hung_up(self) -> None:
        await self.gone_event.wait()

    async def key_pressed(self) -> None:
        if not self.keys:
            self.key_event.clear()
        await self.key_event.wait()

    def take_key(self, wanted: str) -> str | None:
        keys, self.keys = self.keys, []
        return next((k for k in keys if k in wanted), None)

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool) -> None:
        if self.gone:
            raise CallerHangup()
        self.played += [(p.text or "", self.holding) for p in prompts]

    def hold(self, on: bool) -> None:
        self.holding = on
        self.holds.append(on)

    async def dial(self, target: str, context: Mapping[str, Any]) -> tuple[str | None, str]:
        self.dialled.append(target)
        answer = self.answers.get(target, "answer")
        if answer == "ring":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.append(target)
                raise
        return (target, "") if answer == "answer" else (None, answer)

    async def drop(self, leg: str) -> None:
        self.dropped.append(leg)

    async def whisper(self, leg: str, prompt: Prompt) -> None:
        self.whispers.append((leg, prompt.text or ""))

    async def connect(self, leg: str) -> None:
        self.connected.append(leg)

    async def refer(self, target: str, context: Mapping[str, Any], timeout: float) -> bool:
        self.referred.append(target)
        return self.refer_ok


class FakeAcd:
    """The ACD as the test drives it: `send` an event, read the reports the wait made."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[AcdEvent] = asyncio.Queue()
        self.reports: list[tuple[Any, ...]] = []
        self.enqueued: dict[str, Any] = {}

    def send(self, kind: str, **data: Any) -> None:
        self.events.put_nowait(AcdEvent(kind, "c1", data))

    async def enqueue(self, call_id: str, queue: str, **kw: Any) -> AsyncIterator[AcdEvent]:
        self.enqueued = {"queue": queue, **kw}
        while True:
            ev = await self.events.get()
            yield ev
            if ev.kind in TERMINAL:
                return

    def agent_answered(self, call_id: str, agent: str, attempt: int) -> None:
        self.reports.append(("answered", agent, attempt))

    def agent_failed(self, call_id: str, agent: str, attempt: int, reason: str = "no_answer") -> None:
        self.reports.append(("failed", agent, attempt, reason))

    def caller_gone(self, call_id: str) -> None:
        self.reports.append(("caller_gone",))

    def call_ended(self, call_id: str, outcome: str | None = None) -> None:
        self.reports.append(("call_ended",))

    def callback(self, call_id: str, number: str, uri: str | None = None) -> None:
        self.reports.append(("callback", number, uri))


def request(**kw: Any) -> QueueRequest:
    """A request worded by the real queue node."""
    node = QueueNode(queue=QueueSpec(name="general"))
    if "callback" in kw:
        node = QueueNode(queue=QueueSpec(name="general", callback={"dtmf": kw["callback"].dtmf}))
    return QueueRequest(name="general", words=node.words("en-US"), **kw)


async def until(check: Callable[[], bool], timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out waiting for the wait"
        await asyncio.sleep(0.005)


def start(call: FakeCall, acd: FakeAcd, req: QueueRequest) -> asyncio.Task[QueueResult]:
    handoff = Handoff(caller={"number": "+15550001111"}, contact="sip:carol@10.0.0.5:5062",
                      flow="bank", path=("welcome", "agent"))
    return asyncio.ensure_future(QueueWait(call, acd, req, handoff, front="front:5060").run())


async def test_position_and_wait_announcements_pause_the_hold_music() -> None:
    call, acd = FakeCall(), FakeAcd()
    wait = start(call, acd, request(announce=Announcements(position=True, wait_time=True,
                                                           every=15.0)))
    acd.send("queued", position=3, eta_s=170.0)  # the answer to enqueue: not announced
    acd.send("position", position=3, eta_s=170.0)
    acd.send("position", position=1, eta_s=30.0)
    acd.send("position", position=1, eta_s=None)  # no agent staffed: no estimate
    acd.send("timeout", reason="max_wait", overflow=None)
    assert await wait == QueueResult("timeout", detail="max_wait")
    assert [text for text, _ in call.played] == [
        "You are number 3 in the queue.", "Your expected wait is about 3 minutes.",
        "You are number 1 in the queue.", "Your expected wait is about 1 minute.",
        "You are number 1 in the queue.",
    ]
    assert all(on for _, on in call.played)  # the call control pauses hold for each prompt
    assert call.holds == [True, False]
    assert acd.enqueued["announce_every"] == 15.0
    assert acd.enqueued["caller"] == {"number": "+15550001111"}
    assert acd.enqueued["path"] == ("welcome", "agent")


async def test_only_what_the_node_asks_for_is_announced() -> None:
    call, acd = FakeCall(), FakeAcd()
    wait = start(call, acd, request(announce=Announcements(position=True)))
    acd.send("position", position=2, eta_s=600.0)
    acd.send("error", reason="unknown queue")
    assert (await wait).status == "error"
    assert call.played == [("You are number 2 in the queue.", True)]


async def test_the_callback_offer_and_its_acceptance() -> None:
    call, acd = FakeCall(), FakeAcd()
    wait = start(call, acd, request(callback=CallbackOffer(offer_after=0.15, dtmf="#")))
    call.press("#")  # before the offer, the key means nothing
    await asyncio.sleep(0.05)
    assert call.played == [] and acd.reports == []
    await until(lambda: bool(call.played))  # the offer comes on time, with no ACD event
    assert call.played == [("To keep your place and be called back, press pound.", True)]
    call.press("5")
    call.press("#")
    await until(lambda: bool(acd.reports))
    assert acd.reports == [("callback", "+15550001111", "sip:carol@10.0.0.5:5062")]
    acd.send("callback", position=1)
    assert await wait == QueueResult("callback")
    assert call.played[-1] == (
        "You keep your place in the queue. We will call you back. Goodbye.", False)
    assert len(call.played) == 2  # offered once


async def test_agent_no_answer_then_the_next_agent_gets_the_caller_with_a_whisper() -> None:
    call, acd = FakeCall(answers={"sip:alice@front:5060": "no_answer"}), FakeAcd()
    wait = start(call, acd, QueueRequest(name="general", whisper="Gold customer.",
                                         context={"intent": "cards"}))
    acd.send("offer", agent={"name": "alice", "uri": None}, attempt=1)
    await until(lambda: bool(acd.reports))
    assert acd.reports == [("failed", "alice", 1, "no_answer")]
    acd.send("offer", agent={"name": "bob", "uri": "sip:bob@10.0.0.9"}, attempt=2)
    await until(lambda: len(acd.reports) == 2)
    assert acd.reports[1] == ("answered", "bob", 2)
    acd.send("connected", agent="bob", wait_s=12)
    assert await wait == QueueResult("connected", agent="bob")
    assert call.dialled == ["sip:alice@front:5060", "sip:bob@10.0.0.9"]
    assert call.whispers == [("sip:bob@10.0.0.9", "Gold customer.")]
    assert call.connected == ["sip:bob@10.0.0.9"]
    assert acd.reports[-1] == ("call_ended",)
    assert not call.holding


async def test_ring_all_drops_the_agents_who_lost_and_cancel_stops_a_ring() -> None:
    call = FakeCall(answers={"sip:carl@front:5060": "ring"})
    acd = FakeAcd()
    wait = start(call, acd, QueueRequest(name="general"))
    for n, name in enumerate(("alice", "bob", "carl"), 1):
        acd.send("offer", agent={"name": name}, attempt=n)
    await until(lambda: len(acd.reports) == 2 and len(call.dialled) == 3)
    acd.send("cancel", agent="carl", reason="answered elsewhere")
    await until(lambda: call.cancelled == ["sip:carl@front:5060"])
    acd.send("connected", agent="alice")
    assert await wait == QueueResult("connected", agent="alice")
    assert call.dropped == ["sip:bob@front:5060"]
    assert call.connected == ["sip:alice@front:5060"]


async def test_caller_hangs_up_while_an_agent_rings() -> None:
    call, acd = FakeCall(answers={"sip:alice@front:5060": "ring"}), FakeAcd()
    wait = start(call, acd, QueueRequest(name="general"))
    acd.send("offer", agent={"name": "alice"}, attempt=1)
    await until(lambda: bool(call.dialled))
    call.hang_up()
    with pytest.raises(CallerHangup):
        await wait
    assert call.cancelled == ["sip:alice@front:5060"]  # the ring is hung up with the wait
    assert acd.reports == [("caller_gone",)]  # and no agent_failed for a caller who left
    assert call.holds[-1] is False


async def test_a_refused_refer_keeps_the_place_and_the_next_agent_takes_it() -> None:
    call, acd = FakeCall(refer_ok=False), FakeAcd()
    wait = start(call, acd, QueueRequest(name="general", mode="refer"))
    acd.send("offer", agent={"name": "alice"}, attempt=1)
    await until(lambda: bool(acd.reports))
    assert acd.reports == [("failed", "alice", 1, "reject")]
    assert call.holding  # back on hold
    call.refer_ok = True
    acd.send("offer", agent={"name": "bob"}, attempt=2)
    assert await wait == QueueResult("connected", agent="bob")
    assert call.referred == ["sip:alice@front:5060", "sip:bob@front:5060"]
    assert acd.reports[1:] == [("answered", "bob", 2), ("call_ended",)]


# -- the words are the node's, catalogued for pre-rendering -----------------------------------
BANK_QUEUE = """
    flow: q
    start: agent
    nodes:
      agent:
        queue:
          name: general
          announce: {position: true, wait_time: true, every: 30s}
          max_wait: 5m
          callback: {offer_after: 60s, dtmf: "1"}
          whisper: "{{ intent }} caller"
        on_timeout: bye
      bye: {say: "Goodbye.", hangup: true}
"""


def test_the_wait_words_are_in_the_prompt_catalogue(harness: Harness) -> None:
    texts = prompt_texts(harness.load(BANK_QUEUE)["q"])
    for text in ("You are number 1 in the queue.", "You are number 10 in the queue.",
                 "Your expected wait is about 1 minute.",
                 "Your expected wait is about 10 minutes.",
                 "To keep your place and be called back, press 1.",
                 "You keep your place in the queue. We will call you back. Goodbye.",
                 "{{ intent }} caller", "Goodbye."):
        assert text in texts


# -- the same wait under `ivr test` -------------------------------------------------------------
async def test_a_scripted_caller_hears_the_wait_and_takes_the_callback(harness: Harness) -> None:
    result = await harness.run(
        BANK_QUEUE, "expect:You are number 1 in the queue", "expect:about 2 minutes",
        "expect:press 1", "dtmf:1", "expect:We will call you back")
    assert channel_of(result).failures == []
    assert result.end.kind == "queue"
    assert channel_of(result).played == [
        "You are number 1 in the queue.", "Your expected wait is about 2 minutes.",
        "You are number 1 in the queue.", "Your expected wait is about 2 minutes.",
        "To keep your place and be called back, press 1.",
        "You keep your place in the queue. We will call you back. Goodbye."]


async def test_a_scripted_wait_that_times_out_hears_every_update(harness: Harness) -> None:
    result = await harness.run(BANK_QUEUE, queue_results={"general": "timeout"})
    played = channel_of(result).played
    assert played.count("You are number 1 in the queue.") == 9  # every 30 s of 5 minutes
    assert played.count("To keep your place and be called back, press 1.") == 1
    assert played[-1] == "Goodbye."
    assert result.ctx.path == ["agent", "bye"]
