"""The http node hands a sensitive value on (real on the wire to a real HTTP server on
127.0.0.1) and keeps it masked everywhere else: its log, `http_error`, the end message, the
variables of an answer that echoes it."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import Harness

pytestmark = pytest.mark.integration

ACCOUNT = "40719263"
MASKED = "****9263"


class _Echo(BaseHTTPRequestHandler):
    """A bank back-end that quotes the account it was asked about, in answers and errors."""

    requests: list[tuple[str, str, dict[str, str], bytes]]

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.requests.append((self.command, self.path, dict(self.headers), body))
        known = self.path.startswith("/accounts/")
        doc = ({"name": "Ann", "echo": f"account {self.path.rsplit('/', 1)[1]}"} if known
               else {"error": f"unknown account {json.loads(body or b'{}').get('account')}"})
        data = json.dumps(doc).encode()
        self.send_response(200 if known else 422)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _handle
    do_POST = _handle

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[tuple[str, type[_Echo]]]:
    handler = type("Handler", (_Echo,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def flow(base: str, path: str) -> str:
    return f"""
        flow: t
        start: ask
        nodes:
          ask:
            collect: {{prompt: "Account?", digits: {{min: 8, max: 8}}, into: account, sensitive: true}}
            next: copy
          copy: {{set: {{acct: "{{{{ account }}}}"}}, next: lookup}}
          lookup:
            http:
              url: "{base}/{path}"
              method: POST
              headers: {{X-Account: "{{{{ acct }}}}"}}
              body: {{account: "{{{{ acct }}}}", note: "caller typed {{{{ last.value }}}}"}}
              into: customer
            next: agent
            on_error: agent
          agent: {{queue: {{name: general, context: [acct, customer, http_error]}}}}
    """


async def test_the_far_end_gets_the_value_and_the_log_shows_it_masked(
    harness: Harness, backend: tuple[str, type[_Echo]], caplog: pytest.LogCaptureFixture
) -> None:
    base, handler = backend
    with caplog.at_level(logging.DEBUG, logger="ivr"):
        result = await harness.run(flow(base, "accounts/{{ acct }}"), f"dtmf:{ACCOUNT}")
    ((method, path, headers, body),) = handler.requests
    assert (method, path) == ("POST", f"/accounts/{ACCOUNT}")
    assert headers["X-Account"] == ACCOUNT
    assert json.loads(body) == {"account": ACCOUNT, "note": f"caller typed {ACCOUNT}"}
    assert f"/accounts/{MASKED}" in caplog.text and f"caller typed {MASKED}" in caplog.text
    assert ACCOUNT not in caplog.text
    # the answer quoted the account: that value stays a secret, the name does not
    assert result.end.context == {"acct": MASKED, "http_error": None,
                                  "customer": {"name": "Ann", "echo": f"account {MASKED}"}}
    assert ACCOUNT not in json.dumps(result.as_json())


async def test_an_error_body_that_echoes_the_value_is_masked(
    harness: Harness, backend: tuple[str, type[_Echo]], caplog: pytest.LogCaptureFixture
) -> None:
    base, handler = backend
    with caplog.at_level(logging.DEBUG, logger="ivr"):
        result = await harness.run(flow(base, "lookup"), f"dtmf:{ACCOUNT}")
    assert json.loads(handler.requests[0][3])["account"] == ACCOUNT  # real on the wire
    error = result.as_json()["variables"]["http_error"]
    assert "422" in error and f"unknown account {MASKED}" in error, error
    assert result.end.context is not None and result.end.context["http_error"] == error
    assert f"unknown account {MASKED}" in caplog.text
    assert ACCOUNT not in caplog.text
    assert ACCOUNT not in json.dumps(result.as_json())
