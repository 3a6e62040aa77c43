"""Whole-call recording over real SIP: the bank flow's account collect is silence in the WAV (the
caller's loud tone is there before and after it), the CDR marks the pause, a bridged agent is on
the recording too, and many recorded calls leave no recorder behind."""

from __future__ import annotations

import stat
import wave
from pathlib import Path
from typing import Any

import leak_scan
import numpy as np
import pytest
import yaml
from phones import Softphone
from scenarios import bye, call_setup, pause, scenario
from server import REPO, Server, start_server
from sipp_run import run_sipp

BANK = "1000"
HANDOFF = "4000"
RATE = 8000
MARGIN_MS = 250
"""Slack between the CDR's clock (the worker's monotonic time) and the WAV's sample count (the
conference clock): a tick to connect and mute, and a late clock thread under load."""


def _dtmf_only_speech() -> dict[str, Any]:
    """No recogniser: the caller's tone must not be taken for speech, so the path is fixed."""
    tts = yaml.safe_load((REPO / "ivr" / "defaults.yaml").read_text())["speech"]["tts"]
    return {"asr": {"engine": "none"}, "tts": tts}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    srv = start_server(tmp_path_factory.mktemp("rec"), max_calls=8, extra={
        "recording": {"routes": [BANK], "flows": ["handoff"]},
        "speech": _dtmf_only_speech(),
        "agents": {"bob": {"queues": ["general"]}}})
    try:
        yield srv
    finally:
        srv.stop()


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def _tone_level(samples: np.ndarray, hz: float) -> np.ndarray:
    """The amplitude of `hz` in each 100 ms window (a 6000-peak tone reads about 6000)."""
    n = RATE // 10
    windows = samples[: samples.size // n * n].reshape(-1, n)
    basis = np.exp(-2j * np.pi * hz * np.arange(n) / RATE)
    return np.asarray(2 * np.abs(windows @ basis) / n)


def _ms(ms: float) -> int:
    return int(ms * RATE / 1000)


def _cdr(server: Server, dialed: str, before: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        calls = [c for c in server.calls()[before:] if c.get("dialed") == dialed]
        return calls[0] if calls and calls[0].get("ended_at") else None
    return dict(server.wait(done, 30, f"the CDR of the call to {dialed}"))


def test_the_bank_account_collect_is_silence_in_the_recording_and_marked_in_the_cdr(
        server: Server, tmp_path: Path) -> None:
    leak_scan.typed("40719263")  # the session's leak scan looks for it everywhere the IVR wrote
    before = len(server.calls())
    # a loud 440 Hz tone the whole call; keys by RFC 4733: 1 (balance), the account, 1 (confirm)
    caller = Softphone("--name", "carol", "--call", f"sip:{BANK}@{server.uri_host}",
                       "--play", "tone", "--record-dir", str(tmp_path),
                       "--dtmf-step", "3.5:1", "--dtmf-step", "7:40719263#",
                       "--dtmf-step", "11:1", "--hangup-after", "17", "--duration", "40")
    try:
        sent = caller.wait(20, "the account digits", ev="dtmf", digits="40719263#")
        caller.wait(20, "the caller's hangup", ev="state", leg="out", state="DISCONNECTED")
    finally:
        caller.stop()
    cdr = _cdr(server, BANK, before)
    assert cdr["path"][:4] == ["welcome", "hours", "main", "ask_account"], cdr["path"]
    assert cdr["variables"]["account"] != "40719263"

    path = Path(cdr["recording"])
    assert path.is_file(), cdr
    assert path.parent.parent == server.root / "var" / "recordings"
    assert path.name == f"{cdr['call_id']}.wav"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    (span,) = cdr["recording_pauses"]
    assert span["node"] == "ask_account"
    start, end = span["start_ms"], span["end_ms"]
    assert end - start > 2500, span  # the prompt, nine keys and the confirmation
    # the account was typed inside the span (the recording starts with the answer)
    typed_ms = (sent["t"] - cdr["answered_at"]) * 1000
    assert start + 300 < typed_ms < end - 300, (typed_ms, span)

    audio = _read(path)
    assert audio.size > _ms(end) + RATE * 3, audio.size  # the call went on after the pause
    inside = audio[_ms(start + MARGIN_MS): _ms(end - MARGIN_MS)]
    assert np.abs(inside).max() == 0, "caller or IVR audio inside the pause"
    tone_before = _tone_level(audio[: _ms(start - MARGIN_MS)], 440)
    tone_after = _tone_level(audio[_ms(end + MARGIN_MS): -RATE // 2], 440)
    assert np.median(tone_before) > 2000, tone_before  # the caller's tone outside the pause
    assert np.median(tone_after) > 2000, tone_after
    # the digital silence is one piece, where the CDR says: the pause, not gaps in the audio
    sound = np.flatnonzero(np.abs(audio) > 0)
    gaps = np.diff(sound)
    assert (gaps > _ms(400)).sum() == 1, "silence outside the marked pause"
    first = int(np.argmax(gaps))
    silence_ms = (sound[first] * 1000 / RATE, sound[first + 1] * 1000 / RATE)
    print(f"pause in the CDR {start}-{end} ms, silence in the WAV {silence_ms}")
    assert abs(silence_ms[0] - start) < MARGIN_MS and abs(silence_ms[1] - end) < MARGIN_MS, \
        (silence_ms, span)
    server.wait_idle()


def test_a_bridged_agent_is_on_the_callers_recording(server: Server, tmp_path: Path) -> None:

    before = len(server.calls())
    bob = Softphone("--name", "bob", "--register", server.uri_host, "--incoming", "answer",
                    "--play", "tone", "--tone-hz", "1000", "--record-dir", str(tmp_path),
                    "--duration", "50")
    caller = None
    try:
        bob.wait(10, "bob registered at the front", ev="registered", code=200)
        status, doc = server.request("POST", "/agents/bob/login")
        assert status == 200 and doc["state"], doc
        caller = Softphone("--name", "carol", "--call", f"sip:{HANDOFF}@{server.uri_host}",
                           "--play", "tone", "--record-dir", str(tmp_path), "--hangup-after", "12",
                           "--duration", "40")
        bob.wait(25, "bob's call up", ev="state", leg="in", state="CONFIRMED")
        caller.wait(25, "the caller's hangup", ev="state", leg="out", state="DISCONNECTED")
    finally:
        bob.stop()
        if caller is not None:
            caller.stop()
    cdr = _cdr(server, HANDOFF, before)
    assert cdr["recording_pauses"] == []
    audio = _read(Path(cdr["recording"]))
    tail = audio[-4 * RATE: -RATE]  # bridged by now: both phones' tones, mixed
    assert np.median(_tone_level(tail, 1000)) > 2000, "the agent is missing from the recording"
    assert np.median(_tone_level(tail, 440)) > 2000, "the caller is missing from the recording"
    head = audio[: RATE]  # "Hello." and the caller, before any agent
    assert np.median(_tone_level(head, 1000)) < 300
    server.wait_idle()


def test_many_recorded_calls_leave_no_recorder_behind(server: Server, tmp_path: Path) -> None:
    before = len(server.calls())
    created_before = sum(w["created"].get("call_recorder", 0) for w in server.health()["workers"])
    path = tmp_path / "short.xml"
    path.write_text(scenario("short", call_setup(), pause(1500), bye()))
    r = run_sipp(server.uri_host, str(path), service=BANK, calls=12, rate=4, limit=6,
                 cwd=tmp_path, timeout=60)
    assert r.successful == 12, r.output[-2000:]
    server.wait_cdrs(before + 12, timeout=30)
    health = server.wait_idle()
    created = sum(w["created"].get("call_recorder", 0) for w in health["workers"])
    assert created - created_before == 12
    for w in health["workers"]:
        assert "call_recorder" not in w["media"]
    files = [Path(c["recording"]) for c in server.calls()[before:]]
    assert len(files) == 12 and all(f.is_file() for f in files)


def test_the_supervisor_purges_what_outlived_its_retention(tmp_path: Path) -> None:
    keep_s = 8.0
    days = keep_s / 86400
    srv = start_server(tmp_path / "srv", max_calls=4, extra={
        "recording": {"routes": ["3000"]},
        "retention": {"recordings_days": days, "transcripts_days": days, "variables_days": days,
                      "purge_every": "1s"}})
    try:
        path = tmp_path / "short.xml"
        path.write_text(scenario("short", call_setup(), pause(1500), bye()))
        r = run_sipp(srv.uri_host, str(path), service="3000", cwd=tmp_path, timeout=30)
        assert r.successful == 1, r.output[-2000:]
        (cdr,) = srv.wait_cdrs(1)
        recording = Path(cdr["recording"])
        assert recording.is_file() and cdr["transcript"], cdr  # kept while young
        purged = srv.wait(lambda: (c := srv.calls()[0])["recording"] is None and c, keep_s + 15,
                          "the purge job")
        assert not recording.exists()
        assert purged["transcript"] == [] and purged["variables"] == {}
        assert purged["path"] and purged["end_kind"]  # the CDR itself stays for reports
    finally:
        srv.stop()
