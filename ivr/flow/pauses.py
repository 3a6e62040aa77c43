"""Spans of a call during which its recording must hold silence (a PCI pause).

A flow marks a span private while a sensitive value is collected or read back
(`Channel.private`); the channel that records the call mutes its recording for the span and the
CDR lists the spans. Spans nest (a confirmation prompt that reads the value back inside a
sensitive collect): only the outermost one counts, so the CDR shows one pause per collect.

A span may keep the recording silent `tail_ms` after the flow leaves it: a caller's audio reaches
the recording through a jitter buffer, so what the caller said (or an in-band tone a phone sent
with the last key) just before the span ended is still on its way. A span entered within the
tail of the one before extends it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pause:
    """One paused span, in milliseconds from the start of the recording."""

    node: str
    start_ms: int
    end_ms: int

    def as_json(self) -> dict[str, Any]:
        return {"node": self.node, "start_ms": self.start_ms, "end_ms": self.end_ms}


def _since(origin: float) -> Callable[[], int]:
    return lambda: int((time.monotonic() - origin) * 1000)


@dataclass
class PauseLog:
    """Re-entrant private spans of one call; `on_change(True)` mutes whatever records it."""

    clock_ms: Callable[[], int] = field(default_factory=lambda: _since(time.monotonic()))
    """Milliseconds on the recording's time axis (default: since this log was made)."""
    on_change: Callable[[bool], None] | None = None
    """Called with True when a span opens, with False when the flow leaves it (whoever
    records then resumes `tail_ms` later, unless a new span opens first)."""
    tail_ms: int = 0
    spans: list[Pause] = field(default_factory=list)
    _depth: int = 0
    _open: tuple[str, int] | None = None

    @property
    def paused(self) -> bool:
        return self._depth > 0

    def enter(self, node: str) -> None:
        self._depth += 1
        if self._depth == 1:
            # mute before anything of the span can reach the recording
            if self.on_change is not None:
                self.on_change(True)
            now = self.clock_ms()
            last = self.spans[-1] if self.spans else None
            if last is not None and now < last.end_ms:  # still in the last span's tail
                self.spans.pop()
                self._open = (last.node, last.start_ms)
            else:
                self._open = (node, now)

    def leave(self) -> None:
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0:
            self._close()
            if self.on_change is not None:
                self.on_change(False)

    def close(self) -> None:
        """The call (or its recording) ended inside a span: the span ends now, without a tail."""
        self._depth = 0
        self._close(tail=False)

    def _close(self, tail: bool = True) -> None:
        if self._open is not None:
            node, start = self._open
            end = self.clock_ms() + (self.tail_ms if tail else 0)
            self.spans.append(Pause(node, start, max(start, end)))
            self._open = None

    @contextlib.asynccontextmanager
    async def span(self, node: str) -> AsyncIterator[None]:
        self.enter(node)
        try:
            yield
        finally:
            self.leave()

    def as_json(self) -> list[dict[str, Any]]:
        return [p.as_json() for p in self.spans]
