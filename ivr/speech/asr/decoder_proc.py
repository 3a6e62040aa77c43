"""One decoder process: a model loaded here, utterances decoded one at a time for its parent.

    python -m ivr.speech.asr.decoder_proc --engine pocketsphinx [--model DIR] --fd N

PocketSphinx holds the GIL while it decodes (measured: two threads decoding take twice one
thread's time), and most of a digit string's decode is one C call (`hyp()`: the lattice and its
posterior, 0.3 s p50 and up to 3.6 s for a real-voice 4-digit code at a pause). In the worker's
process that stalled its endpointers, its event loop and every other call's decode. Here the
decode has a process of its own; the parent (ivr.speech.asr.procs) waits on a socket, GIL free.

The protocol is the recognition service's (ivr.speech.asr.wire): the child first sends
{"ready": bool, "message": str, "pid": int}, then answers each {"op": "decode", "grammar",
"rate", "min_digits"} + PCM with {"result": ...} or {"error": ...}. It exits when the socket
closes (its parent closed it or died) or its parent process changes.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import socket
import sys
from typing import Any

from ivr.speech.asr import wire
from ivr.speech.asr.base import Engine, EngineError


def handle(engine: Engine, doc: dict[str, Any], payload: bytes) -> dict[str, Any]:
    """One request -> one answer; a failure is an answer too (the parent's nomatch)."""
    if doc.get("op") != "decode":
        return {"error": f"unknown op {doc.get('op')!r}"}
    try:
        grammar = wire.grammar_from_doc(doc.get("grammar") or {})
        rec = engine.new_recognizer(grammar, int(doc.get("rate", 8000)))
        try:
            rec.accept(payload)
            min_digits = int(doc.get("min_digits") or 0)
            result = rec.finalize_partial(min_digits) if min_digits else rec.finalize()
        finally:
            rec.close()
    except EngineError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # nothing a request holds may take the process down
        return {"error": f"decode failed: {exc!r}"}
    return {"result": wire.result_to_doc(result), "pid": os.getpid()}


def serve(sock: socket.socket, engine: Engine, parent: int) -> None:
    while os.getppid() == parent:
        try:
            doc, payload = wire.recv(sock)
        except (wire.WireError, OSError):
            return  # the parent closed its end, or died
        try:
            wire.send(sock, handle(engine, doc, payload))
        except OSError:
            return  # the parent gave up on this decode (its timeout) or went away


def main(argv: list[str] | None = None) -> None:
    faulthandler.enable()  # a crash inside the decoder leaves its stack on stderr
    ap = argparse.ArgumentParser(prog="ivr-decoder")
    ap.add_argument("--engine", required=True)
    ap.add_argument("--model")
    ap.add_argument("--fd", type=int, required=True)
    args = ap.parse_args(argv)
    parent = os.getppid()
    sock = socket.socket(fileno=args.fd)
    from ivr.speech.asr.service import load_model

    got = load_model(args.engine, args.model)
    if got.engine is not None:  # the first decode pays for lazy setup: not a caller's
        handle(got.engine, {"op": "decode", "grammar": {"phrases": ["yes", "no"]}},
               bytes(8000))
    wire.send(sock, {"ready": got.engine is not None, "message": got.message,
                     "pid": os.getpid()})
    if got.engine is not None:
        serve(sock, got.engine, parent)
    sock.close()
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown of the C decoder's state


if __name__ == "__main__":
    main()
