"""One SIP call on the worker's loop: the pjsua2 Call, its media objects, and its events.

pjsua2 callbacks (on the loop thread, inside `libHandleEvents`) only update state here and set
events; flow code awaits those events. Every pjsua2 object a call creates (players, recorders, a
second leg) is counted in `MediaRegistry` and released in a fixed order: stop transmitting while
the call is up, then drop the reference so the destructor removes the conference port. A Call's
last reference is dropped inside its own DISCONNECTED callback: pjsua reuses call ids at once,
and a late destructor would hang up the next call on that id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pjsua2 as pj

from ivr import metrics
from ivr.sip import info_dtmf
from ivr.sip.dtmf_events import DTMF_IS_END, DTMF_IS_UPDATE, KeyPresses
from ivr.sip.legs import OutboundLeg, forget_leg, header_vector, start_leg
from ivr.sip.media import MediaRegistry, PromptPlayer, first_of, play_once
from ivr.sip.pj import active_audio, guard
from ivr.sip.recording import CallRecorder

log = logging.getLogger("ivr.sip")


_URI_USER = re.compile(r"sip:([^@;>]+)@", re.I)


def parse_invite(msg: str) -> dict[str, Any]:
    """Dialled number, caller number/name, contact (for a callback) and headers from the INVITE."""
    head = msg.split("\r\n\r\n", 1)[0]
    lines = head.split("\r\n")
    out: dict[str, Any] = {"dialed": "", "number": "", "name": "", "sip_headers": {}}
    if lines:
        m = _URI_USER.search(lines[0])
        out["dialed"] = m.group(1) if m else ""
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip()] = value.strip()
    contact = headers.get("Contact") or headers.get("m") or ""
    m = re.search(r"<([^>]+)>", contact)
    out["contact"] = (m.group(1) if m else contact.split(";")[0]).strip()
    sender = headers.get("From") or headers.get("f") or ""
    m = _URI_USER.search(sender)
    out["number"] = m.group(1) if m else ""
    name_m = re.match(r'\s*"([^"]*)"', sender)
    out["name"] = name_m.group(1) if name_m else ""
    keep = {k: v for k, v in headers.items() if k.lower().startswith(("x-", "user-to-user",
                                                                       "p-asserted", "diversion"))}
    out["sip_headers"] = keep
    return out


@dataclass
class CallSession:
    """State of one inbound call, owned by the worker loop."""

    loop: asyncio.AbstractEventLoop
    registry: MediaRegistry
    call_id: str
    info: dict[str, Any]
    call: Any = None
    aud: Any = None
    media_ready: asyncio.Event = field(default_factory=asyncio.Event)
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    digit_event: asyncio.Event = field(default_factory=asyncio.Event)
    digits: list[str] = field(default_factory=list)
    end_code: int = 0
    end_reason: str = ""
    hung_up_by: str = ""
    ended_for: str = ""
    """Why the IVR hung up on its own account ("media timeout"), for the CDR; else empty."""
    started: float = field(default_factory=time.monotonic)
    answered_at: float | None = None
    on_gone: Callable[[CallSession], None] | None = None
    speech: Any = None
    """`ivr.sip.speech.CallSpeech` when a recogniser is ready, else None (DTMF only)."""
    recording: CallRecorder | None = None
    """The whole-call recording when this call is recorded (`ivr.sip.recording`)."""
    _player: Any = None
    _player_done: asyncio.Event | None = None
    _barge: bool = False
    _recorder: Any = None
    _legs: list[Any] = field(default_factory=list)
    _cleanup: set[asyncio.Task[None]] = field(default_factory=set)
    """Waiters that forget legs hung up from cancelled tasks; the call task awaits them."""
    _xfer: asyncio.Future[int] | None = None
    _dtmf_at: float | None = None
    """When the last digit arrived, until a prompt plays (DTMF->next prompt latency)."""
    _prompted: bool = False

    # -- callbacks (loop thread, inside libHandleEvents) -----------------------------------
    def on_state(self, state: int, code: int, reason: str) -> None:
        if state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.answered_at = time.monotonic()
            self.confirmed.set()
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.end_code, self.end_reason = code, reason
            if not self.hung_up_by:
                self.hung_up_by = "caller"
            self._release_media(call_alive=False)
            self.call = None
            self.gone.set()
            self.digit_event.set()
            if self._xfer is not None and not self._xfer.done():
                self._xfer.set_result(0)
            if self.on_gone:
                self.on_gone(self)

    def on_media(self, aud: Any) -> None:
        """Media became active (answer, or unhold after a re-INVITE): (re)connect what plays."""
        self.aud = aud
        if self.speech is not None:
            try:
                if self.speech.port is None:
                    self.registry.add("asr_port")
                self.speech.attach(aud)
            except pj.Error as exc:
                log.error("speech input unavailable for this call: %s", exc.info())
        if self._player is not None:
            with contextlib.suppress(pj.Error):
                self._player.startTransmit(aud)
        if self._recorder is not None:
            with contextlib.suppress(pj.Error):
                aud.startTransmit(self._recorder)
        if self.recording is not None:
            self.recording.listen_to(aud)
        self.media_ready.set()

    def on_speech(self) -> None:
        """The caller started talking: speech barge-in stops a barge-in prompt at once."""
        if self._barge and self._player_done is not None:
            self._player_done.set()

    def on_dtmf(self, digit: str) -> None:
        self._dtmf_at = time.monotonic()  # the last digit: the caller waits from there
        self.digits.append(digit)
        self.digit_event.set()
        if self._barge and self._player_done is not None:
            self._player_done.set()  # barge-in: control before data

    def on_xfer_status(self, code: int, final: bool) -> None:
        if self._xfer is not None and not self._xfer.done() and (final or code >= 200):
            self._xfer.set_result(code)

    # -- media ----------------------------------------------------------------------------
    def _release_media(self, call_alive: bool) -> None:
        """Stop transmitting (only while the call is up), then drop references."""
        if self.recording is not None:
            self.recording.stop(self.aud if call_alive else None)
        if self._player is not None:
            if call_alive and self.aud is not None:
                with contextlib.suppress(pj.Error):
                    self._player.stopTransmit(self.aud)
            self._player = None
            self.registry.remove("player")
        if self._recorder is not None:
            if call_alive and self.aud is not None:
                with contextlib.suppress(pj.Error):
                    self.aud.stopTransmit(self._recorder)
            self._recorder = None
            self.registry.remove("recorder")
        if self.speech is not None:
            if self.speech.port is not None:
                self.registry.remove("asr_port")
            self.speech.release(self.aud, call_alive)
            self.speech = None
        if not call_alive:
            self.aud = None

    async def play_files(self, paths: Sequence[str], *, barge_in: bool) -> bool:
        """Play files back to back; False when a digit or hangup cut it short."""
        if self.gone.is_set() or not paths:
            return not self.gone.is_set()
        await self.media_ready.wait()
        done = asyncio.Event()
        player = PromptPlayer(self.loop, done)
        if len(paths) == 1:
            player.createPlayer(paths[0], pj.PJMEDIA_FILE_NO_LOOP)
        else:
            vec = pj.StringVector()
            for p in paths:
                vec.append(p)
            player.createPlaylist(vec, "prompt", pj.PJMEDIA_FILE_NO_LOOP)
        self.registry.add("player")
        self._player, self._player_done, self._barge = player, done, barge_in
        if self.recording is not None:
            self.recording.listen_to(player)
        if self.aud is not None and not await self._connect(player):
            self._release_media_player_only()
            return not self.gone.is_set()
        self._prompt_started()
        if barge_in and self.speech is not None:
            self.speech.playing(paths)  # echo-aware barge-in: what plays, how loud
        try:
            await first_of(done, self.gone)
        finally:
            if barge_in and self.speech is not None:
                self.speech.played()
            self._barge = False
            self._player_done = None
            if self._player is player:
                self._release_media_player_only()
        speech = self.speech is not None and self.speech.turn is not None \
            and self.speech.turn.speech_started
        barged = not self.gone.is_set() and barge_in and bool(self.digits or speech)
        if barged:
            metrics.input_event("barge_in")
        return not self.gone.is_set() and not barged

    async def _connect(self, player: Any) -> bool:
        """Player -> caller. The conference refused this once in about 1,500 calls at 300 calls
        per worker (PJ_EINVAL: a slot not valid at that instant); one retry a tick later with
        the call's current audio, else the prompt is skipped and the call goes on."""
        for attempt in (1, 2):
            try:
                player.startTransmit(self.aud)
                return True
            except pj.Error as exc:
                log.warning("prompt connect failed (try %d, player slot %s, call slot %s): %s",
                            attempt, player.getPortId(), self.aud.getPortId(), exc.info())
            await asyncio.sleep(0.02)  # the conference applies queued port changes per 20 ms tick
            if self.gone.is_set() or self.call is None:
                return False
            current = self.call.active_audio()
            if current is None:
                return False
            self.aud = current
        log.error("prompt not played: the conference would not connect it")
        return False

    def _release_media_player_only(self) -> None:
        if self._player is not None:
            if self.aud is not None and not self.gone.is_set():
                with contextlib.suppress(pj.Error):
                    self._player.stopTransmit(self.aud)
                if self.recording is not None:
                    self.recording.forget(self._player)
            self._player = None
            self.registry.remove("player")

    async def wait_digit(self, timeout: float) -> str | None:
        """Next digit (type-ahead first), None on timeout; hangup is checked by the caller."""
        deadline = time.monotonic() + timeout
        while not self.digits and not self.gone.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.digit_event.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.digit_event.wait(), remaining)
        return self.digits.pop(0) if self.digits else None

    async def record(self, path: str, max_seconds: float, stop_digits: str = "#") -> float:
        """Record the caller into `path` until max, a stop digit or hangup; seconds recorded."""
        await self.media_ready.wait()
        if self.gone.is_set():
            return 0.0
        rec = pj.AudioMediaRecorder()
        rec.createRecorder(path)
        self.registry.add("recorder")
        self._recorder = rec
        if self.aud is not None:
            self.aud.startTransmit(rec)
        start = time.monotonic()
        self.digits.clear()
        while not self.gone.is_set() and time.monotonic() - start < max_seconds:
            digit = await self.wait_digit(max(0.0, max_seconds - (time.monotonic() - start)))
            if digit is not None and digit in stop_digits:
                break
        if self._recorder is rec:
            self._release_recorder()
        return time.monotonic() - start

    def _release_recorder(self) -> None:
        if self._recorder is not None:
            if self.aud is not None and not self.gone.is_set():
                with contextlib.suppress(pj.Error):
                    self.aud.stopTransmit(self._recorder)
            self._recorder = None
            self.registry.remove("recorder")

    def start_recording(self, path: Path, resume_after: float = 0.3) -> bool:
        """Record the whole call from now on into `path` (caller, prompts, bridged agents);
        a private span stays silent `resume_after` seconds longer (the jitter buffer's tail)."""
        if self.gone.is_set() or self.aud is None:
            return False
        self.recording = CallRecorder(self.loop, self.registry, path, resume_after)
        return self.recording.start(self.aud)

    def _prompt_started(self) -> None:
        """A prompt reached the caller: the latencies callers hear end here."""
        now = time.monotonic()
        if not self._prompted:  # a prompt may start before the ACK arrives: no wait then
            metrics.ACK_TO_PROMPT.observe(now - (self.answered_at or now))
        self._prompted = True
        if self._dtmf_at is not None:
            metrics.DTMF_TO_PROMPT.observe(now - self._dtmf_at)
            self._dtmf_at = None

    # -- call control ---------------------------------------------------------------------
    def sent_final(self, code: int) -> None:
        """The final response to the INVITE went out: count it, time a 200."""
        metrics.SIP_RESPONSES.labels(str(code)).inc()
        if code == 200:
            metrics.INVITE_TO_200.observe(time.monotonic() - self.started)

    def answer(self, code: int = 200) -> None:
        if self.call is not None and not self.gone.is_set():
            op = pj.CallOpParam()
            op.statusCode = code
            self.call.answer(op)

    def hangup(self, code: int = 200) -> None:
        if self.call is not None and not self.gone.is_set():
            if not self.hung_up_by:
                self.hung_up_by = "ivr"
            op = pj.CallOpParam()
            op.statusCode = code
            with contextlib.suppress(pj.Error):
                self.call.hangup(op)

    def end_for(self, reason: str) -> None:
        """Hang up for a reason of the IVR's own (the caller went silent): the flow sees a
        hangup, and the CDR records `reason` with the IVR as the side that hung up."""
        if self.call is not None and not self.gone.is_set() and not self.ended_for:
            self.ended_for = reason
            self.hung_up_by = "ivr"
            self.hangup()

    async def refer(self, target: str, headers: dict[str, str], timeout: float = 10.0) -> bool:
        """Blind transfer by REFER; True once the far end reports a 2xx."""
        if self.call is None:
            return False
        self._xfer = self.loop.create_future()
        op = pj.CallOpParam(True)
        op.txOption.headers = header_vector(headers)
        try:
            self.call.xfer(target, op)
        except pj.Error as exc:
            log.warning("REFER to %s failed: %s", target, exc.info())
            return False
        try:
            code = await asyncio.wait_for(self._xfer, timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            self._xfer = None
        ok = 200 <= code < 300
        if ok:
            self.hung_up_by = "transfer"
            self.hangup()
        return ok

    async def bridge(self, account: Any, target: str, headers: dict[str, str],
                     ring_timeout: float = 30.0) -> bool:
        """Call `target` from this worker and bridge the caller to it until either hangs up."""
        leg = await self.dial(account, target, headers, ring_timeout)
        if leg is None:
            return False
        await self.connect(leg, by="transfer")
        return True

    # -- agent legs (queue handoff) ---------------------------------------------------------
    async def dial(self, account: Any, target: str, headers: dict[str, str],
                   ring_timeout: float = 20.0) -> OutboundLeg | None:
        """Call an agent; the answered leg, or None (busy, no answer, rejected, caller gone)."""
        leg, _ = await self.dial_status(account, target, headers, ring_timeout)
        return leg

    async def dial_status(self, account: Any, target: str, headers: dict[str, str],
                          ring_timeout: float = 20.0) -> tuple[OutboundLeg | None, int]:
        """`dial`, plus why it failed: the final SIP status (0 when it never started, 408 when
        no one answered within `ring_timeout`)."""
        leg = start_leg(self.loop, account, self.registry, self._legs, target, headers)
        if leg is None:
            return None, 0
        try:
            await first_of(leg.media_ready, leg.gone, self.gone, timeout=ring_timeout)
        except asyncio.CancelledError:
            # the ACD cancelled this ring, or the caller left: CANCEL the agent's INVITE now;
            # the leg leaves the registry once its DISCONNECTED arrives (see _forget_when_gone)
            leg.hangup()
            self._forget_when_gone(leg)
            raise
        if leg.media_ready.is_set() and not self.gone.is_set():
            return leg, 200
        code = leg.end_code if leg.gone.is_set() else 408
        await self.drop_leg(leg)
        return None, code

    def _forget_when_gone(self, leg: OutboundLeg) -> None:
        """Bookkeeping for a leg hung up from a cancelled task: a bounded waiter owned by the loop."""
        async def later() -> None:
            await leg.closed(5.0)
            self._forget_leg(leg)

        task = self.loop.create_task(later())
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    def _forget_leg(self, leg: OutboundLeg) -> None:
        forget_leg(self.registry, self._legs, leg)

    async def drop_leg(self, leg: OutboundLeg) -> None:
        leg.hangup()
        try:
            await leg.closed(2.0)
        except asyncio.CancelledError:
            self._forget_when_gone(leg)
            raise
        self._forget_leg(leg)

    async def settle(self, timeout: float = 6.0) -> None:
        """Wait (bounded) until every agent leg this call started is gone and forgotten."""
        if self._cleanup:
            await asyncio.wait(set(self._cleanup), timeout=timeout)

    async def whisper(self, leg: OutboundLeg, path: str) -> None:
        """Play a short message to the agent only, before the caller is connected."""
        await play_once(self.loop, self.registry, leg, path)

    async def connect(self, leg: OutboundLeg, by: str = "agent") -> None:
        """Bridge the caller and a second leg until either hangs up."""
        if self.aud is None or leg.aud is None:
            await self.drop_leg(leg)
            return
        self.aud.startTransmit(leg.aud)
        leg.aud.startTransmit(self.aud)
        if self.recording is not None:
            self.recording.listen_to(leg.aud)  # the agent too, on the caller's recording
        self.hung_up_by = by
        await first_of(leg.gone, self.gone)
        if self.gone.is_set() and not self.ended_for:
            self.hung_up_by = "caller"
        if self.recording is not None and not leg.gone.is_set():
            self.recording.forget(leg.aud)
        await self.drop_leg(leg)
        self.hangup()

    def start_hold(self, path: str) -> None:
        """Music on hold: a looping player until `stop_hold` (or a prompt) replaces it."""
        if self._player is not None or self.aud is None or self.gone.is_set():
            return
        player = PromptPlayer(self.loop, asyncio.Event())
        player.createPlayer(path, 0)  # 0: loop
        self.registry.add("player")
        self._player = player
        player.startTransmit(self.aud)
        if self.recording is not None:
            self.recording.listen_to(player)

    def stop_hold(self) -> None:
        if self._player_done is None:  # a looping hold player, not a prompt
            self._release_media_player_only()


class IvrCall(pj.Call):  # type: ignore[misc]
    """The inbound call object; forwards callbacks to its session and nothing more."""

    def __init__(self, account: Any, call_index: int, session: CallSession) -> None:
        super().__init__(account, call_index)
        self.session = session
        self.keys = KeyPresses()

    @guard
    def onCallState(self, prm: Any) -> None:
        ci = self.getInfo()
        self.session.on_state(ci.state, ci.lastStatusCode, ci.lastReason)

    @guard
    def onCallMediaState(self, prm: Any) -> None:
        aud = self.active_audio()
        if aud is not None:
            self.session.on_media(aud)

    def active_audio(self) -> Any:
        """The call's active audio media now, or None."""
        return active_audio(self)

    @guard
    def onDtmfEvent(self, prm: Any) -> None:
        """Every DTMF event (RFC 4733 and dtmf-relay INFO); a long-held key's later segments
        are not new keys (ivr.sip.dtmf_events). pjsua2 then calls onDtmfDigit, left unused."""
        flags = int(prm.flags)
        if self.keys.new_press(str(prm.digit), int(prm.timestamp), int(prm.duration),
                               update=bool(flags & DTMF_IS_UPDATE), end=bool(flags & DTMF_IS_END)):
            self.session.on_dtmf(str(prm.digit))

    @guard
    def onCallTsxState(self, prm: Any) -> None:
        info_dtmf.on_tsx_state(prm, self.session.on_dtmf)  # application/dtmf INFO

    @guard
    def onCallTransferRequest(self, prm: Any) -> None:
        """A caller's REFER is never followed: left at pjsua's default (202) the worker would call
        whatever the caller names, a premium number included (toll fraud). The IVR's own
        transfers are REFERs it sends, governed by transfers.allow."""
        log.warning("refused a REFER from the caller to %s", prm.dstUri)
        prm.statusCode = 403

    @guard
    def onCallTransferStatus(self, prm: Any) -> None:
        self.session.on_xfer_status(int(prm.statusCode), bool(prm.finalNotify))
        prm.cont = not prm.finalNotify
