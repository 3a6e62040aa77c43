"""Calls in Mandarin over real SIP: the shipped telco-care-zh flow through to 人工服务 and a
registered agent phone (Chinese context intact in the INVITE, on MQTT and in the API), and a
call that switches to English mid-call and hears the rest, system prompts included, in English.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from phones import Softphone, headers_of
from server import REPO, Server, ivr_call, start_server

MANDARIN = "2100"
SWITCH = "2101"
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def zh_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    routes = yaml.safe_load((REPO / "ivr" / "defaults.yaml").read_text())["routes"]
    srv = start_server(tmp_path_factory.mktemp("zh") / "srv", max_calls=8, extra={
        "routes": {**routes, MANDARIN: "telco-care-zh", SWITCH: "lang-switch"},
        # no uri: his softphone registers; the flow's care queue asks for the care skill
        "agents": {"wang": {"queues": ["care"], "skills": {"care": 1}}}})
    try:
        yield srv
    finally:
        srv.stop()


def _texts(doc: dict[str, Any]) -> list[str]:
    return [str(p["text"]) for p in doc["prompts"]]


def test_health_says_mandarin_calls_are_dtmf_only(zh_server: Server) -> None:
    languages = zh_server.health()["speech"]["languages"]
    assert languages["zh-CN"]["ready"] is False and languages["zh-CN"]["input"] == "dtmf"
    assert "zh-CN" in languages["zh-CN"]["reason"], languages
    assert languages["en-US"] == {"ready": True, "input": "speech+dtmf"}, languages


def test_a_mandarin_call_reaches_an_agent_with_its_chinese_context(
        zh_server: Server, tmp_path: Path) -> None:
    server = zh_server
    wang = Softphone("--name", "wang", "--register", server.uri_host, "--incoming", "answer",
                     "--hangup-in-after", "3", "--duration", "60")
    host, port = server.health()["bus"].split("://")[1].split(":")
    offers = subprocess.Popen(
        ["mosquitto_sub", "-h", host, "-p", port, "-t", "ivr/agents/wang/offer", "-C", "1",
         "-W", "60", "-q", "1", "-u", "agent-wang", "-P", server.bus_password("agent-wang")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wang.wait(10, "wang registered at the front", ev="registered", code=200)
        status, _ = server.request("POST", "/agents/wang/login")
        assert status == 200
        time.sleep(0.5)  # mosquitto_sub subscribed
        code, doc, err = ivr_call(server, f"sip:{MANDARIN}@{server.uri_host}", "--dtmf", "0",
                                  "--asr", "none", call_timeout=60)
        invite = wang.wait(20, "the agent's INVITE", ev="incoming")
        raw, _ = offers.communicate(timeout=30)
    finally:
        wang.stop()
        if offers.poll() is None:
            offers.kill()
    assert code == 0, err[-2000:]
    texts = _texts(doc)
    # only Mandarin, each prompt recognised by sound against the flow's zh-CN catalogue
    assert texts[:2] == ["您好，欢迎致电电信客服。", "查询话费或流量请按1，故障报修请按2，人工服务请按0。"], \
        texts  # no Mandarin recogniser: the menu speaks its DTMF wording
    assert all(CJK.search(t) for t in texts), texts
    assert all(p["heard_by"] == "catalogue" for p in doc["prompts"]), doc["prompts"]
    # the agent's INVITE: the Chinese values as UTF-8 header text (RFC 3261 TEXT-UTF8)
    h = headers_of(invite["msg"])
    assert h["X-IVR-Intent"] == "人工服务", h
    call_id = h["X-IVR-Call-Id"]
    # MQTT: the offer is UTF-8 JSON with the text intact
    offer = json.loads(raw.decode("utf-8"))
    assert offer["context"]["intent"] == "人工服务", offer
    # the API's JSON route
    status, ctx = server.get(f"/calls/{call_id}/context")
    assert status == 200 and ctx["context"]["intent"] == "人工服务", ctx
    server.wait_idle(30)


def test_a_call_switched_to_english_hears_the_rest_in_english(zh_server: Server) -> None:
    before = len(zh_server.calls())
    code, doc, err = ivr_call(zh_server, f"sip:{SWITCH}@{zh_server.uri_host}", "--dtmf", "9",
                              "--dtmf", "5", "--dtmf", "1", "--asr", "none")
    assert code == 0, err[-2000:]
    texts = _texts(doc)
    english = "English service. For your balance, choose one."
    # heard by sound against each prompt rendered in its language: the English voice after 9
    assert texts == ["中文服务请按1，英语服务请按9。", english, "Sorry, I did not understand.",
                     english, "Thanks for calling. Have a nice day."], texts
    assert all(p["heard_by"] == "catalogue" for p in doc["prompts"]), doc["prompts"]
    (cdr,) = zh_server.wait_cdrs(before + 1)[before:]
    assert cdr["path"] == ["menu", "english", "en_bye"], cdr
    zh_server.wait_idle()
