"""Idle CPU of N warm workers under `ivr serve`: what a pool costs before any call.

    .venv/bin/python bench/idle_workers.py 50
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from server import start_server


def _ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory(prefix="ivr-idle-") as tmp:
        server = start_server(Path(tmp), max_calls=4 * n, extra_sip={"prestart_workers": n},
                              timeout=120)
        try:
            time.sleep(5)
            pids = [w["pid"] for w in server.health()["workers"] if w["alive"]]
            a, t0 = _ticks(pids), time.time()
            time.sleep(10)
            cores = (_ticks(pids) - a) / os.sysconf("SC_CLK_TCK") / (time.time() - t0)
            print(json.dumps({"workers": len(pids), "idle_cores_total": round(cores, 3),
                              "idle_millicores_per_worker": round(1000 * cores / len(pids), 1)}))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
