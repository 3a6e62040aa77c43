"""An engine whose model lives in the recognition service (ivr.speech.asr.server), not here.

A vosk model costs about half a gigabyte per process, and capacity comes from many worker
processes: loading it in each would need tens of gigabytes. A `RemoteEngine` keeps no model; its
recognizers buffer the utterance (the endpointer has already cut it) and send it with the
grammar in one request when the turn finalizes. Any failure (service down, a stall past
`timeout`, a protocol error) raises EngineError, which the turn turns into a nomatch.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

from ivr import log as logs
from ivr.speech.asr import wire
from ivr.speech.asr.base import Engine, EngineError, Grammar, Recognizer, Result

log = logging.getLogger(__name__)

DECODE_TIMEOUT = 8.0
"""The client's own bound: the turn's decode_timeout (speech.turn, 5 s) gives the call its
nomatch first; this one frees the client of a stalled service."""


def engine_key(engine: str, model: str | None) -> str:
    """How the service names a loaded model: `vosk:lang:ko`, `pocketsphinx:` (default model)."""
    return f"{engine}:{model or ''}"


def request(path: Path, doc: dict[str, Any], payload: bytes = b"", *,
            timeout: float = DECODE_TIMEOUT) -> dict[str, Any]:
    """One request on a fresh connection (a local connect costs tens of microseconds, and no
    pooled socket can go stale); the service's answer, or EngineError."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            wire.send(sock, doc, payload)
            answer, _ = wire.recv(sock)
    except TimeoutError:
        raise EngineError(f"the recognition service did not answer within {timeout:.1f}s") from None
    except OSError as exc:
        raise EngineError(f"the recognition service at {path} is unreachable: {exc}") from None
    if "error" in answer:
        raise EngineError(f"recognition service: {answer['error']}")
    return answer


class RemoteRecognizer(Recognizer):
    def __init__(self, engine: RemoteEngine, grammar: Grammar, sample_rate: int) -> None:
        self.engine = engine
        self.grammar = grammar
        self.sample_rate = sample_rate
        self._pcm = bytearray()

    def accept(self, pcm: bytes) -> None:
        if len(self._pcm) + len(pcm) > wire.MAX_PAYLOAD:
            raise EngineError("utterance too long for the recognition service")
        self._pcm += pcm

    def finalize(self) -> Result | None:
        pcm, self._pcm = bytes(self._pcm), bytearray()
        return self.engine.decode(self.grammar, self.sample_rate, pcm)

    def reset(self) -> None:
        self._pcm.clear()


class RemoteEngine(Engine):
    """Recognizers for one model (`engine`, `model`) of the service at `path`."""

    def __init__(self, path: Path, engine: str, model: str | None, *,
                 timeout: float = DECODE_TIMEOUT) -> None:
        self.path = path
        self.key = engine_key(engine, model)
        self.name = engine
        self.timeout = timeout
        self.label = f"{engine} in the recognition service"

    def status(self, timeout: float = 2.0) -> dict[str, Any]:
        """The service's view of this model: {"ready": bool, "message": str, "describe": str}."""
        doc = request(self.path, {"op": "status"}, timeout=timeout)
        models = doc.get("models", {})
        if self.key not in models:
            raise EngineError(f"the recognition service does not serve {self.key!r}")
        status: dict[str, Any] = models[self.key]
        self.label = f"{status.get('describe', self.key)}, shared (recognition service pid " \
                     f"{doc.get('pid')})"
        return status

    def decode(self, grammar: Grammar, sample_rate: int, pcm: bytes) -> Result | None:
        doc = {"op": "decode", "model": self.key, "grammar": wire.grammar_to_doc(grammar),
               "rate": sample_rate, "call_id": logs.call_id.get()}
        answer = request(self.path, doc, pcm, timeout=self.timeout)
        return wire.result_from_doc(answer.get("result"))

    def new_recognizer(self, grammar: Grammar, sample_rate: int = 8000) -> Recognizer:
        if grammar.empty:
            raise EngineError("empty grammar")
        return RemoteRecognizer(self, grammar, sample_rate)

    def describe(self) -> str:
        return self.label
