"""Drive `softphone.py` processes from a test: start one, read its JSON events, wait for facts."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server import agent_secret, free_udp_tcp_port

SOFTPHONE = Path(__file__).with_name("softphone.py")


class Softphone:
    def __init__(self, *args: str, port: int | None = None, cwd: Path | None = None,
                 prefix: tuple[str, ...] = ()) -> None:
        """`prefix` runs the phone inside something, e.g. `ip netns exec NS` (tests/netns.py)."""
        self.port = port or free_udp_tcp_port()
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        if "--register" in args and "--secret" not in args:  # an agent: authenticate as one
            name = args[args.index("--name") + 1] if "--name" in args else "phone"
            args = (*args, "--secret", agent_secret(name))
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, str(SOFTPHONE), "--port", str(self.port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
        self.other: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def uri(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                self.other.append(line)
                continue
            with self._lock:
                self.events.append(event)

    def seen(self, **match: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if all(e.get(k) == v for k, v in match.items())]

    def wait(self, timeout: float, what: str, **match: Any) -> dict[str, Any]:
        return self.wait_for(lambda: (self.seen(**match) or [None])[0], timeout, what)

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = predicate()
            if got:
                return got
            if self.proc.poll() is not None:
                time.sleep(0.3)  # let the reader catch the last lines
                got = predicate()
                if got:
                    return got
                break
            time.sleep(0.1)
        raise AssertionError(f"softphone {self.port}: timed out waiting for {what}; events: "
                             f"{json.dumps(self.events)[-3000:]}\n{''.join(self.other)[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)


def headers_of(msg: str) -> dict[str, str]:
    """Header name -> value from a raw SIP message (the first of each name)."""
    out: dict[str, str] = {}
    for line in msg.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            out.setdefault(name.strip(), value.strip())
    return out
