"""The RTP inactivity check (`sip.media_timeout`): which calls are reaped, from packet counts
sampled over a fake clock; and the worker's watch task over fake calls (no pjsua2 endpoint)."""

from __future__ import annotations

import asyncio
from typing import Any

import pjsua2 as pj
import pytest

from ivr.config import SipSettings
from ivr.sip.media import MediaRegistry
from ivr.sip.media_watch import InactivityTracker, MediaWatch, check_interval
from ivr.sip.session import CallSession


def feed(tracker: InactivityTracker, samples: list[tuple[float, int | None]],
         key: str = "c") -> list[tuple[float, float]]:
    """(time, idle seconds) of every sample that said 'reap'."""
    out = []
    for now, count in samples:
        idle = tracker.observe(key, now, count)
        if idle is not None:
            out.append((now, idle))
    return out


def test_a_caller_sending_rtp_is_never_reaped() -> None:
    tracker = InactivityTracker(timeout=2.0)
    assert feed(tracker, [(t * 0.5, 25 * t) for t in range(100)]) == []


def test_silence_is_reaped_once_at_the_timeout_after_the_last_packet() -> None:
    tracker = InactivityTracker(timeout=2.0)
    # packets until t=3, then the count stops moving: reaped at t=5, and only once
    samples: list[tuple[float, int | None]] = [(t * 0.5, min(25 * t, 150)) for t in range(20)]
    assert feed(tracker, samples) == [(5.0, 2.0)]


def test_a_caller_that_never_sends_is_reaped_the_timeout_after_answer() -> None:
    tracker = InactivityTracker(timeout=2.0)
    assert feed(tracker, [(10.0 + t * 0.5, 0) for t in range(8)]) == [(12.0, 2.0)]


def test_hold_stops_the_clock_and_unhold_restarts_it() -> None:
    tracker = InactivityTracker(timeout=2.0)
    # silent from t=0; on hold (None) from t=1 to t=30; back to sendrecv but silent
    samples: list[tuple[float, int | None]] = [(0.0, 7), (0.5, 7), (1.0, None)]
    samples += [(1.0 + t, None) for t in range(30)]
    samples += [(31.0, 7), (32.0, 7), (33.0, 7), (34.0, 7)]
    assert feed(tracker, samples) == [(33.0, 2.0)]


def test_a_new_stream_counting_from_zero_is_activity() -> None:
    tracker = InactivityTracker(timeout=2.0)
    # a re-INVITE recreated the stream: the count drops, which is a change, not silence
    assert feed(tracker, [(0.0, 500), (1.5, 500), (2.0, 0), (3.5, 0)]) == []


def test_zero_disables_and_ended_calls_are_forgotten() -> None:
    assert feed(InactivityTracker(timeout=0.0), [(t, 0) for t in range(100)]) == []
    tracker = InactivityTracker(timeout=2.0)
    tracker.observe("a", 0.0, 1)
    tracker.observe("b", 0.0, 1)
    tracker.keep_only(["b"])
    assert len(tracker) == 1


def test_the_check_interval_bounds_the_lateness() -> None:
    assert check_interval(30.0) == 1.0
    assert check_interval(2.0) == 0.5
    assert check_interval(0.1) == 0.2


def test_the_setting_is_a_duration_defaulting_to_30s() -> None:
    assert SipSettings().media_timeout == 30.0
    assert SipSettings(media_timeout="2s").media_timeout == 2.0
    assert SipSettings(media_timeout=0).media_timeout == 0.0
    with pytest.raises(ValueError):
        SipSettings(media_timeout="soon")


class FakeCall:
    """What the watch and a hangup touch of a pjsua2 Call."""

    def __init__(self, counts: list[int | None] | None = None, error: bool = False) -> None:
        self.counts = counts or []
        self.error = error
        self.hangups = 0

    def hangup(self, op: Any) -> None:
        self.hangups += 1


def sample(call: FakeCall) -> int | None:
    if call.error:
        raise pj.Error()
    return call.counts.pop(0) if len(call.counts) > 1 else call.counts[0]


def session(call_id: str, call: FakeCall, answered: bool = True) -> CallSession:
    s = CallSession(loop=asyncio.get_running_loop(), registry=MediaRegistry(), call_id=call_id,
                    info={}, call=call)
    if answered:
        s.confirmed.set()
    return s


async def test_the_watch_reaps_only_silent_answered_calls_and_says_why() -> None:
    now = [0.0]
    silent, talking, ringing = FakeCall([3]), FakeCall(list(range(0, 1000, 50))), FakeCall([0])
    gone = FakeCall(error=True)  # its media is going away: not expected, never reaped
    sessions = {"silent": session("silent", silent), "talking": session("talking", talking),
                "ringing": session("ringing", ringing, answered=False),
                "gone": session("gone", gone)}
    reaped: list[tuple[str, float]] = []

    def on_timeout(s: CallSession, idle: float) -> None:
        reaped.append((s.call_id, idle))
        s.end_for("media timeout")

    watch = MediaWatch(2.0, sessions, on_timeout, sample=sample, clock=lambda: now[0])  # type: ignore[arg-type]
    for step in range(10):
        now[0] = step * 0.5
        watch.check()
    assert reaped == [("silent", 2.0)]
    s = sessions["silent"]
    assert (silent.hangups, s.ended_for, s.hung_up_by) == (1, "media timeout", "ivr")
    assert talking.hangups == ringing.hangups == gone.hangups == 0
    del sessions["talking"]
    watch.check()
    assert len(watch.tracker) == 2  # silent and gone; talking ended, ringing never sampled


async def test_the_watch_task_runs_on_the_loop_and_stops_cleanly() -> None:
    call = FakeCall([5])
    done = asyncio.Event()
    sessions = {"x": session("x", call)}
    watch = MediaWatch(0.4, sessions, lambda s, idle: done.set(), sample=sample)  # type: ignore[arg-type]
    watch.start()
    try:
        await asyncio.wait_for(done.wait(), 3.0)
    finally:
        await watch.stop()
    assert watch._task is None
    disabled = MediaWatch(0.0, sessions, lambda s, idle: None)
    disabled.start()
    assert disabled._task is None
