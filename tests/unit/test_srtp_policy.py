"""Which SDP offers a route's SRTP mode accepts (488 otherwise)."""

from __future__ import annotations

import pytest

from ivr.config import SipSettings
from ivr.sip.srtp import offer_is_secure, refusal

HEAD = "INVITE sip:1000@127.0.0.1 SIP/2.0\r\nCall-ID: x\r\nContent-Type: application/sdp\r\n\r\n"
KEY = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
PLAIN = HEAD + "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
SECURE = HEAD + "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\n" + KEY
SAVP_NO_KEY = HEAD + "v=0\r\nm=audio 4000 RTP/SAVP 0\r\n"
BEST_EFFORT = PLAIN + KEY  # RTP/AVP with keys: plain RTP is acceptable to the offerer


def test_only_savp_with_sdes_keys_is_a_secure_offer() -> None:
    assert offer_is_secure(SECURE)
    assert not offer_is_secure(PLAIN)
    assert not offer_is_secure(SAVP_NO_KEY)
    assert not offer_is_secure(BEST_EFFORT)
    assert not offer_is_secure(HEAD)  # no SDP at all (a late offer)


@pytest.mark.parametrize(("mode", "msg", "available", "code"), [
    ("optional", PLAIN, True, None),
    ("optional", SECURE, True, None),
    ("optional", BEST_EFFORT, True, None),
    ("mandatory", SECURE, True, None),
    ("mandatory", PLAIN, True, 488),
    ("mandatory", BEST_EFFORT, True, 488),
    ("mandatory", HEAD, True, 488),
    ("off", SECURE, True, 488),
    ("off", PLAIN, True, None),
    # a pjsua2 without SRTP (the PyPI wheel) cannot answer a secure offer at all
    ("optional", SECURE, False, 488),
    ("mandatory", SECURE, False, 488),
    ("optional", PLAIN, False, None),
])
def test_route_modes_refuse_what_they_cannot_take(mode: str, msg: str, available: bool,
                                                   code: int | None) -> None:
    assert refusal(mode, msg, available=available) == code  # type: ignore[arg-type]


def test_a_route_overrides_the_default_mode() -> None:
    sip = SipSettings.model_validate({"srtp": "optional", "srtp_routes": {"5000": "mandatory"}})
    assert sip.srtp_for("5000") == "mandatory"
    assert sip.srtp_for("1000") == "optional"
    with pytest.raises(ValueError):
        SipSettings.model_validate({"srtp": "sometimes"})
