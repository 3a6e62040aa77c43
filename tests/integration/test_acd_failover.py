"""ACD failover with real processes on loopback: one PostgreSQL (the store and the lease), one
Mosquitto (persistent), two `ivr serve --role acd` (acd-1, acd-2) and a `--role media` node whose
worker the SIPp callers dial; the agents are pjsua2 softphones the worker dials by their uri.

- SIGKILL the active ACD while 10 callers wait and 2 agents talk (and a callback is
  scheduled): the standby takes over within 5 s, every caller still reaches an agent, in queue
  order, the callback is dialled, and no call is offered twice.
- PostgreSQL, then the broker, restarted (each once) under load: no CDR or event lost.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from netns import http_json
from phones import Softphone, headers_of
from server import IVR_BIN, REPO, free_port, free_udp_tcp_port
from sipp_run import sipp_result, start_sipp

from ivr.secret_file import write_private

TALK = "3"  # seconds each agent talks before hanging up


@dataclass
class Node:
    name: str
    root: Path
    http: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self, role: str) -> None:
        log = (self.root / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            [str(IVR_BIN), "serve", "--role", role, "--config", str(self.root / "ivr.yaml"),
             "--state-dir", str(self.root / "var")], cwd=self.root, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env=dict(os.environ))

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def api(self, path: str, method: str = "GET") -> tuple[int, Any]:
        try:
            token = (self.root / "var" / "api-token").read_text().strip()
        except FileNotFoundError:  # not written yet: the node is starting
            return 0, None
        return http_json(f"http://127.0.0.1:{self.http}{path}", token, method)

    def health(self) -> dict[str, Any]:
        _, doc = self.api("/health")
        return doc or {}

    def tail(self) -> str:
        return f"--- {self.name}\n" + (self.root / "serve.log").read_text(errors="replace")[-2500:]


class Broker:
    """A persistent Mosquitto (sessions and queued messages survive its restart)."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        root.mkdir(parents=True)
        (root / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\n"
            f"persistence_location {root}/\nlog_dest stderr\nlog_type error\n"
            "max_queued_messages 100000\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.root / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait("the broker", lambda: _listening(self.port), 10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # it saves its sessions
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(what: str, predicate: Any, timeout: float, nodes: list[Node] = ()) -> Any:  # type: ignore[assignment]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        dead = [n for n in nodes if n.proc is not None and n.proc.poll() is not None]
        if dead:
            break
        time.sleep(0.2)
    tails = "\n".join(n.tail() for n in nodes)
    raise AssertionError(f"timed out waiting for {what}; last {last!r}\n{tails}")


class Site:
    def __init__(self, root: Path, pg: Any) -> None:
        self.root, self.pg = root, pg
        self.db = pg.new_database()
        secret = root / "db-password"
        write_private(secret, pg.password + "\n")
        self.broker = Broker(root / "broker")
        self.worker_port = free_udp_tcp_port()
        self.phones = {name: free_udp_tcp_port() for name in ("alice", "bob")}
        flows = root / "flows"
        flows.mkdir()
        for name in ("handoff.yaml", "quick.yaml"):
            shutil.copy(Path(__file__).with_name("flows") / name, flows / name)
        defaults = yaml.safe_load((REPO / "ivr" / "defaults.yaml").read_text())
        self.base = {
            **defaults,
            "flows": str(flows), "audio": str(REPO / "audio"),
            "speech": {**defaults["speech"], "asr": {"engine": "none"}},
            "store": {"url": pg.url(self.db), "password_file": str(secret)},
            "bus": {"mqtt": f"mqtt://127.0.0.1:{self.broker.port}"},
            "routes": {"3000": "quick", "4000": "handoff", "default": "quick"},
            "calendars": {"business": {"tz": "UTC", "weekly": {"daily": "00:00-24:00"}},
                          "care": {"tz": "UTC", "weekly": {"daily": "00:00-24:00"}}},
            "queues": {"general": {"strategy": "longest_idle", "wrap_up": "0s"}},
            "agents": {n: {"uri": f"sip:{n}@127.0.0.1:{p}", "queues": ["general"]}
                       for n, p in self.phones.items()},
        }
        self.nodes: dict[str, Node] = {}
        for name in ("acd-1", "acd-2"):
            self._node(name, {})
        self._node("media", {"sip": {"workers_host": "127.0.0.1",
                                     "worker_ports": f"{self.worker_port}-{self.worker_port}",
                                     "max_calls": 40, "calls_per_worker": 40,
                                     "media_timeout": "0s"}})  # SIPp sends no RTP

    def _node(self, name: str, extra: dict[str, Any]) -> None:
        root = self.root / name
        root.mkdir()
        config = {**self.base, **extra, "node": {"name": name},
                  "http": {"listen": f"127.0.0.1:{(port := free_port())}"}}
        (root / "ivr.yaml").write_text(yaml.safe_dump(config))
        self.nodes[name] = Node(name, root, port)

    def acd_state(self, name: str) -> str | None:
        return self.nodes[name].health().get("acd")

    def active(self) -> Node | None:
        up = [n for n in ("acd-1", "acd-2") if self.acd_state(n) == "active"]
        return self.nodes[up[0]] if len(up) == 1 else None

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.pg.admin(self.db) as conn:
            return list(conn.execute(query, args).fetchall())

    def ask_callback(self, uri: str) -> None:
        """The one waiting caller asks for a callback: the worker's `callback` request (the
        protocol, ivr/acd/protocol.py) published as its worker would on the key press."""
        (data,) = [json.loads(r[0]) for r in self.sql("SELECT data FROM acd_calls")]
        request = {"op": "callback", "call_id": data["call_id"], "number": "carol", "uri": uri,
                   "reply_to": data["reply_to"], "key": f"test:{data['call_id']}:callback"}
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-q",
                        "1", "-t", "ivr/acd/request", "-m", json.dumps(request)], check=True,
                       timeout=10)

    def close(self) -> None:
        for node in self.nodes.values():
            node.stop()
        self.broker.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, pg_server: Any) -> Iterator[Site]:
    s = Site(tmp_path_factory.mktemp("failover"), pg_server)
    try:
        s.nodes["acd-1"].start("acd")
        _wait("acd-1 active", lambda: s.acd_state("acd-1") == "active", 40, [s.nodes["acd-1"]])
        s.nodes["acd-2"].start("acd")
        s.nodes["media"].start("media")
        nodes = list(s.nodes.values())
        _wait("acd-2 standby, the media node up", lambda: s.acd_state("acd-2") == "standby"
              and s.nodes["media"].health().get("status") == "ok", 60, nodes)
        yield s
    finally:
        s.close()


def test_the_standby_takes_over_every_waiting_caller_and_the_callback(
        site: Site, record_property: Any) -> None:
    """Two failovers: acd-1 dies while a callback and 12 callers wait (agents away), acd-2 takes
    over and serves them; acd-1, restarted, stands by; acd-2 dies while 2 agents talk and 10
    callers wait, acd-1 takes over and serves the rest."""
    nodes = list(site.nodes.values())
    acd1, acd2 = site.nodes["acd-1"], site.nodes["acd-2"]
    assert acd2.health()["status"] == "ok"  # a standby is healthy, and says what it is
    agents = {n: Softphone("--name", n, "--incoming", "answer", "--answer-after", "0.3",
                           "--hangup-in-after", TALK, "--duration", "85", port=p)
              for n, p in site.phones.items()}
    target = f"127.0.0.1:{site.worker_port}"
    sipp = None
    carol = None

    def waiting(node: Node) -> int:
        _, doc = node.api("/queues")
        q: dict[str, Any] = next((q for q in (doc or {}).get("queues", []) if q["name"] == "general"), {})
        return int(q.get("waiting", 0)) + 100 * int(q.get("callbacks", 0))

    def takeover(dead: Node, heir: Node) -> float:
        dead.kill()  # SIGKILL: no lease release, no clean MQTT disconnect
        killed = time.monotonic()
        _wait(f"{heir.name} active", lambda: site.acd_state(heir.name) == "active", 8,
              [n for n in nodes if n is not dead])
        return time.monotonic() - killed
    try:
        for n in agents:  # staffed (else callers overflow) but not yet taking calls
            assert acd1.api(f"/agents/{n}/login", "POST")[0] == 200
            assert acd1.api(f"/agents/{n}/away", "POST")[0] == 200
        carol = Softphone("--name", "carol", "--call", f"sip:4000@{target}", "--incoming",
                          "answer", "--answer-after", "0.3", "--duration", "85")
        _wait("carol waiting", lambda: waiting(acd1) == 1, 25, nodes)
        site.ask_callback(f"sip:carol@127.0.0.1:{carol.port}")
        _wait("carol's callback scheduled", lambda: waiting(acd1) == 100, 10, nodes)
        carol.wait(15, "the IVR to hang up on carol", ev="state", leg="out",
                   state="DISCONNECTED")
        sipp = start_sipp(target, "uac_callee_bye.xml", calls=12, rate=10, service="4000",
                          timeout=80)
        _wait("12 callers waiting", lambda: waiting(acd1) == 112, 30, nodes)

        first = takeover(acd1, acd2)
        assert waiting(acd2) == 112  # rebuilt from the store: callers and the callback
        acd1.start("acd")
        _wait("acd-1 back as the standby", lambda: site.acd_state("acd-1") == "standby", 40,
              [acd1, acd2])
        for n in agents:
            assert acd2.api(f"/agents/{n}/ready", "POST")[0] == 200
        # alice takes carol's callback (first in line), bob the first caller; 11 wait
        _wait("both agents talking, 10 or more callers waiting", lambda: all(
            a.seen(ev="state", leg="in", state="CONFIRMED") for a in agents.values())
            and waiting(acd2) >= 10, 30, [acd1, acd2])
        second = takeover(acd2, acd1)
        record_property("takeover_s", [round(first, 2), round(second, 2)])
        assert first < 5.0 and second < 5.0, (first, second)

        out, _ = sipp.communicate(timeout=85)
        result = sipp_result(sipp.returncode, out)
        assert result.successful == 12 and result.failed == 0, result.output[-3000:]
    finally:
        if sipp is not None and sipp.poll() is None:
            sipp.kill()
        for phone in [*agents.values(), *([carol] if carol else [])]:
            phone.stop()

    invites = [(e["t"], headers_of(e["msg"])["X-IVR-Call-Id"], n)
               for n, a in agents.items() for e in a.seen(ev="incoming")]
    offered = [c for _, c, _ in sorted(invites)]
    twice = [(t, c, n, headers_of(e["msg"]).get("X-IVR-Callback")) for t, c, n in invites
             for a in agents.values() for e in a.seen(ev="incoming")
             if e["t"] == t and offered.count(c) > 1]
    assert len(offered) == len(set(offered)) == 13, (twice, site.sql(
        "SELECT call_id, attempts, callback, agent, outcome, offered_at FROM acd_log"))
    # the callback survived the first failover: the agent was dialled for it (the worker then
    # says who is called back; the caller leg is test_serve_agents' business)
    (callback_invite,) = [headers_of(e["msg"]) for a in agents.values()
                          for e in a.seen(ev="incoming")
                          if "X-IVR-Callback" in headers_of(e["msg"])]
    assert callback_invite["X-IVR-Callback"] == "carol", callback_invite
    rows = site.sql("SELECT call_id, enqueued_at, attempts, callback, agent, outcome "
                    "FROM acd_log ORDER BY enqueued_at")
    assert len(rows) == 13 and {r[2] for r in rows} == {1}, rows
    assert set(offered) == {r[0] for r in rows}
    # in order (by the ACDs' offer times): an agent freed takes the longest waiting caller;
    # the callback, first in, first
    by_offer = [r[0] for r in site.sql("SELECT call_id FROM acd_log ORDER BY offered_at")]
    assert by_offer == [r[0] for r in rows], (by_offer, rows)
    assert rows[0][3] == 1 and {r[4] for r in rows} == {"alice", "bob"}, rows
    assert site.sql("SELECT count(*) FROM acd_offers")[0][0] == 13
    assert not site.sql("SELECT call_id FROM acd_calls")  # nobody left waiting
    leases = site.sql("SELECT holder, token FROM leases WHERE name = 'acd'")
    assert leases == [("acd-1", 3)], leases


@pytest.fixture
def fresh_site(tmp_path_factory: pytest.TempPathFactory, pg_server: Any) -> Iterator[Site]:
    """A site of its own: one ACD (acd-1) and the media node."""
    s = Site(tmp_path_factory.mktemp("skew"), pg_server)
    try:
        s.nodes["acd-1"].start("acd")
        s.nodes["media"].start("media")
        nodes = [s.nodes["acd-1"], s.nodes["media"]]
        _wait("acd-1 active, the media node up", lambda: s.acd_state("acd-1") == "active"
              and s.nodes["media"].health().get("status") == "ok", 60, nodes)
        yield s
    finally:
        s.close()


def test_a_media_node_whose_clock_is_2_s_behind_keeps_queue_order_and_reports(
        fresh_site: Site, tmp_path: Path) -> None:
    """Three SIPp callers queue through the media node; then a caller joins from a node whose
    clock is 2 s behind (the real worker client, ivr/acd/client.py, on a skewed clock, in this
    process). Its `since` claims it came before them: the ACD still puts it last, and its
    queue record's times are the ACD's own."""
    import asyncio

    from ivr.acd.client import AcdClient
    from ivr.bus.outbox import Outbox

    active = _wait("an active ACD", fresh_site.active, 10, list(fresh_site.nodes.values()))
    for n in fresh_site.phones:  # staffed, not taking calls: everybody waits
        active.api(f"/agents/{n}/login", "POST")
        assert active.api(f"/agents/{n}/away", "POST")[0] == 200

    def order() -> list[str]:
        _, doc = active.api("/queues")
        q = next(q for q in doc["queues"] if q["name"] == "general")
        return [c["call_id"] for c in sorted(q["calls"], key=lambda c: c["position"])]
    sipp = start_sipp(f"127.0.0.1:{fresh_site.worker_port}", "uac_callee_bye.xml", calls=3,
                      rate=4,
                      service="4000", timeout=40)
    try:
        real = _wait("3 callers waiting", lambda: (o := order()) and len(o) == 3 and o, 20,
                     list(fresh_site.nodes.values()))

        async def skewed_caller() -> tuple[list[str], float]:
            outbox = Outbox(tmp_path / "skewed-outbox.sqlite")
            client = AcdClient(f"mqtt://127.0.0.1:{fresh_site.broker.port}", outbox, "skewed",
                               own_sender=True, clock=lambda: time.time() - 2.0)
            async with client:
                events = client.enqueue("skewed-1", "general", caller={"number": "skew"})
                first = await asyncio.wait_for(events.__anext__(), 15)
                assert first.kind == "queued", first
                joined = time.time()
                seen = order()
                client.caller_gone("skewed-1")
                await asyncio.wait_for(outbox.drained(), 10)
                await events.aclose()  # type: ignore[attr-defined]  # an async generator
            outbox.close()
            return seen, joined
        seen, joined = asyncio.run(skewed_caller())
        assert seen == [*real, "skewed-1"], (seen, real)  # last in, last in line
        (enqueued, ended, outcome), = fresh_site.sql(
            "SELECT enqueued_at, ended_at, outcome FROM acd_log WHERE call_id = 'skewed-1'")
        # the ACD's clock: it joined just before `joined`, not 2 s earlier
        assert joined - 1.0 < enqueued <= joined, (enqueued, joined)
        assert outcome == "abandoned" and ended >= enqueued
    finally:
        sipp.kill()
        sipp.communicate(timeout=10)


def test_postgresql_and_the_broker_restarted_under_load_lose_no_cdr_or_event(
        site: Site) -> None:
    nodes = list(site.nodes.values())
    before = {r[0] for r in site.sql("SELECT call_id FROM calls")}
    sipp = start_sipp(f"127.0.0.1:{site.worker_port}", "uac_callee_bye.xml", calls=16, rate=2,
                      service="3000", timeout=80)
    try:
        time.sleep(3)
        site.pg.restart()  # every connection of every node is cut
        time.sleep(3)
        site.broker.restart()
        out, _ = sipp.communicate(timeout=85)
    finally:
        if sipp.poll() is None:
            sipp.kill()
    result = sipp_result(sipp.returncode, out)
    assert result.successful == 16 and result.failed == 0, result.output[-3000:]

    def ended() -> list[tuple[Any, ...]]:
        rows = site.sql("SELECT call_id, end_kind FROM calls WHERE ended_at IS NOT NULL")
        return [r for r in rows if r[0] not in before]
    cdrs = _wait("16 ended CDRs", lambda: (e := ended()) and len(e) >= 16 and e, 30, nodes)
    assert len(cdrs) == 16 and {r[1] for r in cdrs} == {"hangup"}, cdrs
    kinds = site.sql("SELECT call_id, array_agg(kind) FROM events GROUP BY call_id")
    fresh = {c: set(k) for c, k in kinds if c not in before}
    assert len(fresh) == 16
    broken = [c for c, k in fresh.items() if not {"call.start", "call.answer", "call.end"} <= k]
    assert not broken, [(c, site.sql("SELECT seq, kind, at FROM events WHERE call_id = %s", c),
                         site.sql("SELECT * FROM calls WHERE call_id = %s", c)) for c in broken]
    # every event each call's worker numbered arrived: no gap in its sequence
    seqs = site.sql("SELECT call_id, array_agg(seq ORDER BY seq) FROM events GROUP BY call_id")
    for call_id, seq in seqs:
        if call_id in fresh:
            assert list(seq) == list(range(1, len(seq) + 1)), (call_id, seq)
    assert site.active() is not None  # one ACD acts after both outages
