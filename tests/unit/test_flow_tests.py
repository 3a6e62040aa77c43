"""The flow test runner (`*.test.yaml`): steps, stubs, expectations and coverage."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import Harness, dedent

from ivr.errors import ProblemsError
from ivr.flow.context import End
from ivr.flow.testing import check_end, load_test_file, parse_step, run_tests

FLOW = """
    flow: acct
    start: ask
    nodes:
      ask:
        collect:
          prompt: "Account number?"
          digits: {min: 8, max: 8, terminator: "#"}
          into: account
          sensitive: true
        next: lookup
        on_fail: agent
      lookup:
        http: {url: "http://crm/accounts/{{ account }}", into: customer}
        next: agent
        on_error: sorry
      sorry: {say: "The system is down.", next: agent}
      agent:
        queue: {name: general, context: [account, customer.tier]}
        on_timeout: bye
      bye: {say: "Goodbye.", hangup: true}
"""


async def run(harness: Harness, tests: str) -> list[tuple[str, bool, str]]:
    flows = harness.load(FLOW)
    path = harness.root / "acct.test.yaml"
    path.write_text(dedent(tests))
    report = await run_tests([path], flows, harness.config)
    assert report.problems == []
    return [(c.name, c.passed, c.message) for c in report.cases]


async def test_stubbed_http_and_masked_queue_context(harness: Harness) -> None:
    cases = await run(harness, """
        flow: acct
        cases:
          - name: gold customer
            http: {"http://crm/accounts/12345678": {tier: gold}}
            steps: [{dtmf: "12345678#"}]
            expect_end: {queue: general, context: {account: "****5678", customer.tier: gold}}
            expect_variables: {account: "****5678", customer: {tier: gold}}
          - name: crm down
            http_errors: {"http://crm/accounts/12345678": timeout}
            steps:
              - dtmf: "12345678#"
              - expect_prompt: system is down
            expect_end: {queue: general}
            expect_variables: {http_error: "ReadTimeout: timed out (stubbed by the test case)"}
          - name: crm 500 then queue times out
            http_errors: {"http://crm/accounts/12345678": 500}
            queues: {general: timeout}
            steps: [{dtmf: "12345678#"}]
            expect_end: {node: bye}
    """)
    for name, passed, message in cases:
        assert passed, f"{name}: {message}"


async def test_failing_expectations_explain_themselves(harness: Harness) -> None:
    cases = await run(harness, """
        flow: acct
        cases:
          - name: wrong end
            steps: [{dtmf: "12345678#"}]
            expect_end: hangup
          - name: wrong variable
            http: {"http://crm/accounts/12345678": {tier: gold}}
            steps: [{dtmf: "12345678#"}]
            expect_variables: {account: "12345678"}
          - name: runs out of input
            steps: []
    """)
    (_, p1, m1), (_, p2, m2), (_, p3, m3) = cases
    assert not p1 and m1.startswith("expected end hangup, got {'kind': 'queue'")
    assert not p2 and m2 == "variable account is '****5678', expected '12345678'"
    assert not p3 and m3 == ("flow ended with inputs_exhausted: the flow waited for input and "
                             "none was left")


async def test_coverage_lists_nodes_no_case_reached(harness: Harness) -> None:
    flows = harness.load(FLOW)
    path = harness.root / "acct.test.yaml"
    path.write_text(dedent("""
        flow: acct
        cases:
          - name: happy
            http: {"http://crm/accounts/12345678": {tier: gold}}
            steps: [{dtmf: "12345678#"}]
    """))
    report = await run_tests([path], flows, harness.config)
    assert report.coverage == {"acct": {"nodes": 5, "reached": 3, "unreached": ["sorry", "bye"]}}
    assert report.passed


@pytest.mark.parametrize(
    ("raw", "kind", "value"),
    [
        ("silence", "silence", ""),
        ({"hangup": None}, "hangup", ""),
        ({"dtmf": 1234}, "dtmf", "1234"),
        ({"say": "yes please"}, "say", "yes please"),
        ({"expect_prompt": "Welcome"}, "expect_prompt", "Welcome"),
        ({"audio": "yes.wav"}, "audio", "yes.wav"),
    ],
)
def test_parse_step(raw: object, kind: str, value: str) -> None:
    step = parse_step(raw)
    assert (step.kind, step.value) == (kind, value)


@pytest.mark.parametrize("raw", [{"dtmf": "12x"}, {"press": "1"}, {"dtmf": "1", "say": "x"}, "talk", 5])
def test_bad_steps_are_refused(raw: object) -> None:
    with pytest.raises(ValueError, match=r"dtmf|a step is one of"):
        parse_step(raw)


def test_check_end() -> None:
    queue = End(kind="queue", node="agent", queue="general", context={"account": "****5678", "x": 1})
    assert check_end({"queue": "general", "context": {"account": "****5678"}}, queue) is None
    assert check_end({"queue": "general", "context": {"account": "12345678"}}, queue) is not None
    assert check_end({"queue": "cards"}, queue) is not None
    assert check_end({"node": "agent"}, queue) is None
    assert check_end("hangup", queue) is not None
    transfer = End(kind="transfer", node="x", target="sip:a@b")
    assert check_end({"transfer": "sip:a@b"}, transfer) is None
    assert check_end({"transfer": "sip:c@d"}, transfer) is not None


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("flow: x\ncases: []\n", 2, 1, "cases: List should have at least 1 item"),
        ("flow: x\ncases:\n  - name: a\n    clock: '2026-03-02T10:00:00'\n", 4, 5,
         "clock needs a UTC offset"),
        ("flow: x\ncases:\n  - name: a\n    expect_end: done\n", 4, 5, "expect_end is hangup, error"),
        ("flow: x\ncases:\n  - name: a\n    stepz: []\n", 4, 5, "unknown field 'cases.0.stepz'"),
    ],
)
def test_test_file_problems(tmp_path: Path, text: str, line: int, col: int, message: str) -> None:
    path = tmp_path / "x.test.yaml"
    path.write_text(text)
    with pytest.raises(ProblemsError) as err:
        load_test_file(path)
    problem = err.value.problems[0]
    assert (problem.file, problem.line, problem.col) == (str(path), line, col)
    assert message in problem.message
