"""What a flow test case stubs: the one home of `clock`, `http`, `caller`, `queues`, `transfers`.

`ivr test` applies these offline (ivr/flow/testing.py, ivr/flow/scripted.py); `ivr test --sip`
sends them in the INVITE's `X-IVR-Test` header (ivr/sip/test_hooks.py) and a worker with
`test_hooks: true` applies the same objects to that one call, so a case means the same thing
both ways.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

QueueOutcome = Literal["connected", "timeout", "error", "callback"]
DEFAULT_QUEUE_OUTCOME: QueueOutcome = "connected"
"""A queue a case does not name: an agent takes the call."""


class Caller(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = "+15550000000"
    name: str = ""
    dialed: str = ""
    sip_headers: dict[str, str] = Field(default_factory=dict)


class Stubs(BaseModel):
    """The back-ends and circumstances of one test call."""

    model_config = ConfigDict(extra="forbid")

    caller: Caller = Field(default_factory=Caller)
    clock: dt.datetime | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    http: dict[str, Any] = Field(default_factory=dict)
    http_errors: dict[str, Literal["timeout", "refused"] | int] = Field(default_factory=dict)
    queues: dict[str, QueueOutcome] = Field(default_factory=dict)
    transfers: dict[str, bool] = Field(default_factory=dict)
    speech: bool = Field(True, description="false: the call has no speech recognition")

    @field_validator("clock")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("clock needs a UTC offset, e.g. 2026-03-02T10:00:00-05:00")
        return value

    def stubs(self) -> Stubs:
        """Only the stub fields (a test case carries steps and expectations too)."""
        return Stubs.model_validate(self.model_dump(include=set(Stubs.model_fields)))

    def clock_fn(self) -> Callable[[], dt.datetime]:
        """`hours` nodes read this: the case's fixed time, else now."""
        fixed = self.clock

        def clock() -> dt.datetime:
            return fixed or dt.datetime.now(dt.timezone.utc)

        return clock

    def queue_outcome(self, queue: str) -> QueueOutcome:
        return self.queues.get(queue, DEFAULT_QUEUE_OUTCOME)

    def transfer_outcome(self, target: str) -> bool:
        """A transfer the case does not name succeeds."""
        return self.transfers.get(target, True)

    def http_client(self) -> httpx.AsyncClient:
        """An HTTP client that answers from `http`/`http_errors` and never reaches the network
        (a URL the case does not stub is refused)."""
        def handler(request: httpx.Request) -> httpx.Response:
            url = str(request.url)
            if url in self.http_errors:
                err = self.http_errors[url]
                if err == "timeout":
                    raise httpx.ReadTimeout("timed out (stubbed by the test case)", request=request)
                if err == "refused":
                    raise httpx.ConnectError("connection refused (stubbed)", request=request)
                return httpx.Response(int(err), json={"error": "stubbed"})
            if url in self.http:
                return httpx.Response(200, content=json.dumps(self.http[url]).encode(),
                                      headers={"content-type": "application/json"})
            raise httpx.ConnectError(f"no stubbed answer for {url} in this test case",
                                     request=request)

        return httpx.AsyncClient(transport=httpx.MockTransport(handler))
