"""ACD failover on a site in network namespaces (tests/integration/netns.py), every node its own
namespace and address, with the real processes:

    edge     10.77.0.1  `ivr serve --role edge` (Kamailio over both media nodes' workers)
    media-a  10.77.0.2  `ivr serve --role media`
    media-b  10.77.0.3  `ivr serve --role media`, its wall clock 2 s behind (clock_skew.c)
    acd-1    10.77.0.4  `ivr serve --role acd`
    acd-2    10.77.0.5  `ivr serve --role acd`
    db       10.77.0.6  PostgreSQL (the store and the lease) and the site's Mosquitto (persistent)
    caller   10.77.0.10 SIPp callers and carol's softphone, all through the edge
    agents   10.77.0.20 alice's and bob's softphones (the workers dial their uris)

- Callers from both media nodes queue in the order they came, although media-b's clock is 2 s
  behind, and the reports (ASA, waits) are right.
- SIGKILL the active ACD while 12 callers and a callback wait, then again while 2 agents talk and
  10 callers wait: the standby takes over within 5 s, every caller still reaches an agent, in
  queue order, the callback is dialled, and no call is offered twice.
- PostgreSQL, then the broker, restarted (each once) under load: no CDR or event lost.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from netns import Site, http_json, poll
from pg import PgServer
from phones import Softphone, headers_of
from server import IVR_BIN, REPO
from sipp_run import SCENARIOS, finished, sipp_command

from ivr.acd.report import build_report
from ivr.secret_file import write_private
from ivr.store.postgres import PostgresBackend

HOSTS = {"edge": 1, "media-a": 2, "media-b": 3, "acd-1": 4, "acd-2": 5, "db": 6,
         "caller": 10, "agents": 20}
PHONES = {"alice": 5080, "bob": 5081}
CAROL = 5082
WORKER_PORTS = "5070-5071"
TALK = "3"  # seconds each agent talks before hanging up
SKEW_S = 2.0  # media-b's clock is this far behind


def addr(node: str) -> str:
    return f"10.77.0.{HOSTS[node]}"


def _skew_library(root: Path) -> str:
    """clock_skew.c built for this run: LD_PRELOADed, it moves a process's wall clock only."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.fail("no C compiler: install build-essential (make deps); the site test runs a "
                    "media node on a skewed clock", pytrace=False)
    out = root / "clock_skew.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(out),
                    str(Path(__file__).with_name("clock_skew.c")), "-ldl"], check=True,
                   timeout=60)
    return str(out)


@dataclass
class Node:
    name: str
    root: Path
    site: Site
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    killed: bool = False
    """SIGKILLed by the test: its exit is no failure of the site."""

    def start(self, role: str) -> None:
        self.killed = False
        self.proc = self.site.popen(
            self.name, [str(IVR_BIN), "serve", "--role", role, "--config",
                        str(self.root / "ivr.yaml"), "--state-dir", str(self.root / "var")],
            log=self.root / "serve.log", env=self.env, cwd=self.root)

    def kill(self) -> None:
        if self.proc is not None:
            self.killed = True
            self.site.kill(self.proc)

    def api(self, path: str, method: str = "GET") -> tuple[int, Any]:
        """This node's HTTP API (its own 127.0.0.1:8080, inside its namespace), admin token."""
        try:
            token = (self.root / "var" / "api-token").read_text().strip()
        except FileNotFoundError:  # not written yet: the node is starting
            return 0, None
        try:
            return self.site.call(self.name, lambda: http_json(
                "http://127.0.0.1:8080" + path, token, method))
        except TimeoutError:
            return 0, None

    def health(self) -> dict[str, Any]:
        _, doc = self.api("/health")
        return doc or {}

    def dead(self) -> bool:
        """Exited by itself (a crash): the waits stop at once and show the logs."""
        return self.proc is not None and self.proc.poll() is not None and not self.killed

    def tail(self) -> str:
        text = (self.root / "serve.log").read_text(errors="replace") if (
            self.root / "serve.log").exists() else ""
        return f"--- {self.name}\n{text[-2500:]}"


class Broker:
    """The site's Mosquitto on the db node, persistent (sessions and queued messages survive
    its restart)."""

    def __init__(self, site: Site, root: Path) -> None:
        self.site, self.root = site, root
        root.mkdir(parents=True)
        (root / "mosquitto.conf").write_text(
            f"listener 1883 {addr('db')}\nallow_anonymous true\nuser root\npersistence true\n"
            f"persistence_location {root}/\nlog_dest stderr\nlog_type error\n"
            "max_queued_messages 100000\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = self.site.popen("db", ["mosquitto", "-c", str(self.root / "mosquitto.conf")],
                                    log=self.root / "mosquitto.log")
        _wait("the broker", lambda: self.site.run(
            "db", ["ss", "-ltnH", "sport = :1883"], timeout=5).stdout.strip(), 10)

    def restart(self) -> None:
        assert self.proc is not None
        self.site.stop(self.proc)  # SIGTERM: it saves its sessions
        self.start()


def _wait(what: str, predicate: Any, timeout: float, nodes: list[Node] = ()) -> Any:  # type: ignore[assignment]
    return poll(what, predicate, timeout,
                crashed=lambda: next((n.name for n in nodes if n.dead()), None),
                logs=lambda: "\n".join(n.tail() for n in nodes))


class Running:
    """The started site and what the tests ask it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.site = Site()
        for name, host in HOSTS.items():
            self.site.node(name, host)
        self.ns = self.site.nodes
        self.pg = PgServer(host=addr("db"), prefix=("ip", "netns", "exec", self.ns["db"]))
        self.db = self.pg.new_database()
        secret = root / "db-password"
        write_private(secret, self.pg.password + "\n")
        self.broker = Broker(self.site, root / "broker")
        flows = root / "flows"
        flows.mkdir()
        for name in ("handoff.yaml", "quick.yaml"):
            shutil.copy(Path(__file__).with_name("flows") / name, flows / name)
        # SIPp callers numbered in their From (1, 2, ...): the caller number says who came when
        scenario = (SCENARIOS / "uac_callee_bye.xml").read_text()
        self.scenario = root / "uac_numbered.xml"
        self.scenario.write_text(scenario.replace("<sip:sipp@", "<sip:[call_number]@"))
        defaults = yaml.safe_load((REPO / "ivr" / "defaults.yaml").read_text())
        base = {
            **defaults,
            "flows": str(flows), "audio": str(REPO / "audio"),
            "speech": {**defaults["speech"], "asr": {"engine": "none"}},
            "store": {"url": self.pg.url(self.db), "password_file": str(secret)},
            "bus": {"mqtt": f"mqtt://{addr('db')}:1883"},
            "http": {"listen": "127.0.0.1:8080"},
            "sip": {"listen": [f"udp:{addr('edge')}:5060"]},
            "front": {**defaults["front"], "pike_density": 5000},
            "edge": {"media": [f"{addr(m)}:{WORKER_PORTS}" for m in ("media-a", "media-b")]},
            "routes": {"3000": "quick", "4000": "handoff", "default": "quick"},
            "calendars": {"business": {"tz": "UTC", "weekly": {"daily": "00:00-24:00"}},
                          "care": {"tz": "UTC", "weekly": {"daily": "00:00-24:00"}}},
            "queues": {"general": {"strategy": "longest_idle", "wrap_up": "0s"}},
            "agents": {n: {"uri": f"sip:{n}@{addr('agents')}:{p}", "queues": ["general"]}
                       for n, p in PHONES.items()},
        }
        skewed = {"LD_PRELOAD": _skew_library(root), "IVR_TEST_CLOCK_OFFSET": f"{-SKEW_S:g}"}
        self.nodes: dict[str, Node] = {}
        for name in ("acd-1", "acd-2", "media-a", "media-b", "edge"):
            config = {**base, "node": {"name": name}}
            if name.startswith("media"):
                config["sip"] = {"workers_host": addr(name), "worker_ports": WORKER_PORTS,
                                 "max_calls": 40, "calls_per_worker": 20,
                                 "media_timeout": "0s"}  # SIPp sends no RTP
            node_root = root / name
            node_root.mkdir()
            (node_root / "ivr.yaml").write_text(yaml.safe_dump(config))
            self.nodes[name] = Node(name, node_root, self.site,
                                    skewed if name == "media-b" else {})

    def start(self) -> None:
        n = self.nodes
        n["acd-1"].start("acd")
        _wait("acd-1 active", lambda: self.acd_state("acd-1") == "active", 40, [n["acd-1"]])
        n["acd-2"].start("acd")
        for name in ("media-a", "media-b"):
            n[name].start("media")
        n["edge"].start("edge")
        every = list(n.values())
        _wait("acd-2 standby, the media nodes up, the edge probing all four workers up",
              lambda: self.acd_state("acd-2") == "standby"
              and all(n[m].health().get("status") == "ok" for m in ("media-a", "media-b"))
              and n["edge"].health().get("status") == "ok"
              and set(self.edge_media().values()) == {"up"}, 60, every)

    def edge_media(self) -> dict[str, str]:
        return dict(self.nodes["edge"].health().get("media") or {})

    def acd_state(self, name: str) -> str | None:
        return self.nodes[name].health().get("acd")

    def active(self) -> Node | None:
        up = [n for n in ("acd-1", "acd-2") if self.acd_state(n) == "active"]
        return self.nodes[up[0]] if len(up) == 1 else None

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.pg.admin(self.db) as conn:
            return list(conn.execute(query, args).fetchall())

    def phone(self, node: str, name: str, port: int, *args: str) -> Softphone:
        return Softphone("--name", name, "--host", addr(node), *args, port=port,
                         prefix=("ip", "netns", "exec", self.ns[node]))

    def sipp(self, calls: int, rate: float, service: str, timeout: float) -> subprocess.Popen[bytes]:
        cmd = sipp_command(f"{addr('edge')}:5060", str(self.scenario), calls=calls, rate=rate,
                           service=service, local_ip=addr("caller"), timeout=timeout)
        return subprocess.Popen(["ip", "netns", "exec", self.ns["caller"], *cmd],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def report(self, since: float) -> dict[str, Any]:
        """`ivr report`'s figures, read as an operator's machine on the site would (from the
        caller node, over the network)."""
        def read() -> dict[str, Any]:
            backend = PostgresBackend(self.pg.url(self.db), password=self.pg.password)
            try:
                return build_report(backend, since=since)
            finally:
                backend.close()
        return self.site.call("caller", read, timeout=30)

    def ask_callback(self, uri: str) -> None:
        """The one waiting caller asks for a callback: the worker's `callback` request (the
        protocol, ivr/acd/protocol.py) published as its worker would on the key press."""
        (data,) = [json.loads(r[0]) for r in self.sql("SELECT data FROM acd_calls")]
        request = {"op": "callback", "call_id": data["call_id"], "number": "carol", "uri": uri,
                   "reply_to": data["reply_to"], "key": f"test:{data['call_id']}:callback"}
        done = self.site.run("db", ["mosquitto_pub", "-h", addr("db"), "-p", "1883", "-q", "1",
                                    "-t", "ivr/acd/request", "-m", json.dumps(request)], 10)
        assert done.returncode == 0, done.stderr

    def close(self) -> None:
        try:
            for node in self.nodes.values():
                if node.proc is not None:
                    self.site.stop(node.proc)
        finally:
            self.site.close()
            shutil.rmtree(self.pg.root, ignore_errors=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = Running(tmp_path_factory.mktemp("failover"))
    try:
        running.start()
        yield running
    finally:
        running.close()


def _waiting(node: Node) -> int:
    """Callers waiting in `general` at this ACD, plus 100 per callback."""
    _, doc = node.api("/queues")
    q: dict[str, Any] = next((q for q in (doc or {}).get("queues", [])
                              if q["name"] == "general"), {})
    return int(q.get("waiting", 0)) + 100 * int(q.get("callbacks", 0))


def test_the_standby_takes_over_every_waiting_caller_in_arrival_order(
        site: Running, record_property: Any) -> None:
    """Two failovers: acd-1 dies while a callback and 12 callers wait (agents away), acd-2 takes
    over and serves them; acd-1, restarted, stands by; acd-2 dies while 2 agents talk and 10
    callers wait, acd-1 takes over and serves the rest. The callers came through the edge to
    both media nodes, one of them 2 s behind: they queue, and are served, in arrival order."""
    acd1, acd2 = site.nodes["acd-1"], site.nodes["acd-2"]
    every = list(site.nodes.values())
    assert acd2.health()["status"] == "ok"  # a standby is healthy, and says what it is
    began = time.time()
    agents = {n: site.phone("agents", n, p, "--incoming", "answer", "--answer-after", "0.3",
                            "--hangup-in-after", TALK, "--duration", "100")
              for n, p in PHONES.items()}
    sipp = None
    carol = None

    def takeover(dead: Node, heir: Node) -> float:
        dead.kill()  # SIGKILL: no lease release, no clean MQTT disconnect
        killed = time.monotonic()
        _wait(f"{heir.name} active", lambda: site.acd_state(heir.name) == "active", 8,
              [n for n in every if n is not dead])
        return time.monotonic() - killed
    try:
        for n in agents:  # staffed (else callers overflow) but not yet taking calls
            assert acd1.api(f"/agents/{n}/login", "POST")[0] == 200
            assert acd1.api(f"/agents/{n}/away", "POST")[0] == 200
        carol = site.phone("caller", "carol", CAROL, "--call",
                           f"sip:4000@{addr('edge')}:5060", "--incoming", "answer",
                           "--answer-after", "0.3", "--duration", "100")
        _wait("carol waiting", lambda: _waiting(acd1) == 1, 25, every)
        site.ask_callback(f"sip:carol@{addr('caller')}:{CAROL}")
        _wait("carol's callback scheduled", lambda: _waiting(acd1) == 100, 10, every)
        carol.wait(15, "the IVR to hang up on carol", ev="state", leg="out",
                   state="DISCONNECTED")
        # one caller a second: media-b's stamps, were they taken, would put its callers two
        # places ahead of where they came
        dialled = time.time()
        sipp = site.sipp(12, 1, "4000", timeout=90)
        _wait("12 callers waiting", lambda: _waiting(acd1) == 112, 40, every)

        rows = site.sql("SELECT caller, enqueued_at FROM acd_log WHERE callback IS NULL "
                        "OR callback = 0 ORDER BY enqueued_at")
        callers = [r[0] for r in rows if r[0] != "carol"]
        assert callers == [str(k) for k in range(1, 13)], rows  # in the order they came
        for k, (_, enqueued) in enumerate([r for r in rows if r[0] != "carol"]):
            # caller k+1 was dialled k seconds after the first: never stamped before that
            assert enqueued >= dialled + k - 0.5, (k + 1, enqueued - dialled, rows)
        # both nodes hold waiting callers, and media-b's clock is off: its CDRs (its own
        # clock) start 2 s later before the ACD's enqueue stamp than media-a's
        lead: dict[str, list[float]] = {"media-a": [], "media-b": []}
        for worker, lag in site.sql(
                "SELECT c.worker, l.enqueued_at - c.started_at FROM calls c JOIN acd_log l "
                "ON l.call_id = c.call_id WHERE c.flow = 'handoff' AND c.ended_at IS NULL"):
            lead[worker.split("/")[0]].append(lag)
        assert all(lead.values()), lead
        skew = statistics.median(lead["media-b"]) - statistics.median(lead["media-a"])
        assert SKEW_S - 0.7 < skew < SKEW_S + 0.7, lead

        first = takeover(acd1, acd2)
        assert _waiting(acd2) == 112  # rebuilt from the store: callers and the callback
        acd1.start("acd")
        _wait("acd-1 back as the standby", lambda: site.acd_state("acd-1") == "standby", 40,
              [acd1, acd2])
        for n in agents:
            assert acd2.api(f"/agents/{n}/ready", "POST")[0] == 200
        # alice takes carol's callback (first in line), bob the first caller; 11 wait
        _wait("both agents talking, 10 or more callers waiting", lambda: all(
            a.seen(ev="state", leg="in", state="CONFIRMED") for a in agents.values())
            and _waiting(acd2) >= 10, 30, [acd1, acd2])
        second = takeover(acd2, acd1)
        record_property("takeover_s", [round(first, 2), round(second, 2)])
        assert first < 5.0 and second < 5.0, (first, second)

        result = finished(sipp, 100)
        assert result.successful == 12 and result.failed == 0, result.output[-3000:]
    finally:
        if sipp is not None and sipp.poll() is None:
            sipp.kill()
        for phone in [*agents.values(), *([carol] if carol else [])]:
            phone.stop()

    invites = [(e["t"], headers_of(e["msg"])["X-IVR-Call-Id"], n)
               for n, a in agents.items() for e in a.seen(ev="incoming")]
    offered = [c for _, c, _ in sorted(invites)]
    assert len(offered) == len(set(offered)) == 13, (invites, site.sql(
        "SELECT call_id, attempts, callback, agent, outcome, offered_at FROM acd_log"))
    # the callback survived the first failover: the agent was dialled for it
    (callback_invite,) = [headers_of(e["msg"]) for a in agents.values()
                          for e in a.seen(ev="incoming")
                          if "X-IVR-Callback" in headers_of(e["msg"])]
    assert callback_invite["X-IVR-Callback"] == "carol", callback_invite
    rows = site.sql("SELECT call_id, enqueued_at, attempts, callback, agent, outcome, caller "
                    "FROM acd_log ORDER BY enqueued_at")
    assert len(rows) == 13 and {r[2] for r in rows} == {1}, rows
    assert set(offered) == {r[0] for r in rows}
    # in order (by the ACDs' offer times): an agent freed takes the longest waiting caller;
    # the callback, first in, first; then the callers 1..12 as they came
    by_offer = [r[0] for r in site.sql("SELECT call_id FROM acd_log ORDER BY offered_at")]
    assert by_offer == [r[0] for r in rows], (by_offer, rows)
    assert [r[6] for r in rows] == ["carol", *[str(k) for k in range(1, 13)]], rows
    assert rows[0][3] == 1 and {r[4] for r in rows} == {"alice", "bob"}, rows
    assert site.sql("SELECT count(*) FROM acd_offers")[0][0] == 13
    assert not site.sql("SELECT call_id FROM acd_calls")  # nobody left waiting
    leases = site.sql("SELECT holder, token FROM leases WHERE name = 'acd'")
    assert leases == [("acd-1", 3)], leases

    # the reports: every wait on the ACD's clock, none negative, none 2 s too long
    queue = site.report(since=began - 60)["total"]["queue"]
    assert queue["queued"] == 13 and queue["answered"] == 13, queue
    waits = site.sql("SELECT caller, answered_at - enqueued_at FROM acd_log")
    assert all(0 <= w < 90 for _, w in waits), waits
    assert 0 < queue["asa_s"] < 90, queue


def test_postgresql_and_the_broker_restarted_under_load_lose_no_cdr_or_event(
        site: Running) -> None:
    every = list(site.nodes.values())
    before = {r[0] for r in site.sql("SELECT call_id FROM calls")}
    sipp = site.sipp(16, 2, "3000", timeout=80)
    try:
        time.sleep(3)
        site.pg.restart()  # every connection of every node is cut
        time.sleep(3)
        site.broker.restart()
        result = finished(sipp, 85)
    finally:
        if sipp.poll() is None:
            sipp.kill()
    assert result.successful == 16 and result.failed == 0, result.output[-3000:]

    def ended() -> list[tuple[Any, ...]]:
        rows = site.sql("SELECT call_id, end_kind, worker FROM calls WHERE ended_at IS NOT NULL")
        return [r for r in rows if r[0] not in before]
    cdrs = _wait("16 ended CDRs", lambda: (e := ended()) and len(e) >= 16 and e, 30, every)
    assert len(cdrs) == 16 and {r[1] for r in cdrs} == {"hangup"}, cdrs
    assert {r[2].split("/")[0] for r in cdrs} == {"media-a", "media-b"}, cdrs
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


def test_after_two_failovers_and_both_restarts_a_new_caller_still_queues_and_is_served(
        site: Running) -> None:
    """The site as the tests before left it (acd-1 active since the second failover, the
    database and the broker restarted): a new caller waits while the agents are away, and
    is served once one is ready."""
    active = _wait("an active ACD", site.active, 10, list(site.nodes.values()))
    alice = site.phone("agents", "alice", PHONES["alice"], "--incoming", "answer",
                       "--answer-after", "0.3", "--hangup-in-after", "1", "--duration", "60")
    sipp = None
    try:
        for n in PHONES:
            assert active.api(f"/agents/{n}/login", "POST")[0] == 200
            assert active.api(f"/agents/{n}/away", "POST")[0] == 200
        sipp = site.sipp(1, 1, "4000", timeout=50)
        _wait("the caller waiting", lambda: _waiting(active) == 1, 25, list(site.nodes.values()))
        assert active.api("/agents/alice/ready", "POST")[0] == 200
        alice.wait(15, "alice rung and talking", ev="state", leg="in", state="CONFIRMED")
        result = finished(sipp, 55)
        assert result.successful == 1 and result.failed == 0, result.output[-3000:]
    finally:
        if sipp is not None and sipp.poll() is None:
            sipp.kill()
        alice.stop()
    assert _waiting(active) == 0
