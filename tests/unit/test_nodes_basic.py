"""say, set, switch, hangup, record and subflow nodes: behaviour and exits."""

from __future__ import annotations

from helpers import Harness, channel_of


async def test_say_plays_text_then_follows_next(harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: a
        nodes:
          a: {say: "Hello {{ caller.number }}.", next: b}
          b: {say: ["One.", "Two."], hangup: true}
    """, caller={"number": "+15551234567"})
    assert result.ctx.path == ["a", "b"]
    assert result.ctx.prompts == ["Hello +15551234567.", "One.", "Two."]
    assert channel_of(result).played == result.ctx.prompts
    assert result.end.kind == "hangup"
    assert result.end.node == "b"
    assert result.end.by == "ivr"
    assert channel_of(result).hung_up


async def test_say_audio_file_plays_the_resolved_path(harness: Harness) -> None:
    audio = harness.root.parent / "audio"
    audio.mkdir(parents=True)
    (audio / "chime.wav").write_bytes(b"RIFF")
    result = await harness.run("""
        flow: t
        start: a
        nodes:
          a:
            say: [{audio: chime.wav}, "after the chime"]
    """)
    played = channel_of(result).played
    assert played[0] == f"[audio {harness.root / 'audio' / 'chime.wav'}]"
    assert played[1] == "after the chime"


async def test_say_without_next_ends_the_call_as_hangup(harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: a
        nodes:
          a: {say: "bye"}
    """)
    assert result.end.kind == "hangup"
    assert result.end.node == "a"


async def test_set_gives_native_types_and_reads_old_values(harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: a
        nodes:
          a:
            set:
              n: "{{ 1 + 1 }}"
              items: "{{ [1, 2, 3] }}"
              plain: hello
              number: 7
              flag: true
              nested: {x: "{{ n }}", y: [1, "{{ 2 * 3 }}"]}
              missing: "{{ nothing_here }}"
              text: "total {{ 40 + 2 }}"
            next: b
          b:
            set: {n: "{{ n * 10 }}", copy: "{{ account }}", zeros: "{{ pin }}"}
            hangup: true
    """, variables={"account": "12345678", "pin": "0042"})
    v = result.ctx.variables
    assert v["n"] == 20 and isinstance(v["n"], int)
    assert v["items"] == [1, 2, 3]
    assert v["plain"] == "hello"
    assert v["number"] == 7
    assert v["flag"] is True
    # values in a set are rendered before any is assigned: nested.x read the n before this node
    assert v["nested"] == {"x": None, "y": [1, 6]}
    assert v["missing"] is None
    assert v["text"] == "total 42"
    # copying a string variable keeps it a string (an account number must not turn into an int)
    assert v["copy"] == "12345678" and isinstance(v["copy"], str)
    assert v["zeros"] == "0042"


async def test_set_in_one_node_reads_values_from_before_the_node(harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: a
        nodes:
          a: {set: {b: 1}, next: c}
          c: {set: {a: "{{ b }}", b: 2}, hangup: true}
    """)
    assert result.ctx.variables == {"a": 1, "b": 2}


SWITCH = """
    flow: t
    start: route
    nodes:
      route:
        switch:
          - {if: "customer.tier == 'gold'", goto: gold, set: {priority: 10}}
          - {if: "customer.balance > 1000", goto: rich}
          - {else: plain}
      gold: {say: "gold", hangup: true}
      rich: {say: "rich", hangup: true}
      plain: {say: "plain", hangup: true}
"""


async def test_switch_first_true_condition_wins_and_sets(harness: Harness) -> None:
    flows = harness.load(SWITCH)
    gold = await harness.run(flows, variables={"customer": {"tier": "gold", "balance": 5000}})
    assert gold.ctx.path == ["route", "gold"]
    assert gold.ctx.variables["priority"] == 10

    rich = await harness.run(flows, variables={"customer": {"tier": "silver", "balance": 5000}})
    assert rich.ctx.path == ["route", "rich"]
    assert "priority" not in rich.ctx.variables


async def test_switch_undefined_names_are_false_and_else_is_taken(harness: Harness) -> None:
    result = await harness.run(SWITCH)
    assert result.ctx.path == ["route", "plain"]
    assert result.end.kind == "hangup"


async def test_switch_without_true_condition_or_else_ends_in_error(harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: route
        nodes:
          route:
            switch:
              - {if: "x == 1", goto: one}
          one: {say: "one"}
    """)
    assert result.end.kind == "error"
    assert result.end.node == "route"
    assert "no switch condition was true" in (result.end.message or "")


async def test_hangup_node_ends_the_call(harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: a
        nodes:
          a: {say: "bye", next: b}
          b: {hangup: true}
    """)
    assert result.ctx.path == ["a", "b"]
    assert result.end.kind == "hangup"
    assert result.end.node == "b"
    assert channel_of(result).hung_up


async def test_record_stores_the_file_and_goes_next(harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: rec
        nodes:
          rec:
            record: {prompt: "Leave a message after the tone.", max: 30s, into: message}
            next: bye
          bye: {say: "Thanks.", hangup: true}
    """)
    assert result.ctx.variables["message"] == "simulated://message.wav"
    assert result.ctx.prompts == ["Leave a message after the tone.", "Thanks."]
    assert result.ctx.path == ["rec", "bye"]


async def test_a_record_only_cycle_is_stopped_by_the_loop_guard(harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: rec
        nodes:
          rec: {record: {prompt: "Again.", max: 5s, into: take}, next: rec}
    """, max_steps=5)
    assert result.end.kind == "error"
    assert "without waiting for the caller" in (result.end.message or "")
    assert result.ctx.path == ["rec"] * 6


SUBFLOWS = (
    """
    flow: main
    start: a
    nodes:
      a: {say: "main start", next: ident}
      ident: {subflow: {flow: identify}, next: after}
      after: {say: "Hello {{ name }}", hangup: true}
    """,
    """
    flow: identify
    start: ask
    nodes:
      ask: {set: {name: Ann}, next: done}
      done: {say: "identified"}
    """,
)


async def test_subflow_runs_and_returns_to_next(harness: Harness) -> None:
    flows = harness.load(*SUBFLOWS)
    result = await harness.run(flows, flow="main")
    assert result.ctx.path == ["a", "ident", "identify/ask", "identify/done", "after"]
    assert result.ctx.prompts == ["main start", "identified", "Hello Ann"]
    assert result.end.node == "after"
    assert result.flow == "main"
    assert ("identify", "done") in result.ctx.visited


async def test_subflow_that_hangs_up_ends_the_call(harness: Harness) -> None:
    flows = harness.load(
        """
        flow: main
        start: s
        nodes:
          s: {subflow: {flow: bye}, next: never}
          never: {say: "not reached"}
        """,
        """
        flow: bye
        start: b
        nodes:
          b: {say: "goodbye", hangup: true}
        """,
    )
    result = await harness.run(flows, flow="main")
    assert result.end.kind == "hangup"
    assert "not reached" not in result.ctx.prompts


async def test_subflow_recursion_is_bounded(harness: Harness) -> None:
    flows = harness.load("""
        flow: loop
        start: s
        nodes:
          s: {subflow: {flow: loop}, next: s}
    """)
    result = await harness.run(flows)
    assert result.end.kind == "error"
    assert "nested deeper" in (result.end.message or "")
