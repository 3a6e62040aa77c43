"""Handoff to a real agent phone: the caller's context on the agent's INVITE and on MQTT."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from scenarios import bye, call_setup, dtmf, pause, scenario
from server import free_udp_tcp_port, start_server
from sipp_run import run_sipp


def test_the_bank_agent_path_hands_the_caller_to_a_sip_agent_with_context(tmp_path: Path) -> None:
    agent_port = free_udp_tcp_port()
    server = start_server(
        tmp_path / "srv", max_calls=8,
        extra={"agents": {"alice": {"uri": f"sip:alice@127.0.0.1:{agent_port}",
                                     "queues": ["general"], "skills": {"banking": 5}}}})
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    agent = subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(agent_port), "-m", "1", "-nostdin",
         "-trace_msg", "-timeout", "40s", "-mi", "127.0.0.1", "-mp", str(free_udp_tcp_port())],
        cwd=agent_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    host, port = server.health()["bus"].split("://")[1].split(":")
    offers = subprocess.Popen(
        ["mosquitto_sub", "-h", host, "-p", port, "-t", "ivr/agents/alice/offer", "-C", "1",
         "-W", "40", "-q", "1", "-u", "agent-alice", "-P", server.bus_password("agent-alice")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        status, _ = server.request("POST", "/agents/alice/login")
        assert status == 200
        time.sleep(0.5)
        path = tmp_path / "to_agent.xml"
        # "0" is the bank flow's global for an agent: intent=agent, then the general queue
        path.write_text(scenario("to_agent", call_setup(), pause(2500), dtmf("0"), pause(5000), bye()))
        r = run_sipp(server.uri_host, str(path), service="1000", timeout=40)
        assert r.successful == 1, r.output[-2000:] + server.log_tail()
        agent.communicate(timeout=30)
        offer_out, _ = offers.communicate(timeout=30)
    finally:
        for p in (agent, offers):
            if p.poll() is None:
                p.kill()
        server.stop()
    log = next(agent_dir.glob("*_messages.log")).read_text()
    invite = log[log.index("INVITE sip:alice"):]
    invite = invite[: invite.index("\n\n")]
    assert "User-to-User:" in invite and "encoding=hex" in invite, invite
    assert "X-IVR-Intent: agent" in invite, invite
    assert "X-IVR-Call-Id:" in invite
    offer = json.loads(offer_out)
    assert offer["flow"] == "acme-bank" and offer["path"][-1] == "agent"
    assert offer["context"]["intent"] == "agent"
