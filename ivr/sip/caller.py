"""`ivr call`: a real SIP test call that sends DTMF and speech and hears the IVR's prompts.

One pjsua2 endpoint (UAC) on the loop, one duplex Python conference port per call: the clock thread
appends received frames to a locked buffer and pulls outgoing speech from another, paced by the
media clock itself (no sleeps per packet). Turn-taking: before each action the caller waits until
the IVR has been quiet for a moment after speaking, as a person would.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pjsua2 as pj

from ivr.sip.legs import header_vector
from ivr.sip.media import first_of
from ivr.sip.pj import (
    CODEC_PRIORITIES,
    Endpoint,
    EndpointConfig,
    active_audio,
    audio_format,
    guard,
    vec_bytes,
)
from ivr.speech.audio import read_wav, resample, write_wav
from ivr.speech.prompt_match import find_prompts
from ivr.speech.tts import PromptCache, Voice

RATE = 8000
FRAME = RATE // 50 * 2  # bytes in 20 ms
QUIET_LEVEL = 200.0  # RMS (int16) below which a frame is silence
QUIET_AFTER = 0.7  # seconds of quiet after speech that end the IVR's turn
PATIENCE = 2.5
"""Seconds of quiet after which a turn ends even if a prompt the script expects was not heard
(it may not come, or not be recognised as it plays): the flows' noinput timeouts are longer."""
LISTEN_EVERY = 0.4  # seconds between looks for the expected prompts in what came in


@dataclass
class Action:
    kind: str  # dtmf | say | play | silence | hangup | barge
    value: str = ""
    at: float = 0.0
    """barge: speak `value` this many seconds after the answer, whatever the IVR is doing (the
    other actions wait for the IVR's turn to end, as a polite caller would)."""
    after: list[list[tuple[str, np.ndarray]]] = field(default_factory=list)
    """Prompts the IVR says before this action (a script's expect_prompt steps), each as the
    rendered audio of the catalogue prompts it may be: the turn ends once each was heard, so
    a gap between two prompts on a busy IVR is not taken for the end of its turn."""


class DuplexPort(pj.AudioMediaPort):  # type: ignore[misc]
    """Receives the IVR's audio and sends ours; callbacks run on the media clock thread."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.rx = bytearray()
        self.tx = bytearray()
        self.last_voice = 0.0
        self.voice_seen = False

    @guard
    def onFrameReceived(self, frame: Any) -> None:
        if frame.type != pj.PJMEDIA_FRAME_TYPE_AUDIO or not frame.size:
            return
        data = vec_bytes(frame.buf)
        samples = np.frombuffer(data, dtype="<i2")
        loud = samples.size > 0 and float(np.sqrt(np.mean(samples.astype(np.float32) ** 2))) > QUIET_LEVEL
        with self.lock:
            self.rx += data
            if loud:
                self.last_voice = time.monotonic()
                self.voice_seen = True

    @guard
    def onFrameRequested(self, frame: Any) -> None:
        with self.lock:
            chunk = bytes(self.tx[:FRAME])
            del self.tx[:FRAME]
        if chunk:
            frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
            frame.buf = pj.ByteVector(chunk.ljust(FRAME, b"\0"))
            frame.size = FRAME
        else:
            frame.type = pj.PJMEDIA_FRAME_TYPE_NONE
            frame.size = 0

    def send(self, pcm: bytes) -> float:
        with self.lock:
            self.tx += pcm
            return len(self.tx) / (2 * RATE)


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, account: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(account)
        self.loop = loop
        self.confirmed = asyncio.Event()
        self.media = asyncio.Event()
        self.gone = asyncio.Event()
        self.aud: Any = None
        self.code = 0
        self.reason = ""
        self.local_hangup = False
        self.transfer: dict[str, Any] | None = None
        self.codec: str | None = None
        self.keep: _Call | None = self

    @guard
    def onCallState(self, prm: Any) -> None:
        ci = self.getInfo()
        self.code, self.reason = ci.lastStatusCode, ci.lastReason
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.confirmed.set()
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.aud = None
            self.gone.set()
            self.keep = None  # the last reference goes inside the callback (pjsua reuses ids)

    @guard
    def onCallMediaState(self, prm: Any) -> None:
        aud = active_audio(self)
        if aud is not None:
            self.aud = aud
            self.codec = _codec_of(self)
            self.media.set()

    @guard
    def onCallTransferRequest(self, prm: Any) -> None:
        headers = {}
        with contextlib.suppress(Exception):
            for line in str(prm.opt.txOption.headers).splitlines():
                name, _, value = line.partition(":")
                headers[name.strip()] = value.strip()
        self.transfer = {"target": str(prm.dstUri), "headers": headers}
        prm.statusCode = 202  # accept, then end our side: the test caller does not follow it


def _codec_of(call: Any) -> str | None:
    """The negotiated audio codec, as `NAME/CLOCK` (G722/16000, PCMU/8000)."""
    ci = call.getInfo()
    for mi in ci.media:
        if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
            si = call.getStreamInfo(mi.index)
            return f"{si.codecName}/{si.codecClockRate}"
    return None


def codec_priorities(preferred: str | None) -> dict[str, int] | None:
    """The endpoint's codec order with `preferred` (e.g. G722, PCMA) offered first."""
    if not preferred:
        return None
    order = [c for c in CODEC_PRIORITIES if not c.upper().startswith(preferred.upper() + "/")]
    first = [c for c in CODEC_PRIORITIES if c not in order]
    if not first:
        raise ValueError(f"unknown codec {preferred!r} (one of "
                         f"{', '.join(c.split('/')[0] for c in CODEC_PRIORITIES)})")
    return {c: 255 - i for i, c in enumerate(first + order)}


@dataclass
class CallReport:
    call_id: str = ""
    answered_ms: int | None = None
    codec: str | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)
    transfer: dict[str, Any] | None = None
    end: dict[str, Any] = field(default_factory=dict)
    audio: bytes = b""
    marks: list[int] = field(default_factory=list)
    """Position in the received audio (ms) at which each action started."""


class TestCaller:
    """Places one call; run actions; returns what happened and the audio heard."""

    def __init__(self, uri: str, *, local_port: int = 0, timeout: float = 60.0,
                 tts: Voice | None = None, cache_dir: Path | None = None,
                 voice: Voice | None = None, codec: str | None = None,
                 headers: dict[str, str] | None = None, listen_after: float = 15.0,
                 say_language: str = "en-US") -> None:
        """`tts`: the IVR's voice (to recognise its prompts); `voice`: the caller's (default:
        the same); `codec`: offered first (G722, PCMU, PCMA); `headers`: extra INVITE headers
        (e.g. X-IVR-Test); `listen_after`: how long the caller listens after its last action (4 s
        of quiet or the IVR's hangup end it); `say_language`: the language the caller speaks
        (`voice` is for English: flite has English voices only; another language is spoken
        with the IVR's voice for it)."""
        self.uri = uri
        self.say_language = say_language
        self.codecs = codec_priorities(codec)
        self.listen_after = listen_after
        self.headers = dict(headers or {})
        self.local_port = local_port
        self.timeout = timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="ivr-call-")
        key = None if cache_dir else Path(self._tmp.name) / "cache.key"  # gone with the temp dir
        self.cache = PromptCache(cache_dir or Path(self._tmp.name), tts or Voice(), RATE,
                                 key_file=key)
        self.voice_cache = self.cache if voice is None else PromptCache(self.cache.root, voice, RATE,
                                                                        key_file=key)

    def speech_pcm(self, text: str) -> bytes:
        """What the caller says, in the caller's voice (see `say_language`)."""
        english = self.say_language.lower().startswith("en")
        cache = self.voice_cache if english else self.cache
        return read_wav(cache.render_sync(text, self.say_language))[0].astype("<i2").tobytes()

    @staticmethod
    def wav_pcm(path: Path) -> bytes:
        samples, rate = read_wav(path)
        return resample(samples, rate, RATE).astype("<i2").tobytes()

    async def run(self, actions: Sequence[Action],
                  on_turn: Callable[[int], None] | None = None) -> CallReport:
        """Call, perform the actions in turn, then listen until the far end hangs up."""
        loop = asyncio.get_running_loop()
        ep = Endpoint(EndpointConfig(port=self.local_port, clock_rate=RATE, user_agent="ivr-call",
                                     codecs=self.codecs, lossless_jitter=True))
        ep.start()
        ep.start_pump()
        account = pj.Account()
        account.create(ep.account_config("ivr-call"))
        report = CallReport()
        call: _Call | None = _Call(account, loop)
        port: DuplexPort | None = DuplexPort()
        t0 = time.monotonic()
        try:
            assert call is not None and port is not None
            invite = pj.CallOpParam(True)
            if self.headers:
                invite.txOption.headers = header_vector(self.headers)
            call.makeCall(self.uri, invite)
            report.call_id = str(call.getInfo().callIdString)
            await self._wait_any([call.media, call.gone], 15.0)
            if call.gone.is_set() or not call.media.is_set():
                report.end = {"by": "remote", "cause": f"{call.code} {call.reason}".strip(),
                              "at_ms": _ms(t0)}
                return report
            # listen from the first packet: an IVR greets as soon as it answers, and a prompt
            # that lost its start is heard as a different one
            port.createPort("ivr-call", audio_format(RATE))
            linked = call.aud
            linked.startTransmit(port)
            port.startTransmit(linked)
            await self._wait_any([call.confirmed, call.gone], 5.0)
            if call.aud is not None and call.aud.getPortId() != linked.getPortId():
                # the answer renegotiated the media (early media, then 200 OK): listen and
                # speak on the stream that carries the call now
                call.aud.startTransmit(port)
                port.startTransmit(call.aud)
            report.answered_ms = _ms(t0)
            report.codec = call.codec
            deadline = t0 + self.timeout
            answered = time.monotonic()
            since = 0
            for i, action in enumerate(actions):
                if action.kind == "barge":
                    await self._wait_any([call.gone], max(0.0, answered + action.at - time.monotonic()))
                else:
                    await self._ivr_turn(call, port, deadline, expect=action.after,
                                         since=since)
                if call.gone.is_set():
                    break
                if on_turn:
                    on_turn(i)
                at = _ms(t0)
                with port.lock:
                    since = len(port.rx)  # the IVR's answer to this action comes after it
                report.marks.append(since * 1000 // (2 * RATE))
                if action.kind == "dtmf":
                    prm = pj.CallSendDtmfParam()
                    prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
                    prm.digits = action.value
                    prm.duration = 160
                    call.sendDtmf(prm)
                    report.sent.append({"at_ms": at, "dtmf": action.value})
                    await asyncio.sleep(0.25 * len(action.value))
                elif action.kind in ("say", "play", "barge"):
                    pcm = (self.wav_pcm(Path(action.value)) if action.kind == "play"
                           else self.speech_pcm(action.value))
                    seconds = port.send(pcm + b"\0" * (RATE // 5 * 2))
                    report.sent.append({"at_ms": at, "speech": action.value})
                    await self._wait_any([call.gone], seconds + 0.1)
                    with port.lock:
                        port.voice_seen = False
                elif action.kind == "silence":
                    report.sent.append({"at_ms": at, "silence": True})
                    with port.lock:
                        port.voice_seen = False
                    await self._wait_any([call.gone], 7.0)
                elif action.kind == "hangup":
                    break
            if not (actions and actions[-1].kind == "hangup"):
                await self._ivr_turn(call, port, deadline, final=True)
            if call.transfer:
                report.transfer = call.transfer
            if not call.gone.is_set():
                call.local_hangup = True
                with contextlib.suppress(pj.Error):
                    call.hangup(pj.CallOpParam())
                await self._wait_any([call.gone], 3.0)
            report.end = {"by": "local" if call.local_hangup else "remote",
                          "cause": f"{call.code} {call.reason}".strip(), "at_ms": _ms(t0)}
            with port.lock:
                report.audio = bytes(port.rx)
            return report
        finally:
            with contextlib.suppress(pj.Error):
                ep.ep.hangupAllCalls()
            for _ in range(40):
                if call is None or call.gone.is_set():
                    break
                await asyncio.sleep(0.05)
            call = None
            with contextlib.suppress(pj.Error):
                ep.ep.audDevManager().setNoDev()  # stop the clock thread before the port goes
            port = None
            await ep.stop_pump()
            account.shutdown()
            del account
            gc.collect()
            ep.destroy()
            self._tmp.cleanup()

    async def _ivr_turn(self, call: _Call, port: DuplexPort, deadline: float,
                        final: bool = False,
                        expect: Sequence[Sequence[tuple[str, np.ndarray]]] = (),
                        since: int = 0) -> None:
        """Wait until the IVR spoke and then went quiet (or hung up, or time ran out); with
        `expect`, until each expected prompt was heard in what came in from byte `since` on,
        or it stayed quiet PATIENCE s."""
        limit = min(deadline, time.monotonic() + (self.listen_after if final else 20.0))
        quiet = 4.0 if final else QUIET_AFTER  # at the end, let the IVR finish and hang up
        waiting = [list(group) for group in expect if group]
        looked = 0.0
        while not call.gone.is_set() and time.monotonic() < limit:
            now = time.monotonic()
            if waiting and now - looked >= LISTEN_EVERY:
                looked = now
                with port.lock:
                    heard = bytes(port.rx[since:])
                waiting = await asyncio.to_thread(_still_unheard, heard, waiting)
            with port.lock:
                spoke, last = port.voice_seen, port.last_voice
            if spoke and now - last >= (PATIENCE if waiting else quiet):
                with port.lock:
                    port.voice_seen = False
                return
            await asyncio.sleep(0.05)

    @staticmethod
    async def _wait_any(events: list[asyncio.Event], timeout: float) -> None:
        await first_of(*events, timeout=timeout)


def _still_unheard(heard: bytes, waiting: list[list[tuple[str, np.ndarray]]]
                   ) -> list[list[tuple[str, np.ndarray]]]:
    """The expected prompts (each a group of alternatives) not found in `heard` yet."""
    samples = np.frombuffer(heard, dtype="<i2")
    found = {f.text for f in find_prompts(samples, [c for group in waiting for c in group])}
    return [group for group in waiting if not any(text in found for text, _ in group)]


def _ms(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)


def save_audio(path: Path, pcm: bytes) -> None:
    write_wav(path, np.frombuffer(pcm, dtype="<i2"), RATE)
