"""`ivr test --sip`: the X-IVR-Test hook (encoding, refusal), the stubbed SIP channel's
outcomes, and how a SIP run's call report and CDR become the offline reporter's case result."""

from __future__ import annotations

import base64
import datetime as dt
import json
import zlib

import httpx
import pytest

from ivr.flow.context import End
from ivr.flow.stubs import Stubs
from ivr.flow.testing import Case, check_end
from ivr.sip.test_hooks import HEADER, HookRefused, TestHook, decode, encode, from_invite
from ivr.siptest.runner import end_from, unused_steps, visited_from

FLOWS = {"acme-bank": object(), "survey": object()}


def hook() -> TestHook:
    return TestHook(flow="acme-bank", stubs=Stubs.model_validate({
        "caller": {"number": "+15550001111"},
        "clock": "2026-03-02T10:00:00-05:00",
        "http": {"http://127.0.0.1:8099/accounts/12345678": {"tier": "gold"}},
        "http_errors": {"http://127.0.0.1:8099/cards/1/activate": 503},
        "queues": {"general": "timeout"}, "transfers": {"sip:x@127.0.0.1": False},
        "speech": False}))


def test_a_hook_survives_the_header_and_stays_small() -> None:
    sent = hook()
    value = encode(sent)
    assert len(value) < 400 and all(c.isalnum() or c in "-_" for c in value)
    got = from_invite({"x-ivr-test": value}, enabled=True, flows=FLOWS)  # names: any case
    assert got == sent
    assert got is not None and got.stubs.clock == dt.datetime.fromisoformat("2026-03-02T10:00:00-05:00")
    assert got.stubs.queue_outcome("general") == "timeout"
    assert got.stubs.queue_outcome("cards") == "connected"  # as offline: unnamed queues answer
    assert got.stubs.transfer_outcome("sip:x@127.0.0.1") is False
    assert got.stubs.transfer_outcome("sip:y@127.0.0.1") is True


def test_plain_json_is_taken_too() -> None:
    value = json.dumps({"flow": "survey", "call_id": "ab" * 16, "stubs": {"speech": False}})
    got = decode(value)
    assert (got.flow, got.call_id, got.stubs.speech) == ("survey", "ab" * 16, False)


def test_an_invite_without_the_header_is_an_ordinary_call() -> None:
    assert from_invite({"X-Account": "42"}, enabled=False, flows=FLOWS) is None
    assert from_invite({}, enabled=True, flows=FLOWS) is None


def test_a_server_without_test_hooks_refuses_with_403() -> None:
    with pytest.raises(HookRefused) as err:
        from_invite({HEADER: encode(hook())}, enabled=False, flows=FLOWS)
    assert err.value.status == 403 and "test_hooks is off" in err.value.reason


@pytest.mark.parametrize("value, why", [
    ("not base64 !!", "neither JSON nor deflated"),
    (base64.urlsafe_b64encode(b"not deflated").decode(), "neither JSON nor deflated"),
    ('{"flow": "survey", "surprise": 1}', "not a valid test hook"),
    ('{"flow": "survey", "call_id": "../../etc"}', "not a valid test hook"),
    ('{"flow": "survey", "stubs": {"clock": "2026-03-02T10:00:00"}}', "not a valid test hook"),
    ('{"flow": "survey", "stubs": {"queues": {"general": "maybe"}}}', "not a valid test hook"),
    (base64.urlsafe_b64encode(zlib.compress(b"{" + b" " * 200_000 + b"}")).decode(),
     "inflates beyond"),
])
def test_a_malformed_hook_is_refused_with_400_and_says_why(value: str, why: str) -> None:
    with pytest.raises(HookRefused) as err:
        from_invite({HEADER: value}, enabled=True, flows=FLOWS)
    assert err.value.status == 400 and why in err.value.reason, err.value.reason


def test_a_hook_naming_a_flow_the_server_does_not_serve_is_404() -> None:
    with pytest.raises(HookRefused) as err:
        from_invite({HEADER: encode(TestHook(flow="nope"))}, enabled=True, flows=FLOWS)
    assert err.value.status == 404 and "nope" in err.value.reason


def test_the_hooks_caller_replaces_the_invites() -> None:
    info = {"dialed": "1000", "number": "ivr-call", "name": "", "sip_headers": {HEADER: "x"},
            "contact": "sip:ivr-call@127.0.0.1:5000"}
    caller = hook().caller(info)
    assert caller["number"] == "+15550001111" and caller["sip_headers"] == {}
    assert caller["contact"] == "sip:ivr-call@127.0.0.1:5000"  # SIP facts stay


async def test_stubbed_http_answers_fails_and_refuses_the_rest() -> None:
    async with hook().stubs.http_client() as client:
        ok = await client.get("http://127.0.0.1:8099/accounts/12345678")
        assert ok.json() == {"tier": "gold"}
        assert (await client.get("http://127.0.0.1:8099/cards/1/activate")).status_code == 503
        with pytest.raises(httpx.ConnectError):
            await client.get("http://example.com/")


# -- reporting ---------------------------------------------------------------------------------
def test_the_end_comes_from_the_cdr_with_its_context() -> None:
    cdr = {"end_kind": "queue", "end_node": "agent", "queue": "general",
           "end_context": {"account": "****5678", "intent": "balance"}, "end_reason": "agent"}
    end = end_from(cdr, {})
    assert check_end({"queue": "general", "context": {"account": "****5678"}}, end) is None
    assert check_end({"queue": "cards"}, end) is not None
    assert check_end({"queue": "general", "context": {"intent": "agent"}}, end) is not None


def test_without_a_cdr_the_end_is_what_the_call_saw() -> None:
    refer = end_from(None, {"transfer": {"target": "<sip:cardprotect@127.0.0.1:5080>"}})
    assert check_end({"transfer": "sip:cardprotect@127.0.0.1:5080"}, refer) is None
    hung_up = end_from(None, {"end": {"by": "remote"}})
    assert check_end("hangup", hung_up) is None and hung_up.by == "ivr"


def test_subflow_nodes_count_for_their_own_flow() -> None:
    visited = visited_from(["welcome", "survey/ask", "survey/thanks", "bye"], "acme-bank", FLOWS)
    assert visited == [("acme-bank", "welcome"), ("survey", "ask"), ("survey", "thanks"),
                       ("acme-bank", "bye")]


def test_steps_the_call_never_sent_are_reported_as_offline() -> None:
    case = Case(name="c", steps=[{"dtmf": "1"}, {"expect_prompt": "x"}, {"say": "yes"},
                                 "silence", "hangup"])
    assert unused_steps(case, [{"dtmf": "1"}, {"speech": "yes"}, {"silence": True}]) is None
    why = unused_steps(case, [{"dtmf": "1"}])
    assert why == "the flow ended before these steps were used: ['say: yes', 'silence']"


def test_a_case_is_judged_the_same_way_both_ways() -> None:
    from ivr.flow.testing import judge

    case = Case(name="c", expect_end="hangup", expect_variables={"survey_score": 3})
    assert judge(case, End("hangup"), {"survey_score": 3}, []) == []
    assert judge(case, End("hangup"), {"survey_score": "3"}, []) == []
    problems = judge(case, End("queue", queue="care"), {"survey_score": 4}, ["heard nothing"])
    assert problems[0] == "heard nothing" and len(problems) == 3
