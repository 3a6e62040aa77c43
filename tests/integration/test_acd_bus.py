"""The ACD service over a real Mosquitto: worker client <-> supervisor service <-> agents' topics.

Each test starts its own broker (ivr.bus.broker.start_broker on a free port), an AcdService over
a fresh SQLite store and durable outbox, and one or two worker-side AcdClients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from aiohttp import web

from ivr.acd.client import AcdClient, AcdEvent
from ivr.acd.http import routes
from ivr.acd.model import AgentState
from ivr.acd.service import AcdService
from ivr.acd.store import AcdStore
from ivr.bus.broker import free_port, start_broker
from ivr.bus.outbox import Outbox
from ivr.config import EngineConfig

# a real Mosquitto is required: `make test` installs it; a missing broker fails, never skips.
# An open broker (users=None): these tests are about the protocol; access: test_bus_access.py

CONFIG = {
    "queues": {"general": {"strategy": "longest_idle", "wrap_up": "1s", "overflow": "voicemail"}},
    "agents": {"alice": {"uri": "sip:alice@127.0.0.1:5071", "queues": ["general"],
                         "skills": {"banking": 5}},
               "bob": {"queues": ["general"]}},
}


@dataclass
class Bus:
    root: Path
    port: int
    proc: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.proc.terminate()
        await self.proc.wait()

    async def restart(self) -> None:
        self.proc = await start_broker(self.root / "mosquitto", self.port, None)


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[Bus]:
    port = free_port()
    b = Bus(tmp_path, port, await start_broker(tmp_path / "mosquitto", port, None))
    try:
        yield b
    finally:
        if b.proc.returncode is None:
            await b.stop()


class Supervisor:
    """The ACD part of the supervisor: engine + store + outbox + service, restartable."""

    def __init__(self, root: Path, url: str) -> None:
        self.root, self.url = root, url
        self.service: AcdService | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> AcdService:
        config = EngineConfig.model_validate(CONFIG)
        self.service = AcdService.create(config, self.root / "ivr.sqlite",
                                         self.root / "outbox" / "acd.sqlite", self.url,
                                         position_every=1.0, tick_every=0.1)
        self.task = asyncio.get_running_loop().create_task(self.service.run())
        await asyncio.wait_for(self.service.connected.wait(), 10)
        return self.service

    async def kill(self) -> None:
        """Like SIGKILL for the ACD: the loop's tasks vanish, only SQLite remains."""
        assert self.task is not None and self.service is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.service.close()
        self.service = None


@pytest.fixture
async def sup(tmp_path: Path, bus: Bus) -> AsyncIterator[Supervisor]:
    s = Supervisor(tmp_path, bus.url)
    await s.start()
    try:
        yield s
    finally:
        if s.service is not None:
            await s.kill()


@dataclass
class Collector:
    """A persistent-session subscriber that keeps reconnecting (an agent desktop, a CRM)."""

    url: str
    topic: str
    ident: str
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", port, identifier=self.ident,
                                          clean_session=False) as c:
                    await c.subscribe(self.topic, qos=1)
                    self.ready.set()
                    async for m in c.messages:
                        self.messages.append((str(m.topic), json.loads(bytes(m.payload))))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    async def __aenter__(self) -> Collector:
        self.task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.wait_for(self.ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def payloads(self, suffix: str = "") -> list[dict[str, Any]]:
        return [p for t, p in self.messages if t.endswith(suffix)]

    async def wait_for(self, n: int, suffix: str = "", timeout: float = 15) -> list[dict[str, Any]]:
        async def until() -> None:
            while len(self.payloads(suffix)) < n:  # noqa: ASYNC110 (filled by another task)
                await asyncio.sleep(0.05)
        await asyncio.wait_for(until(), timeout)
        return self.payloads(suffix)


async def publish(bus: Bus, topic: str, payload: dict[str, Any]) -> None:
    async with aiomqtt.Client("127.0.0.1", bus.port) as c:
        await c.publish(topic, json.dumps(payload), qos=1)


async def wait_until(pred: Any, timeout: float = 10) -> None:
    async def loop() -> None:
        while not pred():  # noqa: ASYNC110 (polls engine state)
            await asyncio.sleep(0.05)
    await asyncio.wait_for(loop(), timeout)


def client(tmp_path: Path, bus: Bus, node: str) -> AcdClient:
    return AcdClient(bus.url, Outbox(tmp_path / f"{node}.sqlite"), node, own_sender=True,
                     resync_every=2.0)


BANK: dict[str, Any] = {"caller": {"number": "+15551234567", "name": "Ada"}, "flow": "acme-bank",
        "path": ["welcome", "auth", "menu", "agent"],
        "variables": {"account": "4111222233334444", "tier": "gold", "intent": "card lost"},
        "transcript": [{"from": "caller", "text": "I lost my card"}],
        "context": {"account": "4111222233334444", "tier": "gold"}, "sensitive": ["account"]}


async def next_event(events: AsyncIterator[AcdEvent], kind: str, timeout: float = 15) -> AcdEvent:
    async def find() -> AcdEvent:
        async for ev in events:
            if ev.kind == kind:
                return ev
        raise AssertionError(f"the events ended before {kind}")
    return await asyncio.wait_for(find(), timeout)


# -- tests ------------------------------------------------------------------------------------
async def test_enqueue_offer_reaches_worker_and_mosquitto_sub_with_masked_values(
        tmp_path: Path, bus: Bus, sup: Supervisor) -> None:
    assert sup.service is not None
    sub = await asyncio.create_subprocess_exec(
        "mosquitto_sub", "-h", "127.0.0.1", "-p", str(bus.port), "-t", "ivr/agents/+/offer",
        "-q", "1", "-C", "1", "-W", "20", "-v", stdout=asyncio.subprocess.PIPE)
    await asyncio.sleep(0.5)  # let mosquitto_sub subscribe
    await publish(bus, "ivr/agents/alice/state", {"state": "login"})  # agent state over MQTT
    await wait_until(lambda: sup.service is not None and
                     sup.service.engine.agents["alice"].state is AgentState.ready)
    async with client(tmp_path, bus, "w1") as acd:
        events = acd.enqueue("call-1", "general", priority=2, **BANK)
        queued = await next_event(events, "queued")
        assert queued.data["position"] == 1
        offer = await next_event(events, "offer")
        assert (offer.agent, offer.agent_uri) == ("alice", "sip:alice@127.0.0.1:5071")
        assert offer.context["variables"]["account"] == "****4444"
        assert offer.context["variables"]["tier"] == "gold"
        acd.agent_answered("call-1", "alice", offer.attempt)
        connected = await next_event(events, "connected")
        assert connected.agent == "alice"
        assert sup.service.engine.agents["alice"].state is AgentState.on_call
        acd.call_ended("call-1")
        await wait_until(lambda: sup.service is not None and
                         sup.service.engine.agents["alice"].state is AgentState.wrap_up)
        await wait_until(lambda: sup.service is not None and
                         sup.service.engine.agents["alice"].state is AgentState.ready, 5)
    out, _ = await asyncio.wait_for(sub.communicate(), 25)
    topic, _, body = out.decode().strip().partition(" ")
    assert topic == "ivr/agents/alice/offer"
    doc = json.loads(body)
    assert doc["call_id"] == "call-1" and doc["flow"] == "acme-bank"
    assert doc["caller"]["number"] == "+15551234567"
    assert doc["path"] == ["welcome", "auth", "menu", "agent"]
    assert doc["variables"]["account"] == "****4444"
    assert doc["context"]["account"] == "****4444"
    assert "4111222233334444" not in body
    assert doc["transcript"][0]["text"] == "I lost my card"
    assert isinstance(doc["wait_s"], float) and doc["key"].startswith("call-1:")


async def test_two_calls_race_for_one_agent_over_the_bus(tmp_path: Path, bus: Bus,
                                                         sup: Supervisor) -> None:
    assert sup.service is not None
    sup.service.agent_action("alice", "login")
    async with Collector(bus.url, "ivr/agents/+/offer", "desk-race") as desk, \
            client(tmp_path, bus, "w1") as c1, client(tmp_path, bus, "w2") as c2:
        e1 = c1.enqueue("r1", "general", **BANK)
        e2 = c2.enqueue("r2", "general", **BANK)
        await asyncio.gather(next_event(e1, "queued"), next_event(e2, "queued"))
        assert {c.call_id for c in sup.service.engine.waiting.values()} == {"r1", "r2"}
        offers = await desk.wait_for(1)
        await asyncio.sleep(1.0)
        assert len(desk.payloads()) == 1  # exactly one call got alice
        winner = offers[0]["call_id"]
        (ewin, cwin), (elose, _) = ((e1, c1), (e2, c2)) if winner == "r1" else ((e2, c2), (e1, c1))
        offer = await next_event(ewin, "offer")
        cwin.agent_answered(winner, "alice", offer.attempt)
        await next_event(ewin, "connected")
        # the loser keeps waiting, now first (a position sent before the winner connected may
        # still be in flight: the next ones must say 1)
        pos = await next_event(elose, "position")
        if pos.data["position"] != 1:
            pos = await next_event(elose, "position")
        assert pos.data["position"] == 1


async def test_reject_then_next_agent_and_caller_gone_while_ringing(
        tmp_path: Path, bus: Bus, sup: Supervisor) -> None:
    svc = sup.service
    assert svc is not None
    svc.agent_action("alice", "login")
    svc.agent_action("bob", "login")
    async with Collector(bus.url, "ivr/agents/#", "desk-rej") as desk, \
            client(tmp_path, bus, "w1") as acd:
        events = acd.enqueue("j1", "general", **BANK)
        first = await next_event(events, "offer")
        assert first.agent == "alice"  # longest idle
        acd.agent_failed("j1", "alice", first.attempt, "reject")
        second = await next_event(events, "offer")
        assert second.agent == "bob" and second.attempt == first.attempt + 1
        acd.caller_gone("j1")  # the caller hangs up while bob rings
        await wait_until(lambda: svc.engine.agents["bob"].state is AgentState.ready)
        cancels = await desk.wait_for(1, "/cancel")
        assert cancels[0]["call_id"] == "j1" and cancels[0]["reason"] == "caller_gone"
        assert "j1" not in svc.engine.waiting
        assert svc.context("j1")["caller"]["number"] == "+15551234567"  # type: ignore[index]


async def test_broker_stopped_mid_handoff_offers_arrive_after_restart_once(
        tmp_path: Path, bus: Bus, sup: Supervisor) -> None:
    svc = sup.service
    assert svc is not None
    svc.agent_action("alice", "away")
    async with Collector(bus.url, "ivr/agents/alice/offer", "desk-down") as desk, \
            client(tmp_path, bus, "w1") as acd:
        events = acd.enqueue("d1", "general", **BANK)
        await next_event(events, "queued")
        await bus.stop()  # the broker goes away mid-handoff
        svc.agent_action("alice", "ready")  # the offer is decided while the bus is down
        assert svc.engine.waiting["d1"].ringing == {"alice"}
        await asyncio.sleep(1.0)
        assert svc.outbox.count() >= 2  # the offer to the worker and to alice's desk wait
        await bus.restart()
        offer = await next_event(events, "offer", timeout=30)
        assert offer.agent == "alice"
        acd.agent_answered("d1", "alice", offer.attempt)
        await next_event(events, "connected")
        await desk.wait_for(1, timeout=30)
        await asyncio.sleep(1.0)
        keys = [p["key"] for p in desk.payloads()]
        assert len(set(keys)) == 1  # one offer, whatever the redelivery
        assert desk.payloads()[0]["call_id"] == "d1"
        assert svc.outbox.count() == 0 or await _drained(svc)


async def _drained(svc: AcdService) -> bool:
    await svc.wait_sent(10)
    return svc.outbox.count() == 0


async def test_supervisor_restart_keeps_callbacks(tmp_path: Path, bus: Bus,
                                                  sup: Supervisor) -> None:
    svc = sup.service
    assert svc is not None
    svc.agent_action("alice", "away")
    async with Collector(bus.url, "ivr/acd/callbacks", "cb-workers") as workers, \
            client(tmp_path, bus, "w1") as acd:
        events = acd.enqueue("cb1", "general", **BANK)
        await next_event(events, "queued")
        acd.callback("cb1", "+15551234567")
        scheduled = await next_event(events, "callback")
        assert scheduled.data["position"] == 1
    await sup.kill()  # all in-memory ACD state is gone

    store = AcdStore(tmp_path / "ivr.sqlite")  # what survives: the SQLite rows
    assert [c.call_id for c in store.load_calls()] == ["cb1"]
    store.close()
    svc2 = await sup.start()
    assert svc2.engine.waiting["cb1"].callback == "+15551234567"
    assert svc2.engine.agents["alice"].state is AgentState.away
    async with Collector(bus.url, "ivr/acd/callbacks", "cb-workers") as workers:
        await publish(bus, "ivr/agents/alice/state", {"state": "ready"})
        (offer,) = await workers.wait_for(1)
        assert offer["call_id"] == "cb1" and offer["callback"] == "+15551234567"
        assert offer["agent"]["name"] == "alice"
        assert offer["context"]["variables"]["account"] == "****4444"


async def test_http_routes_and_cli(tmp_path: Path, bus: Bus, sup: Supervisor, run_cli: Any) -> None:
    svc = sup.service
    assert svc is not None
    app = web.Application()
    app.add_routes(routes(lambda: sup.service))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    server = f"http://127.0.0.1:{port}"
    try:
        r = await asyncio.to_thread(run_cli, "agent", "login", "alice", "--server", server)
        assert r.code == 0, r.output
        assert "alice: ready" in r.stdout
        r = await asyncio.to_thread(run_cli, "agent", "away", "bob", "--server", server)
        assert r.code == 0, r.output
        r = await asyncio.to_thread(run_cli, "agent", "ready", "nobody", "--server", server)
        assert r.code == 1 and "unknown agent" in r.output
        r = await asyncio.to_thread(run_cli, "agents", "--json", "--server", server)
        states = {a["name"]: a["state"] for a in json.loads(r.stdout)["agents"]}
        assert states == {"alice": "ready", "bob": "away"}
        async with client(tmp_path, bus, "w1") as acd:
            events = acd.enqueue("h1", "general", **BANK)
            offer = await next_event(events, "offer")
            r = await asyncio.to_thread(run_cli, "queues", "--json", "--server", server)
            (q,) = json.loads(r.stdout)["queues"]
            assert q["name"] == "general" and q["calls"][0]["ringing"] == ["alice"]
            r = await asyncio.to_thread(run_cli, "queues", "--server", server)
            assert "general" in r.stdout and "longest_idle" in r.stdout
            r = await asyncio.to_thread(run_cli, "agent", "logout", "alice", "--server", server)
            assert r.code == 0  # ringing -> logged out; the call goes on waiting
            cancel = await next_event(events, "cancel")
            assert cancel.agent == "alice" and offer.agent == "alice"
        from ivr.acd.remote import call

        ctx = await asyncio.to_thread(call, server, "GET", "/calls/h1/context")
        assert ctx["call_id"] == "h1" and ctx["variables"]["account"] == "****4444"
        assert ctx["flow"] == "acme-bank" and ctx["variables"]["intent"] == "card lost"
    finally:
        await runner.cleanup()


async def test_empty_queue_overflows_at_once(tmp_path: Path, bus: Bus, sup: Supervisor) -> None:
    async with client(tmp_path, bus, "w1") as acd:
        events = acd.enqueue("e1", "general", **BANK)
        ev = await next_event(events, "timeout")
        assert ev.data["reason"] == "empty" and ev.data["overflow"] == "voicemail"
