"""The site benchmark (issue 15): calls per node and the site's overhead, in network namespaces.

    sudo .venv/bin/python bench/site.py [--steps 50,100,200] [--out bench/site.json]
    (or: make bench-site; needs root for `ip netns`, like tests/integration/test_site_netns.py)

1. A site built with tests/integration/netns.py: edge 10.77.0.1 (`ivr serve --role edge`:
   Kamailio over both media nodes' workers), media-a .2 and media-b .3 (`--role media`), acd .4
   (`--role acd` and the site's Mosquitto), the SIPp caller .10, SIPp's own UAS .30 (the baseline).
2. The single-box bench's caller scenario (bench/harness.menu_scenario: PCMA speech, hold in the
   menu, RFC 4733 "1", listen, BYE) against SIPp's UAS directly, then through the edge, in steps
   of concurrent calls (stop at the first step with a failure).
3. CPU per node from /proc/<pid>/stat of every process inside each namespace (so a node's
   supervisor, workers, Kamailio, recognition service all count), from before the first INVITE to
   after the last call ended: CPU seconds per call, split by process kind. INVITE->200 from SIPp's
   response-time trace (-trace_rtt). Which media node took each call from the ACD's CDRs.
Writes the JSON and bench/site.md, and puts site.md into bench/RESULTS.md as "Several nodes".
Two media nodes on one 2-core machine share its cores: the per-call cost is the figure to read.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness as h
import site_report
import yaml

sys.path.insert(0, str(h.REPO / "tests" / "integration"))
from netns import Site, http_json  # the namespaces helper the site test uses

EDGE, MEDIA_A, MEDIA_B, ACD, CALLER, UAS = 1, 2, 3, 4, 10, 30
NODES = {"edge": EDGE, "media-a": MEDIA_A, "media-b": MEDIA_B, "acd": ACD, "caller": CALLER,
         "uas": UAS}
WORKER_PORTS = "5070-5071"
RATE = 50.0
DTMF_AFTER_MS = 3000
MEDIA_BASE = 10000


def log(msg: str) -> None:
    sys.stderr.write(f"[site {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def addr(host: int) -> str:
    return f"10.77.0.{host}"


# -- the site ------------------------------------------------------------------------------------
def node_config(root: Path, name: str, flow_id: str, max_calls: int, **extra: Any) -> Path:
    """One node's ivr.yaml: the defaults, the bench flow, the site's broker, and `extra`."""
    defaults = yaml.safe_load((h.REPO / "ivr" / "defaults.yaml").read_text())
    config = {
        **defaults,
        "node": {"name": name},
        "sip": {"listen": [f"udp:{addr(EDGE)}:5060"], "max_calls": max_calls,
                "calls_per_worker": (max_calls + 1) // 2},
        "flows": str(root.parent / "flows"),
        "audio": str(h.REPO / "audio"),
        "speech": {**defaults["speech"], "asr": {"engine": "none"}},
        "store": {"path": str(root / "var" / "ivr.sqlite")},
        "http": {"listen": "127.0.0.1:8080"},  # the node's own loopback, inside its namespace
        "bus": {"mqtt": f"mqtt://{addr(ACD)}:1883"},
        "front": {**defaults["front"], "pike_density": 100000},
        "routes": {"3000": flow_id, "default": flow_id},
        "queues": {},
        "agents": {},
    }
    for key, value in extra.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    (root / "var").mkdir(parents=True, exist_ok=True)
    path = root / "ivr.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class SiteRun:
    """The started site: its namespaces, its `ivr serve` processes, and questions to them."""

    def __init__(self, site: Site, root: Path) -> None:
        self.site, self.root = site, root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, max_step: int) -> None:
        flow = h.BENCH / "flows" / "bench.yaml"
        (self.root / "flows").mkdir(parents=True)
        shutil.copy(flow, self.root / "flows" / flow.name)
        flow_id = yaml.safe_load(flow.read_text())["flow"]
        for name, host in NODES.items():
            self.site.node(name, host)
        broker = self.root / "broker"
        broker.mkdir()
        (broker / "mosquitto.conf").write_text(
            f"listener 1883 {addr(ACD)}\nallow_anonymous true\nuser root\npersistence false\n"
            "log_dest stderr\nlog_type error\nlog_type warning\n")
        self.procs["broker"] = self.site.popen("acd", ["mosquitto", "-c",
                                                       str(broker / "mosquitto.conf")],
                                               log=broker / "mosquitto.log")
        per_node = int(max_step * 0.6) + 8  # the edge's dispatch is not a perfect half
        media = [f"{addr(host)}:{WORKER_PORTS}" for host in (MEDIA_A, MEDIA_B)]
        node_config(self.root / "edge", "edge", flow_id, max_step + 16, edge={"media": media})
        for name, host in (("media-a", MEDIA_A), ("media-b", MEDIA_B)):
            node_config(self.root / name, name, flow_id, per_node,
                        sip={"workers_host": addr(host), "worker_ports": WORKER_PORTS,
                             "rtp_ports": "30000-40000"})
        node_config(self.root / "acd", "acd", flow_id, max_step + 16)
        for name, role in (("acd", "acd"), ("media-a", "media"), ("media-b", "media"),
                           ("edge", "edge")):
            root = self.root / name
            self.procs[name] = self.site.popen(
                name, [str(h.IVR_BIN), "serve", "--role", role, "--config", str(root / "ivr.yaml"),
                       "--state-dir", str(root / "var")], log=root / "serve.log", cwd=root)
        self.wait("every node healthy", lambda: all(
            self.health(n).get("status") == "ok" for n in ("edge", "media-a", "media-b", "acd")),
            120)
        self.wait("the edge probing all four media workers up", lambda: (
            m := self.edge_media()) and len(m) == 4 and set(m.values()) == {"up"}, 30)

    def token(self, name: str) -> str:
        return (self.root / name / "var" / "api-token").read_text().strip()

    def ask(self, name: str, path: str) -> Any:
        try:
            token = self.token(name)
        except OSError:
            token = None
        with contextlib.suppress(OSError, TimeoutError):
            _, doc = self.site.call(name, lambda: http_json(f"http://127.0.0.1:8080{path}", token))
            return doc
        return None

    def health(self, name: str) -> dict[str, Any]:
        return dict(self.ask(name, "/health") or {})

    def edge_media(self) -> dict[str, str]:
        return dict(self.health("edge").get("media") or {})

    def wait(self, what: str, predicate: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited: {self.tail(name)}")
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}\n" + "\n".join(
            f"--- {n}\n{self.tail(n)}" for n in self.procs))

    def tail(self, name: str) -> str:
        path = self.root / name / ("mosquitto.log" if name == "broker" else "serve.log")
        with contextlib.suppress(OSError):
            return path.read_text(errors="replace")[-1500:]
        return ""

    def idle(self, timeout: float) -> bool:
        """No call up on either media node."""
        with contextlib.suppress(RuntimeError):
            self.wait("the media nodes idle", lambda: all(
                self.health(n).get("calls", 1) == 0 for n in ("media-a", "media-b")), timeout)
            return True
        return False

    def cdrs_since(self, since: float) -> list[dict[str, Any]]:
        doc = self.ask("acd", f"/calls?since={since}") or {}
        return [c for c in doc.get("calls", []) if c.get("ended_at")]


# -- measuring -----------------------------------------------------------------------------------
def pids_by_kind(site: Site, nodes: list[str]) -> dict[tuple[str, str], list[int]]:
    """(node, process kind) -> pids inside the node's namespace."""
    out: dict[tuple[str, str], list[int]] = {}
    for node in nodes:
        listed = subprocess.run(["ip", "netns", "pids", site.nodes[node]], capture_output=True,
                                text=True, timeout=10, check=False).stdout.split()
        for pid in map(int, listed):
            kind = h.proc_name(pid)
            if node == "acd" and kind == "mosquitto":
                out.setdefault(("broker", kind), []).append(pid)
            elif kind not in ("sipp", "ip", "?"):
                out.setdefault((node, kind), []).append(pid)
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process and of its reaped children (a supervisor's kamcmd and
    other short runs count to it), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / h.CLK_TCK


def cpu_of(groups: dict[tuple[str, str], list[int]]) -> dict[int, float]:
    return {p: cpu_seconds(p) for pids in groups.values() for p in pids}


def spent(groups: dict[tuple[str, str], list[int]], a: dict[int, float],
          b: dict[int, float]) -> dict[str, float]:
    """CPU seconds per `node/kind` between two samples (a process gone since counts nothing)."""
    return {f"{node}/{kind}": round(sum(max(0.0, b[p] - a[p]) for p in pids), 3)
            for (node, kind), pids in groups.items()}


def rtd_ms(directory: Path) -> list[float]:
    """INVITE->200 of every call, from SIPp's -trace_rtt file (date_ms;rtt_ms;rtd_no)."""
    values: list[float] = []
    for f in directory.glob("*_rtt.csv"):
        for line in f.read_text(errors="replace").splitlines()[1:]:
            parts = line.split(";")
            with contextlib.suppress(IndexError, ValueError):
                values.append(float(parts[1]))
    return values


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def timed_scenario(path: Path, hold_ms: int) -> Path:
    """The single-box bench's menu scenario, with INVITE->200 as SIPp response time 1."""
    h.menu_scenario(path, hold_ms, DTMF_AFTER_MS)
    text = path.read_text()
    text = text.replace("<send", '<send start_rtd="1"', 1)
    text = re.sub(r'<recv response="200"', '<recv response="200" rtd="1"', text, count=1)
    path.write_text(text)
    return path


def step(site: Site, target: str, calls: int, work: Path, groups: Callable[[], dict[
        tuple[str, str], list[int]]], settle: Callable[[], bool]) -> dict[str, Any]:
    """`calls` concurrent calls from the caller namespace to `target`; CPU of every group from
    before the first INVITE until every call has ended (and the nodes are idle)."""
    tag = f"{target.split(':')[0].split('.')[-1]}-{calls}"
    d = work / tag
    d.mkdir()
    hold = max(8.0, calls / RATE + 3.0)
    scen = timed_scenario(d / "menu.xml", int(hold * 1000))
    timeout = calls / RATE + hold + DTMF_AFTER_MS / 1000 + 40
    cmd = ["ip", "netns", "exec", site.nodes["caller"], "sipp", target, "-sf", str(scen),
           "-s", "3000", "-i", addr(CALLER), "-p", "5060", "-mi", addr(CALLER),
           "-mp", str(MEDIA_BASE), "-m", str(calls), "-r", str(RATE), "-l", str(calls),
           "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error", "-max_recv_loops", "2000",
           "-recv_timeout", "20000", "-trace_rtt", "-rtt_freq", "1"]
    g = groups()
    load_before = os.getloadavg()
    t0 = time.monotonic()
    a = cpu_of(g)
    out = (d / "sipp.txt").open("w")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=d, start_new_session=True)
    out.close()
    sipp_cpu = 0.0
    try:
        while proc.poll() is None and time.monotonic() - t0 < timeout + 20:
            with contextlib.suppress(OSError):
                sipp_cpu = max(sipp_cpu, sum(cpu_seconds(p) for p in h.descendants(proc.pid)))
            time.sleep(0.5)
    finally:
        h.kill_group(proc)
    settled = settle()
    b = cpu_of(g)
    wall = time.monotonic() - t0
    text = (d / "sipp.txt").read_text(errors="replace")
    ok_calls, failed = h._count(text, "Successful call"), h._count(text, "Failed call")
    rtd = rtd_ms(d)
    cpu = spent(g, a, b)
    return {"calls": calls, "rate": RATE, "hold_s": hold, "successful": ok_calls,
            "failed": failed, "returncode": proc.returncode, "settled": settled,
            "ok": ok_calls == calls and failed == 0 and settled,
            "wall_s": round(wall, 1), "cpu_s": cpu, "uac_cpu_s": round(sipp_cpu, 3),
            "invite_200_ms": {"n": len(rtd), "p50": pct(rtd, 0.5), "p99": pct(rtd, 0.99),
                              "mean": round(statistics.mean(rtd), 1) if rtd else None},
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "tail": "" if failed == 0 else text[-1500:]}


def idle_cpu(groups: dict[tuple[str, str], list[int]], seconds: float) -> dict[str, float]:
    """Cores each group uses with no call (subtracted from nothing; reported beside)."""
    a = cpu_of(groups)
    time.sleep(seconds)
    return {k: round(v / seconds, 4) for k, v in spent(groups, a, cpu_of(groups)).items()}


# -- main ----------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--steps", default="50,100,200", help="concurrent calls per step")
    ap.add_argument("--out", type=Path, default=h.BENCH / "site.json")
    ap.add_argument("--md", type=Path, default=h.BENCH / "site.md")
    ap.add_argument("--results", type=Path, default=h.BENCH / "RESULTS.md",
                    help="the file whose 'Several nodes' section site.md replaces")
    ap.add_argument("--note", default="", help="a line printed beside the figures")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        log("ip netns needs root")
        return 2
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    work = Path(tempfile.mkdtemp(prefix="ivr-site-bench-"))
    started = time.monotonic()
    doc: dict[str, Any] = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join([".venv/bin/python", "bench/site.py", *sys.argv[1:]]),
        "nproc": os.cpu_count(), "note": args.note, "steps": steps,
        "git": subprocess.run(["git", "-C", str(h.REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=False).stdout.strip()}
    site = Site()
    run = SiteRun(site, work)
    try:
        log(f"work dir {work}; starting the site")
        t0 = time.monotonic()
        run.start(max(steps))
        doc["startup_s"] = round(time.monotonic() - t0, 1)
        uas_out = (work / "uas.txt").open("w")
        uas = subprocess.Popen(["ip", "netns", "exec", site.nodes["uas"], "sipp", "-sn", "uas",
                                "-i", addr(UAS), "-p", "5060", "-mi", addr(UAS), "-mp", "20000",
                                "-rtp_echo", "-nostdin", "-timeout", "1800s"],
                               stdout=uas_out, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
        uas_out.close()
        site.procs.append(uas)
        time.sleep(3.0)
        site_nodes = ["edge", "media-a", "media-b", "acd"]
        doc["idle_cores"] = idle_cpu(pids_by_kind(site, site_nodes), 5.0)
        base: list[dict[str, Any]] = []
        ours: list[dict[str, Any]] = []
        for n in steps:
            log(f"{n} calls to SIPp's UAS")
            s = step(site, f"{addr(UAS)}:5060", n, work,
                     lambda: {("uas", "sipp"): [uas.pid, *h.descendants(uas.pid)]},
                     lambda: True)
            base.append(s)
            log(f"  {s['successful']} ok, {s['failed']} failed")
            log(f"{n} calls through the edge")
            since = time.time() - 1
            s = step(site, f"{addr(EDGE)}:5060", n, work,
                     lambda: pids_by_kind(site, site_nodes), lambda: run.idle(60))
            time.sleep(2.0)  # the last CDRs cross the bus
            cdrs = run.cdrs_since(since)
            s["cdrs"] = len(cdrs)
            s["calls_per_node"] = dict(Counter(str(c.get("worker", "?")).split("/")[0]
                                               for c in cdrs))
            s["end_reasons"] = dict(Counter(str(c.get("end_reason")) for c in cdrs))
            ours.append(s)
            log(f"  {s['successful']} ok, {s['failed']} failed, per node {s['calls_per_node']}")
            if not s["ok"]:
                break
        doc["baseline"], doc["site"] = base, ours
    except KeyboardInterrupt:
        doc["interrupted"] = True
    except RuntimeError as exc:
        doc["error"] = str(exc)[-3000:]
        log(f"failed: {str(exc)[-2000:]}")
    finally:
        for name in ("edge", "media-a", "media-b", "acd"):
            if name in run.procs:
                site.stop(run.procs[name], timeout=15)
        site.close()
        doc["wall_s"] = round(time.monotonic() - started, 1)
        args.out.write_text(json.dumps(doc, indent=2, default=str))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if doc.get("interrupted"):
        log(f"interrupted: wrote {args.out} only (site.md and RESULTS.md untouched)")
        return 130
    section = site_report.markdown(doc)
    args.md.write_text(section)
    site_report.splice(args.results, section)
    log(f"wrote {args.out}, {args.md} and {args.results} in {doc['wall_s']}s")
    return 0 if "error" not in doc else 1


def interrupted(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM as ^C: the finally clause stops the site's processes


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupted)
    sys.exit(main())
