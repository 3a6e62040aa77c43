"""Sensitive values never leave the call unmasked: variables, inputs, transcript, prompts, agents."""

from __future__ import annotations

import json

import httpx
import pytest
from helpers import Harness, channel_of

from ivr.flow.interpreter import Result
from ivr.flow.templates import mask

SENSITIVE = """
    flow: bank
    start: ask
    nodes:
      ask:
        collect:
          prompt: "Enter your account number."
          digits: {min: 8, max: 8, terminator: "#"}
          speech: digits
          into: account
          sensitive: true
          confirm: "You entered {{ account | say_digits }}, that is {{ account }}. Press 1 if right."
        next: greet
      greet:
        say: "Thanks. Account ending {{ account | mask }}."
        next: agent
      agent:
        queue:
          name: general
          context: [account, intent]
        on_timeout: bye
      bye: {say: "bye"}
"""

SECRET = "12345678"


def everything_recorded(result: Result) -> str:
    """Everything the run exposes outside the flow's own variables, as one string."""
    return json.dumps(
        {
            "report": result.as_json(),
            "queued": [dict(q.context) for q in channel_of(result).queued],
            "end": result.end.as_json(),
        },
        default=str,
    )


@pytest.mark.parametrize("entry", ["dtmf:12345678#", "say:one two three four five six seven eight"])
async def test_sensitive_collect_is_masked_everywhere(harness: Harness, entry: str) -> None:
    result = await harness.run(SENSITIVE, entry, "dtmf:1", variables={"intent": "cards"})
    ctx = result.ctx
    # the flow itself still has the real value (it needs it, e.g. to look the account up)
    assert ctx.variables["account"] == SECRET
    assert ctx.masked_variables()["account"] == "****5678"
    assert ctx.inputs[0]["value"] == "****5678"
    assert {"who": "caller", "text": "****5678"} in ctx.transcript
    assert "You entered ****5678, that is ****5678. Press 1 if right." in ctx.prompts
    assert "Thanks. Account ending ****5678." in ctx.prompts
    assert result.end.kind == "queue"
    assert result.end.context == {"account": "****5678", "intent": "cards"}
    assert channel_of(result).queued[0].context["account"] == "****5678"
    recorded = everything_recorded(result)
    assert SECRET not in recorded
    assert "1 2 3 4 5 6 7 8" not in recorded
    assert "one two three" not in recorded


async def test_flow_level_sensitive_list_masks_set_and_http_values(harness: Harness) -> None:
    def backend(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"pin": "9876", "name": "Ann"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(backend)) as client:
        result = await harness.run("""
            flow: t
            sensitive: [pin, profile]
            start: a
            nodes:
              a: {set: {pin: "4321", shown: "{{ pin }}"}, next: b}
              b: {http: {url: "http://backend/profile", into: profile}, next: c, on_error: c}
              c: {say: "Your pin is {{ pin }}.", next: q}
              q: {queue: {name: general, context: [pin, profile.name]}}
        """, http_client=client)
    masked = result.ctx.masked_variables()
    assert masked["pin"] == "****"  # 4 characters: nothing of it is shown
    assert masked["profile"] == {"pin": "****", "name": "****"}  # each value of it masked
    assert "9876" not in json.dumps(masked)
    assert result.ctx.prompts == ["Your pin is ****."]
    # a dotted name under a sensitive root is masked too
    assert result.end.context == {"pin": "****", "profile.name": "****"}


async def test_transfer_headers_and_context_are_masked(harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: ask
        nodes:
          ask:
            collect: {prompt: "Card number?", digits: {min: 16, max: 16}, into: card, sensitive: true}
            next: xfer
          xfer:
            transfer:
              to: "sip:cards@example.net"
              headers: {X-Card: "{{ card }}"}
              context: [card]
    """, "dtmf:4111111111111111")
    request = channel_of(result).transfers[0]
    assert request.headers == {"X-Card": "****1111"}
    assert request.context == {"card": "****1111"}
    assert result.end.kind == "transfer"


async def test_failed_http_request_does_not_leak_a_sensitive_url(harness: Harness) -> None:
    def backend(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "no such account"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(backend)) as client:
        result = await harness.run("""
            flow: t
            start: ask
            nodes:
              ask:
                collect: {prompt: "Account?", digits: {min: 8, max: 8}, into: account, sensitive: true}
                next: lookup
              lookup:
                http: {url: "http://backend/accounts/{{ account }}", into: customer}
                next: done
                on_error: sorry
              done: {say: "found"}
              sorry: {say: "Sorry, {{ http_error }}"}
        """, "dtmf:12345678", http_client=client)
    assert result.ctx.path == ["ask", "lookup", "sorry"]
    assert "404" in result.ctx.variables["http_error"]
    recorded = everything_recorded(result)
    assert SECRET not in recorded
    assert "****5678" in result.as_json()["variables"]["http_error"]


def test_mask_filter_keeps_only_the_last_four() -> None:
    assert mask("12345678") == "****5678"
    assert mask(4111111111111111) == "****1111"
    assert mask("1234") == "****"
    assert mask("12") == "****"
    assert mask("") == ""
    assert mask("12345678", keep=2) == "****78"
