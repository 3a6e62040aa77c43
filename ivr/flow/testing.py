"""Flow tests (`*.test.yaml`): cases run offline, plus node coverage per flow.

A case is what a caller does (`dtmf`, `say`, `audio`, `silence`, `hangup`) interleaved with what
they must hear (`expect_prompt`), and how the call must end. Back-ends are stubbed per case: `http`
maps URLs to JSON answers, `http_errors` makes URLs fail, `queues`/`transfers` pick outcomes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ivr.config import EngineConfig
from ivr.errors import Problem, ProblemsError
from ivr.flow.context import CallContext, End
from ivr.flow.interpreter import Interpreter, Result
from ivr.flow.loader import load_file
from ivr.flow.model import Flow
from ivr.flow.scripted import INPUT_KINDS, Recognizer, ScriptedChannel, Step
from ivr.yamldoc import validation_problems


class Caller(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = "+15550000000"
    name: str = ""
    dialed: str = ""
    sip_headers: dict[str, str] = Field(default_factory=dict)


def parse_step(raw: Any) -> Step:
    """`- silence`, `- hangup`, or a one-key mapping like `- dtmf: "1"`."""
    if isinstance(raw, str) and raw in ("silence", "hangup"):
        return Step(raw)  # type: ignore[arg-type]
    if isinstance(raw, dict) and len(raw) == 1:
        ((kind, value),) = raw.items()
        if kind in ("silence", "hangup"):
            return Step(kind)
        if kind in (*INPUT_KINDS, "expect_prompt") and isinstance(value, (str, int)):
            if kind == "dtmf" and not all(c in "0123456789*#ABCD" for c in str(value)):
                raise ValueError(f"dtmf {value!r} may only hold 0-9 * # A-D")
            return Step(kind, str(value))
    raise ValueError(
        "a step is one of: expect_prompt: TEXT, dtmf: DIGITS, say: TEXT, audio: FILE.wav, "
        "silence, hangup"
    )


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    caller: Caller = Field(default_factory=Caller)
    clock: dt.datetime | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    http: dict[str, Any] = Field(default_factory=dict)
    http_errors: dict[str, Literal["timeout", "refused"] | int] = Field(default_factory=dict)
    queues: dict[str, Literal["connected", "timeout", "error", "callback"]] = Field(
        default_factory=dict
    )
    transfers: dict[str, bool] = Field(default_factory=dict)
    speech: bool = Field(True, description="false: the call has no speech recognition")
    steps: list[Any] = Field(default_factory=list)
    expect_end: str | dict[str, Any] | None = None
    expect_variables: dict[str, Any] = Field(default_factory=dict)

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[Any]) -> list[Any]:
        for raw in value:
            parse_step(raw)
        return value

    @field_validator("clock")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("clock needs a UTC offset, e.g. 2026-03-02T10:00:00-05:00")
        return value

    @field_validator("expect_end")
    @classmethod
    def _end(cls, value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if isinstance(value, str) and value not in ("hangup", "error", "inputs_exhausted"):
            raise ValueError("expect_end is hangup, error, inputs_exhausted, {queue: ...}, "
                             "{transfer: ...} or {node: ...}")
        if isinstance(value, dict) and not ({"queue", "transfer", "node"} & set(value)):
            raise ValueError("expect_end mapping needs queue, transfer or node")
        return value


class TestFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flow: str
    cases: list[Case] = Field(min_length=1)


@dataclass
class CaseResult:
    flow: str
    name: str
    passed: bool
    message: str
    result: Result | None = None

    def as_json(self) -> dict[str, Any]:
        return {"flow": self.flow, "name": self.name, "passed": self.passed,
                "message": self.message}


@dataclass
class Report:
    cases: list[CaseResult] = field(default_factory=list)
    coverage: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems and all(c.passed for c in self.cases)

    def as_json(self) -> dict[str, Any]:
        return {"cases": [c.as_json() for c in self.cases], "coverage": self.coverage,
                "problems": [p.as_json() for p in self.problems]}


def load_test_file(path: Path) -> TestFile:
    doc = load_file(path)
    if not isinstance(doc.data, dict):
        raise ProblemsError([doc.problem((), "a test file is a mapping with flow and cases")])
    try:
        return TestFile.model_validate(doc.data)
    except ValidationError as exc:
        raise ProblemsError(validation_problems(doc, exc)) from None


def _mock_http(case: Case) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url in case.http_errors:
            err = case.http_errors[url]
            if err == "timeout":
                raise httpx.ReadTimeout("timed out (stubbed by the test case)", request=request)
            if err == "refused":
                raise httpx.ConnectError("connection refused (stubbed)", request=request)
            return httpx.Response(int(err), json={"error": "stubbed"})
        if url in case.http:
            return httpx.Response(200, content=json.dumps(case.http[url]).encode(),
                                  headers={"content-type": "application/json"})
        raise httpx.ConnectError(f"no stubbed answer for {url} in this test case", request=request)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _matches(v, actual[k]) for k, v in expected.items()
        )
    return expected == actual or str(expected) == str(actual)


def check_end(expected: str | dict[str, Any] | None, end: End) -> str | None:
    """Why the end does not match, or None."""
    if expected is None:
        return None
    if isinstance(expected, str):
        return None if end.kind == expected else f"expected end {expected}, got {end.as_json()}"
    if "queue" in expected:
        if end.kind != "queue" or end.queue != expected["queue"]:
            return f"expected queue {expected['queue']}, got {end.as_json()}"
        if not _matches(expected.get("context", {}), end.context or {}):
            return f"queue context {end.context} does not match {expected.get('context')}"
        return None
    if "transfer" in expected:
        if end.kind != "transfer" or end.target != expected["transfer"]:
            return f"expected transfer to {expected['transfer']}, got {end.as_json()}"
        return None
    if end.node != expected["node"]:
        return f"expected to end at node {expected['node']}, ended at {end.node} ({end.kind})"
    return None


async def run_case(
    flows: dict[str, Flow], flow: Flow, config: EngineConfig, case: Case,
    recognizer: Recognizer | None = None,
) -> CaseResult:
    channel = ScriptedChannel(
        steps=[parse_step(s) for s in case.steps], recognizer=recognizer,
        queue_results=case.queues, transfer_results=case.transfers, speech=case.speech,
    )
    clock_value = case.clock

    def clock() -> dt.datetime:
        return clock_value or dt.datetime.now(dt.timezone.utc)

    async with _mock_http(case) as client:
        ctx = CallContext(
            channel=channel, config=config, flows=flows, flow=flow, clock=clock,
            http_client=client, caller=case.caller.model_dump(), variables=dict(case.variables),
        )
        result = await Interpreter(ctx).run()
    channel.finish()
    problems = list(channel.failures)
    why = check_end(case.expect_end, result.end)
    if why:
        problems.append(why)
    if case.expect_end is None and result.end.kind in ("error", "inputs_exhausted"):
        problems.append(f"flow ended with {result.end.kind}: {result.end.message}")
    variables = result.as_json()["variables"]
    for name, want in case.expect_variables.items():
        if not _matches(want, variables.get(name)):
            problems.append(f"variable {name} is {variables.get(name)!r}, expected {want!r}")
    return CaseResult(flow.id, case.name, not problems, "; ".join(problems) or "ok", result)


async def run_tests(
    test_files: Iterable[Path], flows: dict[str, Flow], config: EngineConfig,
    recognizer: Recognizer | None = None,
) -> Report:
    report = Report()
    reached: dict[str, set[str]] = {fid: set() for fid in flows}
    tested: set[str] = set()
    for path in test_files:
        try:
            tf = load_test_file(path)
        except ProblemsError as exc:
            report.problems += exc.problems
            continue
        flow = flows.get(tf.flow)
        if flow is None:
            report.problems.append(Problem(str(path), 1, 1, f"unknown flow {tf.flow!r}"))
            continue
        tested.add(tf.flow)
        for case in tf.cases:
            outcome = await run_case(flows, flow, config, case, recognizer)
            report.cases.append(outcome)
            if outcome.result is not None:
                for fid, nid in outcome.result.ctx.visited:
                    reached.setdefault(fid, set()).add(nid)
    for fid in sorted(flows):
        if fid not in tested and not reached.get(fid):
            continue
        nodes = list(flows[fid].nodes)
        got = [n for n in nodes if n in reached.get(fid, set())]
        report.coverage[fid] = {
            "nodes": len(nodes),
            "reached": len(got),
            "unreached": [n for n in nodes if n not in reached.get(fid, set())],
        }
    return report
