"""What `ivr queues`, `ivr agents` and `ivr agent` do against a running server's HTTP API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from ivr.config import EngineConfig
from ivr.errors import IvrError


def default_server(config: EngineConfig) -> str:
    host, _, port = config.http.listen.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def call(server: str, method: str, path: str, body: dict[str, Any] | None = None,
         token: str | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(server.rstrip("/") + path, data=data, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except (ValueError, AttributeError):
            message = exc.reason
        hint = ""
        if exc.code == 401:
            hint = ("; give --token or IVR_TOKEN" if token else
                    "; no token found: give --token, set IVR_TOKEN, or --state-dir of the server "
                    "(its api-token)")
        raise IvrError(f"{method} {path}: {exc.code} {message}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise IvrError(f"no ivr server at {server} ({getattr(exc, 'reason', exc)}); "
                       "is `ivr serve` running? (--server URL)") from None


def render_queues(doc: dict[str, Any]) -> str:
    lines = [f"{'queue':<16}{'strategy':<14}{'waiting':>8}{'callbacks':>10}{'longest':>9}"
             f"{'ready':>7}{'busy':>6}{'away':>6}{'in':>5}{'AHT':>7}"]
    for q in doc.get("queues", []):
        a = q["agents"]
        busy = a.get("ringing", 0) + a.get("on_call", 0) + a.get("wrap_up", 0)
        logged_in = sum(v for k, v in a.items() if k != "logged_out")
        lines.append(f"{q['name']:<16}{q['strategy']:<14}{q['waiting']:>8}{q['callbacks']:>10}"
                     f"{q['longest_wait_s']:>8}s{a.get('ready', 0):>7}{busy:>6}"
                     f"{a.get('away', 0):>6}{logged_in:>5}{q['handle_time_s']:>6}s")
    return "\n".join(lines) + "\n"


def render_agents(doc: dict[str, Any]) -> str:
    lines = [f"{'agent':<16}{'state':<12}{'for':>8}{'calls':>7}  {'call':<34}queues"]
    for a in doc.get("agents", []):
        lines.append(f"{a['name']:<16}{a['state']:<12}{a['in_state_s']:>7}s{a['calls']:>7}  "
                     f"{a['call_id'] or '-':<34}{','.join(a['queues'])}")
    return "\n".join(lines) + "\n"
