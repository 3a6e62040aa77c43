"""The CDR store and the ACD's tables behave the same on SQLite and on a real PostgreSQL: keyed,
idempotent writes, upserts, the persistent sequence, and what a restarted process reads back."""

from __future__ import annotations

import time

from stores import StoreSite
from test_acd_engine import Clock, make, offered_to

from ivr.acd.model import Agent, AgentState, QueuedCall
from ivr.acd.store import AcdStore
from ivr.store.db import Store


def _start(store: Store, call_id: str, at: float, seq: int = 1, worker: str = "w1") -> bool:
    return store.record_event({"call_id": call_id, "seq": seq, "kind": "call.start", "at": at,
                               "flow": "bank", "caller": "+1555", "worker": worker})


def test_events_are_idempotent_and_build_the_cdr(store_site: StoreSite) -> None:
    store = Store(store_site.backend())
    assert _start(store, "c1", 100.0)
    assert not _start(store, "c1", 100.0)  # resent from a worker's outbox: a no-op
    assert store.record_event({"call_id": "c1", "seq": 2, "kind": "call.answer", "at": 101.5})
    assert store.record_event({
        "call_id": "c1", "seq": 3, "kind": "call.end", "at": 130.25, "reason": "caller hangup",
        "end": {"kind": "queue", "node": "q", "queue": "general", "context": {"intent": "x"}},
        "path": ["menu", "q"], "variables": {"intent": "x"}, "transcript": [{"who": "caller"}]})
    store.close()
    again = Store(store_site.backend())  # a restarted supervisor reads what was written
    cdr = again.call("c1")
    assert cdr is not None
    assert (cdr["flow"], cdr["caller"], cdr["worker"]) == ("bank", "+1555", "w1")
    assert (cdr["started_at"], cdr["answered_at"], cdr["ended_at"]) == (100.0, 101.5, 130.25)
    assert (cdr["end_kind"], cdr["queue"], cdr["end_reason"]) == ("queue", "general",
                                                                 "caller hangup")
    assert cdr["path"] == ["menu", "q"] and cdr["variables"] == {"intent": "x"}
    assert cdr["end_context"] == {"intent": "x"} and cdr["transcript"] == [{"who": "caller"}]
    assert again.call("nope") is None
    assert len(store_site.rows("SELECT seq FROM events WHERE call_id = ?", ("c1",))) == 3
    again.close()


def test_disposition_first_dead_worker_and_listing(store_site: StoreSite) -> None:
    store = Store(store_site.backend())
    store.set_disposition("c2", {"code": "sale", "agent": "bob"})  # before the call's events
    _start(store, "c2", 200.0)
    _start(store, "c1", 100.0, worker="w9")
    _start(store, "c3", 300.0, worker="w9")
    store.record_event({"call_id": "c3", "seq": 2, "kind": "call.end", "at": 310.0,
                        "end": {"kind": "hangup"}})
    assert store.close_calls_of("w9", "worker died") == 1  # c3 had ended already
    assert [c["call_id"] for c in store.calls()] == ["c1", "c2", "c3"]
    assert [c["call_id"] for c in store.calls(since=150.0)] == ["c2", "c3"]
    c1, c2 = store.call("c1"), store.call("c2")
    assert c1 is not None and (c1["end_kind"], c1["end_reason"]) == ("error", "worker died")
    assert c2 is not None and c2["disposition"] == {"code": "sale", "agent": "bob"}
    assert c2["started_at"] == 200.0 and c2["ended_at"] is None
    store.close()


def test_acd_rows_survive_a_restart(store_site: StoreSite) -> None:
    acd = AcdStore(store_site.backend())
    call = QueuedCall("c1", "general", 100.0, priority=5, handoff={"caller": "+1555"})
    acd.save_call(call)
    call.callback = "+1555"
    acd.save_call(call)  # an upsert: the newer row wins
    acd.save_call(QueuedCall("c2", "general", 101.0))
    acd.delete_call("c2")
    acd.save_agent(Agent("bob", queues=["general"], state=AgentState.away, skills={"fr": 3}))
    acd.log("c1", queue="general", flow="bank", enqueued_at=100.0, callback=True,
            context={"account": "****5678"})
    acd.log("c1", agent="bob", answered_at=112.0, queue=None)  # None leaves a column as it was
    before = time.time()
    acd.bump_attempts("c1")
    acd.bump_attempts("c1")
    acd.add_offer("c1", "bob")
    acd.add_offer("c1", "bob")
    seqs = [acd.next_seq(), acd.next_seq()]
    acd.close()

    again = AcdStore(store_site.backend())
    assert [(c.call_id, c.callback, c.priority) for c in again.load_calls()] == [
        ("c1", "+1555", 5)]
    assert again.load_agents()["bob"]["state"] == "away"
    assert again.load_agents()["bob"]["skills"] == {"fr": 3}
    record = again.queue_record("c1")
    assert record is not None
    assert (record["queue"], record["agent"], record["attempts"], record["callback"]) == (
        "general", "bob", 2, 1)
    assert before - 5 <= record["offered_at"] <= time.time() + 5  # the database's clock
    assert again.agent_of("c1") == "bob" and again.agent_of("c9") is None
    assert again.logged_context("c1") == {"account": "****5678"}
    assert again.was_offered("c1", "bob") and not again.was_offered("c1", "dave")
    assert again.next_seq() == seqs[1] + 1 and seqs[1] == seqs[0] + 1  # never repeats
    assert again.blank_context(200.0) == 1 and again.logged_context("c1") is None
    again.close()


def test_callback_keeps_the_place_across_an_engine_restart(store_site: StoreSite) -> None:
    """As test_acd_engine's SQLite test, over either backend: a new engine over the same store
    has the same queue, the same places and the agents' presence."""
    clock = Clock()
    store = AcdStore(store_site.backend())
    engine, _ = make(agents={"alice": {}}, clock=clock, store=store, login=False)
    engine.agent_action("alice", "away")
    engine.enqueue("first", "q", handoff={"caller": "+15550001"})
    clock.advance(5)
    engine.enqueue("second", "q", handoff={"caller": "+15550002"})
    engine.to_callback("first", "+15550001")
    store.close()

    store2 = AcdStore(store_site.backend())
    engine2, _ = make(agents={"alice": {}}, clock=clock, store=store2, login=False)
    assert set(engine2.waiting) == {"first", "second"}
    assert engine2.waiting["first"].callback == "+15550001"
    assert engine2.position("first")[0] == 1  # type: ignore[index]
    assert engine2.agents["alice"].state is AgentState.away
    engine2.agent_action("alice", "ready")
    assert offered_to(engine2.tick()) == ["alice"]
    store2.close()
