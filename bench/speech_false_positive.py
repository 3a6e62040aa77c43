"""Silent DTMF callers heard as speech under load: a reproduction, kept as a regression check.

Run with two or three busy loops on the side (`timeout 240 python3 -c "while True: pass" &`):
    .venv/bin/python bench/speech_false_positive.py [BATCHES]
It places BATCHES x 40 SIPp calls (RFC 4733 "1" only, no audio) at the bank menu with speech on
and prints the transcripts of calls that did not reach ask_account.

2026-11-22: 2 of 200 before the fix, 0 of 240 after. Cause (found from the recogniser's audio:
the chime and the welcome prompt, and from a capture): SIPp advertises per-call media ports it
never binds, the kernel gave the same numbers to workers' RTP sockets, and a worker sent one
call's prompts into another call's socket. Workers now bind RTP inside `sip.rtp_ports`.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from server import start_server
from sipp_run import run_sipp


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ivr-fp-") as tmp:
        server = start_server(Path(tmp), max_calls=44, extra_sip={"prestart_workers": 11},
                              timeout=120)
        try:
            for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 2):
                r = run_sipp(server.uri_host, "ivr_menu_dtmf.xml", calls=40, rate=20, limit=40,
                             cwd=Path(tmp), extra=["-trace_err"])
                print("successful calls:", r.successful)
            for err in Path(tmp).glob("*_errors.log"):
                print(err.read_text()[-3000:])
            time.sleep(3)
            print("speech:", server.health()["speech"])
            db = sqlite3.connect(Path(tmp) / "var" / "ivr.sqlite")
            for (transcript,) in db.execute(
                    "SELECT transcript FROM calls WHERE end_node != 'ask_account'"):
                print([t for t in json.loads(transcript)
                       if t["who"] == "caller" or "Sorry" in t["text"]])
            print(db.execute("SELECT end_node, count(*) FROM calls GROUP BY 1").fetchall())
        finally:
            server.stop()


if __name__ == "__main__":
    main()
