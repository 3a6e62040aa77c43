"""Taint, not names: a sensitive value stays masked through every way a flow can copy it.

Each test is a bypass a flow author could write (by mistake or on purpose) after a sensitive
collect; the value must reach nothing the call records (simulate JSON, CDR variables, inputs,
transcript, prompts as shown, the end, the agent's context) in any form but the masked one.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from helpers import CliResult, Harness, channel_of, dedent

from ivr import log as ivr_log
from ivr.flow.interpreter import Result
from ivr.flow.templates import render, render_value
from ivr.lang.secret import Secret, call_secrets, is_secret, shown, taint

ACCOUNT = "40719263"
SPOKEN = "4 0 7 1 9 2 6 3"
MASKED = "****9263"


def collect_then(nodes: str, *, header: str = "") -> str:
    """A flow that collects a sensitive account, then runs `nodes` (YAML, from node `next`)."""
    return dedent("""
        flow: t
        start: ask
        {header}
        nodes:
          ask:
            collect: {{prompt: "Account?", digits: {{min: 8, max: 8}}, into: account, sensitive: true}}
            next: next
        {nodes}
    """).format(header=header, nodes=_indent(dedent(nodes), 2))


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line if line else line for line in text.splitlines())


def recorded(result: Result) -> str:
    """Everything the run exposes outside the flow's own variables, as one string."""
    ch = channel_of(result)
    return json.dumps({"report": result.as_json(), "played": ch.played,
                       "queued": [dict(q.context) for q in ch.queued],
                       "transfers": [[t.headers, dict(t.context)] for t in ch.transfers]},
                      default=str)


def assert_no_leak(result: Result) -> str:
    text = recorded(result)
    for form in (ACCOUNT, SPOKEN, "four zero seven one", ACCOUNT[:4], ACCOUNT[::-1]):
        assert form not in text, f"{form!r} leaked: {text}"
    return text


@pytest.mark.parametrize("template", [
    "{{ account | string }}", "{{ account[0:4] }}", "{{ account ~ '' }}", "{{ account[::-1] }}",
    "Acct {{ account }} ok", "{{ account | list | join }}", "{{ '%s' % account }}",
    "{{ '{}'.format(account) }}", "{{ account.upper() }}", "{{ account | int }}",
    "{% for c in account %}{{ c }}{% endfor %}", "{{ account | say_digits }}",
    "{{ [account] | first }}", "{{ account + '' }}",
])
async def test_every_template_form_of_a_sensitive_value_stays_masked(
    harness: Harness, template: str
) -> None:
    result = await harness.run(collect_then(f"""
        next:
          set: {{copy: "{template}"}}
          next: say
        say: {{say: "Copy: {template}", next: agent}}
        agent: {{queue: {{name: general, context: [copy]}}}}
    """), f"dtmf:{ACCOUNT}")
    copy = result.ctx.variables["copy"]
    assert is_secret(copy), f"{template} gave a plain {copy!r}"
    assert result.end.kind == "queue"
    text = assert_no_leak(result)
    assert "****" in json.dumps(result.as_json()["variables"]["copy"])
    assert "Copy: " in text


async def test_copies_by_set_keep_the_mask_and_the_real_value(harness: Harness) -> None:
    result = await harness.run(collect_then("""
        next:
          set: {copy: "{{ account }}", again: "{{ copy }}", prefix: "{{ account[0:4] }}",
                nested: {list: ["{{ account }}", "plain"]}}
          next: more
        more: {set: {again: "{{ copy }}"}, next: agent}
        agent: {queue: {name: general, context: [copy, again, prefix, nested]}}
    """), f"dtmf:{ACCOUNT}")
    v = result.ctx.variables
    assert v["copy"] == ACCOUNT and v["again"] == ACCOUNT  # the flow still has the real value
    shown_vars = result.as_json()["variables"]
    assert shown_vars["copy"] == MASKED and shown_vars["again"] == MASKED
    assert shown_vars["prefix"] == "****"  # derived, not the value itself: nothing shown
    assert shown_vars["nested"] == {"list": [MASKED, "plain"]}
    assert result.end.context == {"copy": MASKED, "again": MASKED, "prefix": "****",
                                  "nested": {"list": [MASKED, "plain"]}}
    assert_no_leak(result)


async def test_last_value_of_a_sensitive_input_is_masked(harness: Harness) -> None:
    result = await harness.run(collect_then("""
        next:
          set: {heard: "{{ last.value }}", how: "{{ last.mode }}"}
          next: say
        say: {say: "You typed {{ last.value | say_digits }} by {{ last.mode }}.", next: agent}
        agent: {queue: {name: general, context: [heard, how]}}
    """), f"dtmf:{ACCOUNT}")
    assert result.as_json()["variables"]["heard"] == MASKED
    assert result.as_json()["variables"]["how"] == "dtmf"  # what is not sensitive stays readable
    assert f"You typed {MASKED} by dtmf." in result.ctx.prompts
    assert result.end.context == {"heard": MASKED, "how": "dtmf"}
    assert_no_leak(result)


async def test_switch_on_a_sensitive_value_branches_but_its_set_stays_masked(
    harness: Harness
) -> None:
    result = await harness.run(collect_then("""
        next:
          switch:
            - {if: "account.startswith('4071')", goto: visa, set: {card: "{{ account }}"}}
            - {else: other}
        visa: {say: "Visa {{ card }}", next: agent}
        other: {say: "Other"}
        agent: {queue: {name: general, context: [card]}}
    """), f"dtmf:{ACCOUNT}")
    assert result.ctx.path == ["ask", "next", "visa", "agent"]
    assert result.end.context == {"card": MASKED}
    assert f"Visa {MASKED}" in result.ctx.prompts
    assert_no_leak(result)


async def test_a_subflow_s_sensitive_value_stays_masked_in_the_caller_flow(harness: Harness) -> None:
    flows = harness.load("""
        flow: main
        start: ident
        nodes:
          ident: {subflow: {flow: identify}, next: use}
          use: {set: {who: "{{ pin }}"}, next: say}
          say: {say: "Your pin {{ pin }} is noted.", next: agent}
          agent: {queue: {name: general, context: [pin, who]}}
    """, """
        flow: identify
        start: ask
        sensitive: [pin]
        nodes:
          ask: {collect: {prompt: "PIN?", digits: {min: 4, max: 4}, into: pin}}
    """)
    result = await harness.run(flows, "dtmf:9263", flow="main")
    assert result.ctx.variables["pin"] == "9263"
    assert result.as_json()["variables"] == {"pin": "****", "who": "****"}
    assert result.end.context == {"pin": "****", "who": "****"}
    assert "Your pin **** is noted." in result.ctx.prompts
    assert "9263" not in recorded(result)


async def test_a_sensitive_menu_choice_is_masked(harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: m
        nodes:
          m:
            menu:
              prompt: "Which card? 7 or 8."
              sensitive: true
              options:
                - {dtmf: "7", goto: agent, set: {card_type: gold}}
                - {dtmf: "8", goto: agent, set: {card_type: black}}
            on_fail: agent
          agent: {queue: {name: general, context: [card_type]}}
    """, "dtmf:8")
    assert result.ctx.inputs[0]["value"] == "****"
    assert result.as_json()["variables"]["card_type"] == "****"
    assert "black" not in recorded(result)


async def test_transfer_target_is_real_on_the_wire_and_masked_in_records(harness: Harness) -> None:
    result = await harness.run(collect_then("""
        next:
          transfer: {to: "sip:{{ account }}@bank.example", headers: {X-Acct: "{{ account }}"}}
    """), f"dtmf:{ACCOUNT}")
    request = channel_of(result).transfers[0]
    assert request.to == f"sip:{ACCOUNT}@bank.example"  # the far end routes on it
    assert request.headers == {"X-Acct": MASKED}
    assert result.end.target == f"sip:{MASKED}@bank.example"
    assert ACCOUNT not in json.dumps(result.as_json())


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG, logger="ivr"):
        yield caplog


async def test_http_gets_the_real_value_and_logs_it_masked(
    harness: Harness, debug_log: pytest.LogCaptureFixture
) -> None:
    seen: list[httpx.Request] = []

    def backend(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"name": "Ann", "account": f"acct {ACCOUNT}",
                                         "number": int(ACCOUNT)})

    async with httpx.AsyncClient(transport=httpx.MockTransport(backend)) as client:
        result = await harness.run(collect_then("""
            next:
              http:
                url: "http://bank/lookup/{{ account }}"
                method: POST
                headers: {X-Account: "{{ account }}"}
                body: {account: "{{ account }}", tail: "{{ account[-4:] }}"}
                into: customer
              next: agent
            agent: {queue: {name: general, context: [customer.name, customer.account, customer]}}
        """), f"dtmf:{ACCOUNT}", http_client=client)
    request = seen[0]
    assert str(request.url) == f"http://bank/lookup/{ACCOUNT}"
    assert request.headers["X-Account"] == ACCOUNT
    assert json.loads(request.content) == {"account": ACCOUNT, "tail": ACCOUNT[-4:]}
    # the answer echoed the account: it stays a secret; the rest of the answer stays plain
    assert result.end.context == {
        "customer.name": "Ann", "customer.account": f"acct {MASKED}",
        "customer": {"name": "Ann", "account": f"acct {MASKED}", "number": MASKED}}
    logged = debug_log.text
    assert f"lookup/{MASKED}" in logged
    assert ACCOUNT not in logged
    assert_no_leak(result)


async def test_http_error_body_echoing_the_value_is_masked(
    harness: Harness, debug_log: pytest.LogCaptureFixture
) -> None:
    def backend(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": f"no account {ACCOUNT} (spoken: {SPOKEN})"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(backend)) as client:
        result = await harness.run(collect_then("""
            next:
              http: {url: "http://bank/lookup?acct={{ account }}"}
              next: fine
            fine: {say: "found"}
        """), f"dtmf:{ACCOUNT}", http_client=client)
    assert result.end.kind == "error"
    message = result.end.message or ""
    assert "404" in message and f"no account {MASKED}" in message
    assert f"acct={MASKED}" in message
    assert "http node next failed" in debug_log.text and MASKED in debug_log.text
    assert ACCOUNT not in debug_log.text and SPOKEN not in debug_log.text
    assert_no_leak(result)


async def test_a_failed_template_does_not_echo_the_value_in_its_error(harness: Harness) -> None:
    result = await harness.run(collect_then("""
        next: {say: "{{ ('{' ~ account ~ '}').format() }}"}
    """), f"dtmf:{ACCOUNT}")
    assert result.end.kind == "error"
    assert "withheld" in (result.end.message or "")
    assert_no_leak(result)


async def test_flow_sensitive_names_taint_values_given_before_the_flow_ran(
    harness: Harness
) -> None:
    result = await harness.run("""
        flow: t
        sensitive: [pin]
        start: s
        nodes:
          s: {set: {copy: "{{ pin }}"}, next: agent}
          agent: {queue: {name: general, context: [copy]}}
    """, variables={"pin": "55667788"})
    assert result.end.context == {"copy": "****7788"}
    assert "55667788" not in recorded(result)


def test_render_results_carry_their_record_form() -> None:
    scope = {"account": taint(ACCOUNT), "name": "Ann"}
    out = render("You entered {{ account | say_digits }}, {{ name }}.", scope)
    assert out == f"You entered {SPOKEN}, Ann."  # what the caller hears
    assert shown(out) == f"You entered {MASKED}, Ann."  # what records show
    assert not is_secret(render("Hello {{ name }}", scope))
    assert shown(render_value("{{ account | length }}", scope)) == "****"
    assert repr(scope["account"]) == f"Secret('{MASKED}')"  # no value in a stray repr


def test_log_lines_of_a_call_are_scrubbed_of_its_secrets() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        ivr_log.setup("INFO", json_lines=True)
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        token = call_secrets.set([Secret(ACCOUNT)])
        try:
            logging.getLogger("ivr.test").warning("lookup of %s failed", ACCOUNT)
            try:
                raise ValueError(f"bad account {SPOKEN}")
            except ValueError:
                logging.getLogger("ivr.test").exception("boom")
        finally:
            call_secrets.reset(token)
        logging.getLogger("ivr.test").warning("after the call: %s", "1234")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["msg"] == f"lookup of {MASKED} failed"
    assert f"bad account {MASKED}" in lines[1]["exc"]
    assert ACCOUNT not in stream.getvalue() and SPOKEN not in stream.getvalue()
    assert lines[2]["msg"] == "after the call: 1234"


def test_simulate_and_test_commands_print_only_masked_forms(
    run_cli: Callable[..., CliResult], config_file: Path, tmp_path: Path
) -> None:
    flow = tmp_path / "flows" / "bank.yaml"
    flow.parent.mkdir()
    flow.write_text(collect_then("""
        next:
          set: {copy: "{{ account ~ '' }}"}
          next: say
        say: {say: "You entered {{ copy | say_digits }}.", next: agent}
        agent: {queue: {name: general, context: [copy]}}
    """), encoding="utf-8")
    (tmp_path / "flows" / "bank.test.yaml").write_text(dedent(f"""
        flow: t
        cases:
          - name: hears the digits it typed, and a failing expectation lists what it heard
            steps:
              - dtmf: "{ACCOUNT}"
              - expect_prompt: "you entered {SPOKEN}"
              - expect_prompt: "something never said"
            expect_end: {{queue: general, context: {{copy: "{MASKED}"}}}}
    """), encoding="utf-8")
    sim = run_cli("simulate", flow, "--config", config_file, "--input", f"dtmf:{ACCOUNT}", "--json")
    doc = json.loads(sim.stdout)
    assert doc["variables"] == {"account": MASKED, "copy": MASKED}
    assert f"You entered {MASKED}." in doc["prompts"]
    human = run_cli("simulate", flow, "--config", config_file, "--input", f"dtmf:{ACCOUNT}")
    tested = run_cli("test", tmp_path / "flows", "--config", config_file, "--json")
    report = json.loads(tested.stdout)["cases"][0]
    # the real prompt matched `expect_prompt` (the caller hears the digits); the failure message
    # lists the prompts as records show them
    assert "something never said" in report["message"]
    assert "you entered" not in report["message"].split("something never said")[0].lower()
    assert f"You entered {MASKED}." in report["message"]
    for out in (sim.output, human.output, tested.output):
        assert ACCOUNT not in out and SPOKEN not in out
