"""Spans of a call during which its recording must hold silence (a PCI pause).

A flow marks a span private while a sensitive value is collected or read back
(`Channel.private`); the channel that records the call mutes its recording for the span and the
CDR lists the spans. Spans nest (a confirmation prompt that reads the value back inside a
sensitive collect): only the outermost one counts, so the CDR shows one pause per collect.
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


def _monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


@dataclass
class PauseLog:
    """Re-entrant private spans of one call; `on_change(True)` mutes whatever records it."""

    clock_ms: Callable[[], int] = _monotonic_ms
    on_change: Callable[[bool], None] | None = None
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
            self._open = (node, self.clock_ms())

    def leave(self) -> None:
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0:
            self._close()
            if self.on_change is not None:
                self.on_change(False)

    def close(self) -> None:
        """The call (or its recording) ended inside a span: the span ends now."""
        self._depth = 0
        self._close()

    def _close(self) -> None:
        if self._open is not None:
            node, start = self._open
            self.spans.append(Pause(node, start, max(start, self.clock_ms())))
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
