"""System prompts per language (ivr/lang/messages), the call's language and switching it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import Harness, position, steps

from ivr.config import AsrSettings
from ivr.flow.catalog import prompt_pairs, prompt_texts
from ivr.flow.channel import Prompt
from ivr.flow.context import CallContext
from ivr.flow.interpreter import Interpreter
from ivr.flow.scripted import ScriptedChannel
from ivr.lang import messages

CJK = re.compile(r"[\u4e00-\u9fff]")
HANGUL = re.compile(r"[\uac00-\ud7a3]")
SAMPLE = {"position": 3, "minutes": 2, "key": "1"}


def test_every_catalogue_has_every_key_and_renders_it() -> None:
    assert {"en-US", "zh-CN", "ko-KR"} <= set(messages.languages())
    for tag in messages.languages():
        assert messages.missing(tag) == [], tag
        assert messages.problem(tag) is None
        for key, takes in messages.KEYS.items():
            text = messages.text(tag, key, **{k: SAMPLE[k] for k in takes})
            assert text.strip() and "{" not in text, (tag, key, text)
            for name in takes:  # the value goes in: no sentence drops it
                assert str(SAMPLE[name]) in text, (tag, key, text)


def test_catalogues_speak_their_own_language() -> None:
    for key in ("noinput", "nomatch", "retry", "callback_confirm"):
        assert CJK.search(messages.text("zh-CN", key)), key
        assert HANGUL.search(messages.text("ko-KR", key)), key
    assert messages.text("zh-CN", "retry") == "请再试一次。"
    assert messages.text("ko-KR", "retry") == "다시 시도해 주세요."
    assert messages.text("en-US", "queue_wait_time", minutes=1) == \
        "Your expected wait is about 1 minute."
    assert messages.text("en-US", "queue_wait_time", minutes=5) == \
        "Your expected wait is about 5 minutes."
    assert messages.spoken_key("zh-CN", "*") == "星号" and messages.spoken_key("en-US", "#") == "pound"


def test_languages_resolve_by_tag_or_base_and_unknown_ones_say_why() -> None:
    assert messages.resolve("zh-cn") == "zh-CN" and messages.resolve("zh") == "zh-CN"
    assert messages.resolve("fr-FR") is None and messages.resolve("zh-TW") is None
    why = messages.problem("fr-FR")
    assert why is not None and "no message catalogue for language 'fr-FR'" in why
    with pytest.raises(messages.MessageError):
        messages.text("fr-FR", "retry")


def test_a_catalogue_missing_a_key_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = {**{k: dict(v) for k, v in messages._load_all().items()}}
    del broken["ko-KR"]["retry"]
    monkeypatch.setattr(messages, "_load_all", lambda: broken)
    assert messages.problem("ko-KR") == "message catalogue ko-KR.yaml lacks retry"


def test_a_flow_in_a_language_without_a_catalogue_is_a_positioned_error(harness: Harness) -> None:
    text = """
        flow: f
        language: fr-FR
        start: a
        nodes:
          a: {say: "Bonjour", hangup: true}
    """
    result = harness.load_set(text)
    (problem,) = result.errors
    assert problem.line == position(Path(problem.file).read_text(), "fr-FR")[0]
    assert "no message catalogue for language 'fr-FR'" in problem.message


def test_switching_to_an_unknown_language_is_a_positioned_error(harness: Harness) -> None:
    result = harness.load_set("""
        flow: f
        language: zh-CN
        start: m
        nodes:
          m:
            menu:
              prompt: "请按9"
              options:
                - {dtmf: "9", goto: b, set: {language: xx-YY}}
            on_fail: b
          b: {set: {language: de-DE}, next: c}
          c: {say: "x", hangup: true}
    """)
    found = {(p.line, p.message.split(":")[0]) for p in result.errors}
    src = Path(result.errors[0].file).read_text()
    assert found == {(position(src, "xx-YY")[0], "cannot switch to language 'xx-YY'"),
                     (position(src, "de-DE")[0], "cannot switch to language 'de-DE'")}


SWITCH_FLOW = """
    flow: sw
    language: zh-CN
    defaults: {retries: 1}
    start: m
    nodes:
      m:
        menu:
          prompt: "中文服务请按1，英语服务请按9。"
          options:
            - {dtmf: "1", goto: zh}
            - {dtmf: "9", goto: en, set: {language: en-US}}
        on_fail: zh
      en:
        collect:
          prompt: "Enter your code."
          digits: {min: 2, max: 2}
          into: code
          confirm: "You entered {{ code }}. Press 1 if right."
        next: bye
        on_fail: bye
      zh: {say: "再见。", hangup: true}
      bye: {say: "Goodbye.", hangup: true}
"""


async def test_a_call_switched_mid_call_hears_the_rest_in_the_new_language(
        harness: Harness) -> None:
    flows = harness.load(SWITCH_FLOW)
    heard: list[Prompt] = []
    channel = ScriptedChannel(steps=steps("dtmf:7", "dtmf:9", "dtmf:5#", "dtmf:12", "dtmf:2",
                                          "silence"), on_prompt=heard.append)
    ctx = CallContext(channel=channel, config=harness.config, flows=flows, flow=flows["sw"])
    await Interpreter(ctx).run()
    said = [(p.text, p.language) for p in heard]
    assert said == [
        ("中文服务请按1，英语服务请按9。", "zh-CN"),
        ("抱歉，我没有听懂。", "zh-CN"),  # the nomatch before the switch: Mandarin
        ("中文服务请按1，英语服务请按9。", "zh-CN"),
        ("Enter your code.", "en-US"),
        ("Sorry, I did not understand.", "en-US"),  # 5 is too short: English now
        ("Enter your code.", "en-US"),
        ("You entered 12. Press 1 if right.", "en-US"),
        ("Let's try again.", "en-US"),  # the refused confirmation's retry, in English
        ("Goodbye.", "en-US"),
    ], said
    assert ctx.language == "en-US" and ctx.variables["language"] == "en-US"


async def test_a_switch_to_an_unknown_language_at_run_time_ends_the_call_with_an_error(
        harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: a
        nodes:
          a: {set: {language: "{{ 'xx' ~ '-YY' }}"}, next: b}
          b: {say: "never", hangup: true}
    """)
    assert result.ctx.ending is not None and result.ctx.ending.kind == "error"
    assert "cannot switch the call to language 'xx-YY'" in str(result.ctx.ending.message)
    assert result.ctx.prompts == []


def test_the_prompt_catalogue_holds_system_prompts_in_every_language_of_the_flow(
        harness: Harness) -> None:
    flows = harness.load(SWITCH_FLOW)
    pairs = prompt_pairs(flows["sw"])
    for text, lang in [("抱歉，我没有听懂。", "zh-CN"), ("抱歉，我没有听到您的声音。", "zh-CN"),
                       ("Sorry, I did not understand.", "en-US"), ("Let's try again.", "en-US"),
                       ("请再试一次。", "zh-CN"),
                       ("Enter your code.", "en-US"), ("Enter your code.", "zh-CN")]:
        assert (text, lang) in pairs, (text, lang)  # the author's texts: either voice
    texts = prompt_texts(flows["sw"])
    assert len(texts) == len(set(texts)) and "Let's try again." in texts


def test_a_korean_flow_lists_korean_queue_words_not_english(harness: Harness) -> None:
    flows = harness.load("""
        flow: k
        language: ko-KR
        start: q
        nodes:
          q:
            queue:
              name: general
              announce: {position: true, wait_time: true}
              callback: {offer_after: 30s, dtmf: "*"}
    """)
    texts = prompt_texts(flows["k"])
    assert "고객님의 대기 순서는 2번째입니다." in texts
    assert "대기 순서를 유지하고 다시 전화를 받으시려면 별표 버튼을 눌러 주세요." in texts
    assert not any(re.search("[A-Za-z]", t) for t in texts), texts


@pytest.mark.parametrize(("language", "given", "expected"), [
    ("en-US", {}, True), ("en-GB", {}, True), ("zh-CN", {}, False), ("ko-KR", {}, False),
    ("ko-KR", {"languages": {"ko": {"engine": "vosk", "model": "lang:ko"}}}, True),
    ("zh-CN", {"default_languages": ["en", "zh"]}, True),
    ("en-US", {"engine": "none"}, False),
])
def test_which_languages_get_speech_recognition(language: str, given: dict[str, object],
                                                expected: bool) -> None:
    assert AsrSettings.model_validate(given).recognises(language) is expected


async def test_an_input_node_without_a_recogniser_for_the_language_uses_its_dtmf_wording(
        harness: Harness) -> None:
    class MandarinDeaf(ScriptedChannel):
        def speech_for(self, language: str) -> bool:
            return language.startswith("en")

    flows = harness.load("""
        flow: d
        language: zh-CN
        start: m
        nodes:
          m:
            menu:
              prompt: "查询请按1或说查询。"
              dtmf_prompt: "查询请按1。"
              options: [{dtmf: "1", speech: [查询], goto: e, set: {language: en-US}}]
            on_fail: bye
          e:
            menu:
              prompt: "Press 1 or say yes."
              dtmf_prompt: "Press 1."
              options: [{dtmf: "1", speech: ["yes"], goto: bye}]
            on_fail: bye
          bye: {say: "Bye.", hangup: true}
    """)
    channel = MandarinDeaf(steps=steps("dtmf:1", "dtmf:1"))
    ctx = CallContext(channel=channel, config=harness.config, flows=flows, flow=flows["d"])
    await Interpreter(ctx).run()
    assert ctx.prompts == ["查询请按1。", "Press 1 or say yes.", "Bye."]


def test_the_shipped_mandarin_flow_passes_its_tests_at_full_node_coverage(
        run_cli: Callable[..., Any]) -> None:
    tests = Path(__file__).resolve().parents[2] / "flows" / "telco-care-zh.test.yaml"
    result = run_cli("test", tests, "--json")
    assert result.code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["coverage"]["telco-care-zh"]["unreached"] == [], doc["coverage"]
    assert len(doc["cases"]) >= 7 and all(c["passed"] for c in doc["cases"]), doc["cases"]


def test_with_a_mandarin_recogniser_the_shipped_menus_offer_speech(
        run_cli: Callable[..., Any], tmp_path: Path) -> None:
    """A site with a Mandarin engine gets the spoken options. Not a shipped case: no Mandarin
    recogniser ships here, so over SIP the shipped flow is DTMF-only and its cases say so."""
    shipped = Path(__file__).resolve().parents[2] / "flows" / "telco-care-zh.yaml"
    (tmp_path / "telco-care-zh.yaml").write_text(shipped.read_text(encoding="utf-8"),
                                                 encoding="utf-8")
    (tmp_path / "speech.test.yaml").write_text("""flow: telco-care-zh
cases:
  - name: 报修 said, star repeats, 0 for an agent
    clock: "2026-03-02T10:00:00+08:00"
    steps:
      - expect_prompt: "故障报修请按2或说报修"
      - say: "报修"
      - expect_prompt: "或说没信号"
      - dtmf: "*"
      - expect_prompt: "手机没有信号请按1或说没信号"
      - dtmf: "0"
    expect_end: {queue: care, context: {intent: 人工服务}}
""", encoding="utf-8")
    result = run_cli("test", tmp_path / "speech.test.yaml", "--json")
    assert result.code == 0, result.output
    assert [c["passed"] for c in json.loads(result.stdout)["cases"]] == [True]


def test_expect_prompt_over_sip_matches_chinese_and_korean_text_as_written() -> None:
    from ivr.speech.prompt_asr import expect_matches

    heard = "您好，欢迎致电电信客服。"
    assert expect_matches("欢迎致电电信客服", heard)
    assert expect_matches("您好 欢迎致电", heard)  # spaces and punctuation do not count
    assert not expect_matches("欢迎致电移动客服", heard)
    assert expect_matches("报修单号是12341", "您的报修单号是12341。正在为您转接。")
    assert not expect_matches("报修单号是12342", "您的报修单号是12341。正在为您转接。")
    assert expect_matches("다시 시도해", "다시 시도해 주세요.")
    assert expect_matches("Press 1", "press one.") and not expect_matches("Press 2", "Press 1.")


def test_a_flow_with_an_unknown_language_still_lists_nothing_rather_than_failing(
        harness: Harness) -> None:
    result = harness.load_set("""
        flow: f
        language: fr-FR
        start: m
        nodes:
          m:
            menu: {prompt: "Appuyez sur 1", options: [{dtmf: "1", goto: m}], on_fail: m}
    """)
    assert result.errors and "f" in result.flows  # reported, and serve still sees the flow
    assert prompt_pairs(result.flows["f"]) == []
