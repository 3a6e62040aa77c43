"""`http`: call a back-end (CRM, core banking) and keep its JSON answer in a variable."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from ivr.durations import Duration
from ivr.flow.loader import Path_
from ivr.flow.model import Node
from ivr.flow.templates import render_value

if TYPE_CHECKING:
    from ivr.flow.context import CallContext
    from ivr.flow.validate import Checker

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1024 * 1024


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
        client = ctx.http_client
        owned = client is None
        if client is None:
            client = httpx.AsyncClient()
        try:
            response = await client.request(
                spec.method, url, headers=headers, json=body, timeout=spec.timeout
            )
        finally:
            if owned:
                await client.aclose()
        response.raise_for_status()
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise ValueError(f"response is larger than {MAX_RESPONSE_BYTES} bytes")
        return response.json() if response.content else None

    async def run(self, ctx: CallContext) -> str | None:
        try:
            result = await self._request(ctx)
        except (httpx.HTTPError, ValueError, json.JSONDecodeError) as exc:
            # the URL in the error may hold a sensitive variable: mask before logging or storing it
            reason = ctx.mask_text(f"{type(exc).__name__}: {exc}".strip())
            log.warning("http node %s failed: %s", ctx.node_id, reason)
            ctx.assign("http_error", reason)
            if self.on_error is None:
                ctx.end("error", message=f"http request failed and the node has no on_error: {reason}")
                return None
            return self.on_error
        if self.http.into:
            ctx.assign(self.http.into, result)
        return self.next
