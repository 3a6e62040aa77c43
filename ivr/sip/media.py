"""pjsua2 media objects a call plays through, counted for leak tests, and the waits around them.

`MediaRegistry` counts every live player, recorder, port and leg by kind (leak tests, /health);
`PromptPlayer` wakes the loop at end of file; `play_once` plays a file to one leg only (a whisper).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import TYPE_CHECKING

import pjsua2 as pj

from ivr.sip.pj import guard

if TYPE_CHECKING:
    from ivr.sip.legs import OutboundLeg


async def first_of(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Wait until any event is set (or the timeout); the helper tasks never outlive the wait."""
    tasks = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


class MediaRegistry:
    """Live pjsua2 objects by kind, for leak tests and /health."""

    def __init__(self) -> None:
        self.live: Counter[str] = Counter()
        self.created: Counter[str] = Counter()

    def add(self, kind: str) -> None:
        self.live[kind] += 1
        self.created[kind] += 1

    def remove(self, kind: str) -> None:
        self.live[kind] -= 1

    def snapshot(self) -> dict[str, int]:
        return {k: v for k, v in self.live.items() if v}


class PromptPlayer(pj.AudioMediaPlayer):  # type: ignore[misc]
    """A playlist player whose end of file wakes the loop (onEof2 runs on the clock thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, done: asyncio.Event) -> None:
        super().__init__()
        self._loop = loop
        self._done = done

    @guard
    def onEof2(self) -> None:
        self._loop.call_soon_threadsafe(self._done.set)



async def play_once(loop: asyncio.AbstractEventLoop, registry: MediaRegistry, leg: OutboundLeg,
                    path: str, timeout: float = 15.0) -> None:
    """Play a file to one leg only (a whisper), bounded; the player is gone when this returns."""
    if leg.aud is None:
        return
    done = asyncio.Event()
    player = PromptPlayer(loop, done)
    player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP)
    registry.add("player")
    try:
        player.startTransmit(leg.aud)
        await first_of(done, leg.gone, timeout=timeout)
        if not leg.gone.is_set() and leg.aud is not None:
            with contextlib.suppress(pj.Error):
                player.stopTransmit(leg.aud)
    finally:
        del player
        registry.remove("player")
