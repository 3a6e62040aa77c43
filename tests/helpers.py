"""Shared helpers: write flow YAML to a temp dir, load it, run it over scripted steps, run the CLI.

Tests write flows inline (textwrap-dedented YAML) so each test shows the exact flow it exercises;
nothing here depends on the shipped flows in flows/.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from ivr.config import EngineConfig
from ivr.flow.context import CallContext
from ivr.flow.interpreter import Interpreter, Result
from ivr.flow.model import Flow
from ivr.flow.scripted import ScriptedChannel, Step
from ivr.flow.validate import FlowSet, load_flows

IVR_BIN = Path(sys.executable).parent / "ivr"  # the console script of the running venv

CONFIG_YAML = """\
calendars:
  business:
    tz: America/New_York
    weekly: {mon-fri: "08:00-18:00", sat: "09:00-13:00"}
    holidays: [2026-12-25]
  care:
    tz: Asia/Shanghai
    weekly: {daily: "08:00-22:00"}
  split:
    tz: Europe/London
    weekly: {mon-fri: "09:00-12:00, 13:00-17:00", sun: closed}
  allday:
    tz: UTC
    weekly: {daily: "00:00-24:00"}
queues:
  general: {strategy: longest_idle, wrap_up: 10s}
  cards: {strategy: skills}
transfers:
  allow: ["sip:*@example.net", "sip:*@pbx.example.net", "sip:a@b", "sip:*@127.0.0.1:*",
          "sip:*@bank.example"]
"""


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def position(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, col) of the nth occurrence of `needle` in `text`."""
    start = -1
    for _ in range(nth + 1):
        start = text.index(needle, start + 1)
    before = text[:start]
    return before.count("\n") + 1, start - (before.rfind("\n") + 1) + 1


def steps(*items: str) -> list[Step]:
    """`dtmf:12#`, `say:text`, `expect:text`, `silence`, `hangup` into scripted steps."""
    out = []
    for item in items:
        kind, _, value = item.partition(":")
        kind = {"expect": "expect_prompt", "speech": "say"}.get(kind, kind)
        out.append(Step(kind, value))  # type: ignore[arg-type]
    return out


def channel_of(result: Result) -> ScriptedChannel:
    ch = result.ctx.channel
    assert isinstance(ch, ScriptedChannel)
    return ch


@dataclass
class Harness:
    """Writes flows into a temp directory, loads them against a test config, runs them."""

    root: Path
    config: EngineConfig
    _n: int = 0

    def write(self, text: str, name: str | None = None) -> Path:
        self._n += 1
        path = self.root / (name or f"flow{self._n}.yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text), encoding="utf-8")
        return path

    def load_set(self, *texts: str) -> FlowSet:
        return load_flows([self.write(t) for t in texts], self.config)

    def load(self, *texts: str) -> dict[str, Flow]:
        """Load flows that must be valid; a problem fails the test with its file:line:col."""
        result = self.load_set(*texts)
        assert not result.errors, "\n".join(str(p) for p in result.errors)
        return result.flows

    async def run(
        self,
        flows: str | Mapping[str, Flow],
        *script: str,
        flow: str | None = None,
        clock: dt.datetime | None = None,
        http_client: httpx.AsyncClient | None = None,
        caller: dict[str, Any] | None = None,
        variables: dict[str, Any] | None = None,
        queue_results: Mapping[str, str] | None = None,
        transfer_results: Mapping[str, bool] | None = None,
        max_steps: int | None = None,
    ) -> Result:
        """Run a flow (YAML text, or loaded flows plus `flow` id) over scripted caller steps."""
        loaded = self.load(flows) if isinstance(flows, str) else dict(flows)
        flow_id = flow or next(iter(loaded))
        channel = ScriptedChannel(
            steps=steps(*script), queue_results=dict(queue_results or {}),
            transfer_results=dict(transfer_results or {}),
        )
        extra: dict[str, Any] = {}
        if clock is not None:
            extra["clock"] = lambda: clock
        if max_steps is not None:
            extra["max_steps_without_input"] = max_steps
        ctx = CallContext(
            channel=channel, config=self.config, flows=loaded, flow=loaded[flow_id],
            http_client=http_client, caller=dict(caller or {}), variables=dict(variables or {}),
            audio_dir=self.root / "audio", **extra,
        )
        result = await Interpreter(ctx).run()
        channel.finish()
        return result


@pytest.fixture
def config() -> EngineConfig:
    return EngineConfig.model_validate(yaml.safe_load(CONFIG_YAML))


@pytest.fixture
def harness(tmp_path: Path, config: EngineConfig) -> Harness:
    return Harness(tmp_path / "flows", config)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "ivr.yaml"
    path.write_text(CONFIG_YAML, encoding="utf-8")
    return path


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


@pytest.fixture
def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run `ivr ARGS` in-process through the real entry point (`ivr.cli.main`), in tmp_path."""
    from ivr.cli import main

    monkeypatch.chdir(tmp_path)

    def invoke(*args: str | Path, input: str | None = None) -> CliResult:
        # the CLI configures logging for a process; put it back for the tests that follow
        root, flow_log = logging.getLogger(), logging.getLogger("ivr.flow")
        handlers, level, flow_level = root.handlers[:], root.level, flow_log.level
        runner = CliRunner()
        code = 0
        with runner.isolation(input=input) as (out, err, _):
            monkeypatch.setattr(sys, "argv", ["ivr", *map(str, args)])
            try:
                main()
            except SystemExit as exc:
                code = _exit_code(exc.code)
            finally:
                root.handlers[:] = handlers
                root.setLevel(level)
                flow_log.setLevel(flow_level)
            stdout = out.getvalue().decode()
            stderr = err.getvalue().decode()
        return CliResult(code, stdout, stderr)

    return invoke


def assert_clean_failure(result: CliResult) -> None:
    """Exit 1 and no Python traceback or internal error in anything the command printed."""
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    assert "internal error" not in result.output


def only_problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line and not line.startswith(("ok:", "FAILED:"))]


def sequence_in_order(haystack: Sequence[str], needles: Sequence[str]) -> bool:
    """True when each needle is a substring of a later item than the previous needle's."""
    i = 0
    for item in haystack:
        if i < len(needles) and needles[i].lower() in item.lower():
            i += 1
    return i == len(needles)
