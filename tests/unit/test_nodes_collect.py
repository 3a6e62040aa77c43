"""collect: digits with terminator and length bounds, speech grammars, confirmation, globals."""

from __future__ import annotations

import pytest
from helpers import Harness

from ivr.flow.model import Flow

ACCOUNT = """
    flow: c
    defaults: {retries: 2}
    globals:
      - {dtmf: "0", speech: [agent], goto: agent}
      - {dtmf: "*", action: repeat}
    start: ask
    nodes:
      ask:
        collect:
          prompt: "Enter your account number, then press pound."
          digits: {min: 4, max: 8, terminator: "#"}
          speech: digits
          into: account
          nomatch: ["That is not an account number."]
        next: done
        on_fail: failed
      done: {say: "Got {{ account }}.", hangup: true}
      agent: {say: "agent node", hangup: true}
      failed: {say: "failed node", hangup: true}
"""


@pytest.fixture
def account_flows(harness: Harness) -> dict[str, Flow]:
    return harness.load(ACCOUNT)


async def test_digits_up_to_the_terminator(harness: Harness, account_flows: dict[str, Flow]) -> None:
    result = await harness.run(account_flows, "dtmf:123456#")
    assert result.ctx.variables["account"] == "123456"
    assert result.ctx.path == ["ask", "done"]
    assert result.ctx.prompts[-1] == "Got 123456."
    assert result.ctx.inputs == [{"node": "ask", "mode": "dtmf", "value": "123456", "confidence": 1.0}]


async def test_max_digits_end_the_entry_without_a_terminator(
    harness: Harness, account_flows: dict[str, Flow]
) -> None:
    result = await harness.run(account_flows, "dtmf:12345678")
    assert result.ctx.variables["account"] == "12345678"


async def test_too_few_digits_is_a_nomatch(harness: Harness, account_flows: dict[str, Flow]) -> None:
    result = await harness.run(account_flows, "dtmf:12#", "dtmf:1234#")
    assert result.ctx.prompts[:3] == [
        "Enter your account number, then press pound.",
        "That is not an account number.",
        "Enter your account number, then press pound.",
    ]
    assert result.ctx.variables["account"] == "1234"


async def test_retries_exhausted_goes_to_on_fail(harness: Harness, account_flows: dict[str, Flow]) -> None:
    result = await harness.run(account_flows, "dtmf:1#", "silence", "dtmf:99#")
    assert result.ctx.path == ["ask", "failed"]
    assert "account" not in result.ctx.variables


async def test_speech_digits_grammar(harness: Harness, account_flows: dict[str, Flow]) -> None:
    result = await harness.run(account_flows, "say:one two three four five six seven eight")
    assert result.ctx.variables["account"] == "12345678"
    assert result.ctx.inputs[0]["mode"] == "speech"


async def test_speech_digits_respect_the_length_bounds(
    harness: Harness, account_flows: dict[str, Flow]
) -> None:
    result = await harness.run(account_flows, "say:one two", "say:oh double four nine")
    assert result.ctx.prompts[1] == "That is not an account number."
    assert result.ctx.variables["account"] == "0449"


async def test_global_zero_goes_to_agent_only_when_not_a_valid_entry(
    harness: Harness, account_flows: dict[str, Flow]
) -> None:
    # "0" alone is not a 4..8 digit account: the global link takes it
    result = await harness.run(account_flows, "dtmf:0")
    assert result.ctx.path == ["ask", "agent"]
    # "0000" is a valid value: it is collected, not treated as the global
    valid = await harness.run(account_flows, "dtmf:0000#")
    assert valid.ctx.path == ["ask", "done"]
    assert valid.ctx.variables["account"] == "0000"


async def test_zero_is_a_value_when_one_digit_is_valid(harness: Harness) -> None:
    result = await harness.run("""
        flow: c
        globals:
          - {dtmf: "0", goto: agent}
        start: ask
        nodes:
          ask:
            collect: {prompt: "How many?", digits: {min: 1, max: 2}, into: count}
            next: done
            on_fail: agent
          done: {say: "{{ count }}", hangup: true}
          agent: {say: "agent node"}
    """, "dtmf:0#")
    assert result.ctx.path == ["ask", "done"]
    assert result.ctx.variables["count"] == "0"


async def test_global_speech_goto_and_star_repeat_from_collect(
    harness: Harness, account_flows: dict[str, Flow]
) -> None:
    by_voice = await harness.run(account_flows, "say:agent")
    assert by_voice.ctx.path == ["ask", "agent"]

    # "*" is a whole key in a collect (not a digit): it repeats the prompt without counting
    repeated = await harness.run(account_flows, "dtmf:1#", "dtmf:*", "dtmf:2#", "dtmf:5555#")
    assert repeated.ctx.path == ["ask", "done"]
    assert repeated.ctx.variables["account"] == "5555"


CONFIRM = """
    flow: c
    defaults: {retries: 2}
    start: ask
    nodes:
      ask:
        collect:
          prompt: "Enter your eight digit account number."
          digits: {min: 8, max: 8, terminator: "#"}
          speech: digits
          into: account
          confirm: "You entered {{ account | say_digits }}. Press 1 or say yes if that is right."
        next: done
        on_fail: failed
      done: {say: "Thanks.", hangup: true}
      failed: {say: "failed node", hangup: true}
"""


@pytest.mark.parametrize("answer", ["dtmf:1", "say:yes that's right", "say:yes"])
async def test_confirmation_yes(harness: Harness, answer: str) -> None:
    result = await harness.run(CONFIRM, "dtmf:12345678#", answer)
    assert result.ctx.path == ["ask", "done"]
    assert result.ctx.variables["account"] == "12345678"
    assert "You entered 1 2 3 4 5 6 7 8. Press 1 or say yes if that is right." in result.ctx.prompts
    assert result.ctx.last["value"] == "yes"


@pytest.mark.parametrize("answer", ["dtmf:2", "say:no"])
async def test_confirmation_no_asks_again(harness: Harness, answer: str) -> None:
    result = await harness.run(CONFIRM, "dtmf:12345678#", answer, "dtmf:87654321#", "dtmf:1")
    assert result.ctx.path == ["ask", "done"]
    assert result.ctx.variables["account"] == "87654321"
    assert result.ctx.prompts.count("Enter your eight digit account number.") == 2
    assert "Let's try again." in result.ctx.prompts


async def test_confirmation_rejections_count_against_retries(harness: Harness) -> None:
    result = await harness.run(
        CONFIRM, "dtmf:11111111#", "dtmf:2", "dtmf:22222222#", "dtmf:2", "dtmf:33333333#", "say:no"
    )
    assert result.ctx.path == ["ask", "failed"]
    assert "account" not in result.ctx.variables


async def test_type_ahead_fills_collect_and_answers_confirmation(harness: Harness) -> None:
    # one DTMF burst: the entry up to '#' fills the collect, the '1' after it confirms
    result = await harness.run(CONFIRM, "dtmf:12345678#1")
    assert result.ctx.path == ["ask", "done"]
    assert result.ctx.variables["account"] == "12345678"
    assert [i["value"] for i in result.ctx.inputs] == ["12345678", "1"]


async def test_type_ahead_keeps_the_rest_for_the_next_node(harness: Harness) -> None:
    result = await harness.run("""
        flow: c
        start: a
        nodes:
          a:
            collect: {prompt: "first", digits: {min: 3, max: 3, terminator: "#"}, into: a}
            next: b
          b:
            collect: {prompt: "second", digits: {min: 2, max: 4, terminator: "#"}, into: b}
            next: done
          done: {say: "{{ a }}-{{ b }}"}
    """, "dtmf:12345#")
    # max 3 ends the first entry; "45#" stays buffered and fills the second collect
    assert result.ctx.variables == {"a": "123", "b": "45"}
    assert result.ctx.prompts == ["first", "second", "123-45"]


async def test_speech_phrase_list(harness: Harness) -> None:
    flows = harness.load("""
        flow: c
        start: ask
        nodes:
          ask:
            collect: {prompt: "Which colour?", speech: [red, green, dark blue], into: colour}
            next: done
          done: {say: "{{ colour }}"}
    """)
    result = await harness.run(flows, "say:I think dark blue")
    assert result.ctx.variables["colour"] == "dark blue"
    # speech-only collect: DTMF is a nomatch
    keyed = await harness.run(flows, "dtmf:1", "say:red")
    assert keyed.ctx.prompts[1] == "Sorry, I did not understand."
    assert keyed.ctx.variables["colour"] == "red"


@pytest.mark.parametrize(
    ("grammar", "said", "value"),
    [
        ("number", "one hundred and twenty five", "125"),
        ("currency", "forty two dollars", "42"),
        ("yes_no", "yeah sure", "yes"),
        ("yes_no", "no thanks", "no"),
        ("date", "it is 2026-03-02 i think", "2026-03-02"),
    ],
)
async def test_builtin_speech_grammars(harness: Harness, grammar: str, said: str, value: str) -> None:
    result = await harness.run(f"""
        flow: c
        start: ask
        nodes:
          ask:
            collect: {{prompt: "Say it.", speech: {grammar}, into: v}}
            next: done
          done: {{say: "ok"}}
    """, f"say:{said}")
    assert result.ctx.variables["v"] == value


async def test_yes_no_grammar_answers_by_dtmf(harness: Harness) -> None:
    result = await harness.run("""
        flow: c
        start: ask
        nodes:
          ask:
            collect: {prompt: "Press 1 for yes, 2 for no.", speech: yes_no, into: v}
            next: done
          done: {say: "ok"}
    """, "dtmf:2")
    assert result.ctx.variables["v"] == "no"


async def test_global_goto_from_collect_applies_its_set(harness: Harness) -> None:
    result = await harness.run("""
        flow: c
        globals:
          - {dtmf: "*", speech: [operator], goto: agent, set: {reason: asked}}
        start: ask
        nodes:
          ask:
            collect: {prompt: "Your PIN?", digits: {min: 4, max: 4}, into: pin}
            next: agent
          agent: {say: "agent node"}
    """, "dtmf:*")
    assert result.ctx.path == ["ask", "agent"]
    assert result.ctx.variables == {"reason": "asked"}
