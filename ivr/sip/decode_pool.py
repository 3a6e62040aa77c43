"""A few decode threads that take the most urgent decode first.

A worker's turns submit two kinds of decode: at a short pause, the words so far (a guess that
may end the turn early), and at the end of an utterance, the whole of it (a caller who stopped
talking waits for it). PocketSphinx holds the GIL while it decodes, so under load decodes queue;
in a FIFO a caller who has stopped waits behind other callers' guesses. Here a lower priority
number goes first, then the smaller `cost` (the audio's length: a short menu answer does not
wait behind a long digit string's decode), FIFO among equals; and a decode whose
`still_wanted` says no is skipped when its turn comes (the caller went on talking: a later
pause decodes the longer utterance).
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

FINAL = 0
"""The whole utterance: the caller stopped and waits."""
PAUSE = 1
"""The words so far, at a short pause."""

_Task = tuple[Callable[[], Any], Future[Any], Callable[[], bool] | None]


class DecodePool:
    """`threads` daemon threads over one priority queue; `shutdown` ends them."""

    def __init__(self, threads: int = 2, name: str = "asr-decode") -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, int, _Task | None]] = \
            queue.PriorityQueue()
        self._seq = itertools.count()
        self._threads = [threading.Thread(target=self._run, name=f"{name}_{i}", daemon=True)
                         for i in range(max(1, threads))]
        self._closed = False
        for t in self._threads:
            t.start()
        self.skipped = 0
        """Decodes dropped because nobody wanted them any more (bench, tests)."""

    def submit(self, fn: Callable[[], T], priority: int = FINAL, cost: int = 0,
               still_wanted: Callable[[], bool] | None = None) -> Future[T]:
        """Run `fn` on a decode thread; with `still_wanted` returning False when its turn comes,
        the future is cancelled instead (its callbacks still run)."""
        fut: Future[T] = Future()
        if self._closed:
            fut.cancel()
            fut.set_running_or_notify_cancel()
            return fut
        self._queue.put((priority, cost, next(self._seq), (fn, fut, still_wanted)))
        return fut

    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            *_, task = self._queue.get()
            if task is None:
                return
            fn, fut, still_wanted = task
            if still_wanted is not None and not still_wanted():
                self.skipped += 1
                fut.cancel()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # the waiter sees the decode's failure
                fut.set_exception(exc)

    def shutdown(self) -> None:
        """Queued decodes are cancelled; running ones finish on their own."""
        self._closed = True
        while True:
            try:
                *_, task = self._queue.get_nowait()
            except queue.Empty:
                break
            if task is not None:
                task[1].cancel()
                task[1].set_running_or_notify_cancel()
        for _ in self._threads:
            self._queue.put((-1, 0, next(self._seq), None))
