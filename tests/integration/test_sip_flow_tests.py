"""`ivr test --sip`: a flow's cases as real calls, and the hooks' refusal.

The suite runs through a test server `ivr test --sip` starts itself (Kamailio front, workers,
broker, store), so the X-IVR-Test header crosses the front as a carrier's INVITE would. A case
that passes offline and fails over SIP fails here, and so does coverage below offline's.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from server import Server, ivr_test, start_server

from ivr.flow.stubs import Stubs
from ivr.sip import caller as sip_caller
from ivr.sip.test_hooks import HEADER, TestHook, encode

SUITE_TIMEOUT = 5 * 60


FLOW = """
flow: orders
description: a shop's order line, written for this test from the flow-language doc
start: open
nodes:
  open:
    hours: {calendar: business}
    open: ask
    closed: closed
  closed:
    say: "We are closed. Please call again tomorrow."
    hangup: true
  ask:
    collect:
      prompt: "Please key in your six digit order number, then press pound."
      digits: {min: 6, max: 6, terminator: "#"}
      into: order
    next: lookup
  lookup:
    http: {url: "http://127.0.0.1:8099/orders/{{ order }}", timeout: 2s, into: status}
    next: tell
    on_error: sorry
  tell:
    say: "Your order is {{ status.state }}."
    next: done
  sorry:
    say: "Sorry, we cannot find that order right now."
    next: done
  done:
    menu:
      prompt: "To hear it again press 1. To end the call press 2."
      options:
        - {dtmf: "1", goto: tell}
        - {dtmf: "2", goto: bye}
    on_fail: bye
  bye:
    say: "Thank you for calling. Goodbye."
    hangup: true
"""

CASES = """
flow: orders
cases:
  - name: an open shop reads the order's state, twice
    clock: "2026-03-02T10:00:00-05:00"
    caller: {number: "+15550002222"}
    http:
      "http://127.0.0.1:8099/orders/123456": {state: shipped}
    steps:
      - expect_prompt: "six digit order number"
      - dtmf: "123456#"
      - expect_prompt: "Your order is shipped"
      - dtmf: "1"
      - expect_prompt: "Your order is shipped"
      - dtmf: "2"
      - expect_prompt: "Goodbye"
    expect_end: hangup
    expect_variables: {order: "123456", status: {state: shipped}}

  - name: the back end is down
    clock: "2026-03-02T10:00:00-05:00"
    http_errors: {"http://127.0.0.1:8099/orders/654321": timeout}
    steps:
      - dtmf: "654321#"
      - expect_prompt: "cannot find that order"
      - dtmf: "2"
    expect_end: hangup

  - name: closed on a Sunday
    clock: "2026-03-01T10:00:00-05:00"
    steps:
      - expect_prompt: "We are closed"
    expect_end: hangup
"""


def test_a_new_flows_cases_pass_over_sip_as_offline_with_the_same_coverage(tmp_path: Path) -> None:
    """clock, caller, http stubs, expect_end and expect_variables over a real call, through the
    test server `ivr test --sip` starts (front, workers, broker, store)."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "orders.yaml").write_text(FLOW)
    (flows / "orders.test.yaml").write_text(CASES)
    offline = ivr_test(str(flows), timeout=120)
    assert all(c["passed"] for c in offline["cases"]), offline
    started = time.monotonic()
    over_sip = ivr_test("--sip", str(flows), "--parallel", "3", "--server-dir",
                        str(tmp_path / "server"), timeout=SUITE_TIMEOUT)
    took = time.monotonic() - started
    failed = [f"{c['flow']}: {c['name']}: {c['message']}"
              for c in over_sip["cases"] if not c["passed"]]
    assert not failed, "\n".join(failed) + "\n" + \
        (tmp_path / "server" / "serve.log").read_text(errors="replace")[-3000:]
    assert over_sip["problems"] == [] and len(over_sip["cases"]) == 3, over_sip
    names = [(c["flow"], c["name"]) for c in over_sip["cases"]]
    assert names == [(c["flow"], c["name"]) for c in offline["cases"]]
    assert over_sip["coverage"] == offline["coverage"]
    print(f"\n{len(names)} cases over SIP in {took:.0f} s")


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
