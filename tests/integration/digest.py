"""Hand-made REGISTERs with digest auth (RFC 2617, MD5, qop=auth) over UDP, for registrar tests.

A raw client, not pjsua2, because the attacks (wrong password, someone else's credentials, a
flood of guesses reusing one nonce) are exactly what a well-behaved SIP stack will not send.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Protocol

HOST = "127.0.0.1"


class Peer(Protocol):
    addr: tuple[str, int]

    def send(self, data: bytes, port: int, host: str = HOST) -> None: ...

    def replies(self, wait: float, expect: int | None = None) -> list[str]: ...


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def register_request(src: tuple[str, int], fport: int, user: str, *, contact: str | None = None,
                     authorization: str = "", call_id: str | None = None, cseq: int = 1) -> bytes:
    """A REGISTER of `user` (To and From) with `contact` (default: the sending socket)."""
    branch = secrets.token_hex(6)
    lines = [
        f"REGISTER sip:{HOST}:{fport} SIP/2.0",
        f"Via: SIP/2.0/UDP {src[0]}:{src[1]};branch=z9hG4bK{branch}",
        f"From: <sip:{user}@{HOST}:{fport}>;tag={secrets.token_hex(4)}",
        f"To: <sip:{user}@{HOST}:{fport}>",
        f"Call-ID: {call_id or secrets.token_hex(8)}@{src[0]}",
        f"CSeq: {cseq} REGISTER",
        "Max-Forwards: 70",
        f"Contact: <{contact or f'sip:{user}@{src[0]}:{src[1]}'}>",
        "Expires: 60",
        "User-Agent: ivr-tests",
    ]
    if authorization:
        lines.append(authorization)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def authorization(user: str, password: str, nonce: str, fport: int, realm: str = "ivr",
                  nc: int = 1) -> str:
    """The Authorization header answering `nonce` for `user` with `password`."""
    uri = f"sip:{HOST}:{fport}"
    cnonce = secrets.token_hex(4)
    response = _md5(f"{_md5(f'{user}:{realm}:{password}')}:{nonce}:{nc:08x}:{cnonce}:auth:"
                    f"{_md5(f'REGISTER:{uri}')}")
    return (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", '
            f'uri="{uri}", response="{response}", algorithm=MD5, qop=auth, nc={nc:08x}, '
            f'cnonce="{cnonce}"')


def status(reply: str) -> int:
    return int(reply.split(" ", 2)[1])


def challenge(peer: Peer, fport: int, user: str, wait: float = 2.0) -> tuple[str, str]:
    """Send an unauthenticated REGISTER: (the reply, the nonce of its challenge or "")."""
    peer.send(register_request(peer.addr, fport, user), fport)
    replies = peer.replies(wait, expect=1)
    assert replies, "no reply to an unauthenticated REGISTER"
    found = re.search(r'^WWW-Authenticate: Digest .*nonce="([^"]+)"', replies[0], re.MULTILINE)
    return replies[0], found.group(1) if found else ""


def digest_register(peer: Peer, fport: int, user: str, password: str, *, as_user: str | None = None,
                    contact: str | None = None, wait: float = 2.0) -> str:
    """Challenge, then answer it with `user`'s `password` while registering `as_user` (default
    `user`): the reply to the answered REGISTER."""
    target = as_user or user
    first, nonce = challenge(peer, fport, target, wait)
    assert status(first) == 401 and nonce, first
    peer.send(register_request(peer.addr, fport, target, contact=contact,
                               authorization=authorization(user, password, nonce, fport), cseq=2), fport)
    replies = peer.replies(wait, expect=1)
    assert replies, "no reply to the answered REGISTER"
    return replies[0]
