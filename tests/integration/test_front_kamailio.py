"""The front (Kamailio) against real SIP peers: SIPp as IVR workers and callers, raw UDP for the rest.

Every peer listens on a free port of 127.0.0.x chosen at runtime; every process is bounded in time
and stopped by the fixtures. Worker stand-ins run with `-aa` so they answer the front's OPTIONS
probes, and write a message log so a test can prove what a worker did (or never) receive.
Trunk registration runs against a SIPp registrar that challenges and verifies the digest; TLS runs
against Python's ssl client (this SIPp build has no TLS transport) with a certificate made here.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from digest import digest_register
from scenarios import registrar_scenario
from server import free_udp_tcp_port
from udp_peer import UdpPeer, status_codes

from ivr.config import EngineConfig
from ivr.front.agent_secrets import ha1
from ivr.front.process import Front
from ivr.front.settings import FrontSettings

pytestmark = pytest.mark.integration

SIPP_DIR = Path(__file__).parent / "sipp"
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
LOOP = "127.0.0.1"


def free_udp_port(host: str = LOOP) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# --- raw SIP over UDP ---------------------------------------------------------------------------

def sip_request(method: str, ruri: str, src: tuple[str, int], *, ua: str | None = "ivr-tests",
                call_id: str | None = None, cseq: bool = True, via: str | None = None,
                extra: str = "", to: str | None = None) -> bytes:
    tag = secrets.token_hex(4)
    branch = f"z9hG4bK{secrets.token_hex(6)}"
    lines = [
        f"{method} {ruri} SIP/2.0",
        via if via is not None else f"Via: SIP/2.0/UDP {src[0]}:{src[1]};branch={branch}",
        f"From: <sip:tester@{src[0]}:{src[1]}>;tag={tag}",
        f"To: <{to or ruri}>",
        f"Call-ID: {call_id or secrets.token_hex(8)}@{src[0]}",
    ]
    if cseq:
        lines.append(f"CSeq: 1 {method}")
    lines.append("Max-Forwards: 70")
    if ua is not None:
        lines.append(f"User-Agent: {ua}")
    lines.extend(line for line in extra.split("\r\n") if line)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --- SIPp ---------------------------------------------------------------------------------------

class Sipp:
    """One SIPp process (worker stand-in or caller) with a message log to inspect."""

    def __init__(self, workdir: Path, name: str, args: list[str]) -> None:
        self.workdir = workdir
        self.log = workdir / f"{name}.msg"
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Sipp:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            SIPP, *self.args, "-nostdin", "-trace_msg", "-message_file", str(self.log),
            cwd=self.workdir, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
        )
        return self

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            await self.stop()
            raise AssertionError(f"sipp {self.args[:3]} did not finish in {timeout}s") from None

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.kill()
        await asyncio.wait_for(self.proc.wait(), 5)

    def received(self) -> list[str]:
        """Start lines of every SIP message this SIPp received, in order."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        lines: list[str] = []
        for block in text.split("\n-----------------------------------------------"):
            _, _, body = block.partition("message received")
            if not body:
                continue
            msg = body.split("\n", 1)[1] if "\n" in body else ""
            first = next((ln.strip() for ln in msg.splitlines() if ln.strip()), "")
            if first:
                lines.append(first)
        return lines

    def requests(self, method: str) -> list[str]:
        return [ln for ln in self.received() if ln.startswith(f"{method} ")]


def wait_udp_answer(port: int, host: str = LOOP, timeout: float = 5.0) -> None:
    """Block until something answers an OPTIONS on host:port (SIPp with -aa, or the front)."""
    deadline = time.monotonic() + timeout
    peer = UdpPeer()
    try:
        while time.monotonic() < deadline:
            peer.send(sip_request("OPTIONS", f"sip:{host}:{port}", peer.addr), port, host)
            if peer.replies(0.1):
                return
        raise AssertionError(f"nothing answered OPTIONS on {host}:{port}")
    finally:
        peer.close()


def ringing_worker(sock: socket.socket, seen: list[str], stop_after: float) -> None:
    """A worker that rings and never answers; CANCEL gets 200 and the INVITE 487 (run in a thread).

    Hand-made because the 487 must repeat the INVITE's whole Via set, which SIPp cannot recall
    once the CANCEL has arrived."""
    invite: list[str] = []
    deadline = time.monotonic() + stop_after
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data, addr = sock.recvfrom(65535)
        except OSError:
            break
        lines = data.decode(errors="replace").split("\r\n")
        method = lines[0].split(" ", 1)[0]
        seen.append(method)

        def reply(status: str, req: list[str], to_tag: bool) -> bytes:
            keep = [ln for ln in req if ln.split(":", 1)[0] in ("Via", "From", "To", "Call-ID", "CSeq")]
            if to_tag:
                keep = [ln + ";tag=w1" if ln.startswith("To:") and "tag=" not in ln else ln for ln in keep]
            return ("\r\n".join([f"SIP/2.0 {status}", *keep, "Content-Length: 0"]) + "\r\n\r\n").encode()

        if method == "OPTIONS":
            sock.sendto(reply("200 OK", lines, True), addr)
        elif method == "INVITE":
            invite = lines
            sock.sendto(reply("180 Ringing", lines, True), addr)
        elif method == "CANCEL":
            sock.sendto(reply("200 OK", lines, True), addr)
            sock.sendto(reply("487 Request Terminated", invite, True), addr)
        elif method == "ACK":
            return


Factory = Callable[..., Coroutine[Any, Any, Any]]


@pytest.fixture
async def procs(tmp_path: Path) -> AsyncIterator[dict[str, Factory]]:
    """Factories for fronts, worker stand-ins and callers; everything started is stopped after."""
    fronts: list[Front] = []
    sipps: list[Sipp] = []

    async def front(workers: list[str], settings: FrontSettings | None = None, **kw: Any) -> Front:
        if settings is None:
            port = free_udp_port()
            kw.setdefault("fr_timer_ms", 1000)
            settings = FrontSettings(runtime_dir=tmp_path / "kam", listen=[f"udp:{LOOP}:{port}"],
                                     workers=workers, **kw)
        f = Front(settings)
        fronts.append(f)
        await f.start(timeout=10)
        return f

    async def uas(port: int, scenario: str | None = None, host: str = LOOP, name: str = "") -> Sipp:
        scen = ["-sf", str(SIPP_DIR / (scenario or "uas_rr.xml"))]
        s = Sipp(tmp_path / "sipp", name or f"uas{port}", [*scen, "-i", host, "-p", str(port), "-aa"])
        sipps.append(s)
        await s.start()
        await asyncio.to_thread(wait_udp_answer, port, host)
        return s

    async def uac(front: Front, scenario: str, *, service: str = "ivr", src: str = LOOP,
                  calls: int = 1, rate: int = 10, timeout: float = 15.0,
                  extra: list[str] | None = None) -> int:
        port = front.settings.sockets[0][2]
        name = f"uac{len(sipps)}"
        s = Sipp(tmp_path / "sipp", name, [
            "-sf", str(SIPP_DIR / scenario), f"{LOOP}:{port}", "-i", src, "-p", str(free_udp_port(src)),
            "-s", service, "-m", str(calls), "-l", str(calls), "-r", str(rate),
            "-recv_timeout", "6000", "-timeout", f"{int(timeout)}s", "-timeout_error", *(extra or []),
        ])
        sipps.append(s)
        await s.start()
        rc = await s.wait(timeout + 5)
        if rc != 0:  # shown by pytest when the test then fails: what SIPp saw, and the front's view
            print(f"sipp {scenario} from {src} exited {rc}; its messages:\n"
                  f"{s.log.read_text(errors='replace')[-4000:] if s.log.exists() else '(none)'}\n"
                  f"front log:\n{front.log_path.read_text(errors='replace')[-3000:]}")
        return rc

    async def peer(name: str, args: list[str]) -> Sipp:
        s = Sipp(tmp_path / "sipp", name, args)
        sipps.append(s)
        return await s.start()

    try:
        yield {"front": front, "uas": uas, "uac": uac, "peer": peer}
    finally:
        for s in sipps:
            await s.stop()
        for f in fronts:
            await f.stop()
            assert not f.alive


def worker(port: int) -> str:
    return f"{LOOP}:{port}"


async def wait_state(front: Front, key: str, prefix: str, timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    state = await front.dispatcher_state()
    while not state.get(key, "").startswith(prefix) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        state = await front.dispatcher_state()
    return state


# --- tests --------------------------------------------------------------------------------------

async def test_calls_are_dispatched_round_robin_and_complete_through_record_route(
    procs: dict[str, Factory],
) -> None:
    p1, p2 = free_udp_port(), free_udp_port()
    w1, w2 = await procs["uas"](p1), await procs["uas"](p2)
    front = await procs["front"]([worker(p1), worker(p2)])

    assert await procs["uac"](front, "uac_rr.xml", calls=4, rate=20) == 0

    # round robin: each worker got two calls, and each call's ACK and BYE came through the front
    for w in (w1, w2):
        assert len(w.requests("INVITE")) == 2, w.received()
        assert len(w.requests("ACK")) == 2
        assert len(w.requests("BYE")) == 2
    state = await front.dispatcher_state()
    assert state == {worker(p1): "AP", worker(p2): "AP"} or all(v.startswith("A") for v in state.values())
    assert len(state) == 2


async def test_callee_bye_reaches_the_caller_through_the_front(procs: dict[str, Factory]) -> None:
    port = free_udp_port()
    w = await procs["uas"](port, "uas_bye.xml")
    front = await procs["front"]([worker(port)])

    assert await procs["uac"](front, "uac_callee_bye.xml") == 0
    # the worker's BYE was answered 200 by the caller, relayed back through the front
    assert w.received()[-1].startswith("SIP/2.0 200"), w.received()


async def test_cancel_while_ringing_goes_through_the_front(procs: dict[str, Factory]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOP, 0))
    seen: list[str] = []
    try:
        front = await procs["front"]([worker(sock.getsockname()[1])])
        thread = asyncio.create_task(asyncio.to_thread(ringing_worker, sock, seen, 10.0))
        assert await procs["uac"](front, "uac_cancel.xml") == 0
        await asyncio.wait_for(thread, 5)
    finally:
        sock.close()
    # the worker got the CANCEL (forwarded hop by hop) and the front's ACK for its 487
    assert [m for m in seen if m != "OPTIONS"] == ["INVITE", "CANCEL", "ACK"]
    # and the caller saw the 487 for its INVITE and ACKed it
    log = (front.settings.runtime_dir.parent / "sipp" / "uac0.msg").read_text()
    order = [line.split(" ", 2)[1] if line.startswith("SIP/2.0") else line.split(" ", 1)[0]
             for line in log.splitlines() if line.startswith(("SIP/2.0 ", "INVITE ", "CANCEL ",
                                                              "ACK "))]
    after = [x for x in order[order.index("CANCEL"):] if x != "200"]
    assert after[:3] == ["CANCEL", "487", "ACK"], order


async def test_failover_dead_worker_probe_recovery_and_kill(procs: dict[str, Factory]) -> None:
    dead, live = free_udp_port(), free_udp_port()
    w_live = await procs["uas"](live)
    front = await procs["front"]([worker(dead), worker(live)], probe_interval_s=2)

    # two calls: round robin sends one of them to the dead worker; it times out (fr_timer 1 s),
    # the failure route marks it down and the call completes on the live one
    t0 = time.monotonic()
    assert await procs["uac"](front, "uac_rr.xml", calls=2, rate=20) == 0
    assert len(w_live.requests("INVITE")) == 2
    state = await front.dispatcher_state()
    assert state[worker(dead)].startswith("I"), state
    assert state[worker(live)].startswith("A"), state
    log = front.log_path.read_text()
    assert f"failover to sip:{worker(live)}" in log
    setup = time.monotonic() - t0
    assert setup < 8, setup

    # the dead worker comes up: OPTIONS probing marks it active again
    w_back = await procs["uas"](dead, name="uas_back")
    state = await wait_state(front, worker(dead), "A", timeout=6)
    assert state[worker(dead)].startswith("A"), state

    # now kill the other one: calls still complete, on the recovered worker
    await w_live.stop()
    assert await procs["uac"](front, "uac_rr.xml", calls=2, rate=20) == 0
    assert len(w_back.requests("INVITE")) == 2
    assert (await front.dispatcher_state())[worker(live)].startswith("I")


async def test_set_workers_reloads_the_dispatcher(procs: dict[str, Factory]) -> None:
    pa, pb = free_udp_port(), free_udp_port()
    wa, wb = await procs["uas"](pa), await procs["uas"](pb)
    front = await procs["front"]([worker(pa)])
    assert await procs["uac"](front, "uac_rr.xml") == 0

    await front.set_workers([worker(pb)])
    assert set(await front.dispatcher_state()) == {worker(pb)}
    assert front.dispatcher_path.read_text().count("sip:") == 1
    assert await procs["uac"](front, "uac_rr.xml", calls=2) == 0
    assert len(wa.requests("INVITE")) == 1
    assert len(wb.requests("INVITE")) == 2

    # no workers at all: the front itself answers 503
    await front.set_workers([])
    assert await front.dispatcher_state() == {}
    assert await procs["uac"](front, "uac_expect_503.xml") == 0


async def test_acl_refuses_unlisted_source_before_any_worker(procs: dict[str, Factory]) -> None:
    port = free_udp_port()
    w = await procs["uas"](port)
    front = await procs["front"]([worker(port)], allow_from=["127.0.0.1/32"])

    assert await procs["uac"](front, "uac_expect_403.xml", src="127.0.0.2") == 0
    assert w.requests("INVITE") == []
    assert "ACL reject INVITE from 127.0.0.2" in front.log_path.read_text()

    # REGISTER from outside the ACL: refused too
    peer = UdpPeer("127.0.0.2")
    try:
        fport = front.settings.sockets[0][2]
        peer.send(sip_request("REGISTER", f"sip:{LOOP}:{fport}", peer.addr, to=f"sip:eve@{LOOP}",
                              extra=f"Contact: <sip:eve@127.0.0.2:{peer.addr[1]}>"), fport)
        assert status_codes(peer.replies(0.5)) == [403]
    finally:
        peer.close()

    # an allowed source still gets through
    assert await procs["uac"](front, "uac_rr.xml", src=LOOP) == 0
    assert len(w.requests("INVITE")) == 1


async def test_malformed_requests(procs: dict[str, Factory]) -> None:
    """Parseable but wrong requests get 400 from sanity (reply mode); a broken Via or a missing CSeq
    is dropped by Kamailio's core parser before any script runs (no reply: there is no usable
    Via to answer, resp. the core refuses messages without the mandatory headers)."""
    port = free_udp_port()
    w = await procs["uas"](port)
    front = await procs["front"]([worker(port)])
    fport = front.settings.sockets[0][2]
    ruri = f"sip:ivr@{LOOP}:{fport}"
    peer = UdpPeer()
    try:
        answered = {
            "CSeq method does not match": sip_request("INVITE", ruri, peer.addr).replace(
                b"CSeq: 1 INVITE", b"CSeq: 1 BYE"),
            "CSeq number is illegal": sip_request("INVITE", ruri, peer.addr).replace(
                b"CSeq: 1 INVITE", b"CSeq: x INVITE"),
            "Invalid From": sip_request("INVITE", ruri, peer.addr).replace(b"From: <sip:", b"From: <xx:::"),
            "Content-Length mis-match": sip_request("INVITE", ruri, peer.addr).replace(
                b"Content-Length: 0", b"Content-Length: 500"),
            "Bad Request URI": sip_request("INVITE", "sip:@@:x", peer.addr),
        }
        for reason, data in answered.items():
            peer.send(data, fport)
            replies = peer.replies(1.0, expect=1)
            assert len(replies) == 1, (reason, replies)
            assert replies[0].startswith(f"SIP/2.0 400 {reason}"), replies[0][:80]

        dropped = [
            sip_request("INVITE", ruri, peer.addr, cseq=False),
            sip_request("INVITE", ruri, peer.addr, via="Via: SIP/2.0/UDP ;;branch=@@"),
            b"\x00\x01garbage that is no SIP at all\r\n\r\n",
        ]
        for data in dropped:
            peer.send(data, fport)
        assert peer.replies(0.5) == []

        # the front is unharmed and no worker saw any of it
        peer.send(sip_request("OPTIONS", f"sip:{LOOP}:{fport}", peer.addr), fport)
        assert status_codes(peer.replies(0.5)) == [200]
    finally:
        peer.close()
    assert front.alive
    assert w.requests("INVITE") == []
    assert "malformed request from 127.0.0.1" in front.log_path.read_text()


async def test_scanner_user_agents_get_no_reply(procs: dict[str, Factory]) -> None:
    port = free_udp_port()
    w = await procs["uas"](port)
    front = await procs["front"]([worker(port)])
    fport = front.settings.sockets[0][2]
    peer = UdpPeer()
    try:
        for ua in ("friendly-scanner", "SIPVicious 0.3", "sipvicious", "VaxSIPUserAgent/3.1", "sipcli/v1.8",
                   "pplsip", "sundayddr", "Friendly-Scanner"):
            peer.send(sip_request("OPTIONS", f"sip:100@{LOOP}:{fport}", peer.addr, ua=ua), fport)
            peer.send(sip_request("INVITE", f"sip:100@{LOOP}:{fport}", peer.addr, ua=ua), fport)
        assert peer.replies(0.5) == []
        # control: the same request from an ordinary phone is answered
        peer.send(sip_request("OPTIONS", f"sip:{LOOP}:{fport}", peer.addr, ua="Linphone/5.0"), fport)
        assert status_codes(peer.replies(0.5)) == [200]
    finally:
        peer.close()
    assert w.requests("INVITE") == []
    assert "scanner dropped" in front.log_path.read_text()


async def test_all_workers_busy_gives_503_without_marking_them_down(procs: dict[str, Factory]) -> None:
    p1, p2 = free_udp_port(), free_udp_port()
    w1, w2 = await procs["uas"](p1, "uas_486.xml"), await procs["uas"](p2, "uas_486.xml")
    front = await procs["front"]([worker(p1), worker(p2)])

    assert await procs["uac"](front, "uac_expect_503.xml") == 0
    # both workers were tried once, and neither is considered down (486 = full, not broken)
    assert len(w1.requests("INVITE")) == 1
    assert len(w2.requests("INVITE")) == 1
    state = await front.dispatcher_state()
    assert all(v.startswith("A") for v in state.values()), state


async def test_flood_is_blocked_by_pike_while_a_trusted_trunk_still_calls(
    procs: dict[str, Factory],
) -> None:
    port = free_udp_port()
    w = await procs["uas"](port)
    front = await procs["front"](
        [worker(port)], trusted=["127.0.0.2"], pike_density=10, pike_sampling_s=2,
        pike_remove_latency_s=10, pike_exempt_loopback=False,
    )
    fport = front.settings.sockets[0][2]

    flooder = UdpPeer("127.0.0.3")
    try:
        sent = 80
        call_ids = [f"flood{i}" for i in range(sent)]
        for cid in call_ids:
            flooder.send(sip_request("INVITE", f"sip:ivr@{LOOP}:{fport}", flooder.addr, call_id=cid), fport)
        replies = flooder.replies(1.0)
        answered = {cid for cid in call_ids if any(f"Call-ID: {cid}@" in r for r in replies)}
        # pike lets roughly one sampling unit's density through, then drops silently
        assert 0 < len(answered) <= 20, len(answered)
        assert "pike blocking INVITE from 127.0.0.3" in front.log_path.read_text()

        # the trusted trunk's calls complete meanwhile (it floods too: 20 calls at 40/s)
        assert await procs["uac"](front, "uac_rr.xml", src="127.0.0.2", calls=20, rate=40) == 0

        # and the flooder is still blocked
        # (200 retransmissions of the INVITEs that got through may still arrive: look for this one)
        flooder.send(sip_request("OPTIONS", f"sip:{LOOP}:{fport}", flooder.addr, call_id="after"), fport)
        assert not [r for r in flooder.replies(0.5) if "Call-ID: after@" in r]
    finally:
        flooder.close()
    assert len(w.requests("INVITE")) >= 20


async def test_registered_user_is_reached_other_users_go_to_workers(procs: dict[str, Factory]) -> None:
    wport, bob_port = free_udp_port(), free_udp_port()
    w = await procs["uas"](wport)
    bob = await procs["uas"](bob_port, name="bob")
    front = await procs["front"]([worker(wport)], agent_ha1={"bob": ha1("bob", "ivr", "bob-pw")})
    fport = front.settings.sockets[0][2]

    peer = UdpPeer()
    try:
        register = digest_register(peer, fport, "bob", "bob-pw", contact=f"sip:bob@{LOOP}:{bob_port}")
        assert register.startswith("SIP/2.0 200 "), register
        assert f"sip:bob@{LOOP}:{bob_port}" in register
    finally:
        peer.close()

    assert await procs["uac"](front, "uac_rr.xml", service="bob") == 0
    assert len(bob.requests("INVITE")) == 1
    assert bob.requests("INVITE")[0].startswith(f"INVITE sip:bob@{LOOP}:{bob_port}")
    assert len(bob.requests("BYE")) == 1
    assert w.requests("INVITE") == []

    assert await procs["uac"](front, "uac_rr.xml", service="carol") == 0
    assert len(w.requests("INVITE")) == 1
    assert len(bob.requests("INVITE")) == 1


async def test_front_exits_cleanly_and_reports_a_bad_start(tmp_path: Path) -> None:
    port = free_udp_port()
    front = Front(FrontSettings(runtime_dir=tmp_path / "k", listen=[f"udp:{LOOP}:{port}"]))
    await front.start()
    pid = front.pid
    assert front.alive and pid is not None
    assert await front.stop() == 0
    assert not front.alive
    with contextlib.suppress(ProcessLookupError):
        import os

        os.killpg(pid, 0)
        raise AssertionError("kamailio processes left behind")

    # a port someone else holds: start fails with the reason, and nothing is left running
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind((LOOP, port))
    try:
        again = Front(FrontSettings(runtime_dir=tmp_path / "k2", listen=[f"udp:{LOOP}:{port}"]))
        from ivr.front.settings import FrontError

        with pytest.raises(FrontError):
            await again.start(timeout=5)
        assert not again.alive
    finally:
        blocker.close()


# --- trunk registration ------------------------------------------------------------------------

async def wait_registration(front: Front, want: str, timeout: float = 5.0) -> dict[str, str]:
    """The front's registration state once every trunk shows `want` (or the last one seen)."""
    deadline = time.monotonic() + timeout
    state = await front.registration_state()
    while any(v != want for v in state.values()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        state = await front.registration_state()
    return state


TRUNK_SRC = "127.0.0.2"  # the carrier: its registrar and the source of its calls


def trunk_config(fport: int, rport: int, **trunk: Any) -> EngineConfig:
    return EngineConfig.model_validate({
        "sip": {"listen": [f"udp:{LOOP}:{fport}"]},
        # only the trunk may call: its registrar's address is trusted without listing it
        "allow_from": ["127.0.0.9/32"],
        "trunks": [{"name": "carrier", "registrar": f"sip:{TRUNK_SRC}:{rport}", "username": "1000",
                    "password_env": "IVR_TEST_TRUNK_PW", "expires": 10, **trunk}],
    })


async def test_trunk_registers_with_digest_refreshes_and_its_calls_reach_a_worker(
    procs: dict[str, Factory], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = "s3cr:t-" + secrets.token_hex(6)  # a ':' to prove the db_text escaping
    monkeypatch.setenv("IVR_TEST_TRUNK_PW", password)
    fport, rport, wport = free_udp_port(), free_udp_port(TRUNK_SRC), free_udp_port()
    scen = tmp_path / "registrar.xml"
    scen.write_text(registrar_scenario("1000", password, f"carrier@{LOOP}:{fport}", 10, rounds=2))
    registrar = await procs["peer"]("registrar", [
        "-sf", str(scen), "-i", TRUNK_SRC, "-p", str(rport), "-m", "1",
        "-timeout", "40s", "-timeout_error",
    ])
    w = await procs["uas"](wport)
    settings = FrontSettings.from_config(
        trunk_config(fport, rport), tmp_path / "kam", [worker(wport)], reg_timer_interval_s=2,
    )
    started = time.monotonic()
    front = await procs["front"]([], settings=settings)

    # registered (401 -> digest verified -> 200), then refreshed before the 10 s expire, again with
    # a verified digest: the registrar's scenario passes only then
    assert await registrar.wait(45) == 0, registrar.received()
    assert time.monotonic() - started < 15
    regs = registrar.requests("REGISTER")
    assert len(regs) == 4 and all(r.startswith(f"REGISTER sip:{TRUNK_SRC}:{rport} ") for r in regs)
    assert await wait_registration(front, "registered") == {"carrier": "registered"}

    # the carrier calls the registered contact with the dialled number in To: a worker gets it
    # with that number as the request user
    assert await procs["uac"](front, "uac_trunk_did.xml", service="carrier", src=TRUNK_SRC,
                              extra=["-key", "did", "1000"]) == 0
    assert [r.split(" ", 2)[1] for r in w.requests("INVITE")] == [f"sip:1000@{LOOP}:{fport}"]
    # any other source is refused by the ACL
    assert await procs["uac"](front, "uac_expect_403.xml", src="127.0.0.3") == 0

    # the password is only in the uacreg table, and that is readable by us alone
    table = front.runtime_dir / "uacreg" / "uacreg"
    assert password.replace(":", "\\:") in table.read_text()
    assert table.stat().st_mode & 0o777 == 0o600
    assert (front.runtime_dir / "uacreg").stat().st_mode & 0o777 == 0o700
    for path in (front.cfg_path, front.log_path):
        assert password not in path.read_text(errors="replace"), path
    assert password not in repr(settings)
    assert "carrier" in front.cfg_path.read_text()
    # and only while the front runs
    await front.stop()
    assert not table.exists() and not table.parent.exists()


async def test_trunk_registration_with_a_wrong_password_is_refused_by_the_registrar(
    procs: dict[str, Factory], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IVR_TEST_TRUNK_PW", "not-the-password")
    fport, rport = free_udp_port(), free_udp_port(TRUNK_SRC)
    scen = tmp_path / "registrar.xml"
    scen.write_text(registrar_scenario("1000", "the-password", f"carrier@{LOOP}:{fport}", 10, rounds=1))
    registrar = await procs["peer"]("registrar", [
        "-sf", str(scen), "-i", TRUNK_SRC, "-p", str(rport), "-m", "1",
        "-timeout", "20s", "-timeout_error",
    ])
    settings = FrontSettings.from_config(trunk_config(fport, rport), tmp_path / "kam",
                                         reg_timer_interval_s=2)
    front = await procs["front"]([], settings=settings)
    # verifyauth failed: the scenario took its 403 branch and failed
    assert await registrar.wait(25) != 0
    assert [r.split(" ", 1)[0] for r in registrar.received()] == ["REGISTER", "REGISTER"]
    assert await wait_registration(front, "failed") == {"carrier": "failed"}
    # the refusal is logged without the password
    await asyncio.sleep(0.5)
    assert "not-the-password" not in front.log_path.read_text(errors="replace")


# --- TLS ----------------------------------------------------------------------------------------

def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (IP SAN, so a client can check the name) made with openssl."""
    crt, key = directory / "front.crt", directory / "front.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=ivr-front-test", "-addext", f"subjectAltName=IP:{LOOP}",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True, timeout=60)
    return crt, key


class TlsPeer:
    """A SIP client over TLS (Python's ssl) that trusts only the test's certificate and checks
    the front's name against it; reads whole SIP messages off the stream."""

    def __init__(self, port: int, cafile: Path) -> None:
        ctx = ssl.create_default_context(cafile=str(cafile))
        raw = socket.create_connection((LOOP, port), timeout=5)
        self.sock = ctx.wrap_socket(raw, server_hostname=LOOP)
        self.addr: tuple[str, int] = self.sock.getsockname()
        self._buf = b""

    def send(self, text: str) -> None:
        self.sock.sendall(text.replace("\n", "\r\n").encode())

    def recv(self, timeout: float = 5.0) -> str:
        """The next SIP message (head and body by Content-Length)."""
        deadline = time.monotonic() + timeout
        while True:
            head, sep, rest = self._buf.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
                size = int(m.group(1)) if m else 0
                if len(rest) >= size:
                    self._buf = rest[size:]
                    return (head + sep + rest[:size]).decode(errors="replace")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no complete SIP message over TLS; have {self._buf!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65535)
            if not chunk:
                raise AssertionError("the front closed the TLS connection")
            self._buf += chunk

    def final(self, timeout: float = 8.0) -> str:
        """Skip provisional replies; the final one."""
        while True:
            msg = self.recv(timeout)
            if not msg.startswith("SIP/2.0 1"):
                return msg

    def close(self) -> None:
        self.sock.close()


def header(msg: str, name: str) -> list[str]:
    return [ln.split(":", 1)[1].strip() for ln in msg.split("\r\n")
            if ln.split(":", 1)[0].strip().lower() == name.lower()]


def tls_request(peer: TlsPeer, method: str, ruri: str, *, call_id: str, cseq: int, from_tag: str,
                to: str, routes: list[str] | None = None, body: str = "") -> str:
    host, port = peer.addr
    lines = [f"{method} {ruri} SIP/2.0",
             f"Via: SIP/2.0/TLS {host}:{port};branch=z9hG4bK{secrets.token_hex(6)};rport",
             *(f"Route: {r}" for r in routes or []),
             f"From: <sip:+15550001111@{host}>;tag={from_tag}", f"To: {to}", f"Call-ID: {call_id}",
             f"CSeq: {cseq} {method.split()[0]}", f"Contact: <sip:caller@{host}:{port};transport=tls>",
             "Max-Forwards: 70"]
    if body:
        # send() turns each "\n" into CRLF: count the body as sent
        lines += ["Content-Type: application/sdp", f"Content-Length: {len(body) + body.count(chr(10))}",
                  "", body]
    else:
        lines += ["Content-Length: 0", "", ""]
    return "\n".join(lines)


SDP = "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n" \
      "m=audio 40000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"


async def test_tls_listen_answers_and_a_call_over_tls_reaches_a_worker(
    procs: dict[str, Factory], tmp_path: Path,
) -> None:
    crt, key = self_signed(tmp_path)
    wport, uport, tport = free_udp_port(), free_udp_port(), free_udp_tcp_port()
    w = await procs["uas"](wport)
    config = EngineConfig.model_validate({"sip": {
        "listen": [f"udp:{LOOP}:{uport}", f"tls:{LOOP}:{tport}"],
        "tls": {"certificate": str(crt), "private_key": str(key)},
    }})
    front = await procs["front"]([], settings=FrontSettings.from_config(
        config, tmp_path / "kam", [worker(wport)], fr_timer_ms=1000))
    assert (front.runtime_dir / "tls.cfg").read_text().count(str(crt)) == 1

    peer = await asyncio.to_thread(TlsPeer, tport, crt)  # handshake: our certificate, checked
    try:
        cid, tag = f"{secrets.token_hex(8)}@tls-test", secrets.token_hex(4)
        front_uri = f"sip:{LOOP}:{tport};transport=tls"
        peer.send(tls_request(peer, "OPTIONS", front_uri, call_id="o" + cid, cseq=1, from_tag=tag,
                              to=f"<{front_uri}>"))
        reply = await asyncio.to_thread(peer.final)
        assert reply.startswith("SIP/2.0 200 Keepalive"), reply

        dialled = f"sip:1000@{LOOP}:{tport};transport=tls"
        peer.send(tls_request(peer, "INVITE", dialled, call_id=cid, cseq=1, from_tag=tag,
                              to=f"<{dialled}>", body=SDP))
        ok = await asyncio.to_thread(peer.final)
        assert ok.startswith("SIP/2.0 200"), ok
        # the front record-routes on both sides: TLS towards us, UDP towards the worker
        rr = [r.strip() for line in header(ok, "Record-Route") for r in line.split(",")]
        assert any("transport=tls" in r for r in rr), rr
        to = header(ok, "To")[0]
        contact = header(ok, "Contact")[0].strip("<>").split(">")[0]
        routes = rr[::-1]  # a UAC's route set is the Record-Route list reversed (RFC 3261 12.1.2)
        peer.send(tls_request(peer, "ACK", contact, call_id=cid, cseq=1, from_tag=tag, to=to,
                              routes=routes))
        peer.send(tls_request(peer, "BYE", contact, call_id=cid, cseq=2, from_tag=tag, to=to,
                              routes=routes))
        bye = await asyncio.to_thread(peer.final)
        assert bye.startswith("SIP/2.0 200") and "CSeq: 2 BYE" in bye, bye
    finally:
        peer.close()
    assert [r.split(" ", 2)[1] for r in w.requests("INVITE")] == [f"sip:1000@{LOOP}:{tport};transport=tls"]
    assert len(w.requests("ACK")) == 1 and len(w.requests("BYE")) == 1


async def test_tls_listen_refuses_a_client_that_distrusts_its_certificate(
    procs: dict[str, Factory], tmp_path: Path,
) -> None:
    crt, key = self_signed(tmp_path)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other, _ = self_signed(other_dir)
    uport, tport = free_udp_port(), free_udp_tcp_port()
    await procs["front"]([], settings=FrontSettings(
        runtime_dir=tmp_path / "kam", listen=[f"udp:{LOOP}:{uport}", f"tls:{LOOP}:{tport}"],
        tls_certificate=crt, tls_private_key=key))
    # the front really presents the configured certificate: a client trusting another one fails
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.to_thread(TlsPeer, tport, other)
