"""Reproduces an open bug: silent DTMF callers heard as speech when the CPU is loaded.

Run with two busy loops on the side (`timeout 120 python3 -c "while True: pass" &` twice):
    .venv/bin/python bench/speech_false_positive.py
It places 2 x 40 SIPp calls (RFC 4733 "1" only, no audio) at the bank menu with speech on and
prints the transcripts of calls that did not reach ask_account (2 of 80 on 2026-11-22).
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
            for _ in range(2):
                r = run_sipp(server.uri_host, "ivr_menu_dtmf.xml", calls=40, rate=20, limit=40)
                print("successful calls:", r.successful)
            time.sleep(3)
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
