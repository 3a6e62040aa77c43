"""The desktop's live stream, its filtering and the agent actions' policy, over an in-process
aiohttp app wired as `ivr serve` wires it (ACD service and CDR store on a temp SQLite)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ivr.access.middleware import authenticate
from ivr.access.policy import api_policy
from ivr.access.tokens import Principal, Role, TokenSet
from ivr.acd.engine import Engine
from ivr.acd.model import Agent, QueuePolicy
from ivr.acd.service import AcdService
from ivr.acd.store import AcdStore
from ivr.bus.outbox import Outbox
from ivr.config import DesktopSettings
from ivr.store.db import Store
from ivr.web.desktop import Desktop
from ivr.web.hub import QUEUE_LIMIT, RESYNC, EventHub
from ivr.web.routes import install, pages

ADMIN, READER, BOB, DAVE = ("a" * 20, "r" * 20, "b" * 20, "d" * 20)
Client = TestClient[web.Request, web.Application]


# -- the hub ------------------------------------------------------------------------------------
async def test_an_agent_gets_only_its_own_events_supervisors_get_all() -> None:
    hub = EventHub()
    bob = hub.subscribe(Principal(Role.agent, "bob"))
    dave = hub.subscribe(Principal(Role.agent, "dave"))
    sup = hub.subscribe(Principal(Role.read))
    hub.publish("offer", {"call_id": "c1"}, "bob")
    hub.publish("wallboard", {"queues": []})
    hub.publish("offer", {"call_id": "c2"}, "dave")
    got = {name: [e.data.get("call_id", e.kind) for e in _drain(s.queue)]
           for name, s in (("bob", bob), ("dave", dave), ("sup", sup))}
    assert got == {"bob": ["c1"], "dave": ["c2"], "sup": ["c1", "wallboard", "c2"]}


async def test_a_subscriber_that_falls_behind_gets_one_resync_not_a_backlog() -> None:
    hub = EventHub()
    sub = hub.subscribe(Principal(Role.read))
    for i in range(QUEUE_LIMIT + 50):
        hub.publish("agent", {"n": i}, "bob")
    assert sub.lagged and _drain(sub.queue) == [RESYNC]
    sub.resynced()
    hub.publish("agent", {"n": "after"}, "bob")
    assert [e.data for e in _drain(sub.queue) if e] == [{"n": "after"}]


async def test_close_ends_every_stream_even_a_full_one() -> None:
    hub = EventHub()
    sub = hub.subscribe(Principal(Role.admin))
    for i in range(QUEUE_LIMIT):
        hub.publish("agent", {"n": i}, "bob")
    hub.close()
    assert _drain(sub.queue)[-1] is None
    late = hub.subscribe(Principal(Role.admin))
    assert _drain(late.queue) == [None]


def _drain(q: asyncio.Queue[Any]) -> list[Any]:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


# -- over HTTP ----------------------------------------------------------------------------------
class Rig:
    def __init__(self, tmp: Path) -> None:
        self.db = tmp / "ivr.sqlite"
        self.store = Store(self.db)
        engine = Engine({"general": QueuePolicy(wrap_up=30)},
                        [Agent("bob", queues=["general"]), Agent("dave", queues=["general"])],
                        store=AcdStore(self.db))
        self.acd = AcdService(engine, engine.store, Outbox(tmp / "outbox.sqlite"),  # type: ignore[arg-type]
                              "mqtt://127.0.0.1:1")
        self.desktop = Desktop(DesktopSettings(heartbeat=0.5), lambda: self.acd, self.db,
                               lambda: [{"nodes": {"acme-bank:main": 2}}])
        self.acd.observers.append(self.desktop.on_actions)

    def app(self) -> web.Application:
        tokens = TokenSet.parse(f"admin={ADMIN} read={READER} agent:bob={BOB} agent:dave={DAVE}",
                                "t")
        policy = api_policy(self.acd.offered_to, self.desktop.ringing, self.desktop.had)
        app = web.Application(middlewares=[pages(), authenticate(tokens, policy)])
        install(app, self.desktop, self.store)

        async def calls(_: web.Request) -> web.Response:  # as ivr serve's CDR list
            return web.json_response({"calls": self.store.calls()})

        app.router.add_get("/calls", calls)
        return app

    def enqueue(self, call_id: str, **extra: Any) -> None:
        self.acd.request({"op": "enqueue", "call_id": call_id, "queue": "general",
                          "caller": {"number": "+15551230000"}, "flow": "acme-bank",
                          "path": ["welcome", "main", "agent"],
                          "variables": {"account": "40719263", "intent": "balance"},
                          "context": {"account": "40719263", "intent": "balance", **extra},
                          "transcript": [{"who": "caller", "text": "****9263"}],
                          "sensitive": ["account"]})


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[Rig, Client]]:
    r = Rig(tmp_path)
    client = TestClient(TestServer(r.app(), host="127.0.0.1"))
    await client.start_server()
    try:
        yield r, client
    finally:
        await client.close()
        r.acd.close()
        r.store.close()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Sse:
    """A test's EventSource: reads `event:`/`data:` frames from a streaming response."""

    def __init__(self, resp: Any) -> None:
        self.resp = resp

    async def next(self, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        kind, data = "", ""
        while True:
            line = (await asyncio.wait_for(self.resp.content.readline(), timeout)).decode()
            if line == "":
                raise EOFError("stream ended")
            line = line.rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and kind:
                return kind, json.loads(data)

    async def until(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            k, d = await self.next(timeout)
            if k == kind:
                return d


async def test_the_stream_starts_with_a_snapshot_then_the_agents_own_offer(
        rig: tuple[Rig, Client]) -> None:
    r, client = rig
    r.acd.agent_action("bob", "ready")
    async with client.get("/events", headers=_auth(BOB)) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
        sse = Sse(resp)
        kind, snap = await sse.next()
        assert kind == "snapshot" and snap["desk"]["agent"]["state"] == "ready"
        assert "wallboard" not in snap  # an agent does not get the supervisors' view
        r.enqueue("c1", note="<script>alert(1)</script>")
        offer = await sse.until("offer")
        assert offer["call_id"] == "c1" and offer["context"]["account"] == "****9263"
        assert offer["variables"]["account"] == "****9263" and offer["caller"]["number"]
        assert offer["context"]["note"] == "<script>alert(1)</script>"  # data; the page shows text
    # reconnecting while the call rings: the snapshot carries the offer
    async with client.get("/events", headers=_auth(BOB)) as resp:
        kind, snap = await Sse(resp).next()
        assert snap["desk"]["offer"]["call_id"] == "c1"
        assert snap["desk"]["offer"]["context"]["intent"] == "balance"


async def test_another_agents_offer_never_reaches_the_stream(rig: tuple[Rig, Client]) -> None:
    r, client = rig
    async with client.get("/events", headers=_auth(DAVE)) as resp:
        sse = Sse(resp)
        await sse.until("snapshot")
        r.acd.agent_action("bob", "ready")
        r.enqueue("c1")  # rings bob
        r.acd.agent_action("dave", "ready")
        data = await sse.until("agent")  # the next thing dave hears is dave's own state
        assert data["name"] == "dave"
        r.acd.agent_action("dave", "away")
        while True:
            kind, data = await sse.next()
            assert kind != "offer" and data.get("name", "dave") == "dave", (kind, data)
            if kind == "agent" and data["state"] == "away":
                break


async def test_supervisors_get_the_wallboard_equal_to_the_engines_queues(
        rig: tuple[Rig, Client]) -> None:
    r, client = rig
    async with client.get("/events", headers=_auth(READER)) as resp:
        sse = Sse(resp)
        snap = await sse.until("snapshot")
        assert snap["wallboard"]["self_service"] == [
            {"flow": "acme-bank", "node": "main", "calls": 2}]
        r.acd.agent_action("bob", "away")
        for i in range(30):
            r.enqueue(f"c{i}")
        while True:
            board = await sse.until("wallboard")
            if board["queues"][0]["waiting"] == 30:
                break
        live = r.acd.engine.queues_view()[0]
        assert board["queues"][0]["agents"] == live["agents"]
        assert board["queues"][0]["today"]["queued"] == 30


async def test_wrong_or_missing_token_gets_no_events(rig: tuple[Rig, Client]) -> None:
    _, client = rig
    async with client.get("/events", headers=_auth("x" * 20)) as resp:
        assert resp.status == 401 and "snapshot" not in await resp.text()
    async with client.get("/events") as resp:
        assert resp.status == 401


async def test_only_the_ringing_agent_accepts_or_rejects(rig: tuple[Rig, Client]) -> None:
    r, client = rig
    r.acd.agent_action("bob", "ready")
    r.enqueue("c1")
    assert r.acd.engine.agents["bob"].state.value == "ringing"
    for token in (DAVE, READER, ADMIN):
        async with client.post("/calls/c1/offer/accept", headers=_auth(token)) as resp:
            assert resp.status == 403, token
    async with client.post("/calls/c1/offer/reject", headers=_auth(BOB)) as resp:
        assert resp.status == 200
    # rejected: bob is ready again at the end of the line, dave (now ready) gets the call
    r.acd.agent_action("dave", "ready")
    r.acd.tick()
    assert r.acd.engine.ringing_for("c1", "dave")
    async with client.post("/calls/c1/offer/accept", headers=_auth(DAVE)) as resp:
        assert resp.status == 200


async def test_the_disposition_is_saved_with_the_cdr_by_the_agent_who_had_the_call(
        rig: tuple[Rig, Client]) -> None:
    r, client = rig
    r.acd.agent_action("bob", "ready")
    r.enqueue("c1")
    r.acd.request({"op": "agent_answered", "call_id": "c1", "agent": "bob", "attempt": 1})
    r.acd.request({"op": "call_ended", "call_id": "c1"})
    body = {"code": "resolved", "notes": "<b>asked</b> about fees"}
    async with client.post("/calls/c1/disposition", headers=_auth(DAVE), json=body) as resp:
        assert resp.status == 403
    async with client.post("/calls/c1/disposition", headers=_auth(BOB),
                           json={"code": "nonsense"}) as resp:
        assert resp.status == 400 and "resolved" in (await resp.json())["error"]
    async with client.post("/calls/c1/disposition", headers=_auth(BOB), json=body) as resp:
        assert resp.status == 200
    cdr = r.store.call("c1")
    assert cdr is not None and cdr["disposition"]["code"] == "resolved"
    assert cdr["disposition"]["notes"] == body["notes"] and cdr["disposition"]["agent"] == "bob"


async def test_pages_are_open_shells_with_a_strict_csp_and_calls_stays_the_api(
        rig: tuple[Rig, Client]) -> None:
    _, client = rig
    for path in ("/agent", "/wallboard"):
        async with client.get(path) as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    async with client.get("/calls", headers={"Accept": "text/html"}) as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
    async with client.get("/calls", headers={"Accept": "text/html", **_auth(READER)}) as resp:
        assert resp.status == 200 and "calls" in await resp.json()
    async with client.get("/calls") as resp:
        assert resp.status == 401
    async with client.get("/ui/desk.js") as resp:
        assert resp.status == 200 and resp.content_type == "text/javascript"
    async with client.get("/ui/..%2Fhub.py") as resp:
        assert resp.status == 404


async def test_shutdown_ends_open_streams(tmp_path: Path) -> None:
    r = Rig(tmp_path)
    client = TestClient(TestServer(r.app(), host="127.0.0.1"))
    await client.start_server()
    try:
        async with client.get("/events", headers=_auth(ADMIN)) as resp:
            sse = Sse(resp)
            await sse.until("snapshot")
            r.desktop.hub.close()
            with pytest.raises(EOFError):
                while True:
                    await sse.next()
    finally:
        await client.close()
        r.acd.close()
        r.store.close()


# -- the engine's part --------------------------------------------------------------------------
def test_accepting_on_the_desktop_stops_the_other_rings_of_a_ring_all_call() -> None:
    from ivr.acd.engine import StateError
    from ivr.acd.model import Cancel, Offer

    now = [1000.0]
    engine = Engine({"sales": QueuePolicy(strategy="ring_all")},
                    [Agent("bob", queues=["sales"]), Agent("dave", queues=["sales"])],
                    clock=lambda: now[0])
    for name in ("bob", "dave"):
        engine.agent_action(name, "ready")
    engine.enqueue("c1", "sales")
    offers = [a for a in engine.tick() if isinstance(a, Offer)]
    assert sorted(o.agent for o in offers) == ["bob", "dave"]
    assert engine.ringing_for("c1", "bob") and engine.ringing_for("c1", "dave")
    out = engine.accept("c1", "dave")
    assert [(a.agent, a.reason) for a in out if isinstance(a, Cancel)] == [
        ("bob", "accepted_elsewhere")]
    assert engine.agents["bob"].state.value == "ready" and engine.ringing_for("c1", "dave")
    with pytest.raises(StateError):
        engine.accept("c1", "bob")  # no longer bob's offer


def test_self_service_sums_the_workers_calls_by_flow_and_node() -> None:
    from ivr.web.views import self_service

    workers: list[dict[str, Any]] = [{"nodes": {"acme-bank:main": 2, "survey:q1": 1}},
                                     {"nodes": {"acme-bank:main": 1}}, {"alive": False}]
    assert self_service(workers) == [{"flow": "acme-bank", "node": "main", "calls": 3},
                                     {"flow": "survey", "node": "q1", "calls": 1}]


async def test_the_recording_is_served_to_supervisors_only(
        rig: tuple[Rig, Client], tmp_path: Path) -> None:
    r, client = rig
    wav = tmp_path / "rec" / "c9.wav"
    wav.parent.mkdir()
    wav.write_bytes(b"RIFF....WAVEfmt ")
    r.store.record_event({"call_id": "c9", "seq": 1, "kind": "call.start", "at": 1.0})
    r.store.record_event({"call_id": "c9", "seq": 2, "kind": "call.end", "at": 2.0,
                          "end": {"kind": "hangup"}, "recording": str(wav),
                          "recording_pauses": []})
    async with client.get("/calls/c9/recording", headers=_auth(READER)) as resp:
        assert resp.status == 200 and resp.content_type == "audio/wav"
        assert await resp.read() == wav.read_bytes()
    async with client.get("/calls/c9/recording", headers=_auth(BOB)) as resp:
        assert resp.status == 403
    wav.unlink()  # retention took it
    async with client.get("/calls/c9/recording", headers=_auth(READER)) as resp:
        assert resp.status == 404
