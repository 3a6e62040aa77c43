"""SIP faults through the front: each ends with no leaked call, player or task, and a right CDR."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scenarios import (
    ack_for_error,
    answer_200,
    bye,
    call_setup,
    cancel,
    dtmf,
    in_dialog,
    info_dtmf,
    invite,
    pause,
    recv,
    scenario,
    sdp,
)
from server import Server, start_server
from sipp_run import SippResult, run_sipp, start_sipp

QUICK = "3000"  # tests/integration/flows/quick.yaml: "Hello." then "Press 1."


def place(server: Server, tmp_path: Path, name: str, *parts: str, calls: int = 1,
          service: str = QUICK, **kw: object) -> SippResult:
    path = tmp_path / f"{name}.xml"
    path.write_text(scenario(name, *parts))
    return run_sipp(server.uri_host, str(path), calls=calls, service=service, **kw)  # type: ignore[arg-type]


def new_cdrs(server: Server, before: int, n: int) -> list[dict[str, object]]:
    return server.wait_cdrs(before + n)[before:]


def test_bye_during_a_prompt(ivr_server: Server, tmp_path: Path) -> None:
    before = len(ivr_server.calls())
    r = place(ivr_server, tmp_path, "bye_in_prompt", call_setup(), pause(200), bye())
    assert r.successful == 1, r.output[-2000:]
    (cdr,) = new_cdrs(ivr_server, before, 1)
    assert cdr["end_reason"] == "caller hangup"
    assert cdr["end_node"] == "hello"
    ivr_server.wait_idle()


def test_bye_while_waiting_for_digits(ivr_server: Server, tmp_path: Path) -> None:
    before = len(ivr_server.calls())
    r = place(ivr_server, tmp_path, "bye_waiting", call_setup(), pause(2500), bye())
    assert r.successful == 1, r.output[-2000:]
    (cdr,) = new_cdrs(ivr_server, before, 1)
    assert (cdr["end_reason"], cdr["end_node"]) == ("caller hangup", "pick")
    ivr_server.wait_idle()


def test_dtmf_path_to_an_ivr_hangup(ivr_server: Server, tmp_path: Path) -> None:
    before = len(ivr_server.calls())
    r = place(ivr_server, tmp_path, "dtmf", call_setup(), pause(1200), dtmf("1"),
              recv("BYE"), answer_200())
    assert r.successful == 1, r.output[-2000:]
    (cdr,) = new_cdrs(ivr_server, before, 1)
    assert cdr["path"] == ["hello", "pick", "one", "bye"]
    assert cdr["end_reason"] == "ivr hangup"
    ivr_server.wait_idle()


def test_hold_and_unhold_by_reinvite_mid_flow(ivr_server: Server, tmp_path: Path) -> None:
    before = len(ivr_server.calls())
    r = place(
        ivr_server, tmp_path, "hold",
        call_setup(), pause(400),
        in_dialog("INVITE", 2, sdp(direction="sendonly")), recv(100, optional=True), recv(200),
        in_dialog("ACK", 2), pause(600),
        in_dialog("INVITE", 3, sdp(direction="sendrecv")), recv(100, optional=True), recv(200),
        in_dialog("ACK", 3), pause(1500), dtmf("1"), recv("BYE"), answer_200(),
    )
    assert r.successful == 1, r.output[-2000:]
    (cdr,) = new_cdrs(ivr_server, before, 1)
    assert "one" in cdr["path"]  # type: ignore[operator]
    ivr_server.wait_idle()


def test_late_offer_invite_without_sdp_and_sip_info_dtmf(ivr_server: Server,
                                                         tmp_path: Path) -> None:
    # The IVR offers in the 200 and SIPp answers in the ACK. The digit goes by SIP INFO: SIPp's
    # RFC 4733 pcaps carry payload type 101, which is the IVR's choice only when SIPp offers.
    before = len(ivr_server.calls())
    r = place(ivr_server, tmp_path, "late_offer",
              invite(None), recv(100, optional=True), recv(180, optional=True),
              recv(200, rrs=True), in_dialog("ACK", 1, body=sdp()), pause(1500),
              info_dtmf("1", 2), recv("BYE"), answer_200())
    assert r.successful == 1, r.output[-2000:]
    (cdr,) = new_cdrs(ivr_server, before, 1)
    assert cdr["path"] == ["hello", "pick", "one", "bye"]
    ivr_server.wait_idle()


def test_no_common_codec_is_488(ivr_server: Server, tmp_path: Path) -> None:
    r = place(ivr_server, tmp_path, "g729_only", invite(sdp("18")), recv(100, optional=True),
              recv(488), ack_for_error(3))
    assert r.successful == 1, r.output[-2000:]
    ivr_server.wait_idle()


def test_invite_retransmitted_after_ack_makes_no_second_call(ivr_server: Server,
                                                             tmp_path: Path) -> None:
    before = len(ivr_server.calls())
    resend = invite(sdp()).replace("[branch]", "[branch-5]")
    r = place(ivr_server, tmp_path, "retransmit", call_setup(), resend, pause(1500), bye(),
              extra=["-aa"])
    time.sleep(1.0)
    cdrs = ivr_server.calls()[before:]
    assert len(cdrs) == 1, (cdrs, r.output[-2000:])
    ivr_server.wait_idle()


def test_a_killed_worker_costs_only_its_calls(ivr_server: Server, tmp_path: Path) -> None:
    before = len(ivr_server.calls())
    path = tmp_path / "long.xml"
    path.write_text(scenario("long", call_setup(), pause(7000), bye()))
    sipp = start_sipp(ivr_server.uri_host, str(path), service=QUICK, calls=8, rate=20, timeout=40)
    try:
        busy = ivr_server.wait(lambda: [w for w in ivr_server.health()["workers"]
                                        if w["alive"] and w["calls"] > 0], 10, "busy workers")
        victim = busy[0]
        lost = victim["calls"]
        os.kill(victim["pid"], signal.SIGKILL)
        # another process takes the dead worker's SIP port before the restart: the restarted
        # worker must come up on a new one instead of failing to bind in a loop
        squatter = _squat(int(victim["port"]))
        _out, _ = sipp.communicate(timeout=60)
    finally:
        if sipp.poll() is None:
            sipp.kill()
    try:
        ivr_server.wait(lambda: next(w for w in ivr_server.health()["workers"]
                                     if w["id"] == victim["id"])["alive"], 15, "worker restart")
        time.sleep(3)  # long enough for a worker that cannot bind to die again
        health = ivr_server.health()
        restarted = next(w for w in health["workers"] if w["id"] == victim["id"])
        assert restarted["alive"] and restarted["restarts"] == 1, restarted
        assert restarted["pid"] != victim["pid"] and restarted["port"] != victim["port"]
    finally:
        squatter.close()
    cdrs = ivr_server.wait_cdrs(before + 8, timeout=30)[before:]
    died = [c for c in cdrs if c["end_reason"] == "worker died"]
    survived = [c for c in cdrs if c["end_reason"] == "caller hangup"]
    assert len(died) == lost and len(survived) == 8 - lost, cdrs
    # a new call works afterwards
    after = len(ivr_server.calls())
    r = place(ivr_server, tmp_path, "after_kill", call_setup(), pause(300), bye())
    assert r.successful == 1, r.output[-2000:]
    new_cdrs(ivr_server, after, 1)
    ivr_server.wait_idle()


def _squat(port: int) -> socket.socket:
    """Bind UDP `port` on 127.0.0.1 as soon as its owner (just killed) has let it go."""
    deadline = time.monotonic() + 2
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("127.0.0.1", port))
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One worker (4 calls), answering after 1.5 s of ringing, calls only from 127.0.0.1."""
    server = start_server(tmp_path_factory.mktemp("small"), max_calls=4,
                          allow_from=["127.0.0.1/32"],
                          extra_sip={"prestart_workers": 1, "answer_delay": "1500ms"})
    try:
        yield server
    finally:
        server.stop()


def test_cancel_before_answer(small_server: Server, tmp_path: Path) -> None:
    before = len(small_server.calls())
    r = place(small_server, tmp_path, "cancel", invite(sdp()), recv(100, optional=True),
              recv(180), cancel(3), recv(200, optional=True), recv(487), ack_for_error(6))
    assert r.successful == 1, r.output[-2000:]
    (cdr,) = new_cdrs(small_server, before, 1)
    assert cdr["end_reason"] == "caller cancelled" and cdr["answered_at"] is None
    small_server.wait_idle()


def test_invite_from_outside_allow_from_is_403_and_touches_no_worker(
    small_server: Server, tmp_path: Path
) -> None:
    before = len(small_server.calls())
    r = place(small_server, tmp_path, "acl", invite(sdp()), recv(403), ack_for_error(2),
              local_ip="127.0.0.2")
    assert r.successful == 1, r.output[-2000:]
    time.sleep(0.5)
    assert len(small_server.calls()) == before


def test_more_calls_than_max_calls_get_503(small_server: Server, tmp_path: Path) -> None:
    path = tmp_path / "hold4.xml"
    path.write_text(scenario("hold4", call_setup(), pause(6000), bye()))
    four = start_sipp(small_server.uri_host, str(path), service=QUICK, calls=4, rate=50, timeout=30)
    try:
        small_server.wait(lambda: small_server.health()["calls"] == 4, 10, "4 live calls")
        r = place(small_server, tmp_path, "fifth", invite(sdp()), recv(100, optional=True),
                  recv(180, optional=True), recv(503), ack_for_error(4))
        assert r.successful == 1, r.output[-2000:]
        out, _ = four.communicate(timeout=40)
    finally:
        if four.poll() is None:
            four.kill()
    assert "Successful call" in out and four.returncode == 0, out[-2000:]
    small_server.wait_idle()


def test_an_invite_flood_is_blocked_while_trunk_calls_complete(tmp_path_factory: pytest.TempPathFactory,
                                                               tmp_path: Path) -> None:
    server = start_server(tmp_path_factory.mktemp("flood"), max_calls=16,
                          trunks=[{"name": "carrier", "addresses": ["127.0.0.2/32"]}],
                          extra={"front": {"pike_density": 10, "pike_exempt_loopback": False}},
                          extra_sip={"prestart_workers": 4})
    try:
        flood_path = tmp_path / "flood.xml"
        flood_path.write_text(scenario("flood", invite(sdp()), recv(100, optional=True),
                                       recv(200, rrs=True), in_dialog("ACK", 1), bye()))
        flood = start_sipp(server.uri_host, str(flood_path), service=QUICK, calls=400, rate=200,
                           local_ip="127.0.0.3", timeout=15, extra=["-recv_timeout", "3000"])
        try:
            time.sleep(0.5)  # the flood is on
            before = len(server.calls())
            trunk = place(server, tmp_path, "trunk", call_setup(), pause(300), bye(), calls=6,
                          rate=6, limit=2, local_ip="127.0.0.2")
            flood_out, _ = flood.communicate(timeout=40)
        finally:
            if flood.poll() is None:
                flood.kill()
        assert trunk.successful == 6, trunk.output[-2000:]
        blocked = int(re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", flood_out)[-1])
        assert blocked > 300, flood_out[-2000:]  # pike let a few through, then dropped the rest
        assert "pike blocking" in (server.root / "var" / "front" / "kamailio.log").read_text()
        cdrs = list(server.wait_cdrs(before + 6, timeout=30)[before:])
        assert sum(1 for c in cdrs if c["caller"] == "+15550001111") >= 6
        server.wait_idle()
    finally:
        server.stop()
