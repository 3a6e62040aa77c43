"""Processes the benchmark starts: `ivr serve`, SIPp (UAC, and the UAS baseline), tcpdump.

Everything binds 127.0.0.1, every wait is bounded, and every process is started in its own
session so that `stop()` can kill its whole process group, even after an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
IVR_BIN = Path(sys.executable).parent / "ivr"
PCAPS = Path("/usr/share/sip-tester")
LOOPBACK = "127.0.0.1"

sys.path.insert(0, str(REPO / "tests" / "integration"))
import scenarios as sc  # noqa: E402  (the SIPp scenario builder of the integration tests)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def free_udp_tcp_port() -> int:
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((LOOPBACK, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def kill_group(proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM,
               timeout: float = 10.0) -> None:
    """Signal the process group `proc` leads (it was started with start_new_session)."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


# -- /proc sampling ----------------------------------------------------------------------------
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (threads included), 0 when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kb(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
    except (OSError, ValueError, IndexError):
        return 0


def pss_kb(pid: int) -> int:
    """Proportional set size: shared pages (the Python runtime, pjsua2, numpy) split fairly."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return rss_kb(pid)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of one process."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                name = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rpartition(")")[2].split()
                out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def descendants(root: int) -> list[int]:
    """`root` and every process below it (by parent pid)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def proc_name(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(c.decode(errors="replace") for c in cmd if c)
    if "ivr.worker" in text:
        return "worker"
    if "kamailio" in text:
        return "kamailio"
    if "mosquitto" in text:
        return "mosquitto"
    if " serve " in f" {text} ":
        return "supervisor"
    return Path(cmd[0].decode(errors="replace")).name if cmd and cmd[0] else "?"


@dataclass
class CpuSample:
    at: float
    cpu: dict[int, float]

    @staticmethod
    def take(pids: list[int]) -> CpuSample:
        return CpuSample(time.monotonic(), {p: cpu_seconds(p) for p in pids})


def cores_used(a: CpuSample, b: CpuSample, pids: list[int] | None = None) -> float:
    """CPU cores used between two samples, summed over `pids` (default: all in `a`)."""
    dt = max(b.at - a.at, 1e-6)
    keys = pids if pids is not None else list(a.cpu)
    return sum(max(0.0, b.cpu.get(p, 0.0) - a.cpu.get(p, 0.0)) for p in keys) / dt


# -- ivr serve -------------------------------------------------------------------------------
@dataclass
class IvrServer:
    root: Path
    sip_port: int
    http_port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    workers: int

    @property
    def target(self) -> str:
        return f"{LOOPBACK}:{self.sip_port}"

    def api(self, path: str, timeout: float = 5) -> Any:
        """GET from the HTTP API with the server's generated admin token (var/api-token)."""
        token = (self.root / "var" / "api-token").read_text().strip()
        req = urllib.request.Request(f"http://{LOOPBACK}:{self.http_port}{path}",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def health(self) -> dict[str, Any]:
        try:
            return dict(self.api("/health"))
        except urllib.error.HTTPError as exc:
            return dict(json.loads(exc.read() or b"{}"))

    def worker_pids(self) -> list[int]:
        return [int(w["pid"]) for w in self.health().get("workers", []) if w.get("alive") and w.get("pid")]

    def all_pids(self) -> list[int]:
        return descendants(self.proc.pid)

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """Healthy, and every worker of the pool has reported its status (flows loaded)."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError, ValueError):
                last = self.health()
                ready = [w for w in last.get("workers", []) if w.get("alive") and w.get("flows")]
                if last.get("status") == "ok" and len(ready) >= max(self.workers,
                                                                    len(last.get("workers", []))):
                    return last
            time.sleep(0.5)
        raise RuntimeError(f"ivr serve not ready in {timeout:.0f}s: {str(last)[:300]}\n"
                           f"{self.log_tail()}")

    def wait_idle(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                h = self.health()
                if h.get("calls", 1) == 0 and all(w.get("tasks", 1) == 0
                                                   for w in h["workers"] if w.get("alive")):
                    return True
            time.sleep(0.5)
        return False

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        # SIGTERM drains (the supervisor stops kamailio and the broker), then the whole group dies
        kill_group(self.proc, signal.SIGTERM, timeout=40)
        for pid in descendants(self.proc.pid)[1:]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def start_ivr(root: Path, *, max_calls: int, flow: Path, asr: str = "none",
              calls_per_worker: int | str = "auto", prestart: int = 1,
              timeout: float = 300.0, asr_options: dict[str, Any] | None = None) -> IvrServer:
    """`ivr serve` on the bench flow with the built-in pool (calls_per_worker auto: one worker
    per core) unless told otherwise; ready once every worker of the pool has reported.
    `asr_options`: more of `speech.asr` (e.g. {"shared": True})."""
    if root.exists():
        shutil.rmtree(root)
    (root / "flows").mkdir(parents=True)
    shutil.copy(flow, root / "flows" / flow.name)
    flow_id = yaml.safe_load(flow.read_text())["flow"]
    defaults = yaml.safe_load((REPO / "ivr" / "defaults.yaml").read_text())
    sip_port, http_port = free_udp_tcp_port(), free_port()
    config = {
        **defaults,
        "sip": {"listen": [f"udp:{LOOPBACK}:{sip_port}"], "max_calls": max_calls,
                "calls_per_worker": calls_per_worker, "workers_host": LOOPBACK,
                # SIPp's media ports are 10000-19999 (run.MEDIA_BASE): keep the workers' apart
                "rtp_ports": "30000-40000"},
        "flows": str(root / "flows"),
        "audio": str(REPO / "audio"),
        "store": {"path": str(root / "var" / "ivr.sqlite")},
        "http": {"listen": f"{LOOPBACK}:{http_port}"},
        "routes": {"3000": flow_id, "default": flow_id},
        "queues": {},
        "front": {"pike_exempt_loopback": True},
    }
    config["speech"] = {**config.get("speech", {}), "asr": {"engine": asr, **(asr_options or {})}}
    cfg = root / "ivr.yaml"
    cfg.write_text(yaml.safe_dump(config))
    log_path = root / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(IVR_BIN), "serve", "--config", str(cfg), "--state-dir", str(root / "var")],
            cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    server = IvrServer(root, sip_port, http_port, proc, log_path, prestart)
    try:
        server.wait_ready(timeout)
    except BaseException:
        server.stop()
        raise
    return server


# -- SIPp --------------------------------------------------------------------------------------
def play_audio(pcap: Path) -> str:
    return f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'


def menu_scenario(path: Path, hold_ms: int, after_dtmf_ms: int) -> Path:
    """Caller: INVITE (SDP PCMA + telephone-event), 200 (record-route aware), ACK, sends 6.4 s
    of G.711 A-law speech, holds in the menu, presses 1 (RFC 4733), listens, hangs up."""
    path.write_text(sc.scenario(
        "bench prompt + DTMF menu", sc.call_setup(), play_audio(PCAPS / "g711a.pcap"),
        sc.pause(hold_ms), sc.dtmf("1"), sc.pause(after_dtmf_ms), sc.bye()))
    return path


def short_scenario(path: Path, hold_ms: int) -> Path:
    """A short call for call setups per second: setup, a little audio, hang up."""
    path.write_text(sc.scenario("bench short call", sc.call_setup(),
                                play_audio(PCAPS / "g711a.pcap"), sc.pause(hold_ms), sc.bye()))
    return path


@dataclass
class SippRun:
    proc: subprocess.Popen[str]
    out_path: Path
    started: float
    timeout: float
    sip_port: int
    media_port: int
    result: dict[str, Any] = field(default_factory=dict)

    def wait(self) -> dict[str, Any]:
        try:
            self.proc.wait(max(1.0, self.timeout - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            kill_group(self.proc, signal.SIGTERM, timeout=5)
        kill_group(self.proc)
        text = self.out_path.read_text(errors="replace")
        self.result = {"returncode": self.proc.returncode,
                       "successful": _count(text, "Successful call"),
                       "failed": _count(text, "Failed call"),
                       "wall_s": round(time.monotonic() - self.started, 1)}
        if self.result["failed"] != 0 or self.result["returncode"] != 0:
            self.result["tail"] = _failures(text)
        return self.result


def start_uac(target: str, scenario: Path, out_path: Path, *, calls: int, rate: float,
              limit: int, timeout: float, media_port: int, sip_port: int = 0) -> SippRun:
    sip_port = sip_port or free_udp_tcp_port()
    cmd = ["sipp", target, "-sf", str(scenario), "-s", "3000", "-i", LOOPBACK, "-p", str(sip_port),
           "-mi", LOOPBACK, "-mp", str(media_port), "-m", str(calls), "-r", str(rate),
           "-l", str(limit), "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error",
           "-max_recv_loops", "2000", "-recv_timeout", "20000"]
    out = out_path.open("w")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, start_new_session=True, cwd=out_path.parent)
    out.close()
    return SippRun(proc, out_path, time.monotonic(), timeout + 20, sip_port, media_port)


def start_uas(out_path: Path) -> tuple[subprocess.Popen[str], int]:
    """The C baseline: SIPp's built-in UAS echoing every RTP packet back (-rtp_echo)."""
    port, media = free_udp_tcp_port(), free_udp_tcp_port()
    out = out_path.open("w")
    proc = subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", LOOPBACK, "-p", str(port), "-mi", LOOPBACK, "-mp", str(media),
         "-rtp_echo", "-nostdin", "-timeout", "3600s"],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        start_new_session=True)
    out.close()
    time.sleep(0.5)
    if proc.poll() is not None:
        raise RuntimeError(f"sipp uas exited: {out_path.read_text()[-1000:]}")
    return proc, port


def _count(text: str, label: str) -> int:
    hits = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", text)
    return int(hits[-1]) if hits else -1


def _failures(text: str) -> str:
    lines = [ln for ln in text.splitlines() if "rror" in ln or "Failed" in ln or "timeout" in ln.lower()]
    return "\n".join(lines[-12:])[-1500:]


# -- capture -----------------------------------------------------------------------------------
@dataclass
class Capture:
    proc: subprocess.Popen[str]
    path: Path
    err_path: Path

    def stop(self) -> dict[str, int]:
        time.sleep(0.3)
        kill_group(self.proc, signal.SIGINT, timeout=10)
        text = self.err_path.read_text(errors="replace")
        stats = {}
        for key, label in (("captured", "packets captured"), ("dropped", "packets dropped by kernel")):
            m = re.search(rf"(\d+) {label}", text)
            stats[key] = int(m.group(1)) if m else -1
        return stats


def start_capture(path: Path, sip_port: int, media_lo: int, media_hi: int) -> Capture:
    """SIP to/from the caller, every RTP packet to the caller's media ports (the IVR's or the
    echo's audio), and the caller's RFC 4733 packets (payload type 101, `udp[9] & 0x7f`)."""
    return start_tcpdump(path, f"udp and (port {sip_port} or dst portrange {media_lo}-{media_hi} "
                               f"or (src portrange {media_lo}-{media_hi} and (udp[9] & 0x7f) = 101))")


def start_tcpdump(path: Path, flt: str) -> Capture:
    """tcpdump on lo into `path` with filter `flt`, once it says it is listening."""
    err = path.with_suffix(".tcpdump.txt")
    with err.open("w") as e:
        proc = subprocess.Popen(["tcpdump", "-i", "lo", "-n", "-s", "2048", "-B", "65536", "-U",
                                 "-w", str(path), flt],
                                stdout=subprocess.DEVNULL, stderr=e, stdin=subprocess.DEVNULL,
                                text=True, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "listening on" not in err.read_text(errors="replace"):
        if proc.poll() is not None:
            raise RuntimeError(f"tcpdump failed: {err.read_text()[-500:]}")
        time.sleep(0.1)
    return Capture(proc, path, err)
