"""What a recogniser may hear: the neutral grammar description and each language's built-ins.

The flow layer describes what a node listens for as a `Grammar` (its phrases and/or one built-in
grammar, in the flow's language); speech engines take only that, never flow types, so the two
sides can change apart. The built-ins (`digits`, `number`, `currency`, `yes_no`, `date`) are
defined here once per language, for the recognisers (which words to expect) and for the flow
(what an answer means). Only English has its own words so far; other languages use English's
built-ins (their own phrases are recognised in their own model).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ivr.lang.normalize import best_phrase, longest_form, normalize
from ivr.lang.numbers import NUMBER_WORDS, SPOKEN_DIGITS, parse_digits, parse_number

BUILTINS = ("digits", "number", "yes_no", "currency", "date")
"""Built-in grammar names a flow's `collect.speech` may give."""

YES = ("yes", "yeah", "yep", "correct", "right", "that's right", "sure", "ok", "okay")
NO = ("no", "nope", "wrong", "incorrect", "not right")

ENGLISH_JSGF = """\
<unit> = one | two | three | four | five | six | seven | eight | nine ;
<digit> = zero | oh | <unit> ;
<teen> = ten | eleven | twelve | thirteen | fourteen | fifteen | sixteen | seventeen | eighteen
  | nineteen ;
<tens> = twenty | thirty | forty | fifty | sixty | seventy | eighty | ninety ;
<n2> = <unit> | <teen> | <tens> [<unit>] ;
<n3> = <unit> hundred [and <n2>] | <n2> ;
<big> = <n3> [ ( million | thousand ) [ [and] <n3> [ thousand [ [and] <n3> ] ] ] ] ;
<number> = [minus] ( zero | <big> ) [ point <digit>+ ] ;
<currency> = <number> ( dollar | dollars | euro | euros | pound | pounds )
  [ and <number> ( cent | cents | penny | pence ) ] | <number> ( cent | cents | pence ) ;
<ordinal> = first | second | third | fourth | fifth | sixth | seventh | eighth | ninth | tenth
  | eleventh | twelfth | thirteenth | fourteenth | fifteenth | sixteenth | seventeenth
  | eighteenth | nineteenth | twentieth | thirtieth
  | twenty ( first | second | third | fourth | fifth | sixth | seventh | eighth | ninth )
  | thirty first ;
<month> = january | february | march | april | may | june | july | august | september
  | october | november | december ;
<date> = <month> <ordinal> [ <n2> <n2> | <n2> hundred | <big> ] ;
<digits> = ( [double | triple] <digit> )+ ;
"""
"""JSGF rules for number words as callers say them and as `say_number`, `say_currency`,
`say_date` and `say_digits` produce them: `<digit>`, `<digits>`, `<number>`, `<currency>`,
`<date>`."""


@dataclass(frozen=True)
class Builtins:
    """One language's built-in grammars, as recognisers hear them."""

    word_loops: Mapping[str, tuple[str, ...]]
    """Built-ins heard as any sequence of these words."""
    phrase_lists: Mapping[str, tuple[str, ...]]
    """Built-ins heard as one phrase out of a list."""
    jsgf_rules: str
    """JSGF rules for the number words (for engines that compile JSGF)."""

    def has_words(self, name: str | None) -> bool:
        """Whether a recogniser can hear built-in `name` (`date` has no speech words)."""
        return name in self.word_loops or name in self.phrase_lists


DIGIT_LOOP = (*SPOKEN_DIGITS, "double", "triple")
"""Words of a spoken digit string: "oh" is zero, "double four" is 44."""

DEFAULT_CONFIDENCE: Mapping[str | None, float] = {"digits": 0.5, "yes_no": 0.65, None: 0.5}
"""The confidence a result needs when neither the node nor the flow's defaults set one, per
built-in (None: phrases). Confidence is the calibrated probability that the result is right
(ivr.speech.asr.calibration); each threshold is chosen from the reliability table of the
real-voice corpus (bench/RESULTS.md, "Real voices") to keep false accepts under 2 %: yes/no
higher (a wrong "yes" confirms a wrong value; asking again costs a turn), whose confidence under
Whisper is the beam's share for the answer (ivr.speech.asr.calibration)."""


def default_confidence(builtin: str | None) -> float:
    """The default threshold of a built-in grammar (phrases: None)."""
    return DEFAULT_CONFIDENCE.get(builtin, DEFAULT_CONFIDENCE[None])


ENGLISH = Builtins(
    word_loops={"digits": DIGIT_LOOP, "number": NUMBER_WORDS, "currency": NUMBER_WORDS},
    phrase_lists={"yes_no": (*YES, *NO)},
    jsgf_rules=ENGLISH_JSGF,
)
_BY_LANGUAGE = {"en": ENGLISH}


def builtins_for(language: str) -> Builtins:
    """The built-ins of a language (`en-US` -> English); English for languages without theirs."""
    return _BY_LANGUAGE.get(language.split("-")[0].lower(), ENGLISH)


@dataclass(frozen=True)
class Grammar:
    """What a recognizer may hear: phrases (options + globals) and/or one built-in grammar."""

    phrases: tuple[str, ...] = ()
    builtin: str | None = None
    language: str = "en-US"
    min_words: int = 1
    max_words: int = 0
    """Length bounds of a `digits` utterance (0: unbounded), from the collect's digits{min,max}."""

    @property
    def _builtins(self) -> Builtins:
        return builtins_for(self.language)

    @property
    def word_loop(self) -> tuple[str, ...]:
        """Words of a looping built-in (digits, number), empty otherwise."""
        return self._builtins.word_loops.get(self.builtin or "", ())

    @property
    def all_phrases(self) -> tuple[str, ...]:
        """Phrases plus the phrase list of a phrase built-in (yes_no)."""
        extra = self._builtins.phrase_lists.get(self.builtin or "", ())
        return tuple(dict.fromkeys((*self.phrases, *extra)))

    @property
    def jsgf_rules(self) -> str:
        return self._builtins.jsgf_rules

    @property
    def empty(self) -> bool:
        return not self.all_phrases and not self.word_loop

    def key(self) -> str:
        return repr((self.phrases, self.builtin, self.language, self.min_words, self.max_words))

    def meaning(self, text: str) -> str:
        """What a result text means to the node: "no" for "nope" under yes_no, the digits of
        digit words; phrases mean themselves. Readings that mean the same do not compete."""
        return _meaning(self, text)

    def match(self, text: str, spoken: dict[str, str] | None = None) -> str | None:
        """The grammar text for a decoded string: the phrase as the flow wrote it (longest phrase
        contained as whole words), or the words of a looping built-in; None when nothing fits.

        `spoken` maps an engine's normalised form of a phrase (e.g. digits spelled out) back to
        the phrase as written.
        """
        said = normalize(text)
        if not said:
            return None
        forms = dict(spoken or {})
        for p in self.all_phrases:
            forms.setdefault(normalize(p), p)
        best = longest_form(said, forms)
        if best is not None:
            return forms[best]
        loop = set(self.word_loop)
        if loop and all(w in loop for w in said.split()):
            return said
        return None


def _meaning(grammar: Grammar, text: str) -> str:
    if grammar.builtin in ("digits", "yes_no"):
        return parse_builtin(grammar.builtin, text) or text
    return text


def builtin_phrases(name: str, language: str = "en-US") -> tuple[str, ...]:
    """Words or phrases a recogniser should expect for a built-in grammar."""
    builtins = builtins_for(language)
    return builtins.phrase_lists.get(name) or builtins.word_loops.get(name, ())


def parse_builtin(name: str, text: str) -> str | None:
    """Interpret an utterance with a built-in grammar; None is a nomatch."""
    if name == "digits":
        return parse_digits(text)
    if name in ("number", "currency"):
        cleaned = text.replace("$", " ").replace("dollars", " ").replace("dollar", " ")
        value = parse_number(cleaned)
        return None if value is None else str(value)
    if name == "yes_no":
        said = normalize(text)
        if best_phrase(said, NO):
            return "no"
        if best_phrase(said, YES):
            return "yes"
        return None
    if name == "date":
        m = re.search(r"\d{4}-\d{2}-\d{2}", text)
        return m.group(0) if m else None
    raise ValueError(f"unknown built-in grammar {name!r}")


def dtmf_builtin(name: str, digits: str) -> str | None:
    """DTMF answers to built-in grammars: 1 is yes and 2 is no, as callers are told."""
    if name == "yes_no":
        return {"1": "yes", "2": "no"}.get(digits)
    if name in ("digits", "number", "currency"):
        return digits if digits.isdigit() else None
    return digits or None

