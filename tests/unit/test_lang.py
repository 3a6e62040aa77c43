"""ivr.lang: one set of number words serves the parsers, the recognisers and the say-as filters."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from ivr.flow.channel import ListenSpec
from ivr.flow.grammar import speech_grammar
from ivr.lang.grammars import ENGLISH, ENGLISH_JSGF, Grammar, builtins_for, parse_builtin
from ivr.lang.normalize import best_phrase
from ivr.lang.numbers import (
    NUMBER_WORDS,
    SAY_AS_WORDS,
    parse_number,
    say_currency,
    say_date,
    say_number,
)
from ivr.lang.spoken import SLOT, spoken_text, spoken_tokens


def test_the_jsgf_number_rules_use_only_the_say_as_words() -> None:
    words = set(re.findall(r"(?<![<\w])[a-z]+(?![\w>])", ENGLISH_JSGF))
    # "double four": callers say it, the IVR's say-as never does
    assert words - set(SAY_AS_WORDS) == {"double", "triple"}
    assert set(NUMBER_WORDS) <= set(SAY_AS_WORDS)


@pytest.mark.parametrize("text", [say_number(1042), say_number("21.5"), say_currency("1042.50"),
                                  say_currency(1.01, "GBP"), say_date("2026-03-02")])
def test_say_as_output_is_in_the_vocabulary(text: str) -> None:
    assert set(spoken_text(text).split()) <= set(SAY_AS_WORDS), text


@pytest.mark.parametrize("value", [0, 7, 19, 42, 100, 1042, 250_000, 3_000_017])
def test_parsing_what_say_number_says(value: int) -> None:
    assert parse_number(say_number(value)) == Decimal(value)


def test_template_parts_become_slots_of_their_say_as_kind() -> None:
    tokens = spoken_tokens("Press 1. Your balance is {{ b | say_currency }}, {{ name }}!")
    assert tokens == ["press", "one", "your", "balance", "is", SLOT + "currency", SLOT + "any"]


def test_languages_without_their_own_builtins_use_english() -> None:
    assert builtins_for("en-GB") is ENGLISH and builtins_for("ko-KR") is ENGLISH
    grammar = Grammar(("잔액",), builtin="yes_no", language="ko-KR")
    assert grammar.match("잔액 주세요") == "잔액" and grammar.match("yeah") == "yeah"


def test_the_flow_describes_what_a_node_listens_for() -> None:
    g = speech_grammar(ListenSpec(builtin="digits", min_digits=4, max_digits=8,
                                  phrases=("agent", "agent", "!!"), language="en-GB"))
    assert (g.phrases, g.builtin, g.language, g.min_words, g.max_words) == (
        ("agent",), "digits", "en-GB", 4, 8)
    assert speech_grammar(ListenSpec(builtin="date")).builtin is None  # no speech words
    # a collect of exactly one digit is bounded at one (a digit loop heard "zero" as
    # "three zero"); a listen that counts no digits is not bounded
    one = speech_grammar(ListenSpec(builtin="digits", min_digits=1, max_digits=1,
                                    digits_counted=True))
    assert (one.min_words, one.max_words) == (1, 1)
    assert speech_grammar(ListenSpec(builtin="digits")).max_words == 0
    assert g.match("one two oh four") == "one two oh four"
    assert g.match("press 2 for option two", {"option two": "Option 2"}) == "Option 2"


def test_matching_prefers_the_longest_phrase() -> None:
    assert best_phrase("my Account-Balance, please", ["balance", "account balance"]) == \
        "account balance"
    assert parse_builtin("yes_no", "no, that's not right") == "no"
