"""Node roles (ivr/roles.py) and the site's config keys: node, edge.media, sip.worker_ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ivr.config import EngineConfig, load_config
from ivr.errors import ConfigError
from ivr.front.render import dispatcher_text
from ivr.front.settings import FrontSettings
from ivr.roles import PARTS, parts_for

REPO = Path(__file__).resolve().parents[2]
SITE_BUS: dict[str, Any] = {"mqtt": "mqtt://10.0.0.1:1883"}


def test_all_is_the_single_box_and_each_site_role_one_part() -> None:
    everything = PARTS["all"]
    assert (everything.front, everything.workers, everything.acd, everything.broker) == (
        True, True, True, True)
    assert not everything.site
    assert [r for r in ("edge", "media", "acd") if PARTS[r].front] == ["edge"]
    assert [r for r in ("edge", "media", "acd") if PARTS[r].workers] == ["media"]
    assert [r for r in ("edge", "media", "acd") if PARTS[r].acd] == ["acd"]
    assert all(PARTS[r].site for r in ("edge", "media", "acd"))
    assert not PARTS["edge"].broker


def test_the_default_config_runs_as_all_only() -> None:
    config = EngineConfig()
    assert parts_for("all", config) is PARTS["all"]
    with pytest.raises(ConfigError, match=r"bus\.mqtt"):
        parts_for("media", config)
    with pytest.raises(ConfigError, match=r"bus\.mqtt"):
        parts_for("acd", config)
    with pytest.raises(ConfigError, match=r"edge\.media"):
        parts_for("edge", config)
    with pytest.raises(ConfigError, match="unknown role"):
        parts_for("proxy", config)


def test_a_media_node_needs_fixed_worker_ports() -> None:
    config = EngineConfig.model_validate({"bus": SITE_BUS})
    with pytest.raises(ConfigError, match="worker_ports"):
        parts_for("media", config)
    config = EngineConfig.model_validate({"bus": SITE_BUS, "sip": {"worker_ports": "5070-5073"}})
    assert parts_for("media", config).workers
    assert config.sip.worker_port_list() == [5070, 5071, 5072, 5073]


def test_edge_media_expands_to_every_worker() -> None:
    config = EngineConfig.model_validate(
        {"edge": {"media": ["10.0.0.11:5070-5072", "10.0.0.12:5070", "[fd00::3]:5080-5081"]}})
    assert config.edge.workers() == ["10.0.0.11:5070", "10.0.0.11:5071", "10.0.0.11:5072",
                                     "10.0.0.12:5070", "[fd00::3]:5080", "[fd00::3]:5081"]
    assert parts_for("edge", config).front


def test_the_edge_dispatches_and_trusts_every_media_worker(tmp_path: Path) -> None:
    config = EngineConfig.model_validate({"edge": {"media": ["10.0.0.11:5070-5071",
                                                             "10.0.0.12:5070-5071"]}})
    settings = FrontSettings.from_config(config, tmp_path, config.edge.workers())
    listed = dispatcher_text(settings.workers)
    for host in ("10.0.0.11", "10.0.0.12"):
        for port in (5070, 5071):
            assert f"sip:{host}:{port}" in listed


@pytest.mark.parametrize("bad", ["10.0.0.11", "media-a:5070", "10.0.0.11:5072-5070",
                                 "10.0.0.11:0", "10.0.0.11:5070-70000"])
def test_bad_edge_media_entries_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match=r"edge\.media entry"):
        EngineConfig.model_validate({"edge": {"media": [bad]}})


@pytest.mark.parametrize("bad", ["", "a b", "-lead", "x" * 65, "media/a", "a+b"])
def test_node_names_are_one_plain_topic_level(bad: str) -> None:
    with pytest.raises(ValidationError, match="node name"):
        EngineConfig.model_validate({"node": {"name": bad}})


def test_the_node_name_defaults_to_the_host_name() -> None:
    import socket

    host = socket.gethostname().split(".", 1)[0]
    assert EngineConfig().node.name == host
    assert EngineConfig.model_validate({"node": {"name": "media-a"}}).node.name == "media-a"


@pytest.mark.parametrize("bad", ["70-60", "x-y", "0-10", "5070-"])
def test_bad_worker_ports_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="PORT or LO-HI"):
        EngineConfig.model_validate({"sip": {"worker_ports": bad}})


@pytest.mark.parametrize("name", ["edge.yaml", "media-a.yaml", "media-b.yaml", "acd.yaml",
                                  "acd-2.yaml"])
def test_the_site_example_configs_load_and_fit_their_role(name: str) -> None:
    config = load_config(REPO / "deploy" / "site" / name)
    role = name.split(".")[0].split("-")[0]
    parts = parts_for(role, config)
    assert parts.role == role
    if role == "media":
        assert config.sip.worker_ports is not None
        edge = load_config(REPO / "deploy" / "site" / "edge.yaml")
        mine = f"{config.sip.workers_host}:{config.sip.worker_ports}"
        assert mine in edge.edge.media  # the edge lists this node's workers
        assert config.sip.listen == edge.sip.listen  # its workers reach agents through the edge
    if role == "acd":  # two ACDs on one PostgreSQL store: one active by the lease
        assert config.store.url is not None
        assert config.node.name == {"acd.yaml": "acd-1", "acd-2.yaml": "acd-2"}[name]


def test_no_two_nodes_share_a_bus_client_id() -> None:
    """Every client id a node opens (derived ones too) names the node: the same worker id and
    even the same pid on two hosts give two ids."""
    from ivr.bus import ids

    def opened(node: str) -> set[str]:
        worker = ids.worker(node, "1", 4242)
        return {ids.supervisor(node), ids.acd(node), ids.acd(node) + "-out", worker,
                f"acd-client-{worker}", f"acd-callbacks-{worker}"}

    a, b = opened("media-a"), opened("media-b")
    assert len(a) == 6 and len(b) == 6
    assert not a & b
    assert ids.worker("media-a", "1", 1) != ids.worker("media-a", "1", 2)  # a restarted worker


def _pool(monkeypatch: pytest.MonkeyPatch, sip: dict[str, Any]) -> Any:
    """A WorkerPool over `sip` whose processes are never started (pjsua2 carries 500 calls)."""
    import ivr.pool as pool_mod
    from ivr.sip.build import PjBuild

    monkeypatch.setattr(pool_mod, "probe", lambda: PjBuild("test", "source", 500, True))
    config = EngineConfig.model_validate({"sip": sip})
    pool = pool_mod.WorkerPool(config, None, Path("/nonexistent"), list, lambda c: c)

    async def started(w: Any) -> None:
        w.ready.set()

    monkeypatch.setattr(pool, "_start", started)
    return pool


def test_a_media_pool_takes_its_fixed_ports_on_its_own_address(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    pool = _pool(monkeypatch, {"max_calls": 40, "calls_per_worker": 20,
                               "worker_ports": "5070-5072", "workers_host": "10.0.0.11"})
    asyncio.run(pool.start())
    assert sorted(pool.addresses()) == ["10.0.0.11:5070", "10.0.0.11:5071"]
    assert all(w.fixed_port for w in pool)


def test_a_pool_larger_than_its_worker_ports_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"worker_ports 5070-5071 holds 2 ports but the pool "
                                          r"has 4 workers"):
        _pool(monkeypatch, {"max_calls": 40, "calls_per_worker": 10, "worker_ports": "5070-5071"})


def test_without_worker_ports_a_single_box_pool_is_as_before(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    pool = _pool(monkeypatch, {"max_calls": 8, "calls_per_worker": 4})
    asyncio.run(pool.start())
    addresses = pool.addresses()
    assert len(addresses) == 2 and all(a.startswith("127.0.0.1:") for a in addresses)
    assert not any(w.fixed_port for w in pool)


def test_a_restarted_media_worker_keeps_its_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """The edge lists the port: a worker that died comes back on it."""
    import asyncio
    from types import SimpleNamespace

    import ivr.pool as pool_mod

    monkeypatch.setattr(pool_mod, "RESTART_BACKOFF", (0.0,))
    pool = _pool(monkeypatch, {"max_calls": 40, "calls_per_worker": 20,
                               "worker_ports": "5070-5071", "workers_host": "10.0.0.11"})
    asyncio.run(pool.start())
    dead = pool.workers["2"]
    dead.proc = SimpleNamespace(returncode=-9, pid=0)
    written_off: list[str] = []
    assert asyncio.run(pool.restart_dead(lambda w: written_off.append(w.worker_id)))
    assert written_off == ["2"] and dead.restarts == 1
    assert dead.address == "10.0.0.11:5071"


@pytest.mark.parametrize(("role", "says"), [("edge", "role edge needs edge.media"),
                                            ("media", "role media needs the site broker"),
                                            ("acd", "role acd needs the site broker")])
def test_serve_refuses_a_role_its_config_cannot_run_before_starting_anything(
        tmp_path: Path, role: str, says: str) -> None:
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "ivr.cli", "serve", "--role", role,
                           "--state-dir", str(tmp_path / "var")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1
    assert says in proc.stderr
    assert not (tmp_path / "var" / "front").exists()
    assert not (tmp_path / "var" / "mosquitto").exists()


def test_a_lost_worker_takes_only_its_own_callers_out_of_the_acd(
        tmp_path: Path, config: EngineConfig) -> None:
    """Its waiting callers are abandoned and the agent it bridged goes to wrap-up; another
    worker's caller and a scheduled callback (the ACD's own) stay."""
    import json

    from ivr.acd.service import AcdService
    from ivr.bus import ids

    lost, other = ids.worker("media-b", "1", 11), ids.worker("media-a", "1", 12)
    acd = AcdService.create(config, tmp_path / "acd.sqlite", tmp_path / "outbox.sqlite",
                            "mqtt://127.0.0.1:1")

    def request(**data: Any) -> None:
        acd.on_message("ivr/acd/request", json.dumps(data).encode())

    try:
        acd.agent_message("bob", {"state": "login", "queues": ["general"]})
        acd.agent_message("bob", {"state": "ready"})
        request(op="enqueue", call_id="talking", queue="general", key="k1",
                reply_to=f"ivr/acd/reply/{lost}")
        request(op="agent_answered", call_id="talking", agent="bob", attempt=1, key="k2")
        for n, (call_id, worker) in enumerate([("waits-b", lost), ("waits-a", other),
                                              ("callback-b", lost)]):
            request(op="enqueue", call_id=call_id, queue="general", key=f"e{n}",
                    reply_to=f"ivr/acd/reply/{worker}")
        request(op="callback", call_id="callback-b", number="+15550001", key="cb")
        assert acd.engine.agents["bob"].state.value == "on_call"
        assert acd.worker_lost(lost) == 2
        assert set(acd.engine.waiting) == {"waits-a", "callback-b"}
        assert "talking" not in acd.engine.active
        assert acd.engine.agents["bob"].state.value in ("wrap_up", "ready")
        assert acd.worker_lost(lost) == 0  # a will redelivered changes nothing
        assert acd.store.queue_record("waits-b")["outcome"] == "abandoned"
    finally:
        acd.close()


async def test_a_will_followed_by_alive_keeps_the_workers_callers(
        tmp_path: Path, config: EngineConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restarting broker publishes the wills of workers that are alive: a worker that says
    `worker.alive` within the grace keeps its callers; one that stays silent loses them."""
    import asyncio
    import json

    import ivr.serve as serve_mod
    from ivr.acd.service import AcdService
    from ivr.bus import ids

    monkeypatch.setattr(serve_mod, "LOST_GRACE_S", 0.2)
    config.store.path = str(tmp_path / "ivr.sqlite")
    sup = serve_mod.Supervisor(config, None, tmp_path / "var")
    sup.acd = AcdService.create(config, tmp_path / "acd.sqlite", tmp_path / "outbox.sqlite",
                                "mqtt://127.0.0.1:1")
    restarted, dead = ids.worker("media-a", "1", 11), ids.worker("media-a", "2", 12)
    try:
        sup.acd.agent_message("bob", {"state": "login", "queues": ["general"]})
        for n, worker in enumerate((restarted, dead)):
            sup.acd.on_message("ivr/acd/request", json.dumps(
                {"op": "enqueue", "call_id": f"caller-{n}", "queue": "general", "key": f"e{n}",
                 "reply_to": f"ivr/acd/reply/{worker}"}).encode())
        for worker in (restarted, dead):
            sup._lost({"kind": "worker.lost", "worker": worker, "bus_id": worker})
        sup._alive({"kind": "worker.alive", "worker": restarted, "bus_id": restarted})
        assert set(sup.acd.engine.waiting) == {"caller-0", "caller-1"}  # nothing at once
        await asyncio.sleep(0.5)
        assert set(sup.acd.engine.waiting) == {"caller-0"}
    finally:
        sup.acd.close()
        sup.store.close()


def test_a_call_with_an_agent_its_worker_no_longer_holds_ends(
        tmp_path: Path, config: EngineConfig) -> None:
    """The worker's roll call names the calls it holds: one bridged to an agent that it does
    not name lost its end report, so it ends and the agent is freed; the calls it names and
    another worker's stay. A call no roll call names for `lost_after` while the bus is up
    ends too (its worker died unseen); while the bus is down nothing is judged."""
    import json
    import time

    from ivr.acd.service import AcdService
    from ivr.bus import ids

    alive, dead = ids.worker("media-a", "1", 11), ids.worker("media-b", "1", 12)
    acd = AcdService.create(config, tmp_path / "acd.sqlite", tmp_path / "outbox.sqlite",
                            "mqtt://127.0.0.1:1", lost_after=60.0)

    def request(**data: Any) -> None:
        acd.on_message("ivr/acd/request", json.dumps(data).encode())

    try:
        for n, (agent, call_id, worker) in enumerate([
                ("bob", "ended-unheard", alive), ("carl", "still-talking", alive),
                ("dana", "on-a-dead-worker", dead)]):
            acd.add_agent(agent, {"queues": ["general"]})
            acd.agent_message(agent, {"state": "login", "queues": ["general"]})
            acd.agent_message(agent, {"state": "ready"})
            request(op="enqueue", call_id=call_id, queue="general", key=f"e{n}",
                    reply_to=f"ivr/acd/reply/{worker}")
            (ringing,) = [a for a in acd.engine.agents.values()
                          if a.call_id == call_id and a.state.value == "ringing"]
            request(op="agent_answered", call_id=call_id, agent=ringing.name, attempt=1,
                    key=f"a{n}")
        assert set(acd.engine.active) == {"ended-unheard", "still-talking", "on-a-dead-worker"}
        freed = acd.engine.active["ended-unheard"].agent
        request(op="holding", call_id="-", reply_to=f"ivr/acd/reply/{alive}",
                calls=["still-talking", "waits-elsewhere"], key="h1")
        assert set(acd.engine.active) == {"still-talking", "on-a-dead-worker"}
        assert acd.engine.agents[freed].state.value in ("wrap_up", "ready")
        assert acd.store.queue_record("ended-unheard")["outcome"] == "lost"

        acd._bus_up = None  # the bus is down: silence says nothing
        acd._held = {c: time.monotonic() - 3600 for c in acd._held}
        acd.tick()
        assert set(acd.engine.active) == {"still-talking", "on-a-dead-worker"}
        acd._bus_up = time.monotonic() - 3600  # up for an hour, the calls unheard for as long
        request(op="holding", call_id="-", reply_to=f"ivr/acd/reply/{alive}",
                calls=["still-talking"], key="h2")
        acd.tick()
        assert set(acd.engine.active) == {"still-talking"}
        assert acd.store.queue_record("on-a-dead-worker")["outcome"] == "lost"
    finally:
        acd.close()


async def test_a_worker_names_the_calls_it_holds_every_round(tmp_path: Path) -> None:
    """The roll call lists what the client has open with the ACD, not what it ended."""
    import asyncio
    import json

    from ivr.acd.client import AcdClient
    from ivr.bus.outbox import Outbox

    outbox = Outbox(tmp_path / "outbox.sqlite")
    client = AcdClient("mqtt://127.0.0.1:1", outbox, "media-a-worker-1-7", resync_every=0.05)
    client.agent_answered("bridged", "bob", 1)
    client.agent_answered("over", "carl", 1)
    client.call_ended("over")
    async with client:
        await asyncio.sleep(0.3)
    rolls = [json.loads(payload) for _, _, payload in outbox.pending(1000)
             if json.loads(payload).get("op") == "holding"]
    outbox.close()
    assert len(rolls) >= 2
    assert all(r["calls"] == ["bridged"] for r in rolls), rolls
    assert rolls[0]["reply_to"] == "ivr/acd/reply/media-a-worker-1-7"
    assert len({r["key"] for r in rolls}) == len(rolls)
