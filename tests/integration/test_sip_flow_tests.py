"""`ivr test --sip`: the shipped flows' whole suite as real calls, and the hooks' refusal.

The suite runs through a test server `ivr test --sip` starts itself (Kamailio front, workers,
broker, store), so the X-IVR-Test header crosses the front as a carrier's INVITE would. A case
that passes offline and fails over SIP fails here, and so does coverage below offline's.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import leak_scan
import pytest
from server import REPO, Server, start_server

from ivr.flow.stubs import Stubs
from ivr.sip import caller as sip_caller
from ivr.sip.test_hooks import HEADER, TestHook, encode

SUITE_TIMEOUT = 15 * 60


def _ivr_test(*args: str, timeout: float) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-m", "ivr.cli", "test", *args, "--json"],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        return dict(json.loads(proc.stdout))
    except ValueError:
        raise AssertionError(f"no JSON: {proc.stdout[-1000:]} {proc.stderr[-3000:]}") from None


def test_the_shipped_flows_pass_over_sip_with_offline_coverage(tmp_path: Path) -> None:
    for digits in ("12345678", "87654321", "4321"):  # accounts and cards the cases type
        leak_scan.typed(digits)
    offline = _ivr_test("flows/", timeout=120)
    assert all(c["passed"] for c in offline["cases"]), offline  # type: ignore[union-attr]
    started = time.monotonic()
    over_sip = _ivr_test("--sip", "flows/", "--parallel", "4", "--server-dir",
                         str(tmp_path / "server"), timeout=SUITE_TIMEOUT)
    took = time.monotonic() - started
    failed = [f"{c['flow']}: {c['name']}: {c['message']}"  # type: ignore[index]
              for c in over_sip["cases"] if not c["passed"]]  # type: ignore[union-attr]
    assert not failed, "\n".join(failed) + "\n" + \
        (tmp_path / "server" / "serve.log").read_text(errors="replace")[-3000:]
    assert over_sip["problems"] == []
    names = [(c["flow"], c["name"]) for c in over_sip["cases"]]  # type: ignore[union-attr]
    assert names == [(c["flow"], c["name"]) for c in offline["cases"]]  # type: ignore[union-attr]
    assert over_sip["coverage"] == offline["coverage"]
    print(f"\n{len(names)} shipped cases over SIP in {took:.0f} s")


def test_a_server_without_test_hooks_answers_an_x_ivr_test_invite_403(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    server: Server = start_server(tmp_path_factory.mktemp("no-hooks"), max_calls=4)
    try:
        before = len(server.calls())
        hook = TestHook(flow="survey", stubs=Stubs(queues={"general": "timeout"}))
        caller = sip_caller.TestCaller(f"sip:1000@{server.uri_host}", timeout=15,
                                       headers={HEADER: encode(hook)})
        report = asyncio.run(caller.run([sip_caller.Action("dtmf", "1")]))
        assert report.answered_ms is None and report.end["cause"].startswith("403"), report.end
        server.wait(lambda: "test_hooks is off" in server.log_tail(20000), 10, "the refusal logged")
        # the same server still takes ordinary calls, and the refused one left no CDR
        plain = asyncio.run(sip_caller.TestCaller(f"sip:3000@{server.uri_host}",
                                                  timeout=20).run([sip_caller.Action("dtmf", "1")]))
        assert plain.answered_ms is not None
        cdrs = server.wait_cdrs(before + 1)
        assert all(c["call_id"] != hook.call_id for c in cdrs)
        server.wait_idle()
    finally:
        server.stop()
