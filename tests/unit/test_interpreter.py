"""The interpreter: paths, ends, the loop guard, and the scripted channel's DTMF buffer."""

from __future__ import annotations

import pytest
from helpers import Harness, channel_of

from ivr.flow.channel import ListenSpec
from ivr.flow.context import MAX_STEPS_WITHOUT_INPUT
from ivr.flow.scripted import take_digits

LOOP = """
    flow: spin
    start: a
    nodes:
      a: {set: {n: "{{ (n or 0) + 1 }}"}, next: b}
      b: {say: "again", next: a}
"""


async def test_a_flow_that_loops_without_input_stops_with_a_clear_error(harness: Harness) -> None:
    result = await harness.run(LOOP)
    assert result.end.kind == "error"
    message = result.end.message or ""
    assert f"flow passed {MAX_STEPS_WITHOUT_INPUT} nodes without waiting for the caller" in message
    assert "a goto cycle has no input node or exit" in message
    assert len(result.ctx.path) == MAX_STEPS_WITHOUT_INPUT + 1
    assert result.ctx.variables["n"] == MAX_STEPS_WITHOUT_INPUT // 2
    assert channel_of(result).hung_up  # the IVR hangs up the call it cannot continue


async def test_input_resets_the_loop_guard(harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: ask
        nodes:
          ask:
            menu: {prompt: "Press 1 to go round.", options: [{dtmf: "1", goto: s1}]}
            on_fail: bye
          s1: {say: "one", next: s2}
          s2: {say: "two", next: s3}
          s3: {say: "three", next: ask}
          bye: {say: "bye"}
    """, "dtmf:1", "dtmf:1", "dtmf:1", "hangup", max_steps=4)
    # 4 nodes per round trip stays within the bound because the menu waits for the caller
    assert result.end.kind == "hangup"
    assert result.end.by == "caller"
    assert result.ctx.path.count("ask") == 4


async def test_the_loop_bound_is_enforced_exactly(harness: Harness) -> None:
    flows = harness.load("""
        flow: t
        start: a
        nodes:
          a: {say: "a", next: b}
          b: {say: "b", next: c}
          c: {say: "c"}
    """)
    assert (await harness.run(flows, max_steps=3)).end.kind == "hangup"
    stopped = await harness.run(flows, max_steps=2)
    assert stopped.end.kind == "error"
    assert stopped.end.node == "c"


async def test_result_json_has_the_simulate_keys(harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: m
        nodes:
          m:
            menu: {prompt: "Press 1.", options: [{dtmf: "1", goto: bye, set: {picked: one}}]}
            on_fail: bye
          bye: {say: "Bye.", hangup: true}
    """, "dtmf:1")
    doc = result.as_json()
    assert {"flow", "path", "prompts", "inputs", "variables", "end"} <= set(doc)
    assert doc["flow"] == "t"
    assert doc["path"] == ["m", "bye"]
    assert doc["prompts"] == ["Press 1.", "Bye."]
    assert doc["inputs"] == [{"node": "m", "mode": "dtmf", "value": "1", "confidence": 1.0}]
    assert doc["variables"] == {"picked": "one"}
    assert doc["end"] == {"kind": "hangup", "node": "bye", "by": "ivr"}


async def test_expect_prompt_steps_are_checked(harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: m
        nodes:
          m:
            menu: {prompt: "Welcome. Press 1.", options: [{dtmf: "1", goto: bye}]}
            on_fail: bye
          bye: {say: "Goodbye.", hangup: true}
    """, "expect:welcome", "dtmf:1", "expect:GOODBYE", "expect:not said")
    failures = channel_of(result).failures
    assert len(failures) == 1
    assert "expected a prompt containing 'not said'" in failures[0]
    assert "Goodbye." in failures[0]


async def test_unused_steps_are_reported(harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: a
        nodes:
          a: {say: "hi"}
    """, "dtmf:1")
    assert channel_of(result).failures == ["the flow ended before these steps were used: ['dtmf: 1']"]


@pytest.mark.parametrize(
    ("buffer", "spec", "taken", "rest"),
    [
        ("12345678#1", ListenSpec(max_digits=8, terminator="#"), "12345678", "1"),
        ("123#", ListenSpec(max_digits=8, terminator="#"), "123", ""),
        ("1234", ListenSpec(max_digits=2, terminator="#"), "12", "34"),
        ("#", ListenSpec(max_digits=8, terminator="#"), "", ""),
        ("13", ListenSpec(max_digits=1, dtmf_keys=("1", "2")), "1", "3"),
        ("12", ListenSpec(max_digits=2, dtmf_keys=("1", "12")), "12", ""),
        ("*9", ListenSpec(max_digits=4, terminator="#", dtmf_keys=("*",)), "*", "9"),
    ],
)
def test_take_digits(buffer: str, spec: ListenSpec, taken: str, rest: str) -> None:
    assert take_digits(buffer, spec) == (taken, rest)
