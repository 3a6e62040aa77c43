"""Reading the key out of a SIP INFO with `application/dtmf`."""

from __future__ import annotations

from ivr.sip.info_dtmf import info_digit


def _info(content_type: str, body: str, method: str = "INFO") -> str:
    return (f"{method} sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n{body}")


def test_a_bare_key_is_read() -> None:
    assert info_digit(_info("application/dtmf", "5")) == "5"
    assert info_digit(_info("Application/DTMF", "#\r\n")) == "#"
    assert info_digit(_info("application/dtmf; charset=utf-8", "*")) == "*"
    assert info_digit(_info("application/dtmf", "Signal=7")) == "7"
    assert info_digit(_info("application/dtmf", "d")) == "D"


def test_anything_else_is_left_alone() -> None:
    assert info_digit(_info("application/dtmf-relay", "Signal=5\r\nDuration=160")) is None  # pjsua's
    assert info_digit(_info("application/dtmf", "55")) is None
    assert info_digit(_info("application/dtmf", "x")) is None
    assert info_digit(_info("application/dtmf", "")) is None
    assert info_digit(_info("text/plain", "5")) is None
    assert info_digit(_info("application/dtmf", "5", method="MESSAGE")) is None
