"""The recognition service: shared models, decoded for every worker over a local socket.

`ivr serve` starts one (`python -m ivr.speech.asr.server`) when a configured model is shared
(vosk models by default, see `shared_models`), before its workers; a worker then holds a
`RemoteEngine` instead of the model. One thread per connection; decoding runs in C with the GIL
released (vosk through cffi, PocketSphinx through Cython), so a gate of one decode per core
keeps latency fair under load instead of time-slicing forty decodes at once.

The service exits with its supervisor (SIGTERM, or its parent process changing): the socket path
is fixed in the state directory, so workers a killed supervisor left behind reach the next
supervisor's service there.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import logging
import os
import signal
import socket
import socketserver
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ivr import log as logs
from ivr.config import AsrSettings, load_config
from ivr.lang.grammars import Grammar
from ivr.speech.asr import wire
from ivr.speech.asr.base import EngineError
from ivr.speech.asr.remote import engine_key
from ivr.speech.asr.service import AsrReadiness, in_processes, load_model, shared_models
from ivr.status_line import rss_kb, write_status

log = logging.getLogger("ivr.asr")

READ_TIMEOUT = 30.0
"""A client that stops sending mid-request frees its thread after this long."""
STATUS_EVERY = 2.0
ACCEPT_POLL = 0.5


class RecognitionService:
    """The shared models and the request handling (no sockets here: `serve` adds those)."""

    def __init__(self, settings: AsrSettings, *, concurrency: int | None = None) -> None:
        # a PocketSphinx model decodes in child processes: its decodes hold the GIL, and this
        # service's threads would take turns on one core
        self.models: dict[str, AsrReadiness] = {
            engine_key(engine, model): in_processes(load_model(engine, model), engine, model,
                                                    settings.decoder_processes)
            for engine, model in shared_models(settings)
        }
        self.gate = threading.BoundedSemaphore(concurrency or os.cpu_count() or 2)
        self._lock = threading.Lock()
        self.decodes = 0
        self.failures = 0
        self.active = 0

    def status(self) -> dict[str, Any]:
        with self._lock:
            counts = {"decodes": self.decodes, "failures": self.failures, "active": self.active}
        models = {key: {"ready": got.ready, "message": got.message,
                        "describe": got.engine.describe() if got.engine else ""}
                  for key, got in self.models.items()}
        return {"pid": os.getpid(), "rss_kb": rss_kb(), "models": models, **counts}

    def warm_up(self) -> None:
        """One decode per ready model before the first caller: an engine's first decode pays
        for lazy setup (seen: the first three real-voice calls after a start timing out)."""
        noise = (np.random.default_rng(0).standard_normal(8000 // 2) * 30).astype("<i2").tobytes()
        for key, got in self.models.items():
            if got.engine is None:
                continue
            try:
                rec = got.engine.new_recognizer(Grammar(phrases=("yes", "no")), 8000)
                try:
                    rec.accept(noise)
                    rec.finalize()
                finally:
                    rec.close()
            except Exception as exc:  # a model that cannot warm up still serves (or says why)
                log.warning("%s: warm-up decode failed: %s", key, exc)

    def handle(self, doc: dict[str, Any], payload: bytes) -> dict[str, Any]:
        """One request -> one answer; errors are answers too (the client maps them to a
        nomatch), so nothing a worker sends can take the service down."""
        op = doc.get("op")
        if op == "status":
            return self.status()
        if op != "decode":
            return {"error": f"unknown op {op!r}"}
        token = logs.call_id.set(str(doc.get("call_id") or "-"))
        with self._lock:
            self.active += 1
        try:
            return self._decode(doc, payload)
        except EngineError as exc:
            return {"error": str(exc)}
        except Exception as exc:
            log.exception("decode failed")
            return {"error": f"decode failed: {exc}"}
        finally:
            with self._lock:
                self.active -= 1
            logs.call_id.reset(token)

    def _decode(self, doc: dict[str, Any], payload: bytes) -> dict[str, Any]:
        got = self.models.get(str(doc.get("model")))
        if got is None:
            raise EngineError(f"no shared model {doc.get('model')!r}")
        if got.engine is None:
            raise EngineError(got.message)
        grammar = wire.grammar_from_doc(doc.get("grammar") or {})
        rate = int(doc.get("rate", 8000))
        started = time.monotonic()
        with self.gate:
            waited = time.monotonic() - started
            rec = got.engine.new_recognizer(grammar, rate)
            try:
                rec.accept(payload)
                result = rec.finalize()
            except Exception:
                with self._lock:
                    self.failures += 1
                raise
            finally:
                rec.close()
        with self._lock:
            self.decodes += 1
        log.debug("decoded %.2fs in %.0f ms (%.0f ms waiting)", len(payload) / (2 * rate),
                  (time.monotonic() - started) * 1000, waited * 1000)
        return {"result": wire.result_to_doc(result)}


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(READ_TIMEOUT)
        while True:
            try:
                doc, payload = wire.recv(sock)
            except (wire.WireError, OSError):
                return  # the client hung up (or broke the protocol): nothing to answer
            try:
                wire.send(sock, self.server.service.handle(doc, payload))
            except OSError:
                return


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 512
    """listen() backlog: a burst of callers ending their utterances together (200 at once in the
    speech bench) overflowed socketserver's default of 5 (connect: EAGAIN, a nomatch each)."""

    def __init__(self, path: Path, service: RecognitionService) -> None:
        self.service = service
        super().__init__(str(path), _Handler)


def bind(path: Path, service: RecognitionService) -> _Server:
    """The listening server at `path` (a stale socket file is replaced), owner-only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    old = os.umask(0o177)
    try:
        return _Server(path, service)
    finally:
        os.umask(old)


def serve_until(server: _Server, stop: threading.Event) -> None:
    """Accept connections until `stop` is set. Not serve_forever/shutdown: their handshake hung
    a test's teardown once (shutdown waiting while serve_forever kept polling)."""
    server.timeout = ACCEPT_POLL
    while not stop.is_set():
        server.handle_request()


def main(argv: list[str] | None = None) -> None:
    faulthandler.enable()  # a crash in a decoder leaves its stack in the serve log
    ap = argparse.ArgumentParser(prog="ivr-asr", description=__doc__)
    ap.add_argument("--socket", type=Path, required=True)
    ap.add_argument("--config", type=Path)
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    logs.setup(args.log_level, json_lines=True)
    parent = os.getppid()
    service = RecognitionService(load_config(args.config).speech.asr)
    for key, got in service.models.items():
        (log.info if got.ready else log.error)("%s: %s", key, got.message)
    service.warm_up()
    server = bind(args.socket, service)
    bound = args.socket.stat().st_ino
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=serve_until, args=(server, stop), name="asr-accept",
                              daemon=True)
    thread.start()
    log.info("recognition service on %s", args.socket)
    while not stop.is_set() and os.getppid() == parent and write_status(service.status()):
        stop.wait(STATUS_EVERY)
    stop.set()
    thread.join(2 * ACCEPT_POLL)
    server.server_close()
    for got in service.models.values():
        if got.engine is not None:
            got.engine.close()
    with contextlib.suppress(OSError):
        if args.socket.stat().st_ino == bound:  # not a newer service's socket
            args.socket.unlink()
    os._exit(0)  # decode threads may still be inside the C decoder


if __name__ == "__main__":
    main()
