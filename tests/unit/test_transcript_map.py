"""Open transcripts (Whisper's) mapped onto a node's grammar: digits, yes/no, menu phrases."""

from __future__ import annotations

import pytest

from ivr.lang.grammars import Grammar, parse_builtin
from ivr.lang.transcript import map_transcript, read_digits

FOUR = Grammar(builtin="digits", min_words=4, max_words=4)
MENU = Grammar(("call forwarding", "call waiting", "do not disturb", "speed dial"))


@pytest.mark.parametrize(("text", "digits"), [
    ("6 6 3 1", "6631"),
    ("6. 0. 0. 6.", "6006"),
    ("4719", "4719"),
    ("4,719", "4719"),
    ("four seven one nine", "4719"),
    ("Oh, four, double seven.", "0477"),
    ("double four one two", "4412"),
    ("triple three nine", "3339"),
    ("forty seven nineteen", "4719"),
    ("Um, my code is 4 7 1 9.", "4719"),
])
def test_digit_strings_as_callers_say_them(text: str, digits: str) -> None:
    got = map_transcript(FOUR, text)
    assert got, text
    assert parse_builtin("digits", got[0].text) == digits


def test_digit_reading_scores_what_it_had_to_guess() -> None:
    clean = map_transcript(FOUR, "4 7 1 9")[0].score
    filler = map_transcript(FOUR, "um 4 7 1 9")[0].score
    homophone = map_transcript(FOUR, "for 7 1 9")[0].score
    noise = map_transcript(FOUR, "banana 4 7 1 9")[0].score
    assert clean == 1.0 and clean > filler > homophone > noise


def test_digit_length_bounds_decide() -> None:
    assert map_transcript(FOUR, "4 7 1") == []
    assert map_transcript(FOUR, "4 7 1 9 2") == []
    assert map_transcript(FOUR, "call forwarding") == []
    assert read_digits("hello there") is None


def test_a_repetition_loop_is_read_as_its_code_at_a_cost() -> None:
    one = Grammar(builtin="digits", min_words=1, max_words=1)
    got = map_transcript(one, "Three. Three. Three.")
    assert [parse_builtin("digits", r.text) for r in got] == ["3"] and got[0].score < 1.0
    got = map_transcript(FOUR, "5, 6, 8, 4 5, 6, 8,")
    assert parse_builtin("digits", got[0].text) == "5684"
    assert map_transcript(FOUR, "5 6 8 4 1 2") == []  # not a repetition: no reading


def test_phrases_map_fuzzily_onto_the_menu() -> None:
    got = map_transcript(MENU, "Call for reading.")
    assert got[0].text == "call forwarding" and got[0].score > 0.8
    assert [r.text for r in got] == ["call forwarding"]  # "call waiting" is too far off
    assert map_transcript(Grammar(("call forwarding", "speed dial")), "Call waiting.") == []
    assert map_transcript(MENU, "I'd like call waiting please")[0].text == "call waiting"
    assert map_transcript(MENU, "Do not disturb.")[0].score == 1.0
    cards = Grammar(("card", "lost card"))
    assert [r.text for r in map_transcript(cards, "lost card")] == ["lost card", "card"]
    assert map_transcript(cards, "lost card. lost card. lost card.")[0].text == "lost card"
    assert map_transcript(MENU, "What is my balance?") == []


def test_yes_no_reads_the_answer() -> None:
    yn = Grammar(builtin="yes_no")
    for text, answer in [("Yes.", "yes"), ("No.", "no"), ("That's right.", "yes"),
                         ("Incorrect.", "no"), ("Yeah, sure", "yes")]:
        got = map_transcript(yn, text)
        assert got and parse_builtin("yes_no", got[0].text) == answer, text
    assert map_transcript(yn, "Extension") == []
    assert map_transcript(yn, "Do not disturb.") == []  # "not" is not "no"
    assert map_transcript(yn, "Eight.") == []  # nor "right"
