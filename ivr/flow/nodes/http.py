"""`http`: call a back-end (CRM, core banking) and keep its JSON answer in a variable.

This node is where a flow hands a sensitive value on on purpose: the request (URL, headers,
body) carries the real values, since the far end needs them; everything this node writes
elsewhere shows them masked: its log line, `http_error` (the error and the first part of an
error body, which back-ends like to echo the request into) and the end message. An answer that
echoes a value the request carried keeps it as a secret.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from ivr import tracing
from ivr.durations import Duration
from ivr.flow.loader import Path_
from ivr.flow.model import Node
from ivr.flow.templates import render_value
from ivr.lang.secret import reveal, secrets_in, shown, taint_echoes

if TYPE_CHECKING:
    from ivr.flow.context import CallContext
    from ivr.flow.validate import Checker

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1024 * 1024
ERROR_BODY_CHARS = 200
"""How much of an error answer's body `http_error` keeps (masked)."""


class HttpSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    method: Literal["GET", "POST", "PUT"] = "GET"
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = 3.0
    into: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class HttpNode(Node):
    kind = "http"

    http: HttpSpec
    next: str | None = None
    on_error: str | None = None

    def check(self, checker: Checker, path: Path_) -> None:
        checker.template((*path, "http", "url"), self.http.url)
        for name, value in self.http.headers.items():
            checker.template((*path, "http", "headers", name), value)
        checker.assignments((*path, "http", "body"), {"body": self.http.body})
        if self.on_error is None:
            checker.warn(path, "http node has no on_error: a failed request ends the call")

    async def _request(self, ctx: CallContext) -> Any:
        spec = self.http
        url = ctx.render(spec.url)
        headers = {k: ctx.render(v) for k, v in spec.headers.items()}
        body = render_value(spec.body, ctx.scope()) if spec.body is not None else None
        sent = [url, headers, body]
        ctx.remember(sent)  # the rendered URL too, so an error quoting it is masked whole
        log.debug("http node %s: %s %s body=%s", ctx.node_id, spec.method, shown(url),
                  json.dumps(shown(body), default=str))
        client = ctx.http_client
        owned = client is None
        if client is None:
            client = httpx.AsyncClient()
        try:
            response = await client.request(
                # with tracing on, the back-end's spans join the call's trace (its node's span)
                spec.method, reveal(url), headers={**tracing.carrier(), **reveal(headers)},
                json=reveal(body),
                timeout=spec.timeout,
            )
        finally:
            if owned:
                await client.aclose()
        response.raise_for_status()
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise ValueError(f"response is larger than {MAX_RESPONSE_BYTES} bytes")
        result = response.json() if response.content else None
        return taint_echoes(result, list(secrets_in(sent)))

    async def run(self, ctx: CallContext) -> str | None:
        try:
            result = await self._request(ctx)
        except (httpx.HTTPError, ValueError, json.JSONDecodeError) as exc:
            reason = f"{type(exc).__name__}: {exc}".strip()
            if isinstance(exc, httpx.HTTPStatusError) and exc.response.text.strip():
                reason += f"; body: {exc.response.text.strip()[:ERROR_BODY_CHARS]}"
            reason = ctx.mask_text(reason)  # the URL or body may echo a sensitive value
            log.warning("http node %s failed: %s", ctx.node_id, reason)
            ctx.assign("http_error", reason)
            if self.on_error is None:
                ctx.end("error", message=f"http request failed and the node has no on_error: {reason}")
                return None
            return self.on_error
        if self.http.into:
            ctx.assign(self.http.into, result)
        return self.next
