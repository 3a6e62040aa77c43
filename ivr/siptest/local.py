"""The server `ivr test --sip` starts when no URI is given: `ivr serve` as a subprocess.

Same flows and config as the user's (`--config`, ./ivr.yaml, or the defaults), on free loopback
ports, with a temporary state dir and store, a private broker, no trunks and no retention, and
`test_hooks: true` so each call takes its case's stubs. Whatever happens, the server is stopped
and its temporary directory removed when the run ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ivr.config import DEFAULTS_FILE
from ivr.errors import IvrError

START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
UNSET_TOKENS_ENV = "IVR_TEST_SIP_NO_TOKENS"
"""An environment variable nobody sets: the test server writes its own admin token."""


@dataclass
class LocalServer:
    sip: str
    """host:port of its front (udp)"""
    api: str
    state_dir: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def token(self) -> str:
        return (self.state_dir / "api-token").read_text().strip()

    def log_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""


def _free_port() -> int:
    """A loopback port free for UDP and TCP (the front may listen on either)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with contextlib.suppress(OSError), \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                tcp.bind(("127.0.0.1", port))
                return port
    raise IvrError("no free local port for the test server")


def server_config(source: Path | None, flows: Path, root: Path, max_calls: int) -> dict[str, Any]:
    """The user's config as a test server runs it (see the module doc)."""
    if source is None:
        source = Path("ivr.yaml") if Path("ivr.yaml").is_file() else DEFAULTS_FILE
    raw = yaml.safe_load(source.read_text()) or {}
    sip = dict(raw.get("sip") or {})
    sip.update(listen=[f"udp:127.0.0.1:{_free_port()}"], workers_host="127.0.0.1",
               max_calls=max(max_calls, int(sip.get("max_calls", 0) or 0)))
    front = dict(raw.get("front") or {})
    front["agent_secrets"] = str(root / "agent-secrets")
    http = {"listen": f"127.0.0.1:{_free_port()}", "tokens_env": UNSET_TOKENS_ENV}
    for key in ("bus", "trunks", "retention"):
        raw.pop(key, None)
    return {**raw, "sip": sip, "front": front, "http": http, "flows": str(flows.resolve()),
            "store": {"path": str(root / "ivr.sqlite")}, "test_hooks": True}


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as resp:
            return bool(json.loads(resp.read()).get("status") == "ok")
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextlib.contextmanager
def local_server(config: Path | None, flows: Path, max_calls: int = 8,
                 keep: Path | None = None) -> Iterator[LocalServer]:
    """A running test server for the duration of the block; its config, state and log go to
    `keep` when given (kept for a look afterwards), else to a temporary directory."""
    with contextlib.ExitStack() as stack:
        if keep is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ivr-test-sip-")))
        else:
            root = keep.resolve()
            root.mkdir(parents=True, exist_ok=True)
        cfg = server_config(config, flows, root, max_calls)
        (root / "ivr.yaml").write_text(yaml.safe_dump(cfg))
        log = root / "serve.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ivr.cli", "serve", "--config", str(root / "ivr.yaml"),
                 "--state-dir", str(root / "var")],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        server = LocalServer(cfg["sip"]["listen"][0].removeprefix("udp:"),
                             f"http://{cfg['http']['listen']}", root / "var", proc, log)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not _healthy(server.api):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise IvrError("the test server did not start:\n" + server.log_tail())
                time.sleep(0.3)
            yield server
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever the server left behind (its session)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
