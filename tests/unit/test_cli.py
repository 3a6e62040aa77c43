"""The `ivr` command's contract: JSON shapes, exit codes 0/1/2, schema and graphs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
import yaml
from helpers import IVR_BIN, CliResult, assert_clean_failure, dedent

Cli = Callable[..., CliResult]

BANK = """
flow: bank
globals:
  - {dtmf: "0", speech: [agent], goto: agent}
start: welcome
nodes:
  welcome:
    say: "Welcome to the bank."
    next: hours
  hours:
    hours: {calendar: business}
    open: main
    closed: closed
  main:
    menu:
      prompt: "For your balance press 1. For cards press 2."
      options:
        - {dtmf: "1", speech: [balance], goto: ask_account}
        - {dtmf: "2", speech: [cards], goto: agent, set: {intent: cards}}
      noinput: ["Sorry, I did not hear you."]
    on_fail: agent
  ask_account:
    collect:
      prompt: "Please enter your eight digit account number, then press pound."
      digits: {min: 8, max: 8, terminator: "#"}
      speech: digits
      into: account
      sensitive: true
      confirm: "You entered {{ account | say_digits }}. Press 1 if that is right."
    next: lookup
    on_fail: agent
  lookup:
    http: {url: "http://127.0.0.1:9/accounts/{{ account }}", timeout: 2s, into: customer}
    next: say_balance
    on_error: agent
  say_balance:
    say: "Your balance is {{ customer.balance | say_currency }}."
    hangup: true
  agent:
    queue: {name: general, context: [account, intent]}
    on_timeout: closed
  closed:
    say: "We are closed. Goodbye."
    hangup: true
"""

BANK_TESTS = """
flow: bank
cases:
  - name: balance by keypad
    clock: "2026-03-02T10:00:00-05:00"
    http: {"http://127.0.0.1:9/accounts/12345678": {balance: 1042.5}}
    steps:
      - expect_prompt: "welcome to the bank"
      - dtmf: "1"
      - expect_prompt: "account number"
      - dtmf: "12345678#"
      - dtmf: "1"
      - expect_prompt: "balance is one thousand and forty two dollars"
    expect_end: hangup
  - name: cards go to an agent with the intent
    clock: "2026-03-02T10:00:00-05:00"
    steps:
      - say: "cards please"
    expect_end: {queue: general, context: {intent: cards}}
  - name: closed at night
    clock: "2026-03-02T23:00:00-05:00"
    steps: [{expect_prompt: "closed"}]
    expect_end: hangup
"""


CONTRACT_EXAMPLE = """
flow: acme-bank            # id; unique across flows/
language: en-US            # default prompt language
voice: {rate: 165}         # TTS options for this flow (engine defaults otherwise)
defaults:                  # inherited by every input node
  timeout: 5s              # no input at all -> noinput
  interdigit_timeout: 3s
  retries: 3               # after each of the first 3 noinput/nomatch events: the next escalation
                           # prompt, then the prompt again; the 4th event goes to on_fail
  barge_in: true
  confidence: 0.5          # speech results below this are nomatch
globals:                   # active in every input node of this flow (VoiceXML "links")
  - {dtmf: "0", speech: [agent, operator, representative], goto: agent}
  - {dtmf: "*", action: repeat}
start: welcome
nodes:
  welcome:
    say: "Welcome to Acme Bank."
    next: hours
  hours:
    hours: {calendar: business}        # calendars live in the engine config
    open: main
    closed: after_hours
  main:
    menu:
      prompt: "For your balance press 1 or say balance. For cards press 2 or say cards."
      options:
        - {dtmf: "1", speech: [balance, account balance], goto: ask_account}
        - {dtmf: "2", speech: [cards, card, lost card], goto: cards, set: {intent: cards}}
      noinput: ["Sorry, I did not hear you.", "Please press a key or say what you need."]
      nomatch: ["Sorry, I did not get that."]
      on_fail: agent
  ask_account:
    collect:
      prompt: "Please enter your eight digit account number, then press pound."
      digits: {min: 8, max: 8, terminator: "#"}
      speech: digits                    # built-in grammars: digits, number, yes_no, currency, date
      into: account
      sensitive: true                   # never in logs, CDRs, events or transcripts; masked to ****1234
      confirm: "You entered {{ account | say_digits }}. Press 1 or say yes if that is right."
    next: lookup
  lookup:
    http: {url: "http://127.0.0.1:8099/accounts/{{ account }}", timeout: 2s, into: customer}
    next: route
    on_error: agent
  route:
    switch:
      - {if: "customer.tier == 'gold'", goto: agent, set: {priority: 10}}
      - {else: say_balance}
  say_balance:
    say: "Your balance is {{ customer.balance | say_currency }}."
    next: anything_else
  agent:
    queue:
      name: general
      priority: "{{ priority | default(0) }}"
      skills: {banking: 3}
      context: [account, customer.name, customer.tier, intent]   # what the agent is handed
      announce: {position: true, wait_time: true, every: 30s}
      max_wait: 5m
      callback: {offer_after: 60s, dtmf: "1"}
    on_timeout: voicemail
  voicemail:
    record: {prompt: "Please leave a message after the tone.", max: 60s, into: message}
    next: bye
  bye:
    say: "Thank you for calling. Goodbye."
    hangup: true
"""


@pytest.fixture
def bank(tmp_path: Path) -> Path:
    flows = tmp_path / "flows"
    flows.mkdir()
    path = flows / "bank.yaml"
    path.write_text(BANK.lstrip())
    return path


@pytest.fixture
def bank_with_tests(bank: Path) -> Path:
    (bank.parent / "bank.test.yaml").write_text(BANK_TESTS.lstrip())
    return bank.parent


def test_validate_ok(run_cli: Cli, config_file: Path, bank_with_tests: Path) -> None:
    result = run_cli("validate", "--config", config_file, bank_with_tests)
    assert result.code == 0, result.output
    assert "ok: 1 flow file, 1 test file, 0 problems" in result.output


def test_validate_json_shape(run_cli: Cli, config_file: Path, bank_with_tests: Path) -> None:
    ok = run_cli("validate", "--json", "--config", config_file, bank_with_tests)
    assert ok.code == 0
    doc = json.loads(ok.stdout)
    assert doc["ok"] is True
    assert doc["problems"] == []

    bad = bank_with_tests / "broken.yaml"
    bad.write_text("flow: broken\nstart: a\nnodes:\n  a: {say: hi, next: zz}\n")
    failed = run_cli("validate", "--json", "--config", config_file, bank_with_tests)
    assert failed.code == 1
    doc = json.loads(failed.stdout)  # stdout holds exactly one JSON document
    assert doc["ok"] is False
    assert doc["problems"] == [
        {"file": str(bad), "line": 4, "col": 16, "message": "a: goes to unknown node 'zz'"}
    ]


def test_validate_uses_ivr_yaml_in_the_working_directory(
    run_cli: Cli, tmp_path: Path, bank: Path
) -> None:
    # no --config: ./ivr.yaml (here without the 'business' calendar) is what flows are checked against
    (tmp_path / "ivr.yaml").write_text("queues: {general: {}}\n")
    result = run_cli("validate", bank)
    assert_clean_failure(result)
    assert "unknown calendar 'business' (the engine config defines: none)" in result.stderr


def test_validate_a_test_file_naming_an_unknown_flow(run_cli: Cli, config_file: Path, bank: Path) -> None:
    stray = bank.parent / "other.test.yaml"
    stray.write_text("flow: nope\ncases:\n  - name: x\n")
    result = run_cli("validate", "--config", config_file, bank.parent)
    assert_clean_failure(result)
    assert f"{stray}:1:1: test file names unknown flow 'nope'" in result.stderr


def test_simulate_json(run_cli: Cli, config_file: Path, bank: Path) -> None:
    result = run_cli(
        "simulate", bank, "--config", config_file, "--clock", "2026-03-02T10:00:00-05:00",
        "--input", "dtmf:1", "--input", "dtmf:12345678#", "--input", "speech:yes",
        "--caller", "+15551112222", "--json",
    )
    assert result.code == 0, result.output
    doc = json.loads(result.stdout)
    assert {"flow", "path", "prompts", "inputs", "variables", "end"} <= set(doc)
    assert doc["flow"] == "bank"
    # nothing listens on port 9: the lookup fails and the caller goes to an agent
    assert doc["path"] == ["welcome", "hours", "main", "ask_account", "lookup", "agent"]
    assert doc["prompts"][0] == "Welcome to the bank."
    assert "You entered ****5678. Press 1 if that is right." in doc["prompts"]
    assert doc["inputs"] == [
        {"node": "main", "mode": "dtmf", "value": "1", "confidence": 1.0},
        {"node": "ask_account", "mode": "dtmf", "value": "****5678", "confidence": 1.0},
        {"node": "ask_account", "mode": "speech", "value": "yes", "confidence": 1.0},
    ]
    assert doc["variables"]["account"] == "****5678"
    assert doc["end"]["kind"] == "queue"
    assert doc["end"]["node"] == "agent"
    assert doc["end"]["queue"] == "general"
    assert doc["end"]["context"] == {"account": "****5678", "intent": None}
    assert "12345678" not in result.stdout


def test_simulate_closed_by_clock_and_inputs_exhausted(run_cli: Cli, config_file: Path, bank: Path) -> None:
    closed = run_cli("simulate", bank, "--config", config_file, "--json",
                     "--clock", "2026-12-25T10:00:00-05:00")
    assert closed.code == 0
    assert json.loads(closed.stdout)["path"] == ["welcome", "hours", "closed"]

    waiting = run_cli("simulate", bank, "--config", config_file, "--json",
                      "--clock", "2026-03-02T10:00:00-05:00", "--input", "silence")
    assert waiting.code == 0
    end = json.loads(waiting.stdout)["end"]
    assert end["kind"] == "inputs_exhausted"
    assert end["node"] == "main"


def test_simulate_human_output(run_cli: Cli, config_file: Path, bank: Path) -> None:
    result = run_cli("simulate", bank, "--config", config_file,
                     "--clock", "2026-03-02T10:00:00-05:00", "--input", "dtmf:2")
    assert result.code == 0
    assert "ivr: Welcome to the bank." in result.stdout
    assert "-- path: welcome > hours > main > agent" in result.stdout
    assert "-- end: queue at agent" in result.stdout


def test_simulate_a_looping_flow_exits_1_with_the_reason(run_cli: Cli, config_file: Path,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "spin.yaml"
    path.write_text(dedent("""
        flow: spin
        start: a
        nodes:
          a: {say: "round", next: b}
          b: {set: {x: 1}, next: a}
    """))
    result = run_cli("simulate", path, "--config", config_file, "--json")
    assert result.code == 1
    end = json.loads(result.stdout)["end"]
    assert end["kind"] == "error"
    assert "without waiting for the caller" in end["message"]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["--input", "bogus"],
        ["--input", "dtmf:12x"],
        ["--input", "speech:"],
        ["--input", "audio:/no/such/file.wav"],
        ["--clock", "yesterday"],
        ["--clock", "2026-03-02T10:00:00"],  # no offset
        ["--no-such-option"],
    ],
)
def test_simulate_bad_usage_exits_2(run_cli: Cli, config_file: Path, bank: Path, args: list[str]) -> None:
    result = run_cli("simulate", bank, "--config", config_file, *args)
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip()


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "/no/such/dir"],
        ["validate", "--config", "/no/such/ivr.yaml"],
        ["graph", "flows/bank.yaml", "--format", "png"],
        ["simulate", "/no/such/flow.yaml"],
        ["frobnicate"],
    ],
)
def test_bad_usage_exits_2(run_cli: Cli, bank: Path, args: list[str]) -> None:
    result = run_cli(*args)
    assert result.code == 2, result.output
    assert "Traceback" not in result.output


def test_flow_test_runner_json(run_cli: Cli, config_file: Path, bank_with_tests: Path) -> None:
    result = run_cli("test", "--json", "--config", config_file, bank_with_tests)
    assert result.code == 0, result.output
    doc = json.loads(result.stdout)
    assert [c["name"] for c in doc["cases"]] == [
        "balance by keypad", "cards go to an agent with the intent", "closed at night",
    ]
    for case in doc["cases"]:
        assert set(case) >= {"flow", "name", "passed", "message"}
        assert case["flow"] == "bank"
        assert case["passed"] is True, case["message"]
    coverage = doc["coverage"]["bank"]
    assert coverage["nodes"] == 8
    assert coverage["reached"] == 8
    assert coverage["unreached"] == []


def test_flow_test_runner_failures_and_coverage(run_cli: Cli, config_file: Path, bank: Path) -> None:
    (bank.parent / "bank.test.yaml").write_text(dedent("""
        flow: bank
        cases:
          - name: wrong expectation
            clock: "2026-03-02T10:00:00-05:00"
            steps:
              - expect_prompt: "welcome to the zoo"
              - dtmf: "2"
            expect_end: {queue: cards}
          - name: fine
            clock: "2026-03-02T10:00:00-05:00"
            steps: [{dtmf: "2"}]
            expect_end: {queue: general, context: {intent: cards}}
    """))
    result = run_cli("test", "--json", "--config", config_file, bank.parent)
    assert result.code == 1
    doc = json.loads(result.stdout)
    wrong, fine = doc["cases"]
    assert wrong["passed"] is False
    assert "expected a prompt containing 'welcome to the zoo'" in wrong["message"]
    assert "expected queue cards" in wrong["message"]
    assert fine["passed"] is True and fine["message"] == "ok"
    assert doc["coverage"]["bank"]["unreached"] == [
        "ask_account", "lookup", "say_balance", "closed",
    ]

    human = run_cli("test", "--config", config_file, bank.parent)
    assert human.code == 1
    assert "FAIL bank: wrong expectation" in human.stdout
    assert "PASS bank: fine" in human.stdout
    assert "never reached: ask_account, lookup, say_balance, closed" in human.stdout


def test_flow_test_file_problems_are_positioned(run_cli: Cli, config_file: Path, bank: Path) -> None:
    bad = bank.parent / "bank.test.yaml"
    bad.write_text(dedent("""
        flow: bank
        cases:
          - name: x
            steps:
              - dtmf: "12z"
    """))
    result = run_cli("test", "--config", config_file, bank.parent)
    assert_clean_failure(result)
    assert f"{bad}:4:5: cases.0.steps: dtmf '12z' may only hold 0-9 * # A-D" in result.stderr


def test_test_without_test_files_fails(run_cli: Cli, config_file: Path, bank: Path) -> None:
    result = run_cli("test", "--json", "--config", config_file, bank.parent)
    assert result.code == 1
    assert json.loads(result.stdout)["problems"][0]["message"] == "no *.test.yaml files found"


def test_schema_is_json_schema_and_checks_flows(run_cli: Cli, bank: Path) -> None:
    result = run_cli("schema")
    assert result.code == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    flow = yaml.safe_load(BANK)
    assert list(validator.iter_errors(flow)) == []

    # the flow language contract's own example validates too
    assert list(validator.iter_errors(yaml.safe_load(CONTRACT_EXAMPLE))) == []

    unknown_kind = yaml.safe_load(BANK)
    unknown_kind["nodes"]["welcome"] = {"sya": "hi", "next": "hours"}
    assert list(validator.iter_errors(unknown_kind)) != []

    two_kinds = yaml.safe_load(BANK)
    two_kinds["nodes"]["welcome"] = {"say": "hi", "set": {"a": 1}}
    assert list(validator.iter_errors(two_kinds)) != []

    bad_duration = yaml.safe_load(BANK)
    bad_duration["nodes"]["lookup"]["http"]["timeout"] = "soon"
    assert list(validator.iter_errors(bad_duration)) != []


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_graph(run_cli: Cli, config_file: Path, bank: Path, fmt: str) -> None:
    result = run_cli("graph", bank, "--format", fmt, "--config", config_file)
    assert result.code == 0, result.output
    out = result.stdout
    if fmt == "mermaid":
        assert out.startswith("flowchart TD\n")
        assert 'n_main{{"main: menu"}}' in out
        assert 'n_main -->|"1"| n_ask_account' in out
        assert 'n_hours -->|"closed"| n_closed' in out
        assert 'start -.->|"global 0"| n_agent' in out
    else:
        assert out.startswith('digraph "bank" {')
        assert "n_main [shape=diamond" in out
        assert 'n_lookup -> n_agent [label="on_error"];' in out
        assert out.rstrip().endswith("}")
    for node in yaml.safe_load(BANK)["nodes"]:
        assert f"n_{node}" in out


def test_graph_of_an_invalid_flow_exits_1(run_cli: Cli, config_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("flow: bad\nstart: a\nnodes:\n  a: {say: hi, next: zz}\n")
    result = run_cli("graph", path, "--config", config_file)
    assert_clean_failure(result)
    assert f"{path}:4:16: a: goes to unknown node 'zz'" in result.stderr


def test_config_problems_are_positioned(run_cli: Cli, tmp_path: Path, bank: Path) -> None:
    cfg = tmp_path / "bad-ivr.yaml"
    cfg.write_text("calendars:\n  business:\n    tz: Mars/Olympus\n")
    result = run_cli("validate", "--config", cfg, bank)
    assert_clean_failure(result)
    assert (f"{cfg}:3:5: calendars.business.tz: unknown time zone 'Mars/Olympus'"
            in result.stderr)


def test_installed_command_bad_yaml_and_bad_usage(tmp_path: Path, config_file: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("flow: t\nstart: a\nnodes:\n  a: {say: [unclosed\n")
    run = subprocess.run([str(IVR_BIN), "validate", "--config", str(config_file), str(bad)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert run.returncode == 1
    assert run.stderr.startswith(f"{bad}:5:1: YAML syntax error")
    assert "Traceback" not in run.stdout + run.stderr

    usage = subprocess.run([str(IVR_BIN), "simulate", str(bad), "--input", "bogus"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert usage.returncode == 2
    assert "--input" in usage.stderr
    assert "Traceback" not in usage.stdout + usage.stderr


def test_ivr_call_keeps_dtmf_say_and_play_in_command_line_order() -> None:
    from ivr.call_cmd import call

    ctx = call.make_context("call", ["sip:1000@127.0.0.1", "--dtmf", "1", "--say=4 0 7 1",
                                     "--dtmf", "1", "--play", __file__, "--json"])
    assert ctx.obj["actions"] == [("dtmf", "1"), ("say", "4 0 7 1"), ("dtmf", "1"),
                                  ("play", __file__)]
