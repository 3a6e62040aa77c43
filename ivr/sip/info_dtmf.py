"""DTMF by SIP INFO with `Content-Type: application/dtmf` (a bare digit as the body).

pjsua reads `application/dtmf-relay` INFOs itself (`Signal=5`, reported like RFC 4733 digits),
but leaves any other INFO to the dialog, which answers 500: phones and gateways that send
`application/dtmf` (Cisco, some SBCs) then lose every key. pjsua2 shows the request to the call
(`onCallTsxState`) before that default answer, but has no call to answer it, so the 200 goes out
through pjsip's C API (ctypes into the loaded `_pjsua2` module, which exports it).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import re
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

log = logging.getLogger("ivr.sip")

DIGITS = set("0123456789*#ABCDabcd")
_CONTENT_TYPE = re.compile(r"^(?:content-type|c)\s*:\s*([^;\r\n]+)", re.IGNORECASE | re.MULTILINE)


def info_digit(message: str) -> str | None:
    """The key in an INFO whose body is `application/dtmf` (one key, e.g. "5"), else None."""
    head, _, body = message.replace("\r\n", "\n").partition("\n\n")
    if not head.startswith("INFO "):
        return None
    match = _CONTENT_TYPE.search(head)
    if match is None or match.group(1).strip().lower() != "application/dtmf":
        return None
    key = body.strip()
    if key.lower().startswith("signal"):  # some senders use the dtmf-relay wording here too
        key = key.partition("=")[2].split()[0] if "=" in key else ""
    return key.upper() if len(key) == 1 and key in DIGITS else None


@functools.cache
def _pjsip() -> Any:
    lib = ctypes.CDLL(pj._pjsua2.__file__)
    lib.pjsua_get_pjsip_endpt.restype = ctypes.c_void_p
    lib.pjsip_endpt_create_response.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                                ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.pjsip_tsx_send_msg.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    return lib


def respond(rdata: Any, tsx: Any, code: int) -> bool:
    """Answer the request `rdata` (a SipRxData's pjRxData) in transaction `tsx` (pjTransaction)."""
    lib = _pjsip()
    tdata = ctypes.c_void_p()
    status = lib.pjsip_endpt_create_response(lib.pjsua_get_pjsip_endpt(), int(rdata), code, None,
                                             ctypes.byref(tdata))
    if status != 0 or not tdata.value:
        return False
    return int(lib.pjsip_tsx_send_msg(int(tsx), tdata)) == 0


def on_tsx_state(prm: Any, on_digit: Callable[[str], None]) -> None:
    """From a call's onCallTsxState: take an incoming `application/dtmf` INFO, answer it 200."""
    e = prm.e
    if e.type != pj.PJSIP_EVENT_TSX_STATE or e.body.tsxState.type != pj.PJSIP_EVENT_RX_MSG:
        return
    tsx = e.body.tsxState.tsx
    if tsx.role != pj.PJSIP_ROLE_UAS or tsx.state != pj.PJSIP_TSX_STATE_TRYING or tsx.method != "INFO":
        return
    rdata = e.body.tsxState.src.rdata
    digit = info_digit(str(rdata.wholeMsg))
    if digit is None:
        return
    if not respond(rdata.pjRxData, tsx.pjTransaction, 200):
        log.warning("could not answer a DTMF INFO")
    on_digit(digit)
