"""The ACD engine with a fake clock: strategies, priority and aging, wrap-up, overflow, max wait,
skills relax, estimates, callbacks across a restart, races, reject -> next agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.acd.engine import Engine, StateError
from ivr.acd.model import (
    Action,
    Agent,
    AgentState,
    CallbackScheduled,
    CallClosed,
    Cancel,
    Connected,
    Offer,
    Queued,
    QueuePolicy,
    Timeout,
)
from ivr.acd.store import AcdStore
from ivr.config import EngineConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(strategy: str = "longest_idle", agents: dict[str, dict[str, int]] | None = None,
         clock: Clock | None = None, store: AcdStore | None = None, login: bool = True,
         **policy: object) -> tuple[Engine, Clock]:
    clock = clock or Clock()
    qp = QueuePolicy(strategy=strategy, **policy)  # type: ignore[arg-type]
    names = agents if agents is not None else {"alice": {}, "bob": {}, "carol": {}}
    engine = Engine({"q": qp}, [Agent(n, uri=f"sip:{n}@127.0.0.1", queues=["q"], skills=s)
                                for n, s in names.items()], clock=clock, store=store)
    if login:
        for n in names:
            engine.agent_action(n, "login")
            clock.advance(1)  # alice idles longest, then bob, then carol
    return engine, clock


def offers(actions: list[Action]) -> list[Offer]:
    return [a for a in actions if isinstance(a, Offer)]


def offered_to(actions: list[Action]) -> list[str]:
    return [o.agent for o in offers(actions)]


def take(engine: Engine, call_id: str, agent: str) -> list[Action]:
    """The agent rang for call_id: answer it, then end the call."""
    call = engine.waiting[call_id]
    out = engine.answered(call_id, agent, call.attempt)
    assert any(isinstance(a, Connected) and a.agent == agent for a in out), out
    return out


# -- strategies -------------------------------------------------------------------------------
def test_longest_idle_offers_the_agent_idle_longest() -> None:
    engine, clock = make("longest_idle")
    engine.enqueue("c1", "q")
    assert offered_to(engine.tick()) == ["alice"]
    engine.enqueue("c2", "q")
    assert offered_to(engine.tick()) == ["bob"]
    take(engine, "c1", "alice")
    engine.ended("c1")  # alice wraps up and comes back last in the idle line
    clock.advance(11)  # wrap-up is 10 s; bob still rings (ring timeout 20 s)
    engine.tick()
    assert engine.agents["alice"].state is AgentState.ready
    engine.enqueue("c3", "q")
    assert offered_to(engine.tick()) == ["carol"]


def test_round_robin_cycles_through_members_in_order() -> None:
    engine, clock = make("round_robin", wrap_up=0)
    got = []
    for i in range(5):
        engine.enqueue(f"c{i}", "q")
        (o,) = offers(engine.tick())
        got.append(o.agent)
        take(engine, f"c{i}", o.agent)
        engine.ended(f"c{i}")
        clock.advance(1)
    assert got == ["alice", "bob", "carol", "alice", "bob"]


def test_fewest_calls_prefers_the_agent_with_fewer_answered_calls() -> None:
    engine, _ = make("fewest_calls", wrap_up=0)
    for call, agent in (("a1", "alice"), ("a2", "alice"), ("b1", "bob")):
        for name in engine.agents:
            engine.agent_action(name, "ready" if name == agent else "away")
        engine.enqueue(call, "q")
        assert offered_to(engine.tick()) == [agent]
        take(engine, call, agent)
        engine.ended(call)
    for name in engine.agents:
        engine.agent_action(name, "ready")
    assert {n: a.calls for n, a in engine.agents.items()} == {"alice": 2, "bob": 1, "carol": 0}
    engine.enqueue("x", "q")
    assert offered_to(engine.tick()) == ["carol"]
    engine.enqueue("y", "q")
    assert offered_to(engine.tick()) == ["bob"]


def test_fewest_calls_simple() -> None:
    engine, _ = make("fewest_calls")
    engine.agents["alice"].calls = 3
    engine.agents["bob"].calls = 1
    engine.agents["carol"].calls = 2
    engine.enqueue("c", "q")
    assert offered_to(engine.tick()) == ["bob"]


def test_ring_all_rings_everyone_and_the_first_answer_wins() -> None:
    engine, _ = make("ring_all")
    engine.enqueue("c", "q")
    out = engine.tick()
    assert sorted(offered_to(out)) == ["alice", "bob", "carol"]
    attempt = offers(out)[0].attempt
    assert all(engine.agents[n].state is AgentState.ringing for n in ("alice", "bob", "carol"))
    won = engine.answered("c", "bob", attempt)
    assert [a.agent for a in won if isinstance(a, Connected)] == ["bob"]
    assert sorted(a.agent for a in won if isinstance(a, Cancel)) == ["alice", "carol"]
    late = engine.answered("c", "carol", attempt)  # answered a split second too late
    assert [a for a in late if isinstance(a, Cancel)] == [Cancel("c", "carol", "taken")]
    assert not any(isinstance(a, Connected) for a in late)
    assert engine.agents["bob"].state is AgentState.on_call
    assert engine.agents["alice"].state is AgentState.ready
    assert engine.agents["carol"].state is AgentState.ready


def test_skills_best_level_then_longest_idle() -> None:
    engine, _clock = make("skills", agents={"alice": {"banking": 2}, "bob": {"banking": 5},
                                           "carol": {"banking": 5, "cards": 1}})
    engine.enqueue("c1", "q", skills={"banking": 2})
    assert offered_to(engine.tick()) == ["bob"]  # level 5 beats 2; bob idles longer than carol
    engine.enqueue("c2", "q", skills={"banking": 2})
    assert offered_to(engine.tick()) == ["carol"]
    engine.enqueue("c3", "q", skills={"cards": 3})
    assert offered_to(engine.tick()) == []  # nobody has cards 3 (alice lacks cards entirely)


def test_skills_relax_after_a_wait() -> None:
    engine, clock = make("skills", agents={"alice": {"banking": 1}, "bob": {"cards": 4}},
                         relax_after=30)
    engine.enqueue("c", "q", skills={"banking": 3})
    assert offered_to(engine.tick()) == []
    clock.advance(30)  # banking 2 now
    assert offered_to(engine.tick()) == []
    clock.advance(30)  # banking 1: alice qualifies
    assert offered_to(engine.tick()) == ["alice"]


def test_skills_relax_drops_the_requirement_at_zero() -> None:
    engine, clock = make("longest_idle", agents={"bob": {}}, relax_after=10)
    engine.enqueue("c", "q", skills={"french": 2})
    assert offered_to(engine.tick()) == []
    clock.advance(20)
    assert offered_to(engine.tick()) == ["bob"]


# -- priority and aging -----------------------------------------------------------------------
def test_priority_jumps_ahead_and_aging_prevents_starvation() -> None:
    engine, clock = make(agents={"alice": {}}, aging_every=60)
    engine.agents["alice"].state = AgentState.away
    engine.enqueue("old", "q", priority=0)
    clock.advance(10)
    engine.enqueue("vip", "q", priority=5)
    assert engine.position("vip")[0] == 1  # type: ignore[index]
    assert engine.position("old")[0] == 2  # type: ignore[index]
    clock.advance(290)  # old waited 300 s: rank 0 + 5 = 5; vip waited 290 s: rank 5 + 4 = 9
    assert engine.position("vip")[0] == 1  # type: ignore[index]
    engine.enqueue("new_vip", "q", priority=5)  # rank 5, ties with old: the longer wait wins
    assert engine.position("old")[0] == 2  # type: ignore[index]
    assert engine.position("new_vip")[0] == 3  # type: ignore[index]
    clock.advance(60)  # old: rank 6 > new_vip's 5 + 1? no, equal again; older first
    assert engine.position("old")[0] == 2  # type: ignore[index]
    engine.agent_action("alice", "ready")
    assert offered_to(engine.tick()) == ["alice"]
    assert engine.waiting["vip"].ringing == {"alice"}


def test_equal_priority_is_first_come_first_served() -> None:
    engine, clock = make(agents={"alice": {}})
    engine.agents["alice"].state = AgentState.away
    for name in ("a", "b", "c"):
        engine.enqueue(name, "q")
        clock.advance(1)
    engine.agent_action("alice", "ready")
    out = engine.tick()
    assert offers(out)[0].call_id == "a"


# -- wrap-up, overflow, limits ----------------------------------------------------------------
def test_wrap_up_then_ready_on_its_own() -> None:
    engine, clock = make(agents={"alice": {}}, wrap_up=10)
    engine.enqueue("c1", "q")
    engine.tick()
    take(engine, "c1", "alice")
    clock.advance(60)
    out = engine.ended("c1")
    assert engine.agents["alice"].state is AgentState.wrap_up
    assert any(isinstance(a, CallClosed) and a.outcome == "answered" for a in out)
    engine.enqueue("c2", "q")
    clock.advance(9)
    assert offered_to(engine.tick()) == []  # still wrapping up
    clock.advance(1)
    assert offered_to(engine.tick()) == ["alice"]


def test_empty_queue_goes_straight_to_overflow() -> None:
    engine, _ = make(login=False, overflow="voicemail")
    out = engine.enqueue("c", "q")
    assert out[0] == Timeout("c", "empty", "voicemail")
    assert "c" not in engine.waiting


def test_waiting_callers_overflow_when_the_last_agent_logs_out() -> None:
    engine, _ = make(agents={"alice": {}}, overflow="voicemail")
    engine.agent_action("alice", "away")
    engine.enqueue("c", "q")
    assert engine.tick() == []  # away is still logged in: keep waiting
    engine.agent_action("alice", "logout")
    assert Timeout("c", "empty", "voicemail") in engine.tick()


def test_max_wait_times_out_and_the_request_can_shorten_it() -> None:
    engine, clock = make(agents={"alice": {}}, max_wait=120)
    engine.agent_action("alice", "away")
    engine.enqueue("long", "q")
    engine.enqueue("short", "q", max_wait=30)
    clock.advance(30)
    assert [a.call_id for a in engine.tick() if isinstance(a, Timeout)] == ["short"]
    clock.advance(90)
    assert [a.reason for a in engine.tick() if isinstance(a, Timeout)] == ["max_wait"]
    assert not engine.waiting


def test_max_length_refuses_with_overflow() -> None:
    engine, _ = make(agents={"alice": {}}, max_length=2, overflow="later")
    engine.agent_action("alice", "away")
    assert isinstance(engine.enqueue("a", "q")[0], Queued)
    assert isinstance(engine.enqueue("b", "q")[0], Queued)
    assert engine.enqueue("c", "q")[0] == Timeout("c", "full", "later")


def test_position_and_estimated_wait_from_ewma_handle_time() -> None:
    engine, clock = make(agents={"alice": {}, "bob": {}}, wrap_up=0, default_handle_time=100)
    engine.agent_action("alice", "away")
    engine.agent_action("bob", "away")
    (q1,) = engine.enqueue("c1", "q")
    assert q1 == Queued("c1", 1, 50.0)  # 1 x 100 s / 2 staffed
    (q2,) = engine.enqueue("c2", "q")
    assert q2 == Queued("c2", 2, 100.0)
    # a handled call of 200 s: EWMA starts at the first sample
    engine.agent_action("alice", "ready")
    engine.tick()
    take(engine, "c1", "alice")
    clock.advance(200)
    engine.ended("c1")
    assert engine.handle_time["q"] == pytest.approx(200)
    pos, eta = engine.position("c2") or (0, 0.0)
    assert (pos, eta) == (1, 100.0)
    # the next sample (100 s) moves the average by alpha 0.3
    engine.tick()
    take(engine, "c2", "alice")
    clock.advance(100)
    engine.ended("c2")
    assert engine.handle_time["q"] == pytest.approx(0.3 * 100 + 0.7 * 200)


# -- races and failures -----------------------------------------------------------------------
def test_two_calls_race_for_one_agent_exactly_one_gets_them() -> None:
    engine, _clock = make(agents={"alice": {}})
    engine.enqueue("c1", "q")
    engine.enqueue("c2", "q")
    out = engine.tick()
    assert [(o.call_id, o.agent) for o in offers(out)] == [("c1", "alice")]
    assert offers(engine.tick()) == []  # alice rings: nobody else gets her
    # a confused worker answers c2 with alice anyway: refused
    bad = engine.answered("c2", "alice", 1)
    assert bad == [Cancel("c2", "alice", "taken")]
    assert engine.agents["alice"].call_id == "c1"
    assert engine.waiting["c2"].agent is None


def test_reject_goes_to_the_next_agent_and_the_caller_keeps_the_place() -> None:
    engine, clock = make()
    engine.enqueue("c1", "q")
    clock.advance(1)
    engine.enqueue("c2", "q")
    engine.agent_action("bob", "away")
    engine.agent_action("carol", "away")
    (o,) = offers(engine.tick())
    assert (o.call_id, o.agent) == ("c1", "alice")
    engine.agent_action("bob", "ready")
    engine.agent_action("carol", "ready")
    out = engine.tick()
    assert [(x.call_id, x.agent) for x in offers(out)] == [("c2", "bob")]
    engine.failed("c1", "alice", o.attempt, "reject")
    assert engine.agents["alice"].state is AgentState.ready
    out = engine.tick()
    assert [(x.call_id, x.agent) for x in offers(out)] == [("c1", "carol")]  # next, not alice
    assert engine.position("c1")[0] == 1  # type: ignore[index]
    assert engine.waiting["c1"].attempt == 2


def test_no_answer_puts_the_agent_away_and_rings_the_next() -> None:
    engine, clock = make(ring_timeout=15)
    engine.enqueue("c", "q")
    assert offered_to(engine.tick()) == ["alice"]
    clock.advance(15)  # the worker never reported: ring timeout
    out = engine.tick()
    assert Cancel("c", "alice", "no_answer") in out
    assert offered_to(out) == ["bob"]
    assert engine.agents["alice"].state is AgentState.away


def test_stale_reports_are_ignored() -> None:
    engine, _clock = make()
    engine.enqueue("c", "q")
    (o,) = offers(engine.tick())
    engine.failed("c", o.agent, o.attempt, "busy")
    (o2,) = offers(engine.tick())
    assert o2.attempt == o.attempt + 1
    assert engine.answered("c", o.agent, o.attempt) == [Cancel("c", o.agent, "taken")]
    assert engine.waiting["c"].ringing == {o2.agent}


def test_caller_hangs_up_while_the_agent_rings() -> None:
    engine, _ = make(strategy="ring_all", agents={"alice": {}, "bob": {}})
    engine.enqueue("c", "q")
    engine.tick()
    out = engine.caller_gone("c")
    assert sorted(a.agent for a in out if isinstance(a, Cancel)) == ["alice", "bob"]
    assert CallClosed("c", "abandoned") in out
    assert all(a.state is AgentState.ready for a in engine.agents.values())


def test_agent_state_rules() -> None:
    engine, _ = make(agents={"alice": {}})
    engine.enqueue("c", "q")
    engine.tick()
    take(engine, "c", "alice")
    with pytest.raises(StateError):
        engine.agent_action("alice", "logout")
    with pytest.raises(KeyError):
        engine.agent_action("nobody", "ready")
    engine.ended("c")
    engine.agent_action("alice", "ready")  # ends the wrap-up early
    assert engine.agents["alice"].state is AgentState.ready


def test_agent_going_away_while_ringing_releases_the_call() -> None:
    engine, _ = make(agents={"alice": {}, "bob": {}})
    engine.enqueue("c", "q")
    assert offered_to(engine.tick()) == ["alice"]
    out = engine.agent_action("alice", "away")
    assert Cancel("c", "alice", "agent_away") in out
    assert offered_to(engine.tick()) == ["bob"]


# -- callbacks and persistence ----------------------------------------------------------------
def test_callback_keeps_the_place_and_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "ivr.sqlite"
    store = AcdStore(db)
    clock = Clock()
    engine, _ = make(agents={"alice": {}}, clock=clock, store=store, login=False)
    engine.agent_action("alice", "away")
    engine.enqueue("first", "q", handoff={"caller": "+15550001"})
    clock.advance(5)
    engine.enqueue("second", "q", handoff={"caller": "+15550002"})
    out = engine.to_callback("first", "+15550001")
    assert out == [CallbackScheduled("first", 1)]
    clock.advance(600)
    assert engine.tick() == []  # a callback never times out nor overflows
    store.close()

    # the supervisor is killed; a new engine over the same SQLite
    store2 = AcdStore(db)
    clock.advance(30)
    engine2, _ = make(agents={"alice": {}}, clock=clock, store=store2, login=False)
    assert set(engine2.waiting) == {"first", "second"}
    assert engine2.waiting["first"].callback == "+15550001"
    assert engine2.position("first")[0] == 1  # type: ignore[index]
    assert engine2.agents["alice"].state is AgentState.away  # presence survived too
    engine2.agent_action("alice", "ready")
    out = engine2.tick()
    (o,) = offers(out)
    assert (o.call_id, o.agent, o.callback) == ("first", "alice", True)
    assert engine2.context("first")["caller"] == "+15550001"  # type: ignore[index]
    store2.close()


def test_resync_keeps_the_original_place() -> None:
    engine, clock = make(agents={"alice": {}})
    engine.agent_action("alice", "away")
    engine.enqueue("b", "q", since=clock.now - 100)  # a worker re-sends after a restart
    engine.enqueue("a", "q")
    assert engine.position("b")[0] == 1  # type: ignore[index]
    again = engine.enqueue("b", "q", reply_to="ivr/acd/reply/w2")
    assert isinstance(again[0], Queued) and again[0].position == 1
    assert engine.waiting["b"].reply_to == "ivr/acd/reply/w2"


def test_from_config_and_runtime_queue() -> None:
    config = EngineConfig.model_validate({
        "queues": {"general": {"strategy": "round_robin", "wrap_up": "5s", "max_wait": "2m"}},
        "agents": {"alice": {"uri": "sip:alice@127.0.0.1:5071", "queues": ["general"],
                             "skills": {"banking": 5}}}})
    engine = Engine.from_config(config, clock=Clock())
    assert engine.queues["general"].strategy == "round_robin"
    assert engine.queues["general"].max_wait == 120
    assert engine.agents["alice"].state is AgentState.logged_out
    engine.add_queue("vip", QueuePolicy.from_json({"strategy": "ring_all", "wrap_up": "3s"}))
    engine.add_agent(Agent("zed", queues=["vip"]))
    engine.agent_action("zed", "login")
    assert isinstance(engine.enqueue("c", "vip")[0], Queued)
    assert offered_to(engine.tick()) == ["zed"]
    with pytest.raises(ValueError):
        QueuePolicy.from_json({"strategy": "random"})


def test_a_callback_the_caller_did_not_pick_up_is_reported_as_such() -> None:
    engine, _ = make(agents={"alice": {}})
    engine.agent_action("alice", "away")
    engine.enqueue("c1", "q")
    engine.to_callback("c1", "+15550001")
    engine.agent_action("alice", "ready")
    (o,) = offers(engine.tick())
    assert o.callback
    engine.answered("c1", "alice", o.attempt)
    out = engine.ended("c1", "callback_unanswered")
    assert CallClosed("c1", "callback_unanswered", "alice") in out
    assert engine.agents["alice"].state is AgentState.wrap_up
