"""pjsua2 set-up shared by the worker (UAS) and `ivr call` (UAC).

Rules learned the hard way (see the notes in each helper):
- `threadCnt=0, mainThreadOnly=True`: SIP and DTMF callbacks then run inside `libHandleEvents`,
  which we call from the asyncio loop, so call logic never needs a lock.
- Frame callbacks and `onEof2` run on the null sound device's clock thread: they only hand data
  over (`loop.call_soon_threadsafe`, locked buffers).
- An exception escaping a director callback keeps the object alive past `libDestroy` and the
  process aborts at exit: every callback is wrapped by `guard`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import resource
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pjsua2 as pj

from ivr import log as logs

log = logging.getLogger("ivr.sip")

F = TypeVar("F", bound=Callable[..., Any])

FAST_POLL = 0.005
ACTIVE_AFTER_PACKET = 0.1
"""Seconds of FAST_POLL after a SIP packet: its transaction's next steps (see start_pump)."""

CODEC_PRIORITIES = {"PCMU/8000/1": 255, "PCMA/8000/1": 254, "G722/16000/1": 253}
"""G.711 first (every trunk has it), G.722 for wideband peers; the rest (speex first by
default in this wheel, iLBC, GSM) disabled."""


def guard(fn: F) -> F:
    """Never let an exception escape a pjsua2 director callback (see module doc). A call's
    callback (its director has a `session`) logs with the call's id."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call_id = getattr(getattr(args[0], "session", None), "call_id", None) if args else None
        token = logs.call_id.set(call_id) if isinstance(call_id, str) else None
        try:
            return fn(*args, **kwargs)
        except BaseException:
            log.exception("pjsua2 callback %s failed", fn.__name__)
            return None
        finally:
            if token is not None:
                logs.call_id.reset(token)

    return wrapper  # type: ignore[return-value]


def vec_bytes(vec: Any) -> bytes:
    """ByteVector to bytes in ~3 us (bytes(vec) walks it element by element: ~210 us).

    Relies on libstdc++'s std::vector layout {begin, end, cap}, true for the manylinux wheel.
    """
    p = ctypes.cast(int(vec.this), ctypes.POINTER(ctypes.c_void_p))
    begin, end = p[0], p[1]
    return ctypes.string_at(begin, end - begin) if begin else b""


class _LogWriter(pj.LogWriter):  # type: ignore[misc]
    def write(self, entry: Any) -> None:
        msg = str(entry.msg).rstrip()
        if msg:
            log.debug("pjsip: %s", msg)


@dataclass
class EndpointConfig:
    port: int
    host: str = "127.0.0.1"
    clock_rate: int = 8000
    max_calls: int = 4
    user_agent: str = "ivr"
    log_level: int = 1
    codecs: dict[str, int] | None = None
    lossless_jitter: bool = False
    """Keep every frame that arrives, however late (a test caller that hears a call after it
    ends): pjmedia's default jitter buffer drops frames to keep latency low when a busy sender
    bursts, which shifts a prompt out of step with its rendering (ivr.speech.prompt_match)."""


LOSSLESS_JB_MAX_MS = 4000
"""How much late audio a lossless jitter buffer holds before it must drop some."""


def active_audio(call: Any) -> Any:
    """A call's active audio media now (after answer, unhold or a re-INVITE), or None."""
    ci = call.getInfo()  # keep the CallInfo: `call.getInfo().media` reads freed memory
    for mi in ci.media:
        if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
            return call.getAudioMedia(mi.index)
    return None


def audio_format(rate: int) -> Any:
    fmt = pj.MediaFormatAudio()
    fmt.type = pj.PJMEDIA_TYPE_AUDIO
    fmt.clockRate = rate
    fmt.channelCount = 1
    fmt.bitsPerSample = 16
    fmt.frameTimeUsec = 20000
    return fmt


def raise_fd_limit(calls: int) -> None:
    """Each call holds two RTP/RTCP sockets and a recognizer pipe or two: lift the soft limit on
    open files to the hard one, so hundreds of calls do not fail at 1024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 16 * calls + 256)
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if 8 * calls + 256 > max(soft, want):
        log.warning("open-file limit %d is low for %d calls", max(soft, want), calls)


def udp_socket_fd(port: int) -> int | None:
    """The fd of this process's UDP socket bound to `port` (pjsua2 does not expose it): the
    socket inodes under /proc/self/fd matched against /proc/net/udp."""
    inodes: dict[str, int] = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{name}")
            if target.startswith("socket:["):
                inodes[target[8:-1]] = int(name)
    with open("/proc/net/udp", encoding="ascii") as fh:
        for line in fh.readlines()[1:]:
            cols = line.split()
            if int(cols[1].rpartition(":")[2], 16) == port and cols[9] in inodes:
                return inodes[cols[9]]
    return None


class Endpoint:
    """One pjsua2 endpoint per process, created and destroyed on the loop's thread."""

    def __init__(self, cfg: EndpointConfig) -> None:
        self.cfg = cfg
        self.ep: Any = None
        self._writer: Any = None
        self._pump: asyncio.Task[None] | None = None
        self._sip_fd: int | None = None
        self._peek: socket.socket | None = None
        """A dup of the SIP socket, to peek at a packet's method (see _keepalive)."""
        self._wake = asyncio.Event()
        self._active_until = 0.0

    def start(self) -> None:
        cfg = self.cfg
        ep = pj.Endpoint()
        # libCreate prints a few lines on stdout before our log writer takes over; stdout may
        # carry JSON (`--json`), so point fd 1 at stderr while it runs.
        saved = os.dup(1)
        try:
            os.dup2(2, 1)
            ep.libCreate()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        ec = pj.EpConfig()
        ec.uaConfig.threadCnt = 0
        ec.uaConfig.mainThreadOnly = True
        ec.uaConfig.maxCalls = cfg.max_calls
        ec.uaConfig.userAgent = cfg.user_agent
        ec.logConfig.level = cfg.log_level
        ec.logConfig.consoleLevel = cfg.log_level
        self._writer = _LogWriter()
        ec.logConfig.writer = self._writer
        ec.medConfig.clockRate = cfg.clock_rate
        ec.medConfig.sndClockRate = cfg.clock_rate
        ec.medConfig.channelCount = 1
        ec.medConfig.ecTailLen = 0
        ec.medConfig.noVad = True
        if cfg.lossless_jitter:
            ec.medConfig.jbDiscardAlgo = pj.PJMEDIA_JB_DISCARD_NONE
            ec.medConfig.jbMax = LOSSLESS_JB_MAX_MS
        ep.libInit(ec)
        ep.audDevManager().setNullDev()
        tc = pj.TransportConfig()
        tc.port = cfg.port
        tc.boundAddress = cfg.host
        tc.publicAddress = cfg.host
        tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
        if cfg.port == 0:  # an ephemeral port: contacts must carry the real one
            cfg.port = int(str(ep.transportGetInfo(tid).localName).rpartition(":")[2])
        ep.libStart()
        priorities = cfg.codecs or CODEC_PRIORITIES
        for codec in ep.codecEnum2():
            ep.codecSetPriority(codec.codecId, priorities.get(codec.codecId, 0))
        self.ep = ep

    def account_config(self, user: str, rtp: tuple[int, int] | None = None, *,
                       srtp: bool = False) -> Any:
        """A local account bound to our transport: no registration; RTP on `rtp` = (first
        port, count), or any free port. With `srtp`, SRTP offers (SDES) are answered with SRTP
        over our plain-UDP SIP hop (no "secure signalling" demanded) and our offers carry keys."""
        host, port = self.cfg.host, self.cfg.port
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{user}@{host}:{port}"
        acfg.regConfig.registerOnAdd = False
        acfg.sipConfig.contactForced = f"<sip:{user}@{host}:{port}>"
        mt = acfg.mediaConfig.transportConfig
        mt.boundAddress = host
        mt.publicAddress = host
        mt.port, mt.portRange = rtp if rtp is not None else (0, 0)
        acfg.natConfig.iceEnabled = False
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.contactRewriteUse = 0
        # an answer naming several codecs (an agent phone's PCMU+PCMA) is used as it is: pjsua's
        # default re-INVITE to lock one codec breaks minimal phones that expect none
        acfg.mediaConfig.lockCodecEnabled = False
        acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_OPTIONAL if srtp else pj.PJMEDIA_SRTP_DISABLED
        acfg.mediaConfig.srtpSecureSignaling = 0
        return acfg

    def start_pump(self, interval: float = FAST_POLL, *, idle: float | None = None,
                   busy: Callable[[], bool] | None = None) -> None:
        """Poll pjsip from the loop. Without `idle`: every `interval`. With it, the SIP socket
        wakes the loop at once (add_reader), then polls every FAST_POLL for ACTIVE_AFTER_PACKET
        (the transaction's next steps), every `interval` while `busy()` (calls up: DTMF and
        other callbacks queued by the media thread wait for a poll; RTP itself is read by
        pjmedia's own thread), else every `idle`.

        Measured (bench/RESULTS.md, 2026-11-23): a worker's loop cost 48 millicores idle at a
        fixed 5 ms poll and 6 at 50 ms, and ~40 per worker (10 per call) in calls at 5 ms.
        """
        if self._pump is not None:
            return
        loop = asyncio.get_running_loop()
        if idle is not None:
            self._sip_fd = udp_socket_fd(self.cfg.port)
            if self._sip_fd is None:
                log.warning("SIP socket not found; polling every %.0f ms", interval * 1000)
                idle = None
            else:
                self._peek = socket.socket(fileno=os.dup(self._sip_fd))
                loop.add_reader(self._sip_fd, self._on_sip_packet)
        self._pump = loop.create_task(self._run_pump(interval, idle, busy or (lambda: True)))

    def _on_sip_packet(self) -> None:
        if not self._keepalive():
            self._active_until = asyncio.get_running_loop().time() + ACTIVE_AFTER_PACKET
        self.handle_events(0)
        self._wake.set()

    def _keepalive(self) -> bool:
        """Whether the waiting packet is an OPTIONS (the front's probe, every few seconds): it is
        answered at once and starts no transaction, so it needs no fast polling after it."""
        if self._peek is None:
            return False
        try:
            return self._peek.recv(8, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"OPTIONS "
        except OSError:
            return False

    async def _run_pump(self, interval: float, idle: float | None, busy: Callable[[], bool]
                        ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.handle_events(0)
            if idle is None:
                await asyncio.sleep(interval)
                continue
            fast = loop.time() < self._active_until
            wait = FAST_POLL if fast else (interval if busy() else idle)
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def stop_pump(self) -> None:
        if self._sip_fd is not None:
            asyncio.get_running_loop().remove_reader(self._sip_fd)
            self._sip_fd = None
        if self._peek is not None:
            self._peek.close()
            self._peek = None
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None

    def handle_events(self, ms: int = 10) -> None:
        try:
            self.ep.libHandleEvents(ms)
        except Exception:
            log.exception("libHandleEvents failed")

    def destroy(self) -> None:
        """Last step of a process: every Call/player/port must be gone before this."""
        if self.ep is not None:
            self.ep.libDestroy()
            self.ep = None
