"""A held key is one key press, however pjmedia splits it (RFC 4733 long-duration events)."""

from __future__ import annotations

from ivr.sip.dtmf_events import KeyPresses

MAX_MS = 0xFFFF // 8  # one segment's longest duration at 8 kHz (8191 ms)


def _press(keys: KeyPresses, digit: str, ts: int, held_ms: int, *, end: bool = True,
           step_ms: int = 50) -> int:
    """pjmedia's events for one segment: new, updates, then the end (if `end`); keys counted."""
    counted = int(keys.new_press(digit, ts, step_ms, update=False, end=False))
    for d in range(2 * step_ms, held_ms + 1, step_ms):
        counted += keys.new_press(digit, ts, d, update=True, end=False)
    if end:
        counted += keys.new_press(digit, ts, held_ms, update=True, end=True)
    return counted


def test_a_short_press_counts_once() -> None:
    keys = KeyPresses()
    assert _press(keys, "5", 1000, 120) == 1


def test_a_key_held_across_rfc4733_segments_counts_once() -> None:
    keys = KeyPresses()
    counted = _press(keys, "5", 1000, MAX_MS, end=False)
    counted += _press(keys, "5", 1000 + MAX_MS, MAX_MS, end=False)  # the second segment
    counted += _press(keys, "5", 1000 + 2 * MAX_MS, 1500)  # the last one ends the key
    assert counted == 1


def test_a_duration_that_wraps_under_one_timestamp_counts_once() -> None:
    keys = KeyPresses()
    counted = _press(keys, "7", 4000, MAX_MS, end=False)
    counted += _press(keys, "7", 4000, 900)  # duration wrapped past 0xFFFF: "new" to pjmedia
    assert counted == 1


def test_the_same_key_pressed_again_counts_twice() -> None:
    keys = KeyPresses()
    assert _press(keys, "1", 1000, 2500) + _press(keys, "1", 1000 + 2800, 100) == 2


def test_a_press_after_a_lost_end_counts_when_it_starts_later() -> None:
    keys = KeyPresses()
    first = _press(keys, "1", 1000, 200, end=False)  # its end packets never arrived
    assert first + _press(keys, "1", 1000 + 200 + 400, 100) == 2


def test_another_key_right_after_counts() -> None:
    keys = KeyPresses()
    assert _press(keys, "1", 1000, 300, end=False) + _press(keys, "2", 1300, 100) == 2


def test_sip_info_keys_each_count() -> None:
    """dtmf-relay INFOs arrive as single ended events stamped with the arrival time."""
    keys = KeyPresses()
    assert sum(keys.new_press("4", 5000, 250, update=False, end=True) for _ in range(3)) == 3
