"""Speech faults over real SIP (issue 12, "Bad input and faults"): a spoken menu
(flows/speechfaults.yaml: say "goodbye" or "operator", keys 1/2; one retry, then the failure
path; max_speech 4 s) gets what no caller should send, from SIPp replaying RTP pcaps:

- comfort noise only (RTP payload type 13, a phone's VAD/DTX while its user is silent): no
  input, never a recognition;
- telephone-events only (RFC 4733, no audio packet at all): the key is taken;
- a 60 s monologue: cut at max_speech, the flow goes on to its failure path long before the
  monologue ends;
- a word sampled at 16 kHz sent as 8 kHz PCMU (half speed, an octave down): never the other
  option, and the call goes on;
- the menu prompt's own echo at -20 dB (the very audio the IVR renders, back from the caller
  ~0.1 s late): it does not barge in, though it says both options.

Each test asserts what the flow did (the CDR's path, prompts and inputs); times are bounds, not
measurements (a busy 2-core machine runs them).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rtp_pcap import comfort_noise, rfc4733, ulaw_audio
from scenarios import answer_200, in_dialog, invite, play_pcap, recv, scenario, sdp
from server import Server, start_server
from sipp_run import run_sipp

from ivr.config import load_config
from ivr.speech.voices import prompt_cache

SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
SERVICE = "5100"
PATH_FAILED = ["pick", "failed"]
NOINPUT, NOMATCH = "I did not hear you.", "I did not get that."
PROMPT = "Say goodbye, or operator."
"""flows/speechfaults.yaml's menu prompt."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The default engine (Whisper in the shared recognition service). PocketSphinx hears
    "goodbye" (confidence 0.8-0.85) at the first pause of Allison's "customer one ..." under
    this two-phrase menu, so a monologue never reaches max_speech there: its calibration on
    out-of-grammar speech is issue 12's engine work, not this test's subject."""
    srv = start_server(tmp_path_factory.mktemp("speechfaults"), max_calls=8, extra={
        "routes": {SERVICE: "speechfaults", "default": "speechfaults"}})
    try:
        srv.wait(lambda: srv.health()["speech"]["ready"] or None, 60, "speech ready")
        yield srv
    finally:
        srv.stop()


def _call(server: Server, tmp_path: Path, name: str, pcap: Path, *,
          sdp_payloads: str = "0 101", timeout: float = 60) -> dict[str, Any]:
    """One SIPp call that sends `pcap` and waits for the IVR to hang up; its CDR."""
    before = len(server.calls())
    xml = tmp_path / f"{name}.xml"
    xml.write_text(scenario(
        name, invite(sdp(sdp_payloads)), recv(100, optional=True), recv(180, optional=True),
        recv(200, rrs=True), in_dialog("ACK", 1), play_pcap(str(pcap)),
        recv("BYE", timeout_ms=int(timeout * 1000)), answer_200()))
    started = time.monotonic()
    r = run_sipp(server.uri_host, str(xml), service=SERVICE, calls=1, rate=1, timeout=timeout + 10)
    assert r.successful == 1, r.output[-2000:]
    cdr = server.wait_cdrs(before + 1, timeout=20)[before]
    cdr["_seconds"] = time.monotonic() - started
    return cdr


def _said(cdr: dict[str, Any], who: str) -> list[str]:
    """What the IVR ("ivr") or the caller ("caller") said, from the CDR's transcript."""
    return [str(line["text"]) for line in cdr["transcript"] if line["who"] == who]


def test_comfort_noise_only_is_no_input(server: Server, tmp_path: Path) -> None:
    pcap = comfort_noise(tmp_path / "cn.pcap", 25.0)
    cdr = _call(server, tmp_path, "cn", pcap, sdp_payloads="0 13 101")
    assert cdr["path"] == PATH_FAILED, cdr
    assert _said(cdr, "ivr").count(NOINPUT) == 1 and NOMATCH not in _said(cdr, "ivr"), cdr
    assert _said(cdr, "caller") == [], cdr


def test_telephone_events_without_audio_are_the_key(server: Server, tmp_path: Path) -> None:
    pcap = rfc4733(tmp_path / "key.pcap", "2")
    cdr = _call(server, tmp_path, "keys", pcap)
    assert cdr["path"] == ["pick", "operator"], cdr
    assert len(_said(cdr, "caller")) == 1, cdr


def _monologue(tmp_path: Path, seconds: float) -> Path:
    """Allison's conference prompts back to back with 0.15 s between them (never the quiet that
    ends a turn): a caller who talks on and on, and never says an option (her voicemail
    prompts say "goodbye" and "messages")."""
    files = sorted(p for p in SOUNDS.glob("conf-*.wav") if p.stat().st_size > 8000)
    gap = tmp_path / "gap.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(gap), "trim", "0",
                    "0.15"], check=True, timeout=30)
    parts: list[str] = []
    total = 0.0
    for f in files:
        parts += [str(f), str(gap)]
        total += f.stat().st_size / 16000 + 0.15
        if total >= seconds:
            break
    out = tmp_path / "monologue.wav"
    subprocess.run(["sox", *parts, "-r", "8000", "-c", "1", "-b", "16", str(out)], check=True,
                   timeout=60)
    return out


def test_a_monologue_is_cut_at_max_speech_and_the_flow_goes_on(server: Server,
                                                               tmp_path: Path) -> None:
    wav = _monologue(tmp_path, 60.0)
    pcap = ulaw_audio(tmp_path / "monologue.pcap", wav)
    cdr = _call(server, tmp_path, "monologue", pcap, timeout=90)
    # two cut utterances (the flow's max_speech, 4 s each, prompts between: nomatches), then
    # the failure path, and the IVR hung up while the caller was still talking (60 s of it)
    assert cdr["path"] == PATH_FAILED, cdr["transcript"]
    assert NOINPUT not in _said(cdr, "ivr"), cdr["transcript"]
    # 22.6 s measured (load average 7); a turn cut at 15 s instead of the flow's 4 s would
    # take two 15 s cuts and three prompts, over 36 s
    assert cdr["_seconds"] < 34, cdr["_seconds"]


def test_a_word_at_the_wrong_rate_is_never_the_other_option(server: Server,
                                                           tmp_path: Path) -> None:
    pcap = ulaw_audio(tmp_path / "slow.pcap", SOUNDS / "goodbye.wav", rate=16000)
    cdr = _call(server, tmp_path, "slow", pcap)
    assert cdr["path"] in (["pick", "goodbye"], PATH_FAILED), cdr
    assert "operator" not in _said(cdr, "caller"), cdr


def test_the_prompts_own_echo_does_not_barge_in(server: Server, tmp_path: Path) -> None:
    """The caller's phone leaks the menu prompt back at -20 dB from the start of the call (SIPp
    sends as soon as it ACKs; the IVR starts the prompt within tens of ms): the prompt plays on,
    nothing is heard (no input, twice), and its words "goodbye" and "operator" are never
    taken."""
    config = load_config(server.root / "ivr.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        prompt = prompt_cache(Path(tmp) / "prompts", config, 8000).render_sync(PROMPT)
        echo = tmp_path / "echo.wav"
        # -20 dB; the last 0.3 s left out (an echo ends with its prompt, this one a little late)
        subprocess.run(["sox", str(prompt), "-r", "8000", "-c", "1", "-b", "16", str(echo),
                        "vol", "0.1", "reverse", "trim", "0.3", "reverse"],
                       check=True, timeout=30)
    pcap = ulaw_audio(tmp_path / "echo.pcap", echo, start=0.1)
    cdr = _call(server, tmp_path, "echo", pcap)
    assert cdr["path"] == PATH_FAILED, cdr["transcript"]
    assert _said(cdr, "caller") == [], cdr["transcript"]
    assert _said(cdr, "ivr").count(NOINPUT) == 1, cdr["transcript"]
