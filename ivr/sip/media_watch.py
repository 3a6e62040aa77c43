"""Reap calls whose caller went silent: no RTP for `sip.media_timeout` (Asterisk's rtptimeout,
FreeSWITCH's media_timeout).

A caller that gives up without a BYE (a crashed phone, a lost NAT binding, a load generator that
failed) would otherwise hold one of the worker's few pjsua2 call slots until the flow ends, which
in a queue may be never. The measure is the RTP packet count of the call's audio stream
(`Call.getStreamStat(i).rtcp.rxStat.pkt`: audio and RFC 4733 events alike, counted by pjmedia's
own thread): a caller waiting in a queue or bridged to an agent still sends RTP, so only a peer
that really went silent stops it. A stream whose SDP direction is not sendrecv (the caller holds
with `a=sendonly` or `a=inactive`, or offered `a=recvonly`) is not expected to send, so its clock
starts again when it comes back to sendrecv.

`InactivityTracker` decides from samples alone (unit-tested with a fake clock); `MediaWatch` is the
worker's one periodic task that samples pjsua2 on the loop thread (pjsua2's main thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pjsua2 as pj

from ivr.sip.session import CallSession

log = logging.getLogger("ivr.sip.media")

REASON = "media timeout"
"""The end reason in the CDR and in the `call.end` event of a reaped call."""


def check_interval(timeout: float) -> float:
    """Seconds between samples: a quarter of the timeout, within 0.2..1 s. A call is reaped at
    most one interval after `timeout` seconds without a packet."""
    return min(1.0, max(0.2, timeout / 4))


@dataclass
class _Track:
    count: int | None
    since: float
    """When the count last changed, or RTP was last not expected."""
    reaped: bool = False


class InactivityTracker:
    """Which calls have received no RTP for `timeout` seconds, from samples of their packet
    counts. Pure: the caller supplies the clock and the counts."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._tracks: dict[str, _Track] = {}

    def observe(self, key: str, now: float, count: int | None) -> float | None:
        """Record a sample; the seconds without RTP when `key` is due to be reaped (once), else
        None. `count` None means RTP is not expected now (on hold, no stream): the clock restarts.
        Any change of the count is activity (a re-INVITE may recreate the stream at 0)."""
        track = self._tracks.get(key)
        if track is None or count is None or count != track.count:
            reaped = track.reaped if track is not None else False
            self._tracks[key] = _Track(count, now, reaped)
            return None
        idle = now - track.since
        if track.reaped or self.timeout <= 0 or idle < self.timeout:
            return None
        track.reaped = True
        return idle

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget calls that are gone."""
        live = set(keys)
        for key in [k for k in self._tracks if k not in live]:
            del self._tracks[key]

    def __len__(self) -> int:
        return len(self._tracks)


def rx_packets(call: Any) -> int | None:
    """RTP packets received on the call's first audio stream; None when none is expected: no
    active stream, or a direction other than sendrecv (pjsua reports a caller's a=sendonly as
    REMOTE_HOLD with our side recvonly; a=inactive leaves no direction at all)."""
    ci = call.getInfo()  # keep the CallInfo alive while reading its media vector
    for mi in ci.media:
        if mi.type != pj.PJMEDIA_TYPE_AUDIO:
            continue
        if mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE or mi.dir != pj.PJMEDIA_DIR_ENCODING_DECODING:
            return None
        return int(call.getStreamStat(mi.index).rtcp.rxStat.pkt)
    return None


class MediaWatch:
    """The worker's media inactivity check: one task, started with the pjsua2 endpoint and
    stopped before it is destroyed. Samples answered calls every `check_interval` and hands a
    silent one to `on_timeout(session, idle seconds)`, which hangs it up."""

    def __init__(self, timeout: float, sessions: Mapping[str, CallSession],
                 on_timeout: Callable[[CallSession, float], None],
                 sample: Callable[[Any], int | None] = rx_packets,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tracker = InactivityTracker(timeout)
        self.sessions = sessions
        self.on_timeout = on_timeout
        self.sample = sample
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.tracker.timeout > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        interval = check_interval(self.tracker.timeout)
        while True:
            await asyncio.sleep(interval)
            try:
                self.check()
            except Exception:  # a bad sample must not end the watch for every call
                log.exception("media inactivity check failed")

    def check(self) -> None:
        """One round: sample every answered call, reap the ones silent for too long."""
        now = self.clock()
        for call_id, session in list(self.sessions.items()):
            if session.call is None or session.gone.is_set() or not session.confirmed.is_set():
                continue
            try:
                count = self.sample(session.call)
            except pj.Error:
                count = None  # the call is going away, or its media is being renegotiated
            idle = self.tracker.observe(call_id, now, count)
            if idle is not None:
                self.on_timeout(session, idle)
        self.tracker.keep_only(self.sessions)
