"""A pjsua2 softphone for integration tests, run as its own process (one pjsua2 per process).

It plays the parts a person plays around the IVR: an agent whose phone REGISTERs to the front by
name and answers (or just rings), and a caller who dials in, presses keys, hangs up and later
answers a callback. What it sees goes to stdout as JSON lines, so a test asserts on SIP facts:

    {"ev": "registered", "code": 200}
    {"ev": "incoming", "n": 1, "msg": "<the whole INVITE>"}
    {"ev": "state", "leg": "in"|"out", "n": 1, "state": "CONFIRMED"|"DISCONNECTED", "code", "reason"}
    {"ev": "recorded", "n": 1, "path": "..."}          (what a call heard: <in|out>-<n>.wav)

    python softphone.py --port P --name bob --register 127.0.0.1:5060 --secret S --incoming answer \
        --record-dir DIR --duration 40
    python softphone.py --port P --call sip:4000@127.0.0.1:5060 --dtmf 9 --dtmf-after 2 \
        --incoming answer --duration 40

pjsua2 runs with threadCnt=0 and is polled from this single thread; every Call, player and
recorder is kept in `Phone` and released before libDestroy.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pjsua2 as pj

from ivr.sip.pj import Endpoint, EndpointConfig, guard
from ivr.speech.audio import write_wav

STATES = {pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED", pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
          pj.PJSIP_INV_STATE_EARLY: "EARLY", pj.PJSIP_INV_STATE_CALLING: "CALLING"}


def emit(**data: Any) -> None:
    sys.stdout.write(json.dumps({**data, "t": time.time()}) + "\n")
    sys.stdout.flush()


class Leg(pj.Call):  # type: ignore[misc]
    def __init__(self, phone: Phone, account: Any, n: int, direction: str,
                 call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        self.phone, self.n, self.direction = phone, n, direction
        self.aud: Any = None
        self.recorder: Any = None
        self.player: Any = None
        self.confirmed_at: float | None = None
        self.scheduled = False
        self.gone = False

    @guard
    def onCallState(self, prm: Any) -> None:
        ci = self.getInfo()
        name = STATES.get(ci.state)
        if name:
            emit(ev="state", leg=self.direction, n=self.n, state=name, code=ci.lastStatusCode,
                 reason=ci.lastReason)
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.confirmed_at = time.monotonic()
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.gone = True
            self.phone.ended(self)

    @guard
    def onCallMediaState(self, prm: Any) -> None:
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.aud = self.getAudioMedia(mi.index)
                self.phone.media(self)


class Account(pj.Account):  # type: ignore[misc]
    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone

    @guard
    def onRegState(self, prm: Any) -> None:
        emit(ev="registered", code=int(prm.code))

    @guard
    def onIncomingCall(self, prm: Any) -> None:
        self.phone.incoming(self, prm)


class Phone:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.legs: list[Leg] = []
        self.finished: list[Leg] = []
        self.n = 0
        self.incoming_ended = 0
        self.closing: list[tuple[float, int, str]] = []
        """Recordings whose recorder was released: (give up at, leg, path)."""
        self.pending: list[tuple[float, Any]] = []

    # -- events -------------------------------------------------------------------------------
    def incoming(self, account: Any, prm: Any) -> None:
        self.n += 1
        leg = Leg(self, account, self.n, "in", prm.callId)
        self.legs.append(leg)
        emit(ev="incoming", n=leg.n, msg=str(prm.rdata.wholeMsg))
        op = pj.CallOpParam()
        mode = self.args.incoming
        op.statusCode = 486 if mode == "reject" else 180
        leg.answer(op)
        if mode == "answer":
            self.later(self.args.answer_after, lambda: self._answer(leg))

    def _answer(self, leg: Leg) -> None:
        if not leg.gone:
            op = pj.CallOpParam()
            op.statusCode = 200
            leg.answer(op)

    def media(self, leg: Leg) -> None:
        if self.args.record_dir and leg.recorder is None:
            path = Path(self.args.record_dir) / f"{leg.direction}-{leg.n}.wav"
            rec = pj.AudioMediaRecorder()
            rec.createRecorder(str(path))
            leg.aud.startTransmit(rec)
            leg.recorder = rec
            leg.rec_path = str(path)  # type: ignore[attr-defined]
        if self.args.play and leg.player is None:
            player = pj.AudioMediaPlayer()
            player.createPlayer(self.args.play, 0)
            player.startTransmit(leg.aud)
            leg.player = player
        if leg.direction == "out" and self.args.dtmf:
            self.later(self.args.dtmf_after, lambda: self._dtmf(leg))
        if leg.direction == "out" and not leg.scheduled:
            for step in self.args.dtmf_step:
                delay, _, digits = step.partition(":")
                self.later(float(delay), functools.partial(self._dtmf, leg, digits))
        if leg.scheduled:
            return  # a re-INVITE: the timers run already
        leg.scheduled = True
        if leg.direction == "in" and self.args.hangup_in_after:
            self.later(self.args.hangup_in_after, lambda: self.hangup(leg))
        if leg.direction == "out" and self.args.hangup_after:
            self.later(self.args.hangup_after, lambda: self.hangup(leg))

    def _dtmf(self, leg: Leg, digits: str | None = None) -> None:
        digits = digits or self.args.dtmf
        if not leg.gone:
            leg.dialDtmf(digits)  # RFC 4733 events, not audio
            emit(ev="dtmf", n=leg.n, digits=digits)

    def hangup(self, leg: Leg) -> None:
        if not leg.gone:
            with contextlib.suppress(pj.Error):
                leg.hangup(pj.CallOpParam())

    def ended(self, leg: Leg) -> None:
        # release the media objects while the conference still exists; the Call itself is
        # dropped later, outside its own callback
        if leg.player is not None:
            leg.player = None
        if leg.recorder is not None:
            # the conference removes the recorder's port on its next tick, and only then is the
            # WAV's header written: "recorded" waits for that (run_due), so a test never reads
            # a file still being written
            leg.recorder = None
            self.closing.append((time.monotonic() + 5, leg.n, leg.rec_path))
        leg.aud = None
        if leg in self.legs:
            self.legs.remove(leg)
            self.finished.append(leg)
        if leg.direction == "in":
            self.incoming_ended += 1

    def later(self, delay: float, fn: Any) -> None:
        self.pending.append((time.monotonic() + delay, fn))

    def run_due(self) -> None:
        now = time.monotonic()
        for item in list(self.closing):
            give_up, n, path = item
            if _wav_final(path) or now > give_up:
                self.closing.remove(item)
                emit(ev="recorded", n=n, path=path, final=_wav_final(path))
        due = [p for p in self.pending if p[0] <= now]
        self.pending = [p for p in self.pending if p[0] > now]
        for _, fn in due:
            fn()


def _wav_final(path: str) -> bool:
    """The writer closed the file: its RIFF size covers the whole file."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            size = f.seek(0, 2)
    except OSError:
        return False
    return head[:4] == b"RIFF" and int.from_bytes(head[4:8], "little") + 8 == size


def tone(path: Path, hz: float = 440.0, seconds: float = 2.0) -> str:
    t = np.arange(int(8000 * seconds)) / 8000
    write_wav(path, (np.sin(2 * np.pi * hz * t) * 6000).astype(np.int16), 8000)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    ap.add_argument("--name", default="phone")
    ap.add_argument("--register", help="host:port of the front's registrar")
    ap.add_argument("--secret", help="the agent's registrar secret (digest password)")
    ap.add_argument("--incoming", choices=("answer", "ring", "reject"), default="answer")
    ap.add_argument("--answer-after", type=float, default=0.5)
    ap.add_argument("--record-dir")
    ap.add_argument("--play", help="a WAV file looped into every call (or 'tone')")
    ap.add_argument("--call")
    ap.add_argument("--dtmf")
    ap.add_argument("--dtmf-after", type=float, default=2.0)
    ap.add_argument("--dtmf-step", action="append", default=[], metavar="SECONDS:DIGITS",
                    help="send DIGITS this long after the call's media is up (repeatable)")
    ap.add_argument("--tone-hz", type=float, default=440.0, help="the frequency of --play tone")
    ap.add_argument("--hangup-after", type=float, default=0.0)
    ap.add_argument("--hangup-in-after", type=float, default=0.0)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--exit-after-incoming", type=int, default=0)
    args = ap.parse_args()
    if args.play == "tone":
        # beside the recordings, else in the temporary directory (never the caller's cwd)
        where = Path(args.record_dir) if args.record_dir else Path(tempfile.gettempdir())
        args.play = tone(where / f"tone-{args.port}.wav", args.tone_hz)

    endpoint = Endpoint(EndpointConfig(port=args.port, host=args.host,
                                       user_agent=f"softphone/{args.name}"))
    endpoint.start()
    phone = Phone(args)
    acfg = endpoint.account_config(args.name)
    if args.register:
        acfg.idUri = f"sip:{args.name}@{args.register}"
        acfg.regConfig.registrarUri = f"sip:{args.register}"
        acfg.regConfig.registerOnAdd = True
        acfg.regConfig.timeoutSec = 300
        if args.secret:  # answer the front's digest challenge as the agent named
            acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.name, 0, args.secret))
    account = Account(phone)
    account.create(acfg)
    if args.call:
        phone.n += 1
        leg = Leg(phone, account, phone.n, "out")
        phone.legs.append(leg)
        leg.makeCall(args.call, pj.CallOpParam(True))
    emit(ev="ready", port=args.port)
    deadline = time.monotonic() + args.duration
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    try:
        while time.monotonic() < deadline and not stop[0]:
            endpoint.handle_events(10)
            phone.run_due()
            phone.finished.clear()  # the last reference to an ended Call, outside its callback
            if args.exit_after_incoming and phone.incoming_ended >= args.exit_after_incoming:
                break
    finally:
        for leg in list(phone.legs):
            phone.hangup(leg)
        until = time.monotonic() + 2
        while phone.legs and time.monotonic() < until:
            endpoint.handle_events(10)
        while phone.closing and time.monotonic() < until + 3:
            endpoint.handle_events(10)
            phone.run_due()
        phone.finished.clear()
        phone.legs.clear()
        endpoint.ep.audDevManager().setNoDev()
        account.shutdown()
        del account
        endpoint.destroy()
        emit(ev="exit")


if __name__ == "__main__":
    main()
