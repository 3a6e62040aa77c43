"""A plain UDP SIP peer for hand-made requests (the front's tests): sends, collects replies."""

from __future__ import annotations

import socket
import time

LOOP = "127.0.0.1"


class UdpPeer:
    """A plain UDP socket on 127.0.0.x for hand-made requests; collects every reply."""

    def __init__(self, host: str = LOOP) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.addr: tuple[str, int] = self.sock.getsockname()

    def send(self, data: bytes, port: int, host: str = LOOP) -> None:
        self.sock.sendto(data, (host, port))

    def replies(self, wait: float, expect: int | None = None) -> list[str]:
        """Every datagram that arrives within `wait` seconds (or until `expect` arrived), decoded."""
        out: list[str] = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0 and (expect is None or len(out) < expect):
            self.sock.settimeout(left)
            try:
                out.append(self.sock.recv(65535).decode(errors="replace"))
            except (TimeoutError, ConnectionRefusedError):
                continue
            except OSError:
                break
        return out

    def close(self) -> None:
        self.sock.close()


def status_codes(replies: list[str]) -> list[int]:
    """The status codes among `replies` (requests left out)."""
    return [int(r.split(" ", 2)[1]) for r in replies if r.startswith("SIP/2.0 ")]
