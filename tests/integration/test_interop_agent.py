"""Agent phones that are not ours: a minimal SIPp UAS answering with two codecs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from scenarios import uas_answer_then_bye
from server import free_udp_tcp_port, ivr_call, start_server
from sipp_run import count_calls

HANDOFF = "4000"


def test_an_agent_answering_with_pcmu_and_pcma_gets_no_reinvite_and_hangs_up(
        tmp_path: Path) -> None:
    agent_port = free_udp_tcp_port()
    server = start_server(tmp_path / "srv", max_calls=8, extra={"agents": {
        "uas": {"uri": f"sip:uas@127.0.0.1:{agent_port}", "queues": ["general"]}}})
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    (agent_dir / "uas.xml").write_text(uas_answer_then_bye("0 8 101", hold_ms=3000))
    agent = subprocess.Popen(
        ["sipp", "-sf", "uas.xml", "-i", "127.0.0.1", "-p", str(agent_port), "-m", "1",
         "-nostdin", "-trace_msg", "-timeout", "45s", "-timeout_error", "-mi", "127.0.0.1",
         "-mp", str(free_udp_tcp_port())],
        cwd=agent_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status, _ = server.request("POST", "/agents/uas/login")
        assert status == 200
        before = len(server.calls())
        code, doc, err = ivr_call(server, f"sip:{HANDOFF}@{server.uri_host}", call_timeout=30)
        out, _ = agent.communicate(timeout=30)
        assert code == 0, err[-2000:]
        (cdr,) = server.wait_cdrs(before + 1)[before:]
        status, ctx = server.get(f"/calls/{cdr['call_id']}/context")
        server.wait_idle()
    finally:
        if agent.poll() is None:
            agent.kill()
        server.stop()
    assert agent.returncode == 0 and count_calls(out, "Successful call") == 1, out[-3000:]
    log = next(agent_dir.glob("*_messages.log")).read_text()
    invites = [line for line in log.splitlines() if line.startswith("INVITE sip:")]
    assert len(invites) == 1, "the IVR re-INVITEd the agent:\n" + log[-4000:]
    assert cdr["path"][-1] == "wait" and cdr["end_kind"] == "queue", cdr
    assert status == 200 and ctx["agent"] == "uas", ctx
    assert cdr["ended_at"] - cdr["answered_at"] > 3.0, cdr  # the agent's 3 s were bridged
    # the agent hung up after 3 s; the bridged caller was hung up by the IVR, not left dangling
    assert doc["end"]["by"] == "remote", doc  # type: ignore[index]
