"""`transfer` by REFER and `record` over real SIP, through the front."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from scenarios import (
    answer_200,
    call_setup,
    dtmf,
    notify_refer_done,
    pause,
    recv,
    reply,
    scenario,
)
from server import Server
from sipp_run import run_sipp

QUICK = "3000"


def _place(server: Server, tmp_path: Path, name: str, *parts: str) -> str:
    path = tmp_path / f"{name}.xml"
    path.write_text(scenario(name, *parts))
    r = run_sipp(server.uri_host, str(path), service=QUICK, cwd=tmp_path, extra=["-trace_msg"])
    assert r.successful == 1, r.output[-2000:]
    return "".join(p.read_text() for p in tmp_path.glob("*_messages.log"))


def test_a_blind_transfer_by_refer_carries_the_headers(ivr_server: Server, tmp_path: Path) -> None:
    before = len(ivr_server.calls())
    log = _place(ivr_server, tmp_path, "refer", call_setup(), pause(1200), dtmf("3"),
                 recv("REFER"), reply("202 Accepted"), notify_refer_done(2), recv("BYE"),
                 answer_200())
    refer = log[log.index("REFER sip:"):]
    refer = refer[: refer.index("\n\n")]
    assert "Refer-To: <sip:desk@127.0.0.1:5999>" in refer or "Refer-To: sip:desk@127.0.0.1:5999" in refer
    assert "X-Reason: quick" in refer and "X-IVR-Call-Id:" in refer
    (cdr,) = ivr_server.wait_cdrs(before + 1)[before:]
    assert (cdr["end_kind"], cdr["target"]) == ("transfer", "sip:desk@127.0.0.1:5999")
    ivr_server.wait_idle()


def test_record_writes_the_callers_audio(ivr_server: Server, tmp_path: Path) -> None:
    before = len(ivr_server.calls())
    speak = '  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/g711a.pcap"/></action></nop>\n'
    _place(ivr_server, tmp_path, "record", call_setup(), pause(1200), dtmf("2"), pause(1800),
           speak, recv("BYE"), answer_200())
    (cdr,) = ivr_server.wait_cdrs(before + 1)[before:]
    path = Path(cdr["variables"]["message"])
    assert path.is_file() and path.suffix == ".wav", cdr
    with wave.open(str(path)) as w:
        seconds = w.getnframes() / w.getframerate()
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert 2.0 <= seconds <= 3.6, seconds  # max: 3s
    assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > 100  # the caller's speech, not silence
    assert cdr["path"][-2:] == ["message", "bye"]
    ivr_server.wait_idle()


def test_silence_gives_noinput_then_the_failure_exit(ivr_server: Server, tmp_path: Path) -> None:
    # speech input is on (PocketSphinx): silence must end as noinput, not as a stuck recogniser
    before = len(ivr_server.calls())
    _place(ivr_server, tmp_path, "silent", call_setup(), recv("BYE", timeout_ms=30000), answer_200())
    (cdr,) = ivr_server.wait_cdrs(before + 1)[before:]
    assert cdr["path"] == ["hello", "pick", "bye"], cdr
    said = [t["text"] for t in cdr["transcript"] if t["who"] == "ivr"]
    assert said == ["Hello.", "Press 1.", "Press 1 now.", "Press 1.", "Goodbye."], said
    assert cdr["end_reason"] == "ivr hangup"
    ivr_server.wait_idle()
