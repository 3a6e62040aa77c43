"""ACD failover (ivr/acd/failover.py) over a lease in a real SQLite file: one active at a time,
the standby takes over when the active stops renewing, an active whose store stops answering
stops acting by its own clock, and a ring in flight survives the handover (ivr/acd/engine.py);
the wait time of a worker whose clock is off (ivr/acd/service.py `arrival`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, cast

from ivr.acd.engine import Engine
from ivr.acd.failover import Failover
from ivr.acd.model import Agent, AgentState, Offer, QueuePolicy
from ivr.acd.service import AcdService, arrival
from ivr.acd.store import AcdStore
from ivr.store.lease import Lease
from ivr.store.sqlite import SqliteBackend

TTL, RENEW = 0.8, 0.2


class FakeOutbox:
    def __init__(self) -> None:
        self.cleared = 0

    def clear(self) -> int:
        self.cleared += 1
        return 0


class FakeService:
    """What the failover drives: run (acts until cancelled), close, an outbox, an engine."""

    def __init__(self) -> None:
        self.runs = 0
        self.running = False
        self.closed = False
        self.outbox = FakeOutbox()
        self.engine = Engine({}, [])

    async def run(self) -> None:
        self.runs += 1
        self.running = True
        try:
            await asyncio.Event().wait()
        finally:
            self.running = False

    def close(self) -> None:
        self.closed = True


def _node(db: Path, name: str, made: list[FakeService]) -> Failover:
    def make() -> AcdService:
        made.append(FakeService())
        return cast(AcdService, made[-1])
    return Failover(Lease(SqliteBackend(db), "acd", name, TTL), make, renew_every=RENEW)


async def _until(predicate: Any, timeout: float) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "timed out"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def test_one_active_and_the_standby_takes_over_when_it_dies(tmp_path: Path) -> None:
    async def main() -> None:
        db = tmp_path / "store.sqlite"
        made_a: list[FakeService] = []
        made_b: list[FakeService] = []
        a, b = _node(db, "acd-1", made_a), _node(db, "acd-2", made_b)
        ta = asyncio.create_task(a.run())
        await _until(lambda: a.state == "active", 2)
        tb = asyncio.create_task(b.run())
        await asyncio.sleep(TTL * 2)  # several renewals: b never gets it
        assert (a.state, b.state) == ("active", "standby") and a.acting() and not b.acting()
        assert made_b == [] and made_a[0].running
        a.lease.release = lambda: None  # type: ignore[method-assign]  # dies: no clean release
        ta.cancel()
        await asyncio.gather(ta, return_exceptions=True)
        took = await _until(lambda: b.state == "active", TTL + 3 * RENEW + 1)
        assert took <= TTL + 2 * RENEW + 1.5, took  # slack for a loaded box; the lease says TTL
        assert made_b[0].running and made_b[0].outbox.cleared == 1  # a fresh tenure
        assert b.lease.token == 2
        tb.cancel()
        await asyncio.gather(tb, return_exceptions=True)
        assert made_b[0].closed and not made_b[0].running
    asyncio.run(main())


def test_an_active_whose_store_hangs_stops_acting_before_the_lease_expires(tmp_path: Path) -> None:
    async def main() -> None:
        made: list[FakeService] = []
        a = _node(tmp_path / "store.sqlite", "acd-1", made)
        task = asyncio.create_task(a.run())
        await _until(lambda: a.state == "active", 2)
        def hang() -> bool:
            time.sleep(3)
            return True
        a.lease.renew = hang  # type: ignore[method-assign]
        hung = time.monotonic()
        await _until(lambda: not a.acting(), TTL + 0.1)
        await _until(lambda: a.state == "standby", 0.5)
        assert time.monotonic() - hung < TTL
        assert not made[0].running
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    asyncio.run(main())


def test_regaining_its_own_lease_keeps_the_state_another_tenure_drops_it(tmp_path: Path) -> None:
    async def main() -> None:
        db = tmp_path / "store.sqlite"
        made: list[FakeService] = []
        a = _node(db, "acd-1", made)
        task = asyncio.create_task(a.run())
        await _until(lambda: a.state == "active", 2)
        renew = a.lease.renew
        a.lease.renew = lambda: False  # type: ignore[method-assign]  # lost: stand down
        await _until(lambda: a.state == "standby", 2)
        a.lease.renew = renew  # type: ignore[method-assign]
        await _until(lambda: a.state == "active", 2)  # nobody else held it: same token
        assert len(made) == 1 and made[0].runs == 2 and made[0].outbox.cleared == 1
        a.lease.renew = lambda: False  # type: ignore[method-assign]
        await _until(lambda: a.state == "standby", 2)
        acquire = a.lease.try_acquire
        a.lease.try_acquire = lambda: False  # type: ignore[method-assign]
        other = Lease(SqliteBackend(db), "acd", "acd-2", TTL)
        await _until(other.try_acquire, 3)  # another ACD acts in between
        other.release()
        a.lease.renew, a.lease.try_acquire = renew, acquire  # type: ignore[method-assign]
        await _until(lambda: a.state == "active", 2)
        assert len(made) == 2 and made[0].closed and made[0].outbox.cleared == 2
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    asyncio.run(main())


def test_a_ring_in_flight_survives_the_handover(tmp_path: Path) -> None:
    """The old active offered c1 to alice and died; the new one keeps alice ringing for c1
    (no second offer of c1, nor of alice), and her answer still connects."""
    db = tmp_path / "store.sqlite"
    queues = {"q": QueuePolicy()}
    old = Engine(queues, [Agent("alice", None, ["q"]), Agent("bob", None, ["q"])],
                 store=AcdStore(db))
    old.agent_action("alice", "ready")
    old.enqueue("c1", "q")
    (offer,) = [a for a in old.tick() if isinstance(a, Offer)]
    new = Engine(queues, [Agent("alice", None, ["q"]), Agent("bob", None, ["q"])],
                 store=AcdStore(db))
    assert new.agents["alice"].state is AgentState.ringing
    assert new.waiting["c1"].ringing == {offer.agent}
    new.agent_action("bob", "ready")
    assert not [a for a in new.tick() if isinstance(a, Offer)]
    new.enqueue("c2", "q")
    assert [(a.call_id, a.agent) for a in new.tick() if isinstance(a, Offer)] == [("c2", "bob")]
    assert any(a.__class__.__name__ == "Connected"
               for a in new.answered("c1", "alice", offer.attempt))


def test_the_wait_counts_from_the_acds_clock_not_the_workers() -> None:
    now = 1_000_000.0
    ahead = {"since": now + 2.0 - 5.0, "at": now + 2.0}  # 2 s fast, waited 5 s
    behind = {"since": now - 2.0 - 5.0, "at": now - 2.0}  # 2 s slow, waited 5 s
    assert arrival(ahead, now) == arrival(behind, now) == now - 5.0
    fresh = {"since": now + 2.0, "at": now + 2.0}  # a first enqueue: it arrived now
    assert arrival(fresh, now) == now
    assert arrival({"since": now + 9}, now) == now  # an old worker: never in the future
    assert arrival({}, now) is None


def test_a_call_with_an_agent_stays_connected_across_the_handover(tmp_path: Path) -> None:
    """The old active connected c1 to alice and died before its `connected` left: the worker's
    resync reaches the new active, which says connected again instead of queueing c1 anew."""
    db = tmp_path / "store.sqlite"
    queues = {"q": QueuePolicy()}
    old = Engine(queues, [Agent("alice", None, ["q"])], store=AcdStore(db))
    old.agent_action("alice", "ready")
    old.enqueue("c1", "q")
    (offer,) = [a for a in old.tick() if isinstance(a, Offer)]
    old.answered("c1", "alice", offer.attempt)
    new = Engine(queues, [Agent("alice", None, ["q"])], store=AcdStore(db))
    again = new.enqueue("c1", "q")
    assert [a.__class__.__name__ for a in again] == ["Connected"] and not new.waiting
    assert not [a for a in new.tick() if isinstance(a, Offer)]
    closed = new.ended("c1")
    assert any(a.__class__.__name__ == "CallClosed" for a in closed)
    assert new.agents["alice"].state is not AgentState.on_call
    assert AcdStore(db).load_calls() == []  # gone once it ended
