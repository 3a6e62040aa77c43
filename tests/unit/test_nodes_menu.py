"""menu: options by DTMF and speech, noinput/nomatch escalation, retries, globals."""

from __future__ import annotations

import pytest
from helpers import Harness, channel_of, steps

from ivr.flow.channel import Input, ListenSpec
from ivr.flow.context import CallContext
from ivr.flow.interpreter import Interpreter
from ivr.flow.model import Flow
from ivr.flow.scripted import ScriptedChannel

MENU = """
    flow: m
    defaults: {retries: 3}
    globals:
      - {dtmf: "0", speech: [agent, operator], goto: agent, set: {via: global}}
      - {dtmf: "*", speech: [repeat that], action: repeat}
    start: main
    nodes:
      main:
        menu:
          prompt: "Main menu. Press 1 for balance."
          options:
            - {dtmf: "1", speech: [balance, account balance], goto: balance}
            - {dtmf: "2", speech: [cards, lost card], goto: cards, set: {intent: cards, n: "{{ 2 * 21 }}"}}
          noinput: ["NI one.", "NI two."]
          nomatch: ["NM one.", "NM two.", "NM three."]
        on_fail: failed
      balance: {say: "balance node", hangup: true}
      cards: {say: "cards node", hangup: true}
      agent: {say: "agent node", hangup: true}
      failed: {say: "failed node", hangup: true}
"""


@pytest.fixture
def menu_flows(harness: Harness) -> dict[str, Flow]:
    return harness.load(MENU)


async def test_dtmf_option_goes_to_its_target(harness: Harness, menu_flows: dict[str, Flow]) -> None:
    result = await harness.run(menu_flows, "dtmf:1")
    assert result.ctx.path == ["main", "balance"]
    assert result.ctx.inputs == [{"node": "main", "mode": "dtmf", "value": "1", "confidence": 1.0}]
    assert result.ctx.last["value"] == "1"


async def test_speech_option_longest_phrase_wins_and_option_set_applies(
    harness: Harness, menu_flows: dict[str, Flow]
) -> None:
    result = await harness.run(menu_flows, "say:I have a lost card please")
    assert result.ctx.path == ["main", "cards"]
    assert result.ctx.variables == {"intent": "cards", "n": 42}
    assert result.ctx.inputs[0]["mode"] == "speech"


async def test_noinput_prompts_in_order_last_repeats_then_on_fail(
    harness: Harness, menu_flows: dict[str, Flow]
) -> None:
    result = await harness.run(menu_flows, "silence", "silence", "silence", "silence")
    assert result.ctx.prompts == [
        "Main menu. Press 1 for balance.",
        "NI one.", "Main menu. Press 1 for balance.",
        "NI two.", "Main menu. Press 1 for balance.",
        "NI two.", "Main menu. Press 1 for balance.",  # the last escalation prompt repeats
        "failed node",
    ]
    assert result.ctx.path == ["main", "failed"]  # the 4th event (retries + 1) goes to on_fail


async def test_nomatch_and_noinput_count_together_with_their_own_lists(
    harness: Harness, menu_flows: dict[str, Flow]
) -> None:
    result = await harness.run(menu_flows, "dtmf:9", "silence", "say:something else", "dtmf:1")
    assert result.ctx.prompts == [
        "Main menu. Press 1 for balance.",
        "NM one.", "Main menu. Press 1 for balance.",
        "NI one.", "Main menu. Press 1 for balance.",
        "NM two.", "Main menu. Press 1 for balance.",
        "balance node",
    ]
    assert result.ctx.path == ["main", "balance"]

    failed = await harness.run(menu_flows, "dtmf:9", "silence", "dtmf:7", "say:nothing")
    assert failed.ctx.path == ["main", "failed"]


async def test_retries_zero_fails_on_the_first_event(harness: Harness) -> None:
    result = await harness.run("""
        flow: m
        start: main
        nodes:
          main:
            menu: {prompt: "p", options: [{dtmf: "1", goto: ok}], retries: 0}
            on_fail: failed
          ok: {say: "ok"}
          failed: {say: "failed"}
    """, "silence")
    assert result.ctx.prompts == ["p", "failed"]


async def test_default_escalation_prompts_when_none_are_given(harness: Harness) -> None:
    result = await harness.run("""
        flow: m
        defaults: {retries: 1}
        start: main
        nodes:
          main:
            menu: {prompt: "p", options: [{dtmf: "1", goto: ok}], on_fail: failed}
          ok: {say: "ok"}
          failed: {say: "failed"}
    """, "dtmf:5", "silence")
    assert result.ctx.prompts == ["p", "Sorry, I did not understand.", "p", "failed"]


async def test_low_confidence_speech_is_a_nomatch(harness: Harness, menu_flows: dict[str, Flow]) -> None:
    def recognizer(wav: str, spec: ListenSpec) -> Input:
        assert "balance" in spec.phrases and "agent" in spec.phrases  # options + globals
        return Input("speech", "balance", confidence=0.2 if wav == "mumble.wav" else 0.9)

    channel = ScriptedChannel(steps=steps("audio:mumble.wav", "audio:clear.wav"), recognizer=recognizer)
    ctx = CallContext(channel=channel, config=harness.config, flows=menu_flows, flow=menu_flows["m"])
    result = await Interpreter(ctx).run()
    assert result.ctx.prompts[1] == "NM one."
    assert result.ctx.path == ["main", "balance"]
    assert result.ctx.inputs == [{"node": "main", "mode": "speech", "value": "balance", "confidence": 0.9}]


async def test_repeat_global_replays_without_counting(harness: Harness, menu_flows: dict[str, Flow]) -> None:
    # 3 events + 2 repeats and still not failed: repeats do not count against retries
    result = await harness.run(
        menu_flows, "silence", "dtmf:*", "silence", "say:repeat that", "silence", "dtmf:1"
    )
    assert result.ctx.path == ["main", "balance"]
    prompt = "Main menu. Press 1 for balance."
    assert result.ctx.prompts == [
        prompt, "NI one.", prompt, prompt, "NI two.", prompt, prompt, "NI two.", prompt,
        "balance node",
    ]


async def test_global_goto_from_menu_by_dtmf_and_speech(
    harness: Harness, menu_flows: dict[str, Flow]
) -> None:
    by_key = await harness.run(menu_flows, "dtmf:0")
    assert by_key.ctx.path == ["main", "agent"]
    assert by_key.ctx.variables["via"] == "global"

    by_voice = await harness.run(menu_flows, "say:let me talk to an operator")
    assert by_voice.ctx.path == ["main", "agent"]


async def test_option_wins_over_a_global_with_the_same_key_and_phrase(harness: Harness) -> None:
    flows = harness.load("""
        flow: m
        globals:
          - {dtmf: "0", speech: [agent], goto: agent}
        start: main
        nodes:
          main:
            menu:
              prompt: "p"
              options: [{dtmf: "0", speech: [agent], goto: own}]
            on_fail: agent
          own: {say: "own option"}
          agent: {say: "global agent"}
    """)
    by_key = await harness.run(flows, "dtmf:0")
    assert by_key.ctx.path == ["main", "own"]
    by_voice = await harness.run(flows, "say:agent")
    assert by_voice.ctx.path == ["main", "own"]


async def test_multi_digit_keys_and_type_ahead_across_menus(harness: Harness) -> None:
    flows = harness.load("""
        flow: m
        start: one
        nodes:
          one:
            menu:
              prompt: "first"
              options: [{dtmf: "1", goto: two}, {dtmf: "12", goto: wrong}]
            on_fail: bye
          two:
            menu:
              prompt: "second"
              options: [{dtmf: "3", goto: three}]
            on_fail: bye
          three: {say: "three", hangup: true}
          wrong: {say: "wrong"}
          bye: {say: "bye"}
    """)
    # "12" is a whole key of the first menu
    result = await harness.run(flows, "dtmf:12")
    assert result.ctx.path == ["one", "wrong"]
    # after "1" the entry may still become "12": "13" is not a key, so a nomatch
    ambiguous = await harness.run(flows, "dtmf:13", "dtmf:1", "dtmf:3")
    assert ambiguous.ctx.path == ["one", "two", "three"]
    assert [i["value"] for i in ambiguous.ctx.inputs] == ["1", "3"]
    assert ambiguous.ctx.prompts[1] == "Sorry, I did not understand."


async def test_type_ahead_answers_the_next_menu_from_the_buffer(harness: Harness) -> None:
    flows = harness.load("""
        flow: m
        start: one
        nodes:
          one:
            menu: {prompt: "first", options: [{dtmf: "1", goto: two}, {dtmf: "2", goto: bye}]}
            on_fail: bye
          two:
            menu: {prompt: "second", options: [{dtmf: "3", goto: three}]}
            on_fail: bye
          three: {say: "three", hangup: true}
          bye: {say: "bye"}
    """)
    typed = await harness.run(flows, "dtmf:13")
    assert typed.ctx.path == ["one", "two", "three"]
    assert [i["value"] for i in typed.ctx.inputs] == ["1", "3"]
    assert typed.ctx.prompts == ["first", "second", "three"]


async def test_on_fail_inside_menu_is_accepted(harness: Harness) -> None:
    result = await harness.run("""
        flow: m
        defaults: {retries: 0}
        start: main
        nodes:
          main:
            menu: {prompt: "p", options: [{dtmf: "1", goto: ok}], on_fail: failed}
          ok: {say: "ok"}
          failed: {say: "failed"}
    """, "silence")
    assert result.ctx.path == ["main", "failed"]


async def test_menu_waiting_for_input_with_no_script_left_ends_inputs_exhausted(
    harness: Harness, menu_flows: dict[str, Flow]
) -> None:
    result = await harness.run(menu_flows)
    assert result.end.kind == "inputs_exhausted"
    assert result.end.node == "main"


async def test_caller_hangup_during_menu(harness: Harness, menu_flows: dict[str, Flow]) -> None:
    result = await harness.run(menu_flows, "hangup")
    assert result.end.kind == "hangup"
    assert result.end.by == "caller"
    assert result.end.node == "main"
    assert channel_of(result).hung_up
