"""Agents as real SIP phones around a real `ivr serve`: registered by name, ringing, callbacks."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from phones import Softphone, headers_of
from scenarios import answer_200, call_setup, notify_refer_done, recv, reply, scenario
from server import Server, restart_server, start_server
from sipp_run import run_sipp

HANDOFF = "4000"
HANDOFF_REFER = "4001"
ALICE = "sip:alice@127.0.0.1:5998"


def _post(server: Server, path: str) -> Any:
    status, doc = server.request("POST", path)
    assert status == 200, doc
    return doc


def _agent(server: Server, name: str) -> dict[str, Any]:
    status, doc = server.get("/agents")
    assert status == 200
    return dict(next(a for a in doc["agents"] if a["name"] == name))


def _tone_share(samples: np.ndarray, hz: float = 440.0) -> float:
    """How much of the signal's energy sits within 20 Hz of `hz` (a pure tone: ~1)."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / 8000)
    total = spectrum[(freqs > 100) & (freqs < 3800)].sum()
    return float(spectrum[np.abs(freqs - hz) < 20].sum() / total) if total else 0.0


@pytest.fixture
def server(tmp_path: Path) -> Any:
    srv = start_server(tmp_path / "srv", max_calls=8, extra={"agents": {
        "bob": {"queues": ["general"]},  # no uri: his softphone registers at the front
        "dave": {"queues": ["general"]},
        "alice": {"uri": ALICE, "queues": ["general"]}}})
    try:
        yield srv
    finally:
        srv.stop()


def test_an_agent_registered_by_name_gets_whisper_then_the_caller(
        server: Server, tmp_path: Path, record_property: Any) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    bob = Softphone("--name", "bob", "--register", server.uri_host, "--incoming", "answer",
                    "--record-dir", str(rec), "--duration", "50")
    caller = None
    try:
        bob.wait(10, "bob registered at the front", ev="registered", code=200)
        assert _agent(server, "bob")["uri"] is None  # nothing static: only the registration
        _post(server, "/agents/bob/login")
        caller = Softphone("--name", "carol", "--call", f"sip:{HANDOFF}@{server.uri_host}",
                           "--play", "tone", "--record-dir", str(tmp_path), "--hangup-after", "12",
                           "--duration", "40")
        invite = bob.wait(20, "the agent's INVITE", ev="incoming")
        answered = caller.wait(5, "the IVR's answer", ev="state", leg="out", state="CONFIRMED")
        bob.wait(10, "bob's call up", ev="state", leg="in", state="CONFIRMED")
        # the worker reports the answer to the ACD over the bus: on_call follows within moments
        server.wait(lambda: _agent(server, "bob")["state"] == "on_call", 5, "bob on_call")
        bob.wait(25, "the bridged call to end", ev="recorded")
        caller.wait(10, "the caller's call to end", ev="state", leg="out", state="DISCONNECTED")
    finally:
        bob.stop()
        if caller is not None:
            caller.stop()
    # the queue offers bob as soon as the flow reaches it and the callback offer (offer_after 0 s
    # here, about 3 s long) has played, or been cut by the caller's tone
    record_property("ivr_answer_to_agent_invite_s", round(invite["t"] - answered["t"], 3))
    assert invite["t"] - answered["t"] < 6.0
    msg = invite["msg"]
    assert msg.startswith(f"INVITE sip:bob@127.0.0.1:{bob.port}"), msg[:200]  # the contact
    h = headers_of(msg)
    assert h["User-to-User"].endswith(";encoding=hex;purpose=call-context"), h
    assert (h["X-IVR-Intent"], h["X-IVR-Tier"]) == ("cards", "gold"), h
    call_id = h["X-IVR-Call-Id"]
    assert bytes.fromhex(h["User-to-User"].split(";")[0]).decode() == call_id
    # what bob heard: the whisper (speech, not the caller's tone) first, then the caller's tone
    with wave.open(str(rec / "in-1.wav")) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        rate = w.getframerate()
    assert rate == 8000 and audio.size > rate * 5, audio.size
    first, last = audio[: rate], audio[-3 * rate: -rate]
    assert np.sqrt(np.mean(first.astype(np.float64) ** 2)) > 100, "no whisper"
    assert _tone_share(first) < 0.5, "the caller was connected before the whisper"
    assert _tone_share(last) > 0.8, "the caller's audio never reached the agent"
    status, ctx = server.get(f"/calls/{call_id}/context")
    assert status == 200 and ctx["context"] == {"intent": "cards", "tier": "gold"}, ctx
    assert ctx["agent"] == "bob"


def test_caller_hangs_up_while_the_agent_rings_the_ring_is_cancelled(
        server: Server, tmp_path: Path, record_property: Any) -> None:
    bob = Softphone("--name", "bob", "--register", server.uri_host, "--incoming", "ring",
                    "--duration", "40")
    caller = None
    try:
        bob.wait(10, "bob registered at the front", ev="registered", code=200)
        _post(server, "/agents/bob/login")
        caller = Softphone("--name", "carol", "--call", f"sip:{HANDOFF}@{server.uri_host}",
                           "--hangup-after", "5", "--duration", "30")
        bob.wait(15, "the agent's INVITE", ev="incoming")
        assert _agent(server, "bob")["state"] == "ringing"
        hangup = caller.wait(15, "the caller's hangup", ev="state", leg="out",
                             state="DISCONNECTED")
        end = bob.wait(10, "the agent's ring to end", ev="state", leg="in", state="DISCONNECTED")
        server.wait(lambda: _agent(server, "bob")["state"] == "ready", 5, "bob ready again")
        server.wait_idle()  # no agent leg left in the worker
    finally:
        bob.stop()
        if caller is not None:
            caller.stop()
    assert end["code"] == 487, end  # CANCELled: Request Terminated
    record_property("caller_bye_to_agent_487_s", round(end["t"] - hangup["t"], 3))
    assert end["t"] - hangup["t"] < 2.0
    assert not bob.seen(ev="state", leg="in", state="CONFIRMED")


def test_an_agent_phone_rings_for_the_queues_ring_timeout_not_the_fronts(
        server: Server, tmp_path: Path) -> None:
    """The queue rings an agent for its ring_timeout (20 s); the front's own INVITE failover
    timer (10 s) must not cancel the agent's phone first."""
    bob = Softphone("--name", "bob", "--register", server.uri_host, "--incoming", "answer",
                    "--answer-after", "13", "--duration", "50")
    caller = None
    try:
        bob.wait(10, "bob registered at the front", ev="registered", code=200)
        _post(server, "/agents/bob/login")
        caller = Softphone("--name", "carol", "--call", f"sip:{HANDOFF}@{server.uri_host}",
                           "--play", "tone", "--hangup-after", "30", "--duration", "45")
        bob.wait(20, "the agent's INVITE", ev="incoming")
        bob.wait(20, "bob's call up after 13 s of ringing", ev="state", leg="in",
                 state="CONFIRMED")
        server.wait(lambda: _agent(server, "bob")["state"] == "on_call", 5, "bob on_call")
    finally:
        bob.stop()
        if caller is not None:
            caller.stop()


def test_a_queued_callback_dials_the_agent_then_the_caller_and_bridges(
        server: Server, tmp_path: Path, record_property: Any) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    bob = Softphone("--name", "bob", "--register", server.uri_host, "--incoming", "answer",
                    "--record-dir", str(rec), "--hangup-in-after", "9", "--duration", "55")
    caller = None
    try:
        bob.wait(10, "bob registered at the front", ev="registered", code=200)
        _post(server, "/agents/bob/login")
        _post(server, "/agents/bob/away")  # logged in (the queue is staffed) but not taking calls
        # the caller waits, presses 9 for a callback, is told so and hung up on; then answers
        # the callback on the same phone (its contact) and plays a tone
        caller = Softphone("--name", "carol", "--call", f"sip:{HANDOFF}@{server.uri_host}",
                           "--dtmf", "9", "--dtmf-after", "3", "--incoming", "answer",
                           "--play", "tone", "--record-dir", str(tmp_path), "--duration", "50")
        caller.wait(20, "the IVR to hang up after the callback key", ev="state", leg="out",
                    state="DISCONNECTED")

        def scheduled() -> Any:
            queue = next(q for q in server.get("/queues")[1]["queues"] if q["name"] == "general")
            return queue if queue["callbacks"] == 1 and queue["waiting"] == 0 else None

        server.wait(scheduled, 5, "one callback scheduled in general")
        assert not bob.seen(ev="incoming")
        ready_at = time.time()
        _post(server, "/agents/bob/ready")
        agent_invite = bob.wait(15, "the agent's INVITE for the callback", ev="incoming")
        agent_up = bob.wait(5, "bob answered", ev="state", leg="in", state="CONFIRMED")
        caller_invite = caller.wait(25, "the callback to the caller", ev="incoming")
        caller.wait(5, "the callback answered", ev="state", leg="in", state="CONFIRMED")
        bob.wait(25, "bob's call to end", ev="recorded")
        caller.wait(10, "the callback to end", ev="state", leg="in", state="DISCONNECTED")
        server.wait(lambda: _agent(server, "bob")["state"] == "wrap_up", 5, "bob in wrap-up")
        server.wait_idle()
    finally:
        bob.stop()
        if caller is not None:
            caller.stop()
    record_property("agent_ready_to_agent_invite_s", round(agent_invite["t"] - ready_at, 3))
    # bob hears who is called back (~3 s of speech) before the caller's phone rings
    record_property("agent_answer_to_caller_invite_s",
                    round(caller_invite["t"] - agent_up["t"], 3))
    assert agent_invite["t"] - ready_at < 3.0
    assert caller_invite["t"] - agent_up["t"] < 10.0
    h = headers_of(agent_invite["msg"])
    call_id = h["X-IVR-Call-Id"]
    assert (h["X-IVR-Intent"], h["X-IVR-Tier"]) == ("cards", "gold"), h
    assert h["X-IVR-Callback"] == "carol", h  # the number the caller called from
    assert caller_invite["msg"].startswith(f"INVITE sip:carol@127.0.0.1:{caller.port}")
    assert headers_of(caller_invite["msg"])["X-IVR-Call-Id"] == call_id
    with wave.open(str(rec / "in-1.wav")) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert _tone_share(audio[-3 * 8000: -8000]) > 0.8, "the caller never reached the agent"
    queue = next(q for q in server.get("/queues")[1]["queues"] if q["name"] == "general")
    assert queue["callbacks"] == 0 and queue["waiting"] == 0, queue
    status, cdr = server.get(f"/calls/{call_id}-callback-1")
    assert status == 200 and cdr["end_reason"] == "connected", cdr
    assert (cdr["caller"], cdr["dialed"], cdr["end_kind"]) == ("carol", "bob", "callback"), cdr


def test_supervisor_sigkilled_while_a_caller_waits_the_caller_stays_and_is_served(
        tmp_path: Path, record_property: Any) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    old = start_server(tmp_path / "srv", max_calls=8,
                       extra={"agents": {"bob": {"queues": ["general"]}}})
    # bob's phone registers once, before the crash: the restarted front must still know it
    bob = Softphone("--name", "bob", "--register", old.uri_host, "--incoming", "answer",
                    "--record-dir", str(rec), "--hangup-in-after", "6", "--duration", "58")
    new: Server | None = None
    caller = None
    try:
        bob.wait(10, "bob registered at the front", ev="registered", code=200)
        _post(old, "/agents/bob/login")
        _post(old, "/agents/bob/away")  # staffed, so the caller waits instead of overflowing
        caller = Softphone("--name", "carol", "--call", f"sip:{HANDOFF}@{old.uri_host}",
                           "--play", "tone", "--record-dir", str(tmp_path), "--duration", "55")

        def waiting(server: Server) -> Any:
            queue = next(q for q in server.get("/queues")[1]["queues"] if q["name"] == "general")
            return queue if queue["waiting"] == 1 else None

        old.wait(lambda: waiting(old), 15, "the caller waiting in general")
        old_workers = [w["pid"] for w in old.health()["workers"] if w["alive"]]
        os.kill(old.proc.pid, signal.SIGKILL)
        old.proc.wait(5)
        time.sleep(3)  # long enough for a worker that dies with its parent to drop the call
        assert not caller.seen(ev="state", leg="out", state="DISCONNECTED"), \
            "the caller's worker dropped the call when the supervisor died"
        restart_at = time.time()
        new = restart_server(old)
        record_property("restart_to_healthy_s", round(time.time() - restart_at, 3))
        new.wait(lambda: waiting(new), 10, "the caller still queued after the restart")
        assert _agent(new, "bob")["state"] == "away"
        ready_at = time.time()
        _post(new, "/agents/bob/ready")
        invite = bob.wait(15, "the agent's INVITE", ev="incoming")
        record_property("agent_ready_to_invite_after_restart_s", round(invite["t"] - ready_at, 3))
        bob.wait(20, "the bridged call to end", ev="recorded")
        caller.wait(10, "the caller's call to end", ev="state", leg="out", state="DISCONNECTED")
        # the old workers took no new calls and exit once their last call is over
        new.wait(lambda: not any(Path(f"/proc/{pid}").exists() and
                                 Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
                                 for pid in old_workers), 10, "the old workers to exit")
    finally:
        bob.stop()
        if caller is not None:
            caller.stop()
        if new is not None:
            new.stop()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(old.proc.pid, signal.SIGKILL)  # whatever the killed supervisor left
        if new is None:  # its front runs in its own session; the restart did not replace it
            with contextlib.suppress(OSError, ValueError):
                pid = int((old.root / "var" / "front" / "kamailio.pid").read_text())
                os.killpg(pid, signal.SIGKILL)
    assert headers_of(invite["msg"])["X-IVR-Intent"] == "cards"
    with wave.open(str(rec / "in-1.wav")) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert _tone_share(audio[-3 * 8000: -8000]) > 0.8, "the caller never reached the agent"


def test_mode_refer_sends_the_caller_to_the_agent_with_the_context(server: Server,
                                                                   tmp_path: Path) -> None:
    _post(server, "/agents/alice/login")
    path = tmp_path / "refer.xml"
    path.write_text(scenario("refer", call_setup(), recv("REFER", timeout_ms=15000),
                             reply("202 Accepted"), notify_refer_done(2), recv("BYE"),
                             answer_200()))
    r = run_sipp(server.uri_host, str(path), service=HANDOFF_REFER, cwd=tmp_path,
                 extra=["-trace_msg"], timeout=40)
    assert r.successful == 1, r.output[-2000:] + server.log_tail()
    log = "".join(p.read_text() for p in tmp_path.glob("*_messages.log"))
    refer = log[log.index("REFER sip:"):]
    refer = refer[: refer.index("\n\n")]
    h = {k: v for k, _, v in (line.partition(": ") for line in refer.splitlines()[1:])}
    assert h["Refer-To"].strip("<>") == ALICE, refer
    assert (h["X-IVR-Intent"], h["X-IVR-Tier"]) == ("cards", "gold"), refer
    assert bytes.fromhex(h["User-to-User"].split(";")[0]).decode() == h["X-IVR-Call-Id"]
    # the ACD saw alice answer (the caller's phone reported the new call's 200), then the IVR
    # left the call: alice is in wrap-up, and the queue context names her
    server.wait(lambda: _agent(server, "alice")["state"] == "wrap_up", 5, "alice in wrap-up")
    status, ctx = server.get(f"/calls/{h['X-IVR-Call-Id']}/context")
    assert status == 200 and ctx["agent"] == "alice", ctx
    server.wait_idle()


def test_a_waiting_caller_is_offered_the_callback_key(server: Server, tmp_path: Path) -> None:
    from ivr.lang import messages
    from ivr.speech.audio import read_wav
    from ivr.speech.prompt_match import find_prompts
    from ivr.speech.tts import PromptCache, Voice

    _post(server, "/agents/bob/login")
    _post(server, "/agents/bob/away")  # staffed: the caller waits (offer_after is 0s here)
    caller = Softphone("--name", "carol", "--call", f"sip:{HANDOFF}@{server.uri_host}",
                       "--record-dir", str(tmp_path), "--hangup-after", "7", "--duration", "30")
    try:
        caller.wait(20, "the caller's recording", ev="recorded")
    finally:
        caller.stop()
    tts = server.config["speech"]["tts"]
    cache = PromptCache(server.root / "var" / "prompts",
                        Voice(tts["engine"], tts["voice"], tts["rate"]), 8000)
    offer = messages.text("en-US", "callback_offer", key="9")
    rendered = cache.cached(offer)
    assert rendered is not None, "the offer was never rendered"
    heard, rate = read_wav(tmp_path / "out-1.wav")
    assert rate == 8000
    candidates = [(offer, read_wav(rendered)[0])]
    for text in ("Hello.", "Goodbye."):  # goodbye: the queue failed and the flow said so
        path = cache.cached(text)
        if path is not None:
            candidates.append((text, read_wav(path)[0]))
    found = find_prompts(heard, candidates)
    # on a failure, say what the server saw: the call's path and how it ended, its problems
    (cdr,) = server.wait_cdrs(1, timeout=15)
    problems = [line for line in server.log_path.read_text(errors="replace").splitlines()
                if '"level": "warning"' in line or '"level": "error"' in line]
    assert [f.text for f in found] == ["Hello.", offer], (found, cdr["path"], cdr.get("end_kind"),
                                                          problems[-20:])


def test_an_agent_who_rejects_is_ready_again_and_the_next_agent_gets_the_caller(
        server: Server, tmp_path: Path) -> None:
    bob = Softphone("--name", "bob", "--register", server.uri_host, "--incoming", "reject",
                    "--duration", "40")
    dave = Softphone("--name", "dave", "--register", server.uri_host, "--incoming", "answer",
                     "--hangup-in-after", "3", "--duration", "40")
    caller = None
    try:
        bob.wait(10, "bob registered", ev="registered", code=200)
        dave.wait(10, "dave registered", ev="registered", code=200)
        _post(server, "/agents/bob/login")  # bob idles longest: he is offered first
        time.sleep(0.2)
        _post(server, "/agents/dave/login")
        caller = Softphone("--name", "carol", "--call", f"sip:{HANDOFF}@{server.uri_host}",
                           "--duration", "30")
        bob.wait(15, "bob's INVITE", ev="incoming")
        invite = dave.wait(15, "the INVITE to the next agent", ev="incoming")
        dave.wait(10, "dave's call to end", ev="state", leg="in", state="DISCONNECTED")
        caller.wait(10, "the caller's call to end", ev="state", leg="out", state="DISCONNECTED")
        # busy/reject is not an empty desk: bob is ready (at the end of the idle line), not away
        server.wait(lambda: _agent(server, "bob")["state"] == "ready", 5, "bob ready")
        server.wait(lambda: _agent(server, "dave")["state"] == "wrap_up", 5, "dave in wrap-up")
    finally:
        for phone in (bob, dave, caller):
            if phone is not None:
                phone.stop()
    assert bob.seen(ev="state", leg="in", state="DISCONNECTED")[0]["code"] == 486
    assert len(bob.seen(ev="incoming")) == 1  # not rung again while dave could take the call
    h = headers_of(invite["msg"])
    assert (h["X-IVR-Intent"], h["X-IVR-Tier"]) == ("cards", "gold"), h
