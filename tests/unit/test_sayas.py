"""Say-as per language against tables of expected words (ivr.lang.sayas)."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import Harness

from ivr.flow.sayas_check import problem
from ivr.flow.templates import render
from ivr.lang.sayas import UnsupportedLanguage, speaker, supported


def say(template: str, value: Any, language: str) -> str:
    return render(template, {"v": value, "call": {"language": language}})


NUMBERS = {
    "zh-CN": {10: "十", 12: "十二", 20: "二十", 102: "一百零二", 1002: "一千零二",
              10000: "一万", 20008: "两万零八", 200: "两百", 2000: "两千", 12000: "一万两千",
              220000: "二十二万", 2: "二", "2.5": "二点五", -3: "负三"},
    "en-US": {10: "ten", 12: "twelve", 20: "twenty", 102: "one hundred and two",
              1002: "one thousand and two", 10000: "ten thousand",
              20008: "twenty thousand and eight", "2.5": "two point five"},
    "ko-KR": {10: "십", 12: "십이", 20: "이십", 102: "백이", 1002: "천이", 10000: "만",
              20008: "이만 팔", 12000: "만 이천", "2.5": "이 점 오"},
}


@pytest.mark.parametrize(("language", "value", "words"),
                         [(lang, v, w) for lang, table in NUMBERS.items() for v, w in table.items()])
def test_numbers(language: str, value: Any, words: str) -> None:
    assert say("{{ v | say_number }}", value, language) == words


CURRENCY = {
    "zh-CN": {"0.05": "五分", "12.30": "十二元三角", "2": "两元", "1.05": "一元零五分",
              "0.5": "五角", "0": "零元", "12000": "一万两千元"},
    "en-US": {"0.05": "zero dollars and five cents", "12.30": "twelve dollars and thirty cents",
              "1": "one dollar"},
    "ko-KR": {"12000": "만 이천원", "500": "오백원"},
}


@pytest.mark.parametrize(("language", "value", "words"),
                         [(lang, v, w) for lang, table in CURRENCY.items() for v, w in table.items()])
def test_currency_in_the_languages_unit(language: str, value: str, words: str) -> None:
    assert say("{{ v | say_currency }}", value, language) == words


DATES_TIMES = {
    "zh-CN": ("二零二六年三月二日", "十四点零五分", "十四点", "两点三十分",
              "一小时两分钟五秒", "第二", "零 四 一 二"),
    "en-US": ("March second, twenty twenty six", "two oh five pm", "two pm", "two thirty am",
              "one hour two minutes and five seconds", "second", "0 4 1 2"),
    "ko-KR": ("이천이십육년 삼월 이일", "십사시 오분", "십사시", "이시 삼십분",
              "한 시간 이 분 오 초", "두 번째", "영 사 일 이"),
}


@pytest.mark.parametrize("language", DATES_TIMES)
def test_dates_times_durations_ordinals_digits(language: str) -> None:
    date, time, hour, half, duration, ordinal, digits = DATES_TIMES[language]
    assert say("{{ v | say_date }}", "2026-03-02", language) == date
    assert say("{{ v | say_time }}", "14:05", language) == time
    assert say("{{ v | say_time }}", "14:00:00", language) == hour
    assert say("{{ v | say_time }}", "02:30", language) == half
    assert say("{{ v | say_duration }}", 3725, language) == duration
    assert say("{{ v | say_ordinal }}", 2, language) == ordinal
    assert say("{{ v | say_digits }}", "0412", language) == digits


def test_june_and_october_are_said_short_in_korean() -> None:
    assert say("{{ v | say_date }}", "2026-06-10", "ko-KR") == "이천이십육년 유월 십일"
    assert say("{{ v | say_date }}", "2026-10-01", "ko-KR") == "이천이십육년 시월 일일"


def test_an_explicit_language_wins_over_the_calls() -> None:
    assert say('{{ v | say_number("zh-CN") }}', 102, "en-US") == "一百零二"
    assert say('{{ v | say_currency("USD", "zh-CN") }}', "3.5", "en-US") == "三点五美元"
    assert say("{{ v | say_number }}", 102, "zh-CN") == "一百零二"


def test_without_a_call_language_templates_speak_english() -> None:
    assert render("{{ v | say_number }}", {"v": 21}) == "twenty one"


def test_a_value_that_is_not_one_is_said_as_it_is() -> None:
    assert say("{{ v | say_number }}", "abc", "zh-CN") == "abc"
    assert say("{{ v | say_date }}", "soon", "ko-KR") == "soon"
    assert say("{{ v | say_time }}", "25:99", "zh-CN") == "25:99"


def test_unsupported_languages_are_refused_at_load_not_mid_call() -> None:
    assert supported("zh-CN") and supported("zh") and supported("en-GB") and supported("ko")
    assert not supported("zh-TW") and not supported("fr-FR")
    with pytest.raises(UnsupportedLanguage):
        speaker("fr-FR")
    assert problem("{{ n | say_number }}", "fr-FR") is not None
    assert problem('{{ n | say_number("xx") }}', "en-US") is not None
    assert problem('{{ n | say_currency("EUR", language="de") }}', "en-US") is not None
    assert problem('{{ n | say_number("ko-KR") }}', "fr-FR") is None
    assert problem("{{ n | upper }}", "fr-FR") is None


def test_pack_fragments_split_han_and_hangul_by_character_and_english_by_word() -> None:
    assert speaker("zh-CN").fragments("两万零八") == ["两", "万", "零", "八"]
    assert speaker("ko-KR").fragments("만 이천원") == ["만", "이", "천", "원"]
    assert speaker("en-US").fragments("twenty one dollars") == ["twenty", "one", "dollars"]


def test_the_inventory_covers_what_say_as_produces() -> None:
    zh = set(speaker("zh-CN").inventory)
    assert {"零", "十", "百", "千", "万", "亿", "两", "点", "元", "角", "分", "年", "月", "日",
            "秒", "钟", "小", "时", "第"} <= zh
    assert set("一二三四五六七八九") <= zh
    for text in ("十二元三角", "二零二六年三月二日", "十四点零五分"):
        assert set(speaker("zh-CN").fragments(text)) <= zh


def test_a_secret_said_in_mandarin_or_korean_digits_is_scrubbed_from_free_text() -> None:
    from ivr.lang.secret import scrub, taint

    pin = taint("40719263")
    said = render("{{ v | say_digits }}", {"v": "40719263", "call": {"language": "zh-CN"}})
    assert said == "四 零 七 一 九 二 六 三"
    for text in (f"heard: {said}", "heard: 四零七一九二六三", "들은 것: 사 영 칠 일 구 이 육 삼"):
        assert "****9263" in scrub(text, [pin]) and "九 二 六" not in scrub(text, [pin])


async def test_a_flow_speaks_its_own_language_without_naming_it(harness: Harness) -> None:
    result = await harness.run("""
        flow: zh
        language: zh-CN
        start: a
        nodes:
          a: {set: {n: 20008, fee: "0.05"}, next: b}
          b: {say: "您的积分是{{ n | say_number }}，手续费{{ fee | say_currency }}。", next: c}
          c: {say: "{{ n | say_number('en-US') }} {{ call.language }}"}
    """)
    assert result.ctx.prompts == ["您的积分是两万零八，手续费五分。", "twenty thousand and eight zh-CN"]
