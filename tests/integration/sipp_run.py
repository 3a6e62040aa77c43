"""Run SIPp scenarios against the front: bounded in calls and time, loopback only."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server import free_udp_tcp_port

SCENARIOS = Path(__file__).with_name("sipp")


@dataclass
class SippResult:
    returncode: int
    successful: int
    failed: int
    output: str


def sipp_command(target: str, scenario: str, *, calls: int = 1, rate: float = 10, limit: int = 0,
                 service: str = "1000", local_ip: str = "127.0.0.1", timeout: float = 60,
                 extra: list[str] | None = None) -> list[str]:
    """A SIPp caller: `calls` calls (at most `limit` at once), bounded by `timeout`."""
    sf = SCENARIOS / scenario if not scenario.startswith("/") else Path(scenario)
    return ["sipp", target, "-sf", str(sf), "-s", service, "-i", local_ip,
            "-p", str(free_udp_tcp_port()), "-mi", local_ip, "-mp", str(free_udp_tcp_port()),
            "-m", str(calls), "-r", str(rate), "-l", str(limit or calls), "-nostdin",
            "-timeout", f"{int(timeout)}s", "-timeout_error", "-max_recv_loops", "1000",
            *(extra or [])]


def run_sipp(target: str, scenario: str, *, timeout: float = 60, cwd: Path | None = None,
             **kw: Any) -> SippResult:
    """Run a SIPp caller to the end; see `sipp_command` for the options."""
    proc = subprocess.run(sipp_command(target, scenario, timeout=timeout, **kw), capture_output=True,
                          text=True, timeout=timeout + 15, cwd=cwd, check=False)
    return sipp_result(proc.returncode, proc.stdout + proc.stderr)


def sipp_result(returncode: int, out: str) -> SippResult:
    """The outcome of a finished SIPp run from its exit status and output."""
    return SippResult(returncode, count_calls(out, "Successful call"),
                      count_calls(out, "Failed call"), out)


def start_sipp(target: str, scenario: str, **kw: Any) -> subprocess.Popen[str]:
    """A SIPp caller in the background (the test waits on it with communicate(timeout=...))."""
    return subprocess.Popen(sipp_command(target, scenario, **kw), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finished(proc: subprocess.Popen[bytes], timeout: float) -> SippResult:
    """A background SIPp (bytes output) waited for to its end."""
    out, _ = proc.communicate(timeout=timeout)
    return sipp_result(proc.returncode, out.decode(errors="replace"))


def count_calls(text: str, label: str) -> int:
    """A counter from SIPp's final statistics screen (-1 when absent)."""
    hits = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", text)
    return int(hits[-1]) if hits else -1
