"""SRTP (SDES, RFC 4568) policy per call: which offers a route accepts.

The worker's account answers with SRTP whenever the offer carries `RTP/SAVP` and `a=crypto`
(pjsua's "optional" mode), and plain RTP otherwise; this module decides, from the route's mode,
which offers get `488 Not Acceptable Here` instead: a plain offer to a `mandatory` route, a
secure-only offer to an `off` route, and any secure offer when the loaded pjsua2 has no SRTP.
"""

from __future__ import annotations

import re
from typing import Literal

SrtpMode = Literal["off", "optional", "mandatory"]

_AUDIO = re.compile(r"^m=audio\s+\d+(?:/\d+)?\s+(\S+)", re.MULTILINE)
_CRYPTO = re.compile(r"^a=crypto:", re.MULTILINE)


def offer_is_secure(msg: str) -> bool:
    """Whether the INVITE's SDP offers its audio over SRTP with SDES keys."""
    _, _, body = msg.partition("\r\n\r\n")
    body = body.replace("\r\n", "\n")
    profiles = _AUDIO.findall(body)
    return bool(profiles) and all("SAVP" in p for p in profiles) and bool(_CRYPTO.search(body))


def refusal(mode: SrtpMode, msg: str, *, available: bool) -> int | None:
    """488 when this offer is not acceptable on a route with `mode`, else None."""
    secure = offer_is_secure(msg)
    if mode == "mandatory" and (not secure or not available):
        return 488
    if secure and (mode == "off" or not available):
        return 488
    return None
