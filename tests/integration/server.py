"""A real `ivr serve` for integration tests: own ports, own state dir, own copy of the flows.

Calendars are open around the clock here so call paths do not depend on when CI runs.
"""

from __future__ import annotations

import contextlib
import json
import os
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

REPO = Path(__file__).resolve().parents[2]
IVR_BIN = Path(sys.executable).parent / "ivr"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP (kamailio and SIPp use either)."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def udp_ports(pid: int) -> set[int]:
    """Local UDP ports of a process, from /proc (its socket inodes matched in /proc/net/udp)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        cols = line.split()
        if cols[9] in inodes:
            ports.add(int(cols[1].rpartition(":")[2], 16))
    return ports


@dataclass
class Server:
    root: Path
    sip_port: int
    http_port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    config: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] | None = None
    """Extra environment of `ivr serve` (e.g. IVR_TOKENS)."""
    api_token: str | None = None
    """The admin token the helpers send; None: the one `ivr serve` generated."""

    @property
    def flows(self) -> Path:
        return self.root / "flows"

    @property
    def uri_host(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    @property
    def token(self) -> str:
        """The admin token: given, or the one `ivr serve` generated (no tokens configured)."""
        if self.api_token is not None:
            return self.api_token
        return (self.root / "var" / "api-token").read_text().strip()

    def bus_password(self, user: str) -> str:
        """A private broker user's generated password (ivr.bus.acl)."""
        return (self.root / "var" / "mosquitto" / "users" / user).read_text().strip()

    def request(self, method: str, path: str, body: Any = None,
                token: str | None = "") -> tuple[int, Any]:
        """An API call: with the admin token by default, `token=None` for none at all."""
        headers = {"Content-Type": "application/json"}
        token = self.token if token == "" else token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data,
                                     method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str, token: str | None = "") -> tuple[int, Any]:
        return self.request("GET", path, token=token)

    def health(self) -> dict[str, Any]:
        return dict(self.get("/health")[1])

    def calls(self) -> list[dict[str, Any]]:
        return list(self.get("/calls")[1]["calls"])

    def wait(self, predicate: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
            except (OSError, ValueError, KeyError):
                last = None
            if last:
                return last
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{self.log_tail()}")

    def wait_idle(self, timeout: float = 15.0) -> dict[str, Any]:
        """No live call, no pjsua2 media object and no call task left in any worker."""
        def idle() -> dict[str, Any] | None:
            h = self.health()
            workers = [w for w in h["workers"] if w["alive"]]
            if h["calls"] == 0 and all(not w["media"] and w["tasks"] == 0 for w in workers):
                return h
            return None
        return dict(self.wait(idle, timeout, "idle workers"))

    def wait_cdrs(self, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        def ended() -> list[dict[str, Any]] | None:
            done = [c for c in self.calls() if c.get("ended_at")]
            return done if len(done) >= n else None
        return list(self.wait(ended, timeout, f"{n} ended CDRs"))

    def worker_media_ports(self) -> set[int]:
        """UDP ports the live workers have bound, other than their SIP ports: their RTP/RTCP."""
        ports: set[int] = set()
        for w in self.health()["workers"]:
            if w["alive"] and w["pid"]:
                ports |= udp_ports(int(w["pid"])) - {int(w["port"])}
        return ports

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything the server left behind
        return int(self.proc.returncode or 0)


def start_server(root: Path, *, max_calls: int = 16, calls_per_worker: int | str = 4,
                 allow_from: list[str] | None = None, trunks: list[dict[str, Any]] | None = None,
                 extra: dict[str, Any] | None = None, extra_sip: dict[str, Any] | None = None,
                 tcp: bool = False, timeout: float = 30.0, env: dict[str, str] | None = None,
                 api_token: str | None = None) -> Server:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "flows", root / "flows", dirs_exist_ok=True)
    for flow in Path(__file__).with_name("flows").glob("*.yaml"):
        if not flow.name.endswith(".test.yaml"):
            shutil.copy(flow, root / "flows" / flow.name)
    defaults = yaml.safe_load((REPO / "ivr" / "defaults.yaml").read_text())
    sip_port, http_port = free_udp_tcp_port(), free_port()
    config = {
        **defaults,
        "sip": {"listen": [f"udp:127.0.0.1:{sip_port}", *([f"tcp:127.0.0.1:{sip_port}"] if tcp else [])],
                "max_calls": max_calls,
                "calls_per_worker": calls_per_worker, "workers_host": "127.0.0.1",
                **(extra_sip or {})},
        "flows": str(root / "flows"),
        "audio": str(REPO / "audio"),
        "store": {"path": str(root / "var" / "ivr.sqlite")},
        "http": {"listen": f"127.0.0.1:{http_port}"},
        "allow_from": allow_from or [],
        "trunks": trunks or [],
        "routes": {**defaults["routes"], "3000": "quick", "4000": "handoff", "4001": "handoff-refer"},
        "calendars": {"business": {"tz": "UTC", "weekly": {"daily": "00:00-24:00"}},
                      "care": {"tz": "UTC", "weekly": {"daily": "00:00-24:00"}}},
        **(extra or {}),
    }
    if "agent_secrets" not in ((extra or {}).get("front") or {}):
        _give_agents_secrets(root, config)
    cfg_path = root / "ivr.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    return _launch(Server(root, sip_port, http_port, _spawn(root, env), root / "serve.log", config,
                          env, api_token), timeout)


def agent_secret(name: str) -> str:
    """The registrar secret start_server gives every configured agent (Softphone registers with it)."""
    return f"{name}-test-secret"


def _give_agents_secrets(root: Path, config: dict[str, Any]) -> None:
    """Every configured agent gets the registrar secret `agent_secret(name)`, as HA1 in a
    0600 secrets file the config names (unless the test passes its own front.agent_secrets)."""
    from ivr.front.agent_secrets import SecretsFile

    front = dict(config.get("front") or {})
    front["agent_secrets"] = str(root / "agent-secrets")
    secrets = SecretsFile.load(Path(front["agent_secrets"]))
    for name in config.get("agents") or {}:
        secrets.set(name, front.get("auth_realm", "ivr"), agent_secret(name))
    secrets.save()
    config["front"] = front


def _spawn(root: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = (root / "serve.log").open("ab")
    return subprocess.Popen(
        [str(IVR_BIN), "serve", "--config", str(root / "ivr.yaml"), "--state-dir",
         str(root / "var")],
        cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, env={**os.environ, **(env or {})},
    )


def restart_server(old: Server, timeout: float = 30.0) -> Server:
    """A new `ivr serve` on the same config, ports and state dir (after the old one was killed)."""
    return _launch(Server(old.root, old.sip_port, old.http_port, _spawn(old.root, old.env),
                          old.log_path, old.config, old.env, old.api_token), timeout)


def _launch(server: Server, timeout: float) -> Server:
    proc = server.proc
    try:
        server.wait(lambda: proc.poll() is None and server.health()["status"] == "ok", timeout,
                    "ivr serve to be healthy")
    except BaseException:
        server.stop()
        raise
    return server


def ivr_call(server: Server, *args: str, timeout: float = 120, call_timeout: float = 60
             ) -> tuple[int, dict[str, object], str]:
    """`ivr call ... --json` against `server`: exit code, the JSON report, stderr."""
    proc = subprocess.run(
        [str(IVR_BIN), "call", *args, "--flows", str(server.flows), "--json", "--timeout",
         str(call_timeout)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(
            f"no JSON on stdout: {proc.stdout[-500:]} {proc.stderr[-2000:]}") from None
    return proc.returncode, doc, proc.stderr


def ivr_test(*args: str, timeout: float) -> dict[str, Any]:
    """`ivr test ... --json` from the repository (offline, or `--sip`): its JSON report."""
    proc = subprocess.run([sys.executable, "-m", "ivr.cli", "test", *args, "--json"],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        return dict(json.loads(proc.stdout))
    except ValueError:
        raise AssertionError(f"no JSON: {proc.stdout[-1000:]} {proc.stderr[-3000:]}") from None
