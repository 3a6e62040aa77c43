"""An engine that decodes in child processes (ivr.speech.asr.decoder_proc), one per core.

A worker's decode threads (ivr.sip.decode_pool) stay what orders the work (the caller who
stopped first, shorter audio first); each takes a free child for its decode and waits on the
child's socket with the GIL released, so the worker's endpointers and event loop keep time while
a PocketSphinx decode holds a core. Placement: any idle child (a stack: the most recently used
one, its grammar searches warm); with as many decode threads as children one is always idle.

Every decode is self-contained (the grammar, the rate and the whole utterance in one request;
the child's recognizer starts from a fresh front end and a fixed dither seed), so a result never
depends on which child ran it or which call's audio came before.

Faults: a child found dead when a decode wants it is replaced first (no nomatch); one that
dies or stalls past `timeout` during a decode is killed and started again on the next decode,
and that decode raises EngineError (the turn's nomatch). `close()` ends every child (the
worker's stop); so does the worker's death (a child exits when its socket closes).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
from typing import Any

from ivr.speech.asr import wire
from ivr.speech.asr.base import Engine, EngineError, Grammar, Recognizer, Result

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0
"""Loading a model and its warm-up decode (about a second for PocketSphinx on a loaded box)."""
DECODE_TIMEOUT = 8.0
"""A child's own bound (the turn's decode_timeout, 5 s, gives the call its nomatch first)."""


class _Child:
    """One decoder process and our end of its socket."""

    def __init__(self, engine: str, model: str | None, timeout: float) -> None:
        ours, theirs = socket.socketpair()
        cmd = [sys.executable, "-m", "ivr.speech.asr.decoder_proc", "--engine", engine,
               "--fd", str(theirs.fileno())]
        if model:
            cmd += ["--model", model]
        try:
            self.proc = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        finally:
            theirs.close()
        self.sock = ours
        self.timeout = timeout
        self.describe = ""

    def ready(self) -> None:
        """Wait for the child's hello (its model loaded and warmed up): EngineError if none."""
        self.sock.settimeout(START_TIMEOUT)
        try:
            hello, _ = wire.recv(self.sock)
        except (OSError, wire.WireError) as exc:
            self.close()
            raise EngineError(f"decoder process did not start: {exc}") from None
        if not hello.get("ready"):
            self.close()
            raise EngineError(str(hello.get("message", "decoder process not ready")))
        self.describe = str(hello.get("message", ""))

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def decode(self, doc: dict[str, Any], pcm: bytes) -> dict[str, Any]:
        self.sock.settimeout(self.timeout)
        wire.send(self.sock, doc, pcm)
        answer, _ = wire.recv(self.sock)
        return answer

    def close(self) -> None:
        self.sock.close()  # the child's recv sees EOF and exits
        if self.proc.poll() is None:
            try:
                self.proc.wait(1.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class BufferedRecognizer(Recognizer):
    """Buffers the utterance (the endpointer already cut it) and decodes it in one request."""

    def __init__(self, engine: ProcessEngine, grammar: Grammar, sample_rate: int) -> None:
        self.engine, self.grammar, self.sample_rate = engine, grammar, sample_rate
        self._pcm = bytearray()

    def accept(self, pcm: bytes) -> None:
        if len(self._pcm) + len(pcm) > wire.MAX_PAYLOAD:
            raise EngineError("utterance too long for a decoder process")
        self._pcm += pcm

    def finalize(self) -> Result | None:
        pcm, self._pcm = bytes(self._pcm), bytearray()
        return self.engine.decode(self.grammar, self.sample_rate, pcm)

    def finalize_partial(self, min_digits: int) -> Result | None:
        pcm, self._pcm = bytes(self._pcm), bytearray()
        return self.engine.decode(self.grammar, self.sample_rate, pcm, min_digits)

    def reset(self) -> None:
        self._pcm.clear()


class ProcessEngine(Engine):
    """`processes` children, each with its own copy of the model `engine`/`model`."""

    def __init__(self, engine: str, model: str | None, processes: int | None = None, *,
                 timeout: float = DECODE_TIMEOUT) -> None:
        self.engine, self.model, self.timeout = engine, model, timeout
        self.size = max(1, processes or os.cpu_count() or 2)
        self.name = engine
        self._cond = threading.Condition()
        self._idle: list[_Child] = []
        self._missing = self.size
        """Children not started yet, or killed after a fault (started on demand)."""
        self._busy: set[_Child] = set()
        self._closed = False
        self.started = 0
        self.faults = 0
        # every child loads its model (or fails: EngineError) before any call, all at once: one
        # started on demand would load while a burst of callers waits (seen: p99 3.8 s)
        children = self._spawn_all(self.size)
        with self._cond:
            self._missing -= len(children)
            self._idle.extend(children)
        self.label = f"{children[0].describe.removeprefix('speech ready: ')}, in {self.size} " \
                     f"decoder process{'es' if self.size > 1 else ''}"
        self.sample_rate = 16000

    def _spawn(self) -> _Child:
        return self._spawn_all(1)[0]

    def _spawn_all(self, n: int) -> list[_Child]:
        """`n` children started together, each ready (its model loaded) when this returns."""
        children: list[_Child] = []
        try:
            for _ in range(n):
                children.append(_Child(self.engine, self.model, self.timeout))
            for child in children:
                child.ready()
        except OSError as exc:  # no process to be had (fork limits, memory)
            for child in children:
                child.close()
            raise EngineError(f"decoder process did not start: {exc}") from None
        except EngineError:
            for child in children:
                child.close()
            raise
        self.started += n
        return children

    def pids(self) -> list[int]:
        """The live children (tests, leak checks)."""
        with self._cond:
            children = [*self._idle, *self._busy]
        return [c.pid for c in children if c.proc.poll() is None]

    def _acquire(self) -> _Child:
        with self._cond:
            while True:
                if self._closed:
                    raise EngineError("decoder processes are stopped")
                while self._idle and self._idle[-1].proc.poll() is not None:
                    dead = self._idle.pop()  # died idle (killed, OOM): replaced, no nomatch
                    dead.sock.close()
                    self.faults += 1
                    self._missing += 1
                    log.warning("decoder process %d exited (%s); starting another", dead.pid,
                                dead.proc.returncode)
                if self._idle:
                    child = self._idle.pop()
                    self._busy.add(child)
                    return child
                if self._missing > 0:
                    self._missing -= 1
                    break
                self._cond.wait()
        try:  # outside the lock: a start takes a second
            child = self._spawn()
        except EngineError:
            with self._cond:
                self._missing += 1
                self._cond.notify()
            raise
        with self._cond:
            self._busy.add(child)
        return child

    def _release(self, child: _Child, ok: bool) -> None:
        with self._cond:
            self._busy.discard(child)
            if ok and not self._closed:
                self._idle.append(child)
            else:
                self._missing += 1
            self._cond.notify()
        if not ok or self._closed:
            child.close()

    def decode(self, grammar: Grammar, sample_rate: int, pcm: bytes,
               min_digits: int = 0) -> Result | None:
        """One utterance on an idle child (`min_digits`: Recognizer.finalize_partial's)."""
        child = self._acquire()
        doc = {"op": "decode", "grammar": wire.grammar_to_doc(grammar), "rate": sample_rate,
               "min_digits": min_digits}
        try:
            answer = child.decode(doc, pcm)
        except (OSError, wire.WireError) as exc:  # died, or stalled past the timeout
            self.faults += 1
            log.warning("decoder process %d failed (%s); started again on the next decode",
                        child.pid, exc or type(exc).__name__)
            child.proc.kill()
            self._release(child, ok=False)
            raise EngineError(f"decoder process failed: {exc or type(exc).__name__}") from None
        self._release(child, ok=True)
        if "error" in answer:
            raise EngineError(str(answer["error"]))
        return wire.result_from_doc(answer.get("result"))

    def new_recognizer(self, grammar: Grammar, sample_rate: int = 8000) -> Recognizer:
        if grammar.empty:
            raise EngineError("empty grammar")
        return BufferedRecognizer(self, grammar, sample_rate)

    def describe(self) -> str:
        return self.label

    def close(self) -> None:
        """End every child: idle ones now; busy ones are killed (their decode is a nomatch)."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = list(self._busy)
            self._cond.notify_all()
        for child in idle:
            child.close()
        for child in busy:
            child.proc.kill()
