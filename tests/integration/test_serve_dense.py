"""Dense workers (pjsua2 built from source): the built-in pool takes a burst up to max_calls with
no 503, answers 503 with Retry-After only above it, and a killed worker costs only its calls."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rtp_pcap import double_rate, garbage
from scenarios import (
    ack_for_error,
    answer_200,
    bye,
    call_setup,
    dtmf,
    in_dialog,
    invite,
    pause,
    recv,
    scenario,
    sdp,
)
from server import Server, restart_server, start_server
from sipp_run import run_sipp, sipp_result, start_sipp

QUICK = "3000"


def _write(tmp_path: Path, name: str, *parts: str) -> str:
    path = tmp_path / f"{name}.xml"
    path.write_text(scenario(name, *parts))
    return str(path)


def _held(tmp_path: Path, hold_ms: int) -> str:
    return _write(tmp_path, f"held{hold_ms}", call_setup(), pause(hold_ms), bye())


def _busy_with_retry_after(tmp_path: Path) -> str:
    """A caller that must get 503 carrying Retry-After (the call fails in SIPp otherwise)."""
    got_503 = ('  <recv response="503">\n    <action>\n'
               '      <ereg regexp="Retry-After: *[0-9]+" search_in="msg" check_it="true" '
               'assign_to="retry"/>\n    </action>\n  </recv>\n')
    return _write(tmp_path, "busy", invite(sdp()), recv(100, optional=True), got_503,
                  ack_for_error(3), '  <Reference variables="retry"/>\n')


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Built-in pool settings (calls_per_worker auto), only max_calls set."""
    server = start_server(tmp_path_factory.mktemp("dense"), max_calls=60, calls_per_worker="auto",
                          extra_sip={"srtp_routes": {"4000": "mandatory"}})
    try:
        yield server
    finally:
        server.stop()


def test_the_default_pool_is_one_source_built_worker_per_core(dense: Server) -> None:
    health = dense.health()
    pj = health["pjsua2"]
    assert pj["build"] == "source" and pj["version"].startswith("2.16"), pj
    assert pj["max_calls"] >= 400, pj
    workers = [w for w in health["workers"] if w["alive"]]
    assert len(workers) == (os.cpu_count() or 1)
    assert sum(w["limit"] for w in workers) == 60 == health["capacity"]


def test_a_burst_from_idle_is_answered_up_to_max_calls_then_503_with_retry_after(
        dense: Server, tmp_path: Path) -> None:
    dense.wait_idle()
    before = len(dense.calls())
    # 60 calls at 50 calls/s from idle: every one answered (no pool growth to wait for)
    held = start_sipp(dense.uri_host, _held(tmp_path, 6000), service=QUICK, calls=60, rate=50,
                      timeout=60)
    try:
        dense.wait(lambda: dense.health()["calls"] >= 60, 15, "60 live calls")
        # above max_calls: 503 with Retry-After, for every extra caller
        busy = run_sipp(dense.uri_host, _busy_with_retry_after(tmp_path), service=QUICK, calls=5,
                        rate=20, timeout=20)
        assert busy.successful == 5, busy.output[-2000:]
        out, _ = held.communicate(timeout=60)
    finally:
        if held.poll() is None:
            held.kill()
    assert held.returncode == 0 and "Successful call" in out, out[-2000:]
    cdrs = dense.wait_cdrs(before + 60, timeout=30)[before:]
    assert len(cdrs) == 60 and {c["end_reason"] for c in cdrs} == {"caller hangup"}
    # and below max_calls again, a call is answered at once
    assert run_sipp(dense.uri_host, _held(tmp_path, 300), service=QUICK).successful == 1


def test_a_worker_killed_with_its_calls_costs_only_those(tmp_path: Path) -> None:
    server = start_server(tmp_path / "serve", max_calls=300, calls_per_worker="auto",
                          extra_sip={"workers": 2})
    try:
        before = len(server.calls())
        held = start_sipp(server.uri_host, _held(tmp_path, 8000), service=QUICK, calls=200,
                          rate=100, timeout=90)
        try:
            server.wait(lambda: server.health()["calls"] >= 200, 30, "200 live calls")
            victim = max((w for w in server.health()["workers"] if w["alive"]),
                         key=lambda w: w["calls"])
            survivors = {w["id"]: w["calls"] for w in server.health()["workers"]
                         if w["alive"] and w["id"] != victim["id"]}
            assert victim["calls"] >= 90, victim  # about 100: round robin over two workers
            os.kill(int(victim["pid"]), signal.SIGKILL)
            killed_at = time.monotonic()
            # a new call is answered at once (the other worker has room), while the old calls
            # of the other worker go on
            r = run_sipp(server.uri_host, _held(tmp_path, 300), service=QUICK, timeout=10)
            assert r.successful == 1, r.output[-2000:]
            assert time.monotonic() - killed_at < 5
            alive = {w["id"]: w["calls"] for w in server.health()["workers"] if w["alive"]}
            assert all(alive.get(wid, 0) >= n for wid, n in survivors.items()), (alive, survivors)
            # the supervisor restarts the dead one
            server.wait(lambda: all(w["alive"] for w in server.health()["workers"])
                        and server.health()["workers"][int(victim["id"]) - 1]["restarts"] == 1,
                        20, "the worker restarted")
            out, _ = held.communicate(timeout=90)
        finally:
            if held.poll() is None:
                held.kill()
        # the SIPp side: every call of the surviving worker completed
        assert sipp_result(held.returncode, out).successful == 200 - victim["calls"], out[-2000:]
        cdrs = server.wait_cdrs(before + 201, timeout=40)[before:]
        died = [c for c in cdrs if c["end_reason"] == "worker died"]
        assert len(died) == victim["calls"], (len(died), victim["calls"])
        assert all(c["worker"] == victim["id"] for c in died)
        others = [c for c in cdrs if c["worker"] != victim["id"]]
        assert {c["end_reason"] for c in others} == {"caller hangup"}, \
            [(c["end_reason"], c["end_node"]) for c in others if c["end_reason"] != "caller hangup"][:5]
    finally:
        server.stop()


KEY = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"


def _srtp_call(tmp_path: Path) -> str:
    """An SRTP (SDES) offer; the 200 must answer RTP/SAVP with a key of its own."""
    offer = sdp("0 101").replace("RTP/AVP", "RTP/SAVP") + "\n" + KEY
    answered = ('  <recv response="200" rrs="true">\n    <action>\n'
                '      <ereg regexp="m=audio [0-9]+ RTP/SAVP" search_in="body" check_it="true" '
                'assign_to="savp"/>\n'
                '      <ereg regexp="a=crypto:[0-9]+ AES_CM_128_HMAC_SHA1_80 inline:" '
                'search_in="body" check_it="true" assign_to="key"/>\n'
                '    </action>\n  </recv>\n')
    return _write(tmp_path, "srtp", invite(offer), recv(100, optional=True),
                  recv(180, optional=True), answered, in_dialog("ACK", 1), pause(1500), bye(),
                  '  <Reference variables="savp,key"/>\n')


def test_an_srtp_offer_is_answered_with_srtp(dense: Server, tmp_path: Path) -> None:
    for route in (QUICK, "4000"):  # optional (the default) and mandatory
        r = run_sipp(dense.uri_host, _srtp_call(tmp_path), service=route, timeout=20)
        assert r.successful == 1, (route, r.output[-2000:])


def test_a_plain_rtp_offer_to_a_mandatory_srtp_route_is_488(dense: Server, tmp_path: Path) -> None:
    dense.wait_idle()  # the SRTP calls before this one have ended
    before = len(dense.calls())
    r = run_sipp(dense.uri_host, _write(tmp_path, "plain", invite(sdp()), recv(100, optional=True),
                                        recv(488), ack_for_error(3)), service="4000", timeout=20)
    assert r.successful == 1, r.output[-2000:]
    assert dense.health()["calls"] == 0 and len(dense.calls()) == before  # no call was started
    # the same plain offer to a route without the policy is answered
    assert run_sipp(dense.uri_host, _held(tmp_path, 300), service=QUICK).successful == 1


def _play(pcap: Path) -> str:
    return f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'


def test_garbage_and_double_rate_rtp_leave_the_call_and_the_worker_standing(
        dense: Server, tmp_path: Path) -> None:
    dense.wait_idle()
    restarts = sum(w["restarts"] for w in dense.health()["workers"])
    before = len(dense.calls())
    junk, fast = garbage(tmp_path / "garbage.pcap"), double_rate(tmp_path / "fast.pcap")
    r = run_sipp(dense.uri_host, _write(
        tmp_path, "abuse", call_setup(), _play(junk), pause(3200), _play(fast), pause(3200),
        dtmf("1"), recv("BYE"), answer_200()), service=QUICK, calls=4, rate=10, timeout=40)
    assert r.successful == 4, r.output[-2000:]
    cdrs = dense.wait_cdrs(before + 4)[before:]
    # the menu still heard the caller's key after all that, and the IVR ended each call itself
    assert all(c["path"] == ["hello", "pick", "one", "bye"] for c in cdrs), [c["path"] for c in cdrs]
    assert sum(w["restarts"] for w in dense.health()["workers"]) == restarts
    dense.wait_idle()


def test_workers_left_by_a_killed_supervisor_reap_silent_calls_and_exit(tmp_path: Path) -> None:
    """SIGKILL the supervisor with calls up, then the callers vanish without a BYE: the orphaned
    workers hang the silent calls up (media_timeout) and exit, instead of spinning for minutes."""
    server = start_server(tmp_path / "serve", max_calls=80, calls_per_worker="auto",
                          extra_sip={"media_timeout": "2s"})
    audio = Path("/usr/share/sip-tester/g711a.pcap")
    callers = start_sipp(server.uri_host, _write(tmp_path, "talking", call_setup(), _play(audio),
                                                 pause(30000), bye()),
                         service="1000", calls=40, rate=40, timeout=60)  # the bank: menus, a queue
    try:
        server.wait(lambda: server.health()["calls"] >= 40, 15, "40 live calls")
        pids = [int(w["pid"]) for w in server.health()["workers"] if w["alive"]]
        os.kill(server.proc.pid, signal.SIGKILL)
        callers.kill()  # no BYE, no more RTP
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_running(pid) for pid in pids):
            time.sleep(0.2)
        assert not any(_running(pid) for pid in pids), "orphaned workers still running"
    finally:
        if callers.poll() is None:
            callers.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.proc.pid, signal.SIGKILL)
        # the killed supervisor's Kamailio runs on (as after a real crash): a new serve on the
        # same state replaces it, and stopping that one stops everything
        restart_server(server).stop()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
