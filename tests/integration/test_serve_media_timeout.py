"""`sip.media_timeout` over real SIP: a caller that answers, ACKs and then goes silent (no RTP, no
BYE) is hung up by the worker with a BYE and its CDR says "media timeout"; a caller that keeps
sending audio, or that holds with a=sendonly, is not.

The server runs with a 2 s timeout and no recogniser (the quick flow's menu then waits ~11 s
before hanging up by itself, well after any reaping here, and no audio is taken as an answer).
RFC 4733 events alone keep a call too: the `listen` flow records for 20 s while keys go by.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scenarios import answer_200, bye, call_setup, dtmf, in_dialog, pause, recv, scenario, sdp
from server import Server, start_server
from sipp_run import run_sipp

QUICK = "3000"  # tests/integration/flows/quick.yaml
LISTEN = "3100"
LISTEN_FLOW = """
flow: listen
start: take
nodes:
  take:
    record: {max: 20s, into: message}
    next: bye
  bye:
    say: "Goodbye."
    hangup: true
"""
TIMEOUT = 2.0
AUDIO = Path("/usr/share/sip-tester/g711a.pcap")
AUDIO_S = 7.05  # first to last RTP packet of that capture (236 PCMA packets, 30 ms apart)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("media")
    (root / "flows").mkdir()
    (root / "flows" / "listen.yaml").write_text(LISTEN_FLOW)
    srv = start_server(root, max_calls=4,
                       extra_sip={"prestart_workers": 1, "media_timeout": f"{TIMEOUT:g}s"},
                       extra={"routes": {"default": "acme-bank", QUICK: "quick", LISTEN: "listen"},
                              "speech": {"asr": {"engine": "none"},
                                         "tts": {"engine": "espeak-ng", "voice": "en-us",
                                                 "rate": 165}}})
    try:
        yield srv
    finally:
        srv.stop()


def place(server: Server, tmp_path: Path, name: str, *parts: str,
          service: str = QUICK) -> tuple[dict[str, Any], float]:
    """One SIPp call that must succeed; its CDR and how long SIPp ran."""
    before = len(server.calls())
    path = tmp_path / f"{name}.xml"
    path.write_text(scenario(name, *parts))
    started = time.monotonic()
    r = run_sipp(server.uri_host, str(path), service=service, timeout=30)
    took = time.monotonic() - started
    assert r.successful == 1, r.output[-2000:]
    (cdr,) = server.wait_cdrs(before + 1)[before:]
    server.wait_idle()
    return cdr, took


def events(server: Server, call_id: str) -> dict[str, dict[str, Any]]:
    """The call's events by kind, from the supervisor's SQLite store."""
    db = sqlite3.connect(f"file:{server.root / 'var' / 'ivr.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT kind, data FROM events WHERE call_id = ? ORDER BY seq",
                          (call_id,)).fetchall()
    finally:
        db.close()
    return {kind: json.loads(data) for kind, data in rows}


def play_audio() -> str:
    return f'  <nop><action><exec play_pcap_audio="{AUDIO}"/></action></nop>\n'


def test_a_silent_caller_gets_a_bye_and_a_media_timeout_cdr(server: Server, tmp_path: Path) -> None:
    # no RTP at all after the ACK, and no BYE of ours: the IVR must send one within 8 s
    cdr, took = place(server, tmp_path, "silent", call_setup(), recv("BYE", timeout_ms=8000),
                      answer_200())
    assert cdr["end_reason"] == "media timeout", cdr
    ev = events(server, str(cdr["call_id"]))
    assert ev["call.end"]["hung_up_by"] == "ivr" and ev["call.end"]["end"]["by"] == "ivr", ev
    # silent since the answer: reaped between the timeout and the timeout plus one check
    after_answer = ev["call.media_timeout"]["at"] - ev["call.answer"]["at"]
    assert TIMEOUT <= after_answer <= TIMEOUT + 1.5, after_answer
    assert took < 2 * TIMEOUT + 3, took


def test_a_caller_sending_audio_is_kept_then_reaped_after_it_stops(server: Server,
                                                                   tmp_path: Path) -> None:
    # 7 s of RTP (3.5 timeouts), then silence with the call still up
    cdr, _ = place(server, tmp_path, "talk_then_silent", call_setup(), play_audio(),
                   recv("BYE", timeout_ms=int((AUDIO_S + 6) * 1000)), answer_200())
    assert cdr["end_reason"] == "media timeout", cdr
    ev = events(server, str(cdr["call_id"]))
    since_last_packet = ev["call.media_timeout"]["at"] - ev["call.answer"]["at"] - AUDIO_S
    assert TIMEOUT - 0.5 <= since_last_packet <= TIMEOUT + 1.5, since_last_packet


def test_a_caller_sending_audio_for_longer_than_the_timeout_is_not_reaped(
    server: Server, tmp_path: Path
) -> None:
    cdr, took = place(server, tmp_path, "talk", call_setup(), play_audio(), pause(6000), bye())
    assert cdr["end_reason"] == "caller hangup", cdr
    assert "call.media_timeout" not in events(server, str(cdr["call_id"]))
    assert took > 3 * TIMEOUT


def test_a_caller_on_hold_is_not_reaped_until_it_comes_back_silent(server: Server,
                                                                   tmp_path: Path) -> None:
    # a=sendonly for 5 s (no RTP, not reaped), then sendrecv and still silent: reaped from then
    cdr, _ = place(
        server, tmp_path, "hold",
        call_setup(), pause(300),
        in_dialog("INVITE", 2, sdp(direction="sendonly")), recv(100, optional=True), recv(200),
        in_dialog("ACK", 2), pause(5000),
        in_dialog("INVITE", 3, sdp(direction="sendrecv")), recv(100, optional=True), recv(200),
        in_dialog("ACK", 3), recv("BYE", timeout_ms=6000), answer_200(),
    )
    assert cdr["end_reason"] == "media timeout", cdr
    ev = events(server, str(cdr["call_id"]))
    after_answer = ev["call.media_timeout"]["at"] - ev["call.answer"]["at"]
    assert 5.3 + TIMEOUT <= after_answer <= 5.3 + TIMEOUT + 2.0, after_answer


def test_rfc4733_events_alone_keep_a_call(server: Server, tmp_path: Path) -> None:
    # a key every 1.2 s (10 event packets in 0.14 s each), no audio, for 3.5 timeouts
    keys = [part for _ in range(6) for part in (pause(1200), dtmf("5"))]
    cdr, took = place(server, tmp_path, "keys", call_setup(), *keys, pause(500), bye(),
                      service=LISTEN)
    assert cdr["end_reason"] == "caller hangup" and cdr["path"][0] == "take", cdr  # recording
    assert "call.media_timeout" not in events(server, str(cdr["call_id"]))
    assert took > 3 * TIMEOUT
