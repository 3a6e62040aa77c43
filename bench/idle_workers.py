"""Idle CPU of N warm workers under `ivr serve`: what a pool costs before any call, per thread.

    .venv/bin/python bench/idle_workers.py 20 [CALLS]

CALLS short DTMF calls are placed first (so pjmedia has opened and auto-closed its clock once),
then every worker's threads are sampled from /proc over 20 s. Prints one JSON document.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import thread_cpu
from server import ivr_call, start_server

WINDOW_S = 20.0


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    with tempfile.TemporaryDirectory(prefix="ivr-idle-") as tmp:
        server = start_server(Path(tmp), max_calls=4 * n, extra_sip={"prestart_workers": n},
                              timeout=120)
        try:
            for _ in range(calls):
                ivr_call(server, f"sip:3000@{server.uri_host}", "--dtmf", "1", call_timeout=20)
            time.sleep(5)
            pids = [int(w["pid"]) for w in server.health()["workers"] if w["alive"]]
            before = {pid: thread_cpu(pid) for pid in pids}
            t0 = time.monotonic()
            time.sleep(WINDOW_S)
            after = {pid: thread_cpu(pid) for pid in pids}
            elapsed = time.monotonic() - t0
            by_thread: dict[str, float] = {}
            for pid in pids:
                for name, cpu in after[pid].items():
                    by_thread[name] = by_thread.get(name, 0.0) + cpu - before[pid].get(name, 0.0)
            per_worker = {k: round(1000 * v / elapsed / len(pids), 2) for k, v in by_thread.items()}
            print(json.dumps({"workers": len(pids), "warm_up_calls": calls,
                              "idle_millicores_per_worker": round(sum(per_worker.values()), 2),
                              "by_thread": per_worker}))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
