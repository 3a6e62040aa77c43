"""Flow tests (`*.test.yaml`): cases run offline, plus node coverage per flow.

A case is what a caller does (`dtmf`, `say`, `audio`, `silence`, `hangup`) interleaved with what
they must hear (`expect_prompt`), and how the call must end. Back-ends are stubbed per case: `http`
maps URLs to JSON answers, `http_errors` makes URLs fail, `queues`/`transfers` pick outcomes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ivr.config import EngineConfig
from ivr.errors import Problem, ProblemsError
from ivr.flow.context import CallContext, End
from ivr.flow.interpreter import Interpreter, Result
from ivr.flow.loader import load_file
from ivr.flow.model import Flow
from ivr.flow.scripted import INPUT_KINDS, Recognizer, ScriptedChannel, Step
from ivr.flow.stubs import Stubs
from ivr.yamldoc import validation_problems


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


class Case(Stubs):
    """A caller's script and what must come of it; the stubs it inherits set the scene."""

    name: str
    steps: list[Any] = Field(default_factory=list)
    expect_end: str | dict[str, Any] | None = None
    expect_variables: dict[str, Any] = Field(default_factory=dict)

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[Any]) -> list[Any]:
        for raw in value:
            parse_step(raw)
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
    visited: list[tuple[str, str]] = field(default_factory=list)
    """(flow id, node id) of every node the call entered, for coverage."""
    spoken: list[str] = field(default_factory=list)
    """The prompts' texts as played (unmasked; kept in memory only)."""

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


def judge(case: Case, end: End, variables: dict[str, Any], failures: list[str]) -> list[str]:
    """Everything wrong with a finished case: the call's own failures (prompts, unused steps),
    then the end and the variables against the case's expectations. Offline and over SIP."""
    problems = list(failures)
    why = check_end(case.expect_end, end)
    if why:
        problems.append(why)
    if case.expect_end is None and end.kind in ("error", "inputs_exhausted"):
        problems.append(f"flow ended with {end.kind}: {end.message}")
    for name, want in case.expect_variables.items():
        if not _matches(want, variables.get(name)):
            problems.append(f"variable {name} is {variables.get(name)!r}, expected {want!r}")
    return problems


async def run_case(
    flows: dict[str, Flow], flow: Flow, config: EngineConfig, case: Case,
    recognizer: Recognizer | None = None,
) -> CaseResult:
    channel = ScriptedChannel(
        steps=[parse_step(s) for s in case.steps], recognizer=recognizer,
        queue_results=case.queues, transfer_results=case.transfers, speech=case.speech,
    )
    async with case.http_client() as client:
        ctx = CallContext(
            channel=channel, config=config, flows=flows, flow=flow, clock=case.clock_fn(),
            http_client=client, caller=case.caller.model_dump(), variables=dict(case.variables),
        )
        result = await Interpreter(ctx).run()
    channel.finish()
    problems = judge(case, result.end, result.as_json()["variables"], channel.failures)
    return CaseResult(flow.id, case.name, not problems, "; ".join(problems) or "ok", result,
                      visited=list(ctx.visited), spoken=list(channel.spoken))


def coverage(flows: Mapping[str, Flow], tested: set[str],
             reached: dict[str, set[str]]) -> dict[str, dict[str, Any]]:
    """Per flow that has tests or was reached: its nodes, how many were reached, which not."""
    out: dict[str, dict[str, Any]] = {}
    for fid in sorted(flows):
        if fid not in tested and not reached.get(fid):
            continue
        nodes = list(flows[fid].nodes)
        got = [n for n in nodes if n in reached.get(fid, set())]
        out[fid] = {
            "nodes": len(nodes),
            "reached": len(got),
            "unreached": [n for n in nodes if n not in reached.get(fid, set())],
        }
    return out


def load_cases(test_files: Iterable[Path], flows: Mapping[str, Flow],
               report: Report) -> list[tuple[Flow, Case, Path]]:
    """Every case of the files, with its flow and file; files that do not load go to
    report.problems."""
    out: list[tuple[Flow, Case, Path]] = []
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
        out += [(flow, case, path) for case in tf.cases]
    return out


def finish_report(report: Report, flows: Mapping[str, Flow],
                  cases: list[tuple[Flow, Case, Path]]) -> Report:
    """Coverage from what the report's cases visited."""
    reached: dict[str, set[str]] = {fid: set() for fid in flows}
    for outcome in report.cases:
        for fid, nid in outcome.visited:
            reached.setdefault(fid, set()).add(nid)
    report.coverage = coverage(flows, {flow.id for flow, _, _ in cases}, reached)
    return report


async def run_tests(
    test_files: Iterable[Path], flows: dict[str, Flow], config: EngineConfig,
    recognizer: Recognizer | None = None,
) -> Report:
    report = Report()
    cases = load_cases(test_files, flows, report)
    for flow, case, _ in cases:
        report.cases.append(await run_case(flows, flow, config, case, recognizer))
    return finish_report(report, flows, cases)
