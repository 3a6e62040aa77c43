"""The front's hardening, against a real `ivr serve` (Kamailio front, pjsua2 workers).

Registrar digest auth bound to the agent, the brute-force ban, REFER and transfer targets outside
`transfers.allow`, oversized and malformed requests. "Nothing saved" is asked of the front's own
location table (kamcmd ul.lookup); "no worker saw it" of the front's log (every line carries the
Call-ID, and every request handed to a worker is logged as `dispatch`) and the CDRs.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Iterator

import pytest
from digest import authorization, challenge, digest_register, register_request, status
from server import Server, start_server
from sipp_run import run_sipp
from udp_peer import UdpPeer

from ivr.front.agent_secrets import SecretsFile
from ivr.front.rpc import Kamcmd
from ivr.front.settings import FrontError

pytestmark = pytest.mark.integration

PREMIUM = "sip:+19005550100@premium.example.net"
MAX_FAILURES = 5
BAN_S = 4

TOLL_FRAUD_FLOW = f"""\
# a transfer the config does not allow: refused before any SIP goes out
flow: tollfraud
start: xfer
nodes:
  xfer:
    transfer: {{to: "{PREMIUM}", mode: refer}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("sipfront")
    secrets_file = SecretsFile(root / "agent-secrets")
    secrets_file.set("bob", "ivr", "bob-pw")
    secrets_file.set("alice", "ivr", "alice-pw")  # dave has none
    secrets_file.save()
    (root / "flows").mkdir(parents=True)
    (root / "flows" / "tollfraud.yaml").write_text(TOLL_FRAUD_FLOW)
    defaults_routes = {"1000": "acme-bank", "3000": "quick", "5000": "tollfraud", "default": "acme-bank"}
    srv = start_server(root, max_calls=8, calls_per_worker=4, tcp=True, extra={
        "agents": {"bob": {"queues": ["general"]}, "alice": {"queues": ["general"]},
                   "dave": {"queues": ["general"]}},
        "front": {"agent_secrets": str(root / "agent-secrets"), "auth_max_failures": MAX_FAILURES,
                  "auth_ban": f"{BAN_S}s"},
        "routes": defaults_routes,
    })
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def peer() -> Iterator[UdpPeer]:
    p = UdpPeer()
    yield p
    p.close()


def front_log(server: Server) -> str:
    return (server.root / "var" / "front" / "kamailio.log").read_text(errors="replace")


def registered(server: Server, user: str) -> bool:
    rpc = Kamcmd(server.root / "var" / "front" / "kamailio_ctl")
    try:
        asyncio.run(rpc.run("ul.lookup", "location", user))
    except FrontError as exc:
        assert "not found" in str(exc).lower(), exc
        return False
    return True


def test_register_without_credentials_is_challenged_and_nothing_saved(server: Server, peer: UdpPeer) -> None:
    reply, nonce = challenge(peer, server.sip_port, "bob")
    assert status(reply) == 401 and nonce, reply
    assert 'realm="ivr"' in reply
    assert not registered(server, "bob")


def test_wrong_password_and_someone_elses_credentials_get_403_nothing_saved(
        server: Server, peer: UdpPeer) -> None:
    assert status(digest_register(peer, server.sip_port, "alice", "guess")) == 403
    # bob's own, right credentials used to register as alice: refused, neither is saved
    assert status(digest_register(peer, server.sip_port, "bob", "bob-pw", as_user="alice")) == 403
    # an agent with no secret configured cannot register, whatever it answers
    assert status(digest_register(peer, server.sip_port, "dave", "")) == 403
    assert not registered(server, "alice") and not registered(server, "dave")
    assert "[bob] tried to register as [alice]" in front_log(server)


def test_right_credentials_register_the_agent_who_is_then_reachable(server: Server, peer: UdpPeer) -> None:
    reply = digest_register(peer, server.sip_port, "bob", "bob-pw")
    assert status(reply) == 200, reply
    assert registered(server, "bob")
    # a call for bob reaches the contact bob registered (this socket), not a worker
    caller = UdpPeer()
    try:
        call_id = secrets.token_hex(8)
        caller.send(_invite(caller.addr, server.sip_port, "bob", call_id), server.sip_port)
        got = peer.replies(3.0, expect=1)
        assert got and got[0].startswith("INVITE sip:bob@127.0.0.1:"), got
    finally:
        caller.close()
    assert "registered user bob" in front_log(server)


def test_digest_brute_force_is_banned_with_expiry_and_the_trunk_still_serves(server: Server) -> None:
    attacker = UdpPeer("127.0.0.2")
    try:
        reply, nonce = challenge(attacker, server.sip_port, "bob")
        assert status(reply) == 401
        for i in range(200):
            attacker.send(register_request(attacker.addr, server.sip_port, "bob", cseq=2 + i,
                                           authorization=authorization("bob", f"guess{i}", nonce,
                                                                       server.sip_port)),
                          server.sip_port)
        replies = attacker.replies(2.0)
        codes = [status(r) for r in replies if r.startswith("SIP/2.0 ")]
        # the first MAX_FAILURES get 403 (a few more may already be in other children's hands
        # when the ban lands), then nothing: every later request is dropped unanswered
        assert set(codes) == {403} and MAX_FAILURES <= len(codes) < MAX_FAILURES + 8, codes
        assert "banning 127.0.0.2" in front_log(server)
        attacker.send(register_request(attacker.addr, server.sip_port, "bob"), server.sip_port)
        assert attacker.replies(0.5) == []

        # meanwhile a caller from another address is served end to end
        before = len(server.calls())
        result = run_sipp(server.uri_host, "uac_rr.xml", service="3000", timeout=20)
        assert result.successful == 1, result.output[-2000:]
        server.wait_cdrs(before + 1)

        # the ban expires: the source is challenged again
        time.sleep(BAN_S + 1.5)
        reply, nonce = challenge(attacker, server.sip_port, "bob")
        assert status(reply) == 401 and nonce
    finally:
        attacker.close()


def test_refer_from_a_caller_to_a_premium_number_is_refused_by_the_front(server: Server) -> None:
    before = len(server.calls())
    result = run_sipp(server.uri_host, "uac_refer_premium.xml", service="3000", timeout=20)
    assert result.successful == 1, result.output[-2000:]
    assert "REFER from 127.0.0.1" in front_log(server)
    cdr = server.wait_cdrs(before + 1)[-1]
    assert cdr["end_reason"] == "caller hangup", cdr
    # the worker never saw it (it would have logged refusing it itself)
    assert "refused a REFER from the caller" not in server.log_path.read_text(errors="replace")


def test_flow_transfer_outside_the_allow_list_sends_no_sip_and_the_cdr_says_why(server: Server) -> None:
    before = len(server.calls())
    # the IVR hangs up; a REFER arriving instead would fail this scenario
    result = run_sipp(server.uri_host, "uac_callee_bye.xml", service="5000", timeout=20)
    assert result.successful == 1, result.output[-2000:]
    cdr = server.wait_cdrs(before + 1)[-1]
    assert cdr["flow"] == "tollfraud" and cdr["end_kind"] == "error", cdr
    assert cdr["end_reason"] == (f"error: transfer target {PREMIUM} refused: not in transfers.allow"), cdr


def test_oversized_and_malformed_requests_never_reach_a_worker(server: Server, peer: UdpPeer) -> None:
    before = len(server.calls())
    ids = {name: secrets.token_hex(8) for name in ("udp60k", "tcp64k", "length", "cseq")}

    peer.send(_invite(peer.addr, server.sip_port, "1000", ids["udp60k"], body="v" * 60000),
              server.sip_port)
    got = peer.replies(2.0, expect=1)
    assert got and got[0].startswith("SIP/2.0 513 "), got

    # 64 KB over TCP is more than Kamailio reads as one message: the connection is dropped
    with socket.create_connection(("127.0.0.1", server.sip_port), timeout=5) as conn:
        conn.sendall(_invite(conn.getsockname(), server.sip_port, "1000", ids["tcp64k"],
                             body="v" * 65536, transport="TCP"))
        data = b""
        try:
            while chunk := conn.recv(65535):
                data += chunk
        except OSError:  # a reset instead of EOF: dropped all the same
            pass
        assert not data.startswith(b"SIP/2.0 1") and not data.startswith(b"SIP/2.0 2"), data[:80]

    bad_length = _invite(peer.addr, server.sip_port, "1000", ids["length"]).replace(
        b"Content-Length: 0", b"Content-Length: 900")
    bad_cseq = _invite(peer.addr, server.sip_port, "1000", ids["cseq"]).replace(
        b"CSeq: 1 INVITE", b"CSeq: one INVITE")
    for data in (bad_length, bad_cseq):
        peer.send(data, server.sip_port)
        got = peer.replies(2.0, expect=1)
        assert got and got[0].startswith("SIP/2.0 400 "), got

    time.sleep(0.5)
    log = front_log(server)
    for call_id in ids.values():
        assert not [ln for ln in log.splitlines() if call_id in ln and "dispatch" in ln], call_id
    assert len(server.calls()) == before
    assert server.health()["calls"] == 0


# --- helpers -------------------------------------------------------------------------------------

def _invite(src: tuple[str, int], fport: int, user: str, call_id: str, *, body: str = "",
            transport: str = "UDP") -> bytes:
    lines = [
        f"INVITE sip:{user}@127.0.0.1:{fport} SIP/2.0",
        f"Via: SIP/2.0/{transport} {src[0]}:{src[1]};branch=z9hG4bK{secrets.token_hex(6)}",
        f"From: <sip:tester@{src[0]}:{src[1]}>;tag={secrets.token_hex(4)}",
        f"To: <sip:{user}@127.0.0.1:{fport}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        "Max-Forwards: 70",
        f"Contact: <sip:tester@{src[0]}:{src[1]}>",
        "User-Agent: ivr-tests",
    ]
    if body:
        lines.append("Content-Type: text/plain")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

