"""A small site in Linux network namespaces: each node its own namespace and address.

One `hub` namespace holds a bridge; every node's namespace is joined to it by a veth pair, so the
nodes reach each other on 10.77.0.0/24 and nothing else (no route out, nothing in the host's
namespace). Names carry the creating process's pid and a random tag, so runs never meet; a
namespace whose creator is gone (a test killed mid-run) is deleted by the next run. `close`
kills every process inside and deletes every namespace, whatever happened before.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SUBNET = "10.77.0"
PREFIX = "ivt"
CLONE_NEWNET = 0x40000000
_OURS = re.compile(rf"^{PREFIX}(\d+)x[0-9a-f]+-")


def http_json(url: str, token: str | None = None, method: str = "GET") -> tuple[int, Any]:
    """(status, JSON body) of one API request; (code, None) for an HTTP error and (0, None)
    when nothing answers (a node still starting, or killed)."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {},
                                 method=method, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None


def poll(what: str, predicate: Callable[[], Any], timeout: float,
         crashed: Callable[[], str | None] = lambda: None,
         logs: Callable[[], str] = lambda: "") -> Any:
    """`predicate()`'s first true value within `timeout`, polled every 0.2 s; an
    AssertionError with `logs()` when it times out or `crashed()` names a node that exited."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        dead = crashed()
        if dead:
            raise AssertionError(f"{dead} exited while waiting for {what}\n{logs()}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last {last!r}\n{logs()}")


def _ip(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def namespaces() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_inside(ns: str) -> None:
    """SIGKILL every process in namespace `ns`."""
    for pid in _ip("netns", "pids", ns, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def sweep_stale() -> None:
    """Namespaces an earlier, killed run left: their processes killed, the namespaces deleted."""
    for ns in namespaces():
        m = _OURS.match(ns)
        if m and not _alive(int(m.group(1))):
            kill_inside(ns)
            _ip("netns", "del", ns, check=False)


@dataclass
class Site:
    """The namespaces of one test run; `node(name, host)` adds one at SUBNET.host."""

    tag: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}x{secrets.token_hex(2)}")
    nodes: dict[str, str] = field(default_factory=dict)
    """node name -> namespace name."""
    addresses: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _links: int = 0

    def __post_init__(self) -> None:
        sweep_stale()
        self.hub = f"{self.tag}-hub"
        self.bridge = f"b{self.tag[-4:]}{os.getpid() % 10000}"[:15]
        _ip("netns", "add", self.hub)
        self._in(self.hub, "link", "add", self.bridge, "type", "bridge")
        self._in(self.hub, "link", "set", self.bridge, "up")

    def _in(self, ns: str, *args: str) -> str:
        return _ip("-n", ns, *args)

    def node(self, name: str, host: int) -> str:
        """A namespace for node `name` with address SUBNET.host/24 (and its own loopback)."""
        ns = f"{self.tag}-{name}"
        self._links += 1
        inner, outer = f"v{self.tag[-4:]}{self._links}a", f"v{self.tag[-4:]}{self._links}b"
        _ip("netns", "add", ns)
        self.nodes[name] = ns
        _ip("link", "add", inner, "netns", ns, "type", "veth", "peer", "name", outer,
            "netns", self.hub)
        self._in(self.hub, "link", "set", outer, "master", self.bridge)
        self._in(self.hub, "link", "set", outer, "up")
        address = f"{SUBNET}.{host}"
        self._in(ns, "addr", "add", f"{address}/24", "dev", inner)
        self._in(ns, "link", "set", inner, "up")
        self._in(ns, "link", "set", "lo", "up")
        self.addresses[name] = address
        return ns

    def popen(self, name: str, argv: list[str], log: Path | None = None,
              env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:
        """`argv` inside node `name`, in a session of its own (so killpg reaches its children)."""
        out = log.open("ab") if log is not None else subprocess.DEVNULL
        proc = subprocess.Popen(["ip", "netns", "exec", self.nodes[name], *argv], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **(env or {})},
                                cwd=cwd)
        self.procs.append(proc)
        return proc

    def run(self, name: str, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """`argv` inside node `name`, to its end (bounded by `timeout`)."""
        return subprocess.run(["ip", "netns", "exec", self.nodes[name], *argv],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def call(self, name: str, fn: Callable[[], T], timeout: float = 15.0) -> T:
        """`fn()` in a thread that entered node `name`'s namespace: its sockets are the node's
        (e.g. HTTP to the node's own 127.0.0.1). The thread ends with `fn`."""
        result: list[Any] = []

        def inside() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                with open(f"/run/netns/{self.nodes[name]}", "rb") as f:
                    if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns failed")
                result.append((True, fn()))
            except BaseException as exc:  # handed to the caller
                result.append((False, exc))

        thread = threading.Thread(target=inside, daemon=True)
        thread.start()
        thread.join(timeout)
        if not result:
            raise TimeoutError(f"call in {name} did not return within {timeout}s")
        ok, value = result[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL a process started with `popen` and everything in its session."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
        """SIGTERM (drain), then SIGKILL what is left of its session."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        self.kill(proc)

    def close(self) -> None:
        """Every process killed, every namespace deleted; safe to call twice."""
        for proc in self.procs:
            self.kill(proc)
        for ns in [*self.nodes.values(), self.hub]:
            kill_inside(ns)
        deadline = time.monotonic() + 5
        for ns in [*self.nodes.values(), self.hub]:
            while _ip("netns", "pids", ns, check=False).split() and time.monotonic() < deadline:
                time.sleep(0.1)
            _ip("netns", "del", ns, check=False)
        self.nodes.clear()
