"""The http node against a real HTTP server on 127.0.0.1: success, server down, slow server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import Harness

pytestmark = pytest.mark.integration

SLOW_SECONDS = 5.0


class _Backend(BaseHTTPRequestHandler):
    release: threading.Event
    requests: list[tuple[str, str, bytes]]

    def _answer(self, status: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.requests.append((self.command, self.path, self.rfile.read(length)))
        if self.path.startswith("/slow"):
            self.release.wait(SLOW_SECONDS)  # released early when the test ends
            self._answer(200, {"late": True})
        elif self.path == "/accounts/12345678":
            self._answer(200, {"name": "Ann", "tier": "gold", "balance": 1042.5})
        else:
            self._answer(404, {"error": "no such account"})

    do_GET = _handle
    do_POST = _handle

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def backend() -> Iterator[tuple[str, type[_Backend]]]:
    release = threading.Event()
    handler = type("Handler", (_Backend,), {"release": release, "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


FLOW = """
    flow: lookup
    start: lookup
    nodes:
      lookup:
        http:
          url: "{base}/{path}"
          method: {method}
          timeout: {timeout}
          body: {{account: "{{{{ account }}}}"}}
          into: customer
        next: found
        on_error: failed
      found:
        say: "Hello {{{{ customer.name }}}}, balance {{{{ customer.balance | say_currency }}}}."
        hangup: true
      failed: {{say: "Sorry, the lookup failed.", hangup: true}}
"""


def flow(base: str, path: str, *, method: str = "GET", timeout: str = "2s") -> str:
    return FLOW.format(base=base, path=path, method=method, timeout=timeout)


async def test_success_puts_the_json_answer_into_the_variable(
    harness: Harness, backend: tuple[str, type[_Backend]]
) -> None:
    base, handler = backend
    result = await harness.run(flow(base, "accounts/{{ account }}", method="POST"),
                               variables={"account": "12345678"})
    assert result.ctx.variables["customer"] == {"name": "Ann", "tier": "gold", "balance": 1042.5}
    assert result.ctx.path == ["lookup", "found"]
    assert result.ctx.prompts == ["Hello Ann, balance one thousand and forty two dollars and fifty cents."]
    assert handler.requests == [("POST", "/accounts/12345678", b'{"account":"12345678"}')]


async def test_http_error_status_goes_to_on_error(
    harness: Harness, backend: tuple[str, type[_Backend]]
) -> None:
    base, _ = backend
    result = await harness.run(flow(base, "accounts/{{ account }}"), variables={"account": "999"})
    assert result.ctx.path == ["lookup", "failed"]
    assert "404" in result.ctx.variables["http_error"]
    assert "customer" not in result.ctx.variables


async def test_server_down_goes_to_on_error(harness: Harness) -> None:
    base = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    result = await harness.run(flow(base, "accounts/1"), variables={"account": "1"})
    assert time.monotonic() - started < 2.0
    assert result.ctx.path == ["lookup", "failed"]
    assert result.ctx.variables["http_error"].startswith("ConnectError")
    assert result.end.kind == "hangup"


async def test_slow_server_times_out_to_on_error_within_the_bound(
    harness: Harness, backend: tuple[str, type[_Backend]]
) -> None:
    base, handler = backend
    started = time.monotonic()
    result = await harness.run(flow(base, "slow", timeout="300ms"), variables={"account": "1"})
    elapsed = time.monotonic() - started
    assert result.ctx.path == ["lookup", "failed"]
    assert "Timeout" in result.ctx.variables["http_error"]
    assert elapsed < 1.5, f"the node's 300ms timeout took {elapsed:.2f}s"
    assert elapsed < SLOW_SECONDS
    assert handler.requests and handler.requests[0][1] == "/slow"
