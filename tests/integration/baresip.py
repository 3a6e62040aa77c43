"""baresip (a third-party softphone, Debian's baresip-core) as a caller or an agent in tests.

Each instance gets its own config directory: loopback only (`net_interface 127.0.0.1`), no
sound card (the source is a WAV file through `aufile`, the player a dead-end `aubridge`), G.711,
and the `ctrl_tcp` module, through which the test dials, sends DTMF and hangs up (netstring
framed JSON commands) and reads the call events baresip reports.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import wave
from pathlib import Path
from typing import Any

from server import free_port, free_udp_tcp_port

MODULES = "/usr/lib/baresip/modules"


def _silence(path: Path, seconds: int = 120) -> Path:
    """baresip's audio source: quiet (a tone would be speech to the IVR and barge in)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000 * seconds)
    return path


class Baresip:
    """One baresip process; `account` is its accounts-file line (AOR and parameters)."""

    def __init__(self, root: Path, account: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.sip_port = free_udp_tcp_port()
        self.ctrl_port = free_port()
        source = _silence(root / "silence.wav")
        (root / "accounts").write_text(account + "\n")
        (root / "config").write_text("\n".join([
            "poll_method epoll",
            "net_interface 127.0.0.1",
            f"sip_listen 127.0.0.1:{self.sip_port}",
            "audio_player aubridge,nowhere",
            f"audio_source aufile,{source}",
            "audio_alert aubridge,nowhere",
            "audio_srate 8000",
            "audio_channels 1",
            f"module_path {MODULES}",
            "module g711.so",
            "module aufile.so",
            "module aubridge.so",
            "module_app account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
            "",
        ]))
        self.events: list[dict[str, Any]] = []
        self.output: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(["baresip", "-f", str(root)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read_output, daemon=True).start()
        self.sock = self._connect(10.0)
        threading.Thread(target=self._read_events, daemon=True).start()

    def _connect(self, timeout: float) -> socket.socket:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=2)
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError("baresip did not start:\n" + "".join(self.output)) from None
                time.sleep(0.1)

    def _read_output(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def _read_events(self) -> None:
        buf = b""
        self.sock.settimeout(None)
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b":" in buf:
                size, _, rest = buf.partition(b":")
                n = int(size)
                if len(rest) < n + 1:
                    break
                with self._lock:
                    self.events.append(json.loads(rest[:n]))
                buf = rest[n + 1:]

    def command(self, name: str, params: str = "") -> None:
        """A menu command (dial, sndcode, hangup, accept...) through ctrl_tcp."""
        data = json.dumps({"command": name, "params": params, "token": name}).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data + b",")

    def seen(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("event") and e.get("type") == kind]

    def wait(self, kind: str, timeout: float) -> dict[str, Any]:
        """The first event of `kind` (CALL_ESTABLISHED, CALL_CLOSED, REGISTER_OK...)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.seen(kind)
            if got:
                return got[0]
            time.sleep(0.05)
        with self._lock:
            events = json.dumps(self.events)[-3000:]
        raise AssertionError(f"baresip: no {kind} in {timeout} s; events: {events}\n"
                             + "".join(self.output)[-3000:])

    def wait_registered(self, timeout: float) -> None:
        """The account's REGISTER was accepted (it may go out before ctrl_tcp is connected, so
        baresip's own log line counts as well as the event)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.seen("REGISTER_OK") or any(" 200 OK " in line and "binding" in line
                                                for line in list(self.output)):
                return
            if self.seen("REGISTER_FAIL"):
                break
            time.sleep(0.05)
        raise AssertionError("baresip did not register:\n" + "".join(self.output)[-3000:])

    def stop(self) -> None:
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
