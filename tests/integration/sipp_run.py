"""Run SIPp scenarios against the front: bounded in calls and time, loopback only."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from server import free_udp_tcp_port

SCENARIOS = Path(__file__).with_name("sipp")


@dataclass
class SippResult:
    returncode: int
    successful: int
    failed: int
    output: str


def run_sipp(target: str, scenario: str, *, calls: int = 1, rate: float = 10, limit: int = 0,
             service: str = "1000", local_ip: str = "127.0.0.1", timeout: float = 60,
             extra: list[str] | None = None, cwd: Path | None = None) -> SippResult:
    """Place `calls` calls (at most `limit` at once) with a scenario from tests/integration/sipp."""
    sf = SCENARIOS / scenario if not scenario.startswith("/") else Path(scenario)
    stats = ["-trace_stat", "-stf", str((cwd or Path("/tmp")) / f"sipp-{free_udp_tcp_port()}.csv")]
    cmd = ["sipp", target, "-sf", str(sf), "-s", service, "-i", local_ip,
           "-p", str(free_udp_tcp_port()), "-mi", local_ip, "-mp", str(free_udp_tcp_port()),
           "-m", str(calls), "-r", str(rate), "-l", str(limit or calls), "-nostdin",
           "-timeout", f"{int(timeout)}s", "-timeout_error", "-max_recv_loops", "1000", *(extra or []),
           *stats[:0]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 15, cwd=cwd,
                          check=False)
    out = proc.stdout + proc.stderr
    ok = _count(out, "Successful call")
    bad = _count(out, "Failed call")
    return SippResult(proc.returncode, ok, bad, out)


def _count(text: str, label: str) -> int:
    hits = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", text)
    return int(hits[-1]) if hits else -1
