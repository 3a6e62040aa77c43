"""Second calls a worker places: an agent for a queued caller, both sides of a callback.

An `OutboundLeg` keeps its own last reference until DISCONNECTED; `start_leg` counts it in the
worker's registry and `forget_leg` takes it out. What travels with an agent leg (the handoff
headers) and how its final status reads to the ACD (`failure_reason`) live here too, so the
queue wait and the callback job say it the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping
from typing import Any

import pjsua2 as pj

from ivr.lang.secret import shown
from ivr.sip.media import MediaRegistry
from ivr.sip.pj import active_audio, guard

log = logging.getLogger("ivr.sip")


def failure_reason(code: int) -> str:
    """An agent leg's final status as the ACD's reason: busy and reject put the agent back to
    ready; no answer (timeout, 408/480, unreachable) puts them away, as at an empty desk."""
    if code in (486, 600):
        return "busy"
    if 400 <= code < 700 and code not in (404, 408, 480, 487, 503):
        return "reject"
    return "no_answer"


def handoff_headers(call_id: str, context: Mapping[str, Any]) -> dict[str, str]:
    """User-to-User (RFC 7433) carries the context id; X-IVR-* carry the values (masked).

    Values go as UTF-8 text (RFC 3261 header values are TEXT-UTF8: 人工服务 arrives as
    written); control characters become spaces, so a value can never end the header early
    and start another (a CR LF from a back-end's answer or a caller's words)."""
    headers = {"User-to-User": f"{call_id.encode().hex()};encoding=hex;purpose=call-context",
               "X-IVR-Call-Id": call_id}
    for name, value in dict(context).items():
        if value is not None:  # (the flow hands context masked; a secret here still shows so)
            header = f"X-IVR-{name.replace('.', '-').replace('_', '-').title()}"
            headers[header] = _CONTROL.sub(" ", str(shown(value))[:200]).strip()
    return headers


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def header_vector(headers: dict[str, str]) -> Any:
    vec = pj.SipHeaderVector()
    for name, value in headers.items():
        h = pj.SipHeader()
        h.hName = name
        h.hValue = value
        vec.append(h)
    return vec


class OutboundLeg(pj.Call):  # type: ignore[misc]
    """The second leg of a bridged transfer; its last reference goes when it disconnects."""

    def __init__(self, loop: asyncio.AbstractEventLoop, account: Any) -> None:
        super().__init__(account)
        self.media_ready = asyncio.Event()
        self.gone = asyncio.Event()
        self.aud: Any = None
        self.keep: OutboundLeg | None = self
        self.end_code = 0
        """The final status when the leg ended (486 busy, 603 decline, 408 no answer, ...)."""

    @guard
    def onCallState(self, prm: Any) -> None:
        ci = self.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.end_code = int(ci.lastStatusCode)
            self.aud = None
            self.gone.set()
            self.keep = None

    @guard
    def onCallMediaState(self, prm: Any) -> None:
        aud = active_audio(self)
        if aud is not None:
            self.aud = aud
            self.media_ready.set()

    def hangup(self) -> None:
        if not self.gone.is_set():
            with contextlib.suppress(pj.Error):
                super().hangup(pj.CallOpParam())

    async def closed(self, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.gone.wait(), timeout)



def start_leg(loop: asyncio.AbstractEventLoop, account: Any, registry: MediaRegistry,
              legs: list[OutboundLeg], target: str, headers: dict[str, str]) -> OutboundLeg | None:
    """A second call placed from this worker (an agent, a callback): kept in `legs` and counted
    in the registry until `forget_leg`; None when pjsip would not start it."""
    leg = OutboundLeg(loop, account)
    registry.add("leg")
    legs.append(leg)
    op = pj.CallOpParam(True)
    op.txOption.headers = header_vector(headers)
    try:
        leg.makeCall(target, op)
    except pj.Error as exc:
        log.warning("call to %s failed: %s", target, exc.info())
        forget_leg(registry, legs, leg)
        return None
    return leg


def forget_leg(registry: MediaRegistry, legs: list[OutboundLeg], leg: OutboundLeg) -> None:
    if leg in legs:
        legs.remove(leg)
        registry.remove("leg")
