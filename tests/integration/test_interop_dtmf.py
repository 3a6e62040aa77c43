"""DTMF as the field sends it, over real SIP: RFC 4733 variants, SIP INFO of both kinds, and
G.722 when the caller prefers it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rtp_pcap import rfc4733
from scenarios import answer_200, call_setup, info_dtmf, info_dtmf_bare, pause, play_pcap, recv, scenario
from server import Server, ivr_call, start_server
from sipp_run import run_sipp

KEYS_FLOW = """\
flow: keys
start: ask
nodes:
  ask:
    collect:
      prompt: "Enter the code."
      digits: {min: 1, max: 8, terminator: "#"}
      into: code
    next: done
  done:
    say: "Thank you."
    hangup: true
"""
KEYS = "6100"
LONG_KEYS_FLOW = KEYS_FLOW.replace("flow: keys\n", "flow: longkeys\ndefaults: {interdigit_timeout: 15s}\n")
"""The keys flow with time to hold a key for 9 s between two others."""
LONG_KEYS = "6200"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dtmf")
    (root / "flows").mkdir()
    (root / "flows" / "keys.yaml").write_text(KEYS_FLOW)
    (root / "flows" / "longkeys.yaml").write_text(LONG_KEYS_FLOW)
    srv = start_server(root, max_calls=8, extra={"routes": {KEYS: "keys", LONG_KEYS: "longkeys",
                                                            "3000": "quick",
                                                            "default": "acme-bank"}})
    try:
        yield srv
    finally:
        srv.stop()


def _code_entered(server: Server, tmp_path: Path, *parts: str, service: str = KEYS) -> dict[str, Any]:
    """Call the keys flow with SIPp doing `parts` after the answer; the call's CDR."""
    before = len(server.calls())
    path = tmp_path / "keys.xml"
    path.write_text(scenario("keys", call_setup(), pause(1500), *parts,
                             recv("BYE", timeout_ms=25000), answer_200()))
    r = run_sipp(server.uri_host, str(path), service=service, cwd=tmp_path, timeout=45)
    assert r.successful == 1, r.output[-2000:] + server.log_tail()
    (cdr,) = server.wait_cdrs(before + 1)[before:]
    return cdr


RFC4733_CASES = {
    "marker bit on the first packet": ({}, "1234"),
    "no marker bit": ({"marker": False}, "1234"),
    "long-held keys, the same key twice": ({"hold_ms": {"1": 2500, "5": 1800}}, "1153"),
    "end packet repeated three times": ({"end_repeats": 3, "hold_ms": 60}, "7377"),
}


@pytest.mark.parametrize("case", list(RFC4733_CASES))
def test_rfc4733_keys_are_counted_once_each(server: Server, tmp_path: Path, case: str) -> None:
    options, keys = RFC4733_CASES[case]
    pcap = rfc4733(tmp_path / "keys.pcap", keys + "#", **options)
    cdr = _code_entered(server, tmp_path, play_pcap(str(pcap)))  # played while we wait for BYE
    assert cdr["path"] == ["ask", "done"], cdr
    assert cdr["variables"]["code"] == keys, (case, cdr["variables"])


@pytest.mark.parametrize("style", ["segments", "wrap"])
def test_a_key_held_past_the_longest_event_is_counted_once(server: Server, tmp_path: Path,
                                                          style: str) -> None:
    """9 s of "5" is longer than one event's 16-bit duration (8.19 s): RFC 4733 segments, or a
    phone that lets the duration wrap; either way one 5."""
    pcap = rfc4733(tmp_path / "long.pcap", "153#", hold_ms={"5": 9000}, long_style=style)
    cdr = _code_entered(server, tmp_path, play_pcap(str(pcap)), service=LONG_KEYS)
    assert cdr["path"] == ["ask", "done"], cdr
    assert cdr["variables"]["code"] == "153", (style, cdr["variables"])


@pytest.mark.parametrize("kind", ["application/dtmf-relay", "application/dtmf"])
def test_sip_info_keys_are_heard(server: Server, tmp_path: Path, kind: str) -> None:
    send = info_dtmf if kind == "application/dtmf-relay" else info_dtmf_bare
    parts = [send(key, cseq) + pause(250) for cseq, key in enumerate("4096#", start=2)]
    cdr = _code_entered(server, tmp_path, *parts)
    assert cdr["variables"]["code"] == "4096", (kind, cdr["variables"])


def test_g722_is_used_when_the_caller_prefers_it(server: Server) -> None:
    code, doc, err = ivr_call(server, f"sip:3000@{server.uri_host}", "--codec", "G722",
                              "--dtmf", "1")
    assert code == 0, err[-2000:]
    assert doc["codec"] == "G722/16000", doc
    texts = [str(p["text"]).lower() for p in doc["prompts"]]  # type: ignore[union-attr]
    assert texts == ["hello.", "press 1.", "you pressed one.", "goodbye."], texts
    server.wait_idle()
