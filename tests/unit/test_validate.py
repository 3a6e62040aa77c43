"""Bad flow files: every problem at its exact file:line:col, and `ivr validate` exits 1 cleanly."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import CliResult, Harness, assert_clean_failure, dedent, position

from ivr.errors import Problem, ProblemsError
from ivr.flow.validate import load_flows
from ivr.yamldoc import MAX_VALUES, load_file


@dataclass(frozen=True)
class Bad:
    id: str
    text: str
    needle: str  # where the problem must point: the first occurrence of this text
    message: str  # what the message must say
    nth: int = 0
    count: int = 1  # problems the file has in all; the one under test sorts first


CASES = [
    Bad(
        "unparseable-yaml",
        """
        flow: t
        start: a
        nodes:
          a: {say: "hi", next: b
          b: {say: "bye"}
        """,
        ': {say: "bye"}', "YAML syntax error: expected ',' or '}', but got ':'",
    ),
    Bad(
        "unknown-node-kind",
        """
        flow: t
        start: a
        nodes:
          a: {say: "hi", next: b}
          b:
            sya: "bye"
        """,
        "sya", "unknown node kind 'sya' in node 'b'; expected one of: collect, hangup, hours",
    ),
    Bad(
        "wrong-field-type",
        """
        flow: t
        start: m
        nodes:
          m:
            menu:
              prompt: "p"
              options: [{dtmf: "1", goto: m}]
              retries: many
            on_fail: m
        """,
        "retries", "menu.retries: Input should be a valid integer",
    ),
    Bad(
        "value-fits-no-form-of-a-union",
        """
        flow: t
        start: a
        nodes:
          a: {say: 5}
        """,
        "say: 5}", "say: Input should be a valid string; or Input should be a valid dictionary",
    ),
    Bad(
        "unknown-field",
        """
        flow: t
        start: a
        nodes:
          a: {say: "hi", nxet: a}
        """,
        "nxet", "unknown field 'nxet'",
    ),
    Bad(
        "dangling-goto",
        """
        flow: t
        start: m
        nodes:
          m:
            menu:
              prompt: "p"
              options:
                - {dtmf: "1", goto: nowhere}
            on_fail: m
        """,
        "goto: nowhere", "m: goes to unknown node 'nowhere'",
    ),
    Bad(
        "dangling-start",
        """
        flow: t
        start: missing
        nodes:
          a: {say: "hi"}
        """,
        "start", "start node 'missing' does not exist", count=2,  # and 'a' is unreachable
    ),
    Bad(
        "unreachable-node",
        """
        flow: t
        start: a
        nodes:
          a: {say: "hi", hangup: true}
          orphan: {say: "nobody comes here"}
        """,
        "orphan", "node 'orphan' is unreachable from start",
    ),
    Bad(
        "duplicate-option-keys",
        """
        flow: t
        start: m
        nodes:
          m:
            menu:
              prompt: "p"
              options:
                - {dtmf: "1", goto: a}
                - {dtmf: "1", goto: b}
            on_fail: a
          a: {say: "a"}
          b: {say: "b"}
        """,
        'dtmf: "1", goto: b', "duplicate DTMF key '1' (also option 1)",
    ),
    Bad(
        "duplicate-phrases",
        """
        flow: t
        start: m
        nodes:
          m:
            menu:
              prompt: "p"
              options:
                - {speech: [balance], goto: a}
                - {speech: [cards, Balance], goto: b}
            on_fail: a
          a: {say: "a"}
          b: {say: "b"}
        """,
        "Balance", "phrase 'Balance' is also in option 1",
    ),
    Bad(
        "duplicate-yaml-keys",
        """
        flow: t
        start: a
        nodes:
          a: {say: "hi"}
          a: {say: "again"}
        """,
        "a: {say: \"again", "duplicate key 'a'",
    ),
    Bad(
        "template-syntax-error",
        """
        flow: t
        start: a
        nodes:
          a:
            say: "Hello {{ caller.name | upper( }}"
        """,
        "say:", "template syntax error",
    ),
    Bad(
        "template-python-internals",
        """
        flow: t
        start: a
        nodes:
          a:
            say: "hi"
            next: b
          b:
            set: {x: "{{ ''.__class__.__mro__ }}"}
        """,
        "x:", "template may not access '__mro__' (private names are blocked by the sandbox)",
    ),
    Bad(
        "condition-python-internals",
        """
        flow: t
        start: s
        nodes:
          s:
            switch:
              - {if: "caller.__class__", goto: a}
              - {else: a}
          a: {say: "a"}
        """,
        "if:", "template may not access '__class__'",
    ),
    Bad(
        "missing-audio-file",
        """
        flow: t
        start: a
        nodes:
          a:
            say: ["Welcome.", {audio: missing-greeting.wav}]
        """,
        "{audio", "audio file 'missing-greeting.wav' not found",
    ),
    Bad(
        "unknown-queue",
        """
        flow: t
        start: q
        nodes:
          q:
            queue: {name: billing}
        """,
        "name: billing", "unknown queue 'billing' (the engine config defines: cards, general)",
    ),
    Bad(
        "unknown-calendar",
        """
        flow: t
        start: h
        nodes:
          h:
            hours: {calendar: weekend}
            open: a
            closed: a
          a: {say: "a"}
        """,
        "calendar: weekend", "unknown calendar 'weekend' (the engine config defines: allday, business",
    ),
    Bad(
        "menu-without-on-fail",
        """
        flow: t
        start: m
        nodes:
          a: {say: "a"}
          m:
            menu:
              prompt: "p"
              options: [{dtmf: "1", goto: a}]
        """,
        "m:", "menu has no on_fail",
    ),
    Bad(
        "unknown-subflow",
        """
        flow: t
        start: s
        nodes:
          s: {subflow: {flow: identify}}
        """,
        "flow: identify", "unknown flow 'identify' for subflow",
    ),
    Bad(
        "switch-else-not-last",
        """
        flow: t
        start: s
        nodes:
          s:
            switch:
              - {else: a}
              - {if: "x", goto: a}
          a: {say: "a"}
        """,
        "{else", "else must be the last entry",
    ),
    Bad(
        "missing-required-field",
        """
        flow: t
        start: c
        nodes:
          c:
            collect: {prompt: "p", digits: {max: 4}}
        """,
        "collect:", "missing required field 'collect.into'",
    ),
    Bad(
        "collect-min-over-max",
        """
        flow: t
        start: c
        nodes:
          c:
            collect: {prompt: "p", digits: {min: 6, max: 4}, into: v}
        """,
        "digits:", "digits.min is greater than digits.max",
    ),
]


def _expected(path: Path, case: Bad) -> tuple[str, int, int]:
    line, col = position(path.read_text(), case.needle, case.nth)
    return str(path), line, col


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_problem_position_and_message(harness: Harness, case: Bad) -> None:
    path = harness.write(case.text)
    problems = load_flows([path], harness.config).errors
    assert len(problems) == case.count, "\n".join(map(str, problems))
    problem = problems[0]
    assert (problem.file, problem.line, problem.col) == _expected(path, case)
    assert case.message in problem.message


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_reports_the_problem_and_exits_1(
    harness: Harness, run_cli: Callable[..., CliResult], config_file: Path, case: Bad
) -> None:
    path = harness.write(case.text)
    result = run_cli("validate", "--config", config_file, path)
    assert_clean_failure(result)
    file, line, col = _expected(path, case)
    assert f"{file}:{line}:{col}: " in result.stderr
    assert case.message in result.stderr
    assert result.stdout == ""

    as_json = run_cli("validate", "--json", "--config", config_file, path)
    assert as_json.code == 1
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is False
    assert doc["problems"][0]["file"] == file
    assert (doc["problems"][0]["line"], doc["problems"][0]["col"]) == (line, col)
    assert case.message in doc["problems"][0]["message"]


def test_problems_in_several_places_are_all_reported(harness: Harness) -> None:
    result = harness.load_set("""
        flow: t
        start: a
        nodes:
          a: {say: "hi", next: gone}
          b: {say: "{{ x. }}"}
          q: {queue: {name: nope}}
    """)
    messages = [p.message for p in result.errors]
    assert len(messages) == 5, messages
    assert result.errors == sorted(result.errors)
    assert any("unknown node 'gone'" in m for m in messages)
    assert any("template syntax error" in m for m in messages)
    assert any("unknown queue 'nope'" in m for m in messages)
    assert sum("unreachable" in m for m in messages) == 2


def test_a_10_mb_file_is_refused_before_parsing(tmp_path: Path, run_cli: Callable[..., CliResult],
                                                config_file: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w") as f:
        f.write('flow: big\nstart: a\nnodes:\n  a: {say: "hi"}\n')
        line = "# " + "x" * 1022 + "\n"
        for _ in range(10 * 1024):
            f.write(line)
    started = time.monotonic()
    with pytest.raises(ProblemsError) as err:
        load_file(big)
    assert time.monotonic() - started < 1.0
    assert err.value.problems == [Problem(str(big), 1, 1, "file is 10.5 MB; the limit is 1.0 MB")]

    result = run_cli("validate", "--config", config_file, big)
    assert_clean_failure(result)
    assert f"{big}:1:1: file is 10.5 MB; the limit is 1.0 MB" in result.stderr


def _billion_laughs() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
        prev = name
    lines += ["flow: bomb", "start: s", "nodes:", '  s: {say: "hi"}']
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused(tmp_path: Path, run_cli: Callable[..., CliResult],
                                      config_file: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_billion_laughs())
    started = time.monotonic()
    with pytest.raises(ProblemsError) as err:
        load_file(bomb)
    assert time.monotonic() - started < 5.0
    (problem,) = err.value.problems
    assert problem.file == str(bomb)
    assert problem.line == 1  # the anchor whose expansion crossed the limit
    assert 1 <= problem.col <= len(bomb.read_text().splitlines()[0])
    assert f"more than {MAX_VALUES} values (an alias bomb?)" in problem.message

    result = run_cli("validate", "--config", config_file, bomb)
    assert_clean_failure(result)
    assert f"{bomb}:{problem.line}:{problem.col}: document expands to more than" in result.stderr


def test_small_aliases_and_merge_keys_are_fine(harness: Harness) -> None:
    flows = harness.load("""
        flow: t
        start: a
        nodes:
          a: &greeting {say: "hi", next: b}
          b:
            <<: *greeting
            next: c
          c: {say: "bye"}
    """)
    assert flows["t"].nodes["b"].edges()[0].target == "c"


def test_not_utf8_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("flow: t\nstart: a\nnodes:\n  a: {say: \"caf\xe9\"}\n".encode("latin-1"))
    with pytest.raises(ProblemsError) as err:
        load_file(path)
    assert err.value.problems[0].message.startswith("file is not UTF-8 text")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "a flow file must be a mapping"),
        ("- just\n- a list\n", "a flow file must be a mapping"),
        ("flow: t\nnodes: {}\n", "missing required field 'start'"),
        ("flow: 'bad id!'\nstart: a\nnodes: {a: {say: hi}}\n", "flow: String should match pattern"),
    ],
)
def test_header_problems(harness: Harness, text: str, message: str) -> None:
    result = harness.load_set(text)
    assert any(message in p.message for p in result.errors), result.errors
    assert all(p.line >= 1 and p.col >= 1 for p in result.errors)


def test_duplicate_flow_ids_across_files(harness: Harness) -> None:
    flow = 'flow: same\nstart: a\nnodes: {a: {say: "hi"}}\n'
    result = harness.load_set(flow, flow)
    (problem,) = result.errors
    assert problem.message.startswith("flow id 'same' is already used by ")
    assert (problem.line, problem.col) == (1, 1)


def test_http_without_on_error_is_a_warning(harness: Harness) -> None:
    result = harness.load_set("""
        flow: t
        start: h
        nodes:
          h: {http: {url: "http://x/"}}
    """)
    assert result.errors == []
    (warning,) = result.warnings
    assert "no on_error" in warning.message
    assert (warning.line, warning.col) == (4, 3)


def test_audio_found_beside_the_flow(harness: Harness) -> None:
    harness.root.mkdir(parents=True, exist_ok=True)
    (harness.root / "hello-here.wav").write_bytes(b"RIFF")
    audio = harness.root.parent / "audio"
    audio.mkdir()
    (audio / "hello-there.wav").write_bytes(b"RIFF")
    harness.load("""
        flow: t
        start: a
        nodes:
          a: {say: [{audio: hello-here.wav}, {audio: hello-there.wav}]}
    """)


def test_dedent_helper_keeps_positions_honest() -> None:
    text = dedent("""
        flow: t
        start: a
    """)
    assert position(text, "start") == (2, 1)
