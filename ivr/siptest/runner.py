"""Run flow test cases as real calls: one `ivr call --script` per case, then the server's CDR.

Each case is a subprocess (pjsua2 is one endpoint per process), up to `parallel` at a time: it
calls with the case's stubs in `X-IVR-Test` (ivr/sip/test_hooks.py), sends the steps, and checks
`expect_prompt` by sound. The CDR (`GET /calls/<id>`, the id the hook named) gives the end, its
queue or transfer context, the variables and the nodes the call passed; without API access the
end is what the call saw (the IVR's hangup, a REFER). Judging and coverage are the offline
runner's (`ivr.flow.testing`), so a case passes or fails for the same reasons both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.acd.remote import call as api_call
from ivr.config import EngineConfig
from ivr.errors import IvrError
from ivr.flow.audio_input import file_recognizer
from ivr.flow.context import End
from ivr.flow.model import Flow
from ivr.flow.testing import (
    Case,
    CaseResult,
    Report,
    finish_report,
    judge,
    load_cases,
    parse_step,
    run_case,
)
from ivr.sip.test_hooks import HEADER, TestHook, encode

REPORT_SLACK = 180.0
"""Beyond the call: matching a long call's audio against the catalogue, on a loaded machine."""
CDR_WAIT = 20.0
"""How long after the call the CDR may take to reach the store (outbox, broker, supervisor)."""


@dataclass(frozen=True)
class Target:
    """Where the calls go and how their CDRs are read."""

    host: str
    """host:port of the IVR's SIP front"""
    api: str | None = None
    token: str | None = None
    flows_dir: Path | None = None
    """the prompts the caller expects to hear (the flows under test)"""
    voice: str | None = None
    parallel: int = 4
    call_timeout: float = 120.0
    config: Path | None = None
    uri: str | None = None
    """a given sip: URI (its user part reaches the flow); else one per flow, see `request_uri`"""
    calls_dir: Path | None = None
    """where each call's report, log and audio are kept for a look afterwards (--server-dir)"""


def request_uri(target: Target, config: EngineConfig, flow: str) -> str:
    """The number routed to the flow (the hook names the flow anyway)."""
    if target.uri:
        return target.uri
    number = next((n for n, f in config.routes.items() if f == flow and n != "default"), flow)
    return f"sip:{number}@{target.host}"


def visited_from(path: Iterable[str], top: str, flows: Mapping[str, Flow]) -> list[tuple[str, str]]:
    """(flow, node) from a CDR path: a subflow's nodes are written `flow/node`."""
    out = []
    for entry in path:
        fid, sep, node = str(entry).partition("/")
        out.append((fid, node) if sep and fid in flows else (top, str(entry)))
    return out


def end_from(cdr: Mapping[str, Any] | None, seen: Mapping[str, Any]) -> End:
    """The call's end from its CDR, else from what the caller saw."""
    if cdr and cdr.get("end_kind"):
        return End(kind=cdr["end_kind"], node=cdr.get("end_node"), queue=cdr.get("queue"),
                   target=cdr.get("target"), context=cdr.get("end_context"),
                   message=cdr.get("end_reason"))
    transfer = seen.get("transfer")
    if transfer:
        return End(kind="transfer", target=str(transfer.get("target", "")).strip("<>"))
    return End(kind="hangup", by="ivr" if (seen.get("end") or {}).get("by") == "remote"
               else "caller")


def unused_steps(case: Case, sent: list[Any]) -> str | None:
    """Steps the call never got to (the IVR hung up first), as offline reports them."""
    inputs = [s for s in (parse_step(raw) for raw in case.steps)
              if s.kind not in ("expect_prompt", "hangup")]
    left = [s.describe() for s in inputs[len(sent):]]
    return f"the flow ended before these steps were used: {left}" if left else None


SPOKEN_CHARS_PER_S = 14.0
"""The IVR's TTS at its default rate, roughly."""
SILENCE_STEP_S = 7.0
"""How long a `silence` step keeps quiet (ivr.sip.caller)."""


def expected_seconds(case: Case, offline: CaseResult) -> float:
    """About how long the case's call takes: what the IVR says, the caller's silences, a
    second a step (to schedule the longest first)."""
    steps = [parse_step(raw) for raw in case.steps]
    said = Counter(offline.spoken)  # a stubbed queue wait says an announcement once or so
    return (sum(len(t) * min(n, 2) for t, n in said.items()) / SPOKEN_CHARS_PER_S
            + SILENCE_STEP_S * sum(s.kind == "silence" for s in steps) + len(steps))


class SipRunner:
    """Runs cases against one target, `parallel` calls at a time."""

    def __init__(self, target: Target, config: EngineConfig, flows: Mapping[str, Flow]) -> None:
        self.target = target
        self.config = config
        self.flows = flows
        self._slots = asyncio.Semaphore(max(1, target.parallel))

    async def run(self, test_files: Iterable[Path]) -> Report:
        report = Report()
        cases = load_cases(test_files, self.flows, report)
        offline = [await run_case(dict(self.flows), f, self.config, c,
                                  file_recognizer(self.config)) for f, c, _ in cases]
        # the longest calls first (the slots take waiters in order): the run ends with short
        # calls instead of one long call alone
        order = sorted(range(len(cases)), key=lambda i: -expected_seconds(cases[i][1], offline[i]))
        done = await asyncio.gather(*(self.case(*cases[i], offline[i]) for i in order))
        results = dict(zip(order, done, strict=True))
        report.cases = [results[i] for i in range(len(cases))]
        return finish_report(report, self.flows, cases)

    async def case(self, flow: Flow, case: Case, path: Path, offline: CaseResult) -> CaseResult:
        async with self._slots:
            hook = TestHook(flow=flow.id, stubs=case.stubs())
            with tempfile.NamedTemporaryFile("w", prefix="ivr-prompts-", suffix=".txt") as texts:
                # the prompts as offline played them, templates rendered: heard by sound too
                texts.write("\n".join(t.replace("\n", " ") for t in offline.spoken))
                texts.flush()
                try:
                    seen = await self._call(flow, case, path, hook, Path(texts.name))
                except IvrError as exc:
                    return CaseResult(flow.id, case.name, False, f"the call failed: {exc}")
            try:
                cdr = await asyncio.to_thread(self._cdr, hook.call_id)
            except IvrError as exc:
                return CaseResult(flow.id, case.name, False, f"no CDR for the call: {exc}")
        failures = list(seen.get("failures") or [])
        if seen.get("answered_ms") is None:
            failures.append(f"the call was not answered: {seen.get('end')}")
        unused = unused_steps(case, list(seen.get("sent") or []))
        if unused:
            failures.append(unused)
        variables = dict((cdr or {}).get("variables") or {})
        problems = judge(case, end_from(cdr, seen), variables, failures)
        visited = visited_from((cdr or {}).get("path") or [], flow.id, self.flows)
        return CaseResult(flow.id, case.name, not problems, "; ".join(problems) or "ok",
                          visited=visited)

    async def _call(self, flow: Flow, case: Case, path: Path, hook: TestHook,
                    prompts: Path) -> dict[str, Any]:
        """`ivr call --script` for one case; its JSON report."""
        t = self.target
        cmd = [sys.executable, "-m", "ivr.cli", "call", request_uri(t, self.config, flow.id),
               "--script", str(path), "--case", case.name, "--header", f"{HEADER}: {encode(hook)}",
               "--prompts", str(prompts), "--json", "--timeout", str(t.call_timeout)]
        if t.flows_dir is not None:
            cmd += ["--flows", str(t.flows_dir)]
        if t.voice:
            cmd += ["--voice", t.voice]
        if t.config is not None:
            cmd += ["--config", str(t.config)]
        with contextlib.ExitStack() as files:
            if t.calls_dir is not None:  # kept for a look afterwards (--server-dir)
                t.calls_dir.mkdir(parents=True, exist_ok=True)
                stem = t.calls_dir / hook.call_id
                cmd += ["--record", str(stem.with_suffix(".wav"))]
                (stem.with_suffix(".case")).write_text(f"{case.name}\n{' '.join(cmd)}\n")
                log = files.enter_context(stem.with_suffix(".log").open("w+b"))
            else:
                log = files.enter_context(tempfile.TemporaryFile())
            out, code = await self._run(cmd, log)
            if t.calls_dir is not None and out is not None:
                stem.with_suffix(".json").write_bytes(out)
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-3:]
        if out is None:
            raise IvrError(f"no report within {t.call_timeout + REPORT_SLACK:.0f} s: "
                           f"{' / '.join(tail)}")
        try:
            doc = json.loads(out)
        except ValueError:
            raise IvrError(f"`ivr call` gave no report (exit {code}): "
                           f"{' / '.join(tail)}") from None
        return dict(doc)

    async def _run(self, cmd: list[str], log: Any) -> tuple[bytes | None, int | None]:
        """The command's stdout and exit code (stderr to `log`); None once out of time."""
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"})
        try:
            out, _ = await asyncio.wait_for(proc.communicate(),
                                            self.target.call_timeout + REPORT_SLACK)
            return out, proc.returncode
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGABRT)  # faulthandler: where it hung, into the log
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(proc.wait(), 3.0)
                proc.kill()
            await proc.wait()
            return None, None

    def _cdr(self, call_id: str) -> dict[str, Any] | None:
        """The call's CDR once it has ended; None without API access."""
        t = self.target
        if t.api is None:
            return None
        deadline = time.monotonic() + CDR_WAIT
        while True:
            try:
                cdr = api_call(t.api, "GET", f"/calls/{call_id}", token=t.token)
                if cdr.get("ended_at"):
                    return dict(cdr)
            except IvrError as exc:
                if "404" not in str(exc) or time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                return dict(cdr)
            time.sleep(0.3)


