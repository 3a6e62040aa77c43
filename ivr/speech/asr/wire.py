"""The recognition service's wire format, shared by the service and its clients.

One message = an 8-byte header (JSON length, payload length; network order), a JSON document,
then a raw payload (the utterance as 16-bit mono PCM). A worker sends one decode request per
utterance, the service answers with one message; no streaming, so a request is self-contained
and a connection can be dropped at any point without leaving state behind.
"""

from __future__ import annotations

import json
import socket
import struct
from dataclasses import asdict
from typing import Any

from ivr.speech.asr.base import EngineError, Grammar, Result

HEADER = struct.Struct("!II")
MAX_JSON = 1 << 20
MAX_PAYLOAD = 16000 * 2 * 120
"""Two minutes at 16 kHz: far above any utterance the endpointer lets through (max_speech)."""


class WireError(EngineError):
    """The peer broke the protocol or went away mid-message."""


def send(sock: socket.socket, doc: dict[str, Any], payload: bytes = b"") -> None:
    body = json.dumps(doc, ensure_ascii=False).encode()
    sock.sendall(HEADER.pack(len(body), len(payload)) + body + payload)


def _exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise WireError("connection closed mid-message" if buf else "connection closed")
        buf += chunk
    return bytes(buf)


def recv(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    """The next message; WireError on EOF, a short read or an oversized or non-JSON header."""
    size, payload_size = HEADER.unpack(_exactly(sock, HEADER.size))
    if size > MAX_JSON or payload_size > MAX_PAYLOAD:
        raise WireError(f"message too large ({size} + {payload_size} bytes)")
    try:
        doc = json.loads(_exactly(sock, size))
    except ValueError as exc:
        raise WireError(f"bad JSON header: {exc}") from None
    if not isinstance(doc, dict):
        raise WireError("the header is not a JSON object")
    return doc, _exactly(sock, payload_size) if payload_size else b""


def grammar_to_doc(grammar: Grammar) -> dict[str, Any]:
    return asdict(grammar)


def grammar_from_doc(doc: dict[str, Any]) -> Grammar:
    try:
        return Grammar(phrases=tuple(str(p) for p in doc.get("phrases", ())),
                       builtin=doc.get("builtin"), language=str(doc.get("language", "en-US")),
                       min_words=int(doc.get("min_words", 1)), max_words=int(doc.get("max_words", 0)))
    except (TypeError, ValueError) as exc:
        raise WireError(f"bad grammar: {exc}") from None


def result_to_doc(result: Result | None) -> dict[str, Any] | None:
    return None if result is None else asdict(result)


def result_from_doc(doc: dict[str, Any] | None) -> Result | None:
    if doc is None:
        return None
    try:
        return Result(str(doc["text"]), float(doc["confidence"]),
                      tuple(str(a) for a in doc.get("alternatives", ())))
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"bad result: {exc}") from None
