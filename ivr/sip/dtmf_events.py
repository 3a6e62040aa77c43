"""One key press per held key, however long it is held (RFC 4733 long-duration events).

The duration field of a telephone-event counts 16 bits of RTP clock: at 8 kHz a key held longer
than 8.19 s cannot be described by one event. RFC 4733 (2.5.1.3) has the sender start a new
*segment* (a new timestamp, previous timestamp + 0xFFFF, no marker bit, no E bit before it);
some phones instead let the duration wrap to a small value under the same timestamp. pjmedia
reports either as a new digit, so a held key would be counted twice (or more). This keeps the
key counted once: a "new" event for the same key that follows, without an end in between, right
where the previous segment stopped is its continuation.
"""

from __future__ import annotations

from dataclasses import dataclass

DTMF_IS_UPDATE = 1 << 0
DTMF_IS_END = 1 << 1
"""pjmedia_stream_dtmf_event flags (pjmedia/stream.h; pjsua2 does not export them)."""
SEGMENT_SLACK_MS = 200
"""How far past the last reported duration a continuing segment may start (lost updates)."""


@dataclass
class _Held:
    digit: str
    timestamp_ms: int
    duration_ms: int
    ended: bool


class KeyPresses:
    """Turns a call's DTMF events (pjsua2 `onDtmfEvent`) into key presses."""

    def __init__(self) -> None:
        self._held: _Held | None = None

    def new_press(self, digit: str, timestamp_ms: int, duration_ms: int, *, update: bool,
                  end: bool) -> bool:
        """True when this event is a key press the caller made (count it), False when it
        continues or ends one already counted."""
        held = self._held
        if update:  # pjmedia's update of the current event: never a new press
            if held is not None and held.digit == digit:
                held.duration_ms = max(held.duration_ms, duration_ms)
                held.ended = held.ended or end
            return False
        continues = (
            held is not None and not held.ended and held.digit == digit
            and 0 <= timestamp_ms - held.timestamp_ms <= held.duration_ms + SEGMENT_SLACK_MS
        )
        self._held = _Held(digit, timestamp_ms, duration_ms, end)
        return not continues
