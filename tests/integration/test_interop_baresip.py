"""baresip, a softphone that is not ours, as the caller of a DTMF menu and as a queue's agent."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from baresip import Baresip
from server import agent_secret, ivr_call, start_server


def test_a_baresip_caller_completes_the_dtmf_menu(tmp_path: Path) -> None:
    server = start_server(tmp_path / "srv", max_calls=4)
    phone = Baresip(tmp_path / "carol", "<sip:carol@127.0.0.1>;regint=0")
    try:
        before = len(server.calls())
        phone.command("dial", f"sip:3000@{server.uri_host}")
        phone.wait("CALL_ESTABLISHED", 10)
        time.sleep(2.5)  # "Hello." "Press 1."
        phone.command("sndcode", "1")  # RFC 4733 from baresip's own stack
        closed = phone.wait("CALL_CLOSED", 20)  # "You pressed one." "Goodbye." and the IVR's BYE
        (cdr,) = server.wait_cdrs(before + 1)[before:]
        server.wait_idle()
    finally:
        phone.stop()
        server.stop()
    assert cdr["path"] == ["hello", "pick", "one", "bye"], cdr
    assert (cdr["caller"], cdr["end_reason"]) == ("carol", "ivr hangup"), cdr
    assert closed["direction"] == "outgoing", closed


def test_a_baresip_agent_registers_and_gets_the_handoff(tmp_path: Path) -> None:
    server = start_server(tmp_path / "srv", max_calls=8,
                          extra={"agents": {"bob": {"queues": ["general"]}}})
    agent = Baresip(tmp_path / "bob", f"<sip:bob@{server.uri_host}>;auth_pass={agent_secret('bob')}"
                    ";answermode=auto;regint=300")
    pool = ThreadPoolExecutor(1)
    try:
        agent.wait_registered(10)
        status, _ = server.request("POST", "/agents/bob/login")
        assert status == 200
        before = len(server.calls())
        caller = pool.submit(ivr_call, server, f"sip:4000@{server.uri_host}", call_timeout=30)
        answered = agent.wait("CALL_ESTABLISHED", 20)  # answermode=auto
        # the whisper, then the caller, who hears the agent's silence and hangs up after 4 s
        agent.wait("CALL_CLOSED", 20)
        code, doc, err = caller.result(timeout=60)
        (cdr,) = server.wait_cdrs(before + 1)[before:]
        status, ctx = server.get(f"/calls/{cdr['call_id']}/context")
        server.wait_idle()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        agent.stop()
        server.stop()
    assert code == 0, err[-2000:]
    assert answered["direction"] == "incoming", answered
    assert cdr["end_kind"] == "queue" and cdr["path"][-1] == "wait", cdr
    assert status == 200 and ctx["agent"] == "bob", ctx
    assert doc["answered_ms"] is not None and doc["prompts"], doc
