"""The decode pool: a caller who stopped talking is decoded before other callers' pause
guesses, short audio before long, and a guess nobody wants any more is skipped."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError

import pytest

from ivr.sip.decode_pool import FINAL, PAUSE, DecodePool


def test_finals_go_first_then_shorter_audio_and_moot_guesses_are_skipped() -> None:
    pool = DecodePool(threads=1)
    gate = threading.Event()
    order: list[str] = []
    try:
        blocker = pool.submit(gate.wait)  # holds the only thread while the queue fills
        guess_long = pool.submit(lambda: order.append("guess-long"), PAUSE, cost=9000)
        moot = pool.submit(lambda: order.append("moot"), PAUSE, cost=1, still_wanted=lambda: False)
        guess_short = pool.submit(lambda: order.append("guess-short"), PAUSE, cost=100)
        final_long = pool.submit(lambda: order.append("final-long"), FINAL, cost=9000)
        final_short = pool.submit(lambda: order.append("final-short"), FINAL, cost=100)
        gate.set()
        for fut in (blocker, guess_long, guess_short, final_long, final_short):
            fut.result(timeout=5)
        with pytest.raises(CancelledError):
            moot.result(timeout=5)
        assert order == ["final-short", "final-long", "guess-short", "guess-long"]
        assert pool.skipped == 1
    finally:
        pool.shutdown()


def test_a_failed_decode_reaches_its_waiter_and_shutdown_cancels_the_queue() -> None:
    pool = DecodePool(threads=1)
    gate = threading.Event()

    def boom() -> None:
        raise RuntimeError("decoder broke")

    failing = pool.submit(boom)
    with pytest.raises(RuntimeError, match="decoder broke"):
        failing.result(timeout=5)
    started = threading.Event()

    def decode() -> bool:
        started.set()
        return gate.wait()

    running = pool.submit(decode)
    queued = pool.submit(lambda: None)
    assert started.wait(5)
    pool.shutdown()
    gate.set()
    assert running.result(timeout=5) is True
    assert queued.cancelled()
    assert pool.submit(lambda: None).cancelled()  # after shutdown nothing runs
