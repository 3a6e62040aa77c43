"""http (stubbed transport), queue and transfer nodes: requests made, results, exits."""

from __future__ import annotations

import json
from dataclasses import asdict

import httpx
import pytest
from helpers import Harness, channel_of

HTTP = """
    flow: t
    start: lookup
    nodes:
      lookup:
        http:
          url: "http://backend/accounts/{{ account }}"
          method: POST
          headers: {X-Caller: "{{ caller.number }}"}
          body: {account: "{{ account }}", n: "{{ 40 + 2 }}"}
          timeout: 2s
          into: customer
        next: route
        on_error: failed
      route:
        switch:
          - {if: "customer.tier == 'gold'", goto: gold}
          - {else: plain}
      gold: {say: "Gold, balance {{ customer.balance | say_currency }}.", hangup: true}
      plain: {say: "plain", hangup: true}
      failed: {say: "failed: {{ http_error }}", hangup: true}
"""


async def test_http_success_puts_json_into_the_variable(harness: Harness) -> None:
    seen: list[httpx.Request] = []

    def backend(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"tier": "gold", "balance": 1042.5})

    async with httpx.AsyncClient(transport=httpx.MockTransport(backend)) as client:
        result = await harness.run(HTTP, http_client=client, variables={"account": "12345678"},
                                   caller={"number": "+15550001111"})
    assert result.ctx.variables["customer"] == {"tier": "gold", "balance": 1042.5}
    assert result.ctx.path == ["lookup", "route", "gold"]
    assert result.ctx.prompts == ["Gold, balance one thousand and forty two dollars and fifty cents."]
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "http://backend/accounts/12345678"
    assert request.headers["X-Caller"] == "+15550001111"
    assert json.loads(request.content) == {"account": "12345678", "n": 42}


@pytest.mark.parametrize(
    ("response", "why"),
    [
        (httpx.Response(500, json={"error": "boom"}), "500"),
        (httpx.Response(200, content=b"<html>not json</html>"), "JSONDecodeError"),
    ],
)
async def test_http_bad_answers_go_to_on_error(harness: Harness, response: httpx.Response, why: str) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: response)) as client:
        result = await harness.run(HTTP, http_client=client, variables={"account": "1"})
    assert result.ctx.path == ["lookup", "failed"]
    assert why in result.ctx.variables["http_error"]
    assert "customer" not in result.ctx.variables


async def test_http_connection_error_goes_to_on_error(harness: Harness) -> None:
    def backend(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(backend)) as client:
        result = await harness.run(HTTP, http_client=client, variables={"account": "1"})
    assert result.ctx.path == ["lookup", "failed"]
    assert result.ctx.variables["http_error"] == "ConnectError: connection refused"


async def test_http_failure_without_on_error_ends_in_error(harness: Harness) -> None:
    def backend(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(backend)) as client:
        result = await harness.run("""
            flow: t
            start: lookup
            nodes:
              lookup: {http: {url: "http://backend/x"}, next: done}
              done: {say: "done"}
        """, http_client=client)
    assert result.end.kind == "error"
    assert result.end.node == "lookup"
    assert "no on_error" in (result.end.message or "")
    assert "ReadTimeout" in (result.end.message or "")


async def test_http_empty_body_stores_none(harness: Harness) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(204))) as c:
        result = await harness.run(HTTP, http_client=c, variables={"account": "1"})
    assert "customer" in result.ctx.variables and result.ctx.variables["customer"] is None
    assert result.ctx.path == ["lookup", "route", "plain"]


QUEUE = """
    flow: q
    start: agent
    nodes:
      agent:
        queue:
          name: general
          priority: "{{ priority | default(0) }}"
          skills: {banking: 3}
          context: [account, customer.name, customer.tier, intent]
          announce: {position: true, wait_time: true, every: 30s}
          max_wait: 5m
          callback: {offer_after: 60s, dtmf: "1"}
        on_timeout: voicemail
        on_error: sorry
      voicemail:
        record: {prompt: "Leave a message.", max: 60s, into: message}
        next: bye
      sorry: {say: "Sorry.", hangup: true}
      bye: {say: "Goodbye.", hangup: true}
"""

VARS = {"account": "12345678", "customer": {"name": "Ann", "tier": "gold"}, "priority": 10}


async def test_queue_connected_hands_over_the_context(harness: Harness) -> None:
    result = await harness.run(QUEUE, variables=VARS)
    assert result.end.kind == "queue"
    assert result.end.queue == "general"
    assert result.end.node == "agent"
    expected = {"account": "12345678", "customer.name": "Ann", "customer.tier": "gold", "intent": None}
    assert result.end.context == expected
    (request,) = channel_of(result).queued
    assert request.name == "general"
    assert request.priority == 10
    assert dict(request.skills) == {"banking": 3}
    assert dict(request.context) == expected
    assert request.max_wait == 300.0
    assert asdict(request.announce) == {"position": True, "wait_time": True, "every": 30.0}
    assert request.callback is not None
    assert asdict(request.callback) == {"offer_after": 60.0, "dtmf": "1"}
    assert request.mode == "bridge"


async def test_queue_priority_defaults_when_unset(harness: Harness) -> None:
    result = await harness.run(QUEUE)
    assert channel_of(result).queued[0].priority == 0


async def test_queue_timeout_and_error_exits(harness: Harness) -> None:
    flows = harness.load(QUEUE)
    timeout = await harness.run(flows, queue_results={"general": "timeout"})
    assert timeout.ctx.path == ["agent", "voicemail", "bye"]
    assert timeout.ctx.variables["message"] == "simulated://message.wav"
    assert timeout.end.kind == "hangup"

    error = await harness.run(flows, queue_results={"general": "error"})
    assert error.ctx.path == ["agent", "sorry"]


async def test_queue_callback_counts_as_handled(harness: Harness) -> None:
    result = await harness.run(QUEUE, queue_results={"general": "callback"})
    assert result.end.kind == "queue"


async def test_queue_timeout_without_exit_ends_in_error(harness: Harness) -> None:
    result = await harness.run("""
        flow: q
        start: agent
        nodes:
          agent: {queue: {name: cards}}
    """, queue_results={"cards": "timeout"})
    assert result.end.kind == "error"
    assert result.end.queue == "cards"
    assert "timeout" in (result.end.message or "")


TRANSFER = """
    flow: x
    start: xfer
    nodes:
      xfer:
        transfer:
          to: "sip:{{ dept }}@pbx.example.net"
          mode: bridge
          headers: {X-Intent: "{{ intent }}"}
          context: [intent]
        on_fail: sorry
      sorry: {say: "The transfer failed.", hangup: true}
"""


async def test_transfer_success_ends_the_flow(harness: Harness) -> None:
    result = await harness.run(TRANSFER, variables={"dept": "sales", "intent": "upgrade"})
    assert result.end.kind == "transfer"
    assert result.end.target == "sip:sales@pbx.example.net"
    (request,) = channel_of(result).transfers
    assert request.mode == "bridge"
    assert dict(request.headers) == {"X-Intent": "upgrade"}
    assert dict(request.context) == {"intent": "upgrade"}


async def test_transfer_failure_goes_to_on_fail(harness: Harness) -> None:
    result = await harness.run(
        TRANSFER, variables={"dept": "sales", "intent": "x"},
        transfer_results={"sip:sales@pbx.example.net": False},
    )
    assert result.ctx.path == ["xfer", "sorry"]
    assert result.end.kind == "hangup"


async def test_transfer_failure_without_on_fail_is_an_error(harness: Harness) -> None:
    result = await harness.run("""
        flow: x
        start: xfer
        nodes:
          xfer: {transfer: {to: "sip:a@b"}}
    """, transfer_results={"sip:a@b": False})
    assert result.end.kind == "error"
    assert result.end.target == "sip:a@b"
    assert "failed" in (result.end.message or "")
