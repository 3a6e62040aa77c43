"""The PCI pause seam: a sensitive collect (and a prompt that reads a sensitive value out) runs in
a private span of the channel; everything the caller types or hears in it is inside the span."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from helpers import Harness, steps

from ivr.flow.channel import Input, ListenSpec, Prompt
from ivr.flow.context import CallContext
from ivr.flow.interpreter import Interpreter, Result
from ivr.flow.pauses import PauseLog
from ivr.flow.scripted import ScriptedChannel

BANK = """
    flow: bank
    start: menu
    nodes:
      menu:
        menu:
          prompt: "Press 1 for your balance."
          options: [{dtmf: "1", goto: ask}]
        on_fail: bye
      ask:
        collect:
          prompt: "Enter your account number, then press pound."
          digits: {min: 8, max: 8, terminator: "#"}
          into: account
          sensitive: true
          confirm: "You entered {{ account | say_digits }}. Press 1 if that is right."
        next: tell
        on_fail: bye
      tell: {say: "Thanks. Your number ends {{ account }}.", next: plain}
      plain:
        collect: {prompt: "Enter a code.", digits: {min: 1, max: 4, terminator: "#"}, into: code}
        next: bye
      bye: {say: "Goodbye.", hangup: true}
"""


@dataclass
class WatchingChannel(ScriptedChannel):
    """Notes, for every prompt played and input taken, whether a private span was open."""

    seen: list[tuple[str, str, bool]] = field(default_factory=list)

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool = True) -> None:
        for p in prompts:
            self.seen.append(("play", p.describe(), self.pauses.paused))
        await super().play(prompts, barge_in=barge_in)

    async def listen(self, spec: ListenSpec) -> Input | None:
        got = await super().listen(spec)
        self.seen.append(("listen", got.value if got else "", self.pauses.paused))
        return got


async def _run(harness: Harness, *script: str) -> tuple[Result, WatchingChannel]:
    flows = harness.load(BANK)
    channel = WatchingChannel(steps=steps(*script))
    ctx = CallContext(channel=channel, config=harness.config, flows=flows, flow=flows["bank"])
    result = await Interpreter(ctx).run()
    return result, channel


async def test_a_sensitive_collect_is_one_private_span_around_its_prompt_digits_and_readback(
        harness: Harness) -> None:
    result, channel = await _run(harness, "dtmf:1", "dtmf:12345678#", "dtmf:1", "dtmf:7#")
    assert result.ctx.path == ["menu", "ask", "tell", "plain", "bye"]
    paused = [(kind, what) for kind, what, private in channel.seen if private]
    assert paused == [
        ("play", "Enter your account number, then press pound."),
        ("listen", "12345678"),
        ("play", "You entered ****5678. Press 1 if that is right."),  # as records show it
        ("listen", "1"),
        ("play", "Thanks. Your number ends ****5678."),  # reads the value out: private too
    ]
    assert ("listen", "1", False) in channel.seen[:2]  # the menu before is recorded
    assert ("listen", "7", False) in channel.seen  # a plain collect is recorded
    assert [p.node for p in channel.pauses.spans] == ["ask", "tell"]
    assert not channel.pauses.paused


async def test_retries_stay_inside_the_one_span(harness: Harness) -> None:
    _, channel = await _run(harness, "dtmf:1", "dtmf:12#", "dtmf:12345678#", "dtmf:1", "dtmf:7#")
    assert [p.node for p in channel.pauses.spans] == ["ask", "tell"]
    assert ("listen", "12", True) in channel.seen


async def test_a_caller_who_hangs_up_inside_the_collect_closes_the_span(harness: Harness) -> None:
    result, channel = await _run(harness, "dtmf:1", "hangup")
    assert result.end.kind == "hangup" and result.end.by == "caller"
    assert [p.node for p in channel.pauses.spans] == ["ask"]
    assert not channel.pauses.paused


def test_nested_spans_count_once_and_mute_once() -> None:
    now = [1000]
    changes: list[bool] = []
    log = PauseLog(clock_ms=lambda: now[0], on_change=changes.append)
    log.enter("ask")
    now[0] = 1500
    log.enter("ask")  # the confirmation prompt inside the collect
    now[0] = 2000
    log.leave()
    assert log.paused and changes == [True]
    now[0] = 2600
    log.leave()
    assert changes == [True, False]
    assert log.as_json() == [{"node": "ask", "start_ms": 1000, "end_ms": 2600}]
    log.leave()  # an extra leave is harmless
    assert changes == [True, False]


def test_close_ends_an_open_span_at_once() -> None:
    now = [0]
    log = PauseLog(clock_ms=lambda: now[0])
    log.enter("ask")
    now[0] = 700
    log.close()
    assert log.as_json() == [{"node": "ask", "start_ms": 0, "end_ms": 700}] and not log.paused


def test_the_tail_keeps_the_span_open_and_a_span_within_it_extends_it() -> None:
    now = [0]
    log = PauseLog(clock_ms=lambda: now[0], tail_ms=300)
    log.enter("ask")
    now[0] = 2000
    log.leave()
    assert log.as_json() == [{"node": "ask", "start_ms": 0, "end_ms": 2300}]
    now[0] = 2200  # the readback prompt of the next node, inside the tail: one pause
    log.enter("tell")
    now[0] = 4000
    log.leave()
    assert log.as_json() == [{"node": "ask", "start_ms": 0, "end_ms": 4300}]
    now[0] = 9000
    log.enter("pin")
    now[0] = 9500
    log.close()  # the call ended inside: no tail
    assert log.as_json()[1] == {"node": "pin", "start_ms": 9000, "end_ms": 9500}


def test_a_flow_can_ask_for_its_calls_to_be_recorded(harness: Harness) -> None:
    flows = harness.load("""
        flow: quality
        record_calls: true
        start: hi
        nodes:
          hi: {say: "Hello.", hangup: true}
    """)
    assert flows["quality"].header.record_calls
    assert harness.config.recording.wanted("5000", "quality", flows["quality"].header.record_calls)
    assert not harness.config.recording.wanted("5000", "other", False)
