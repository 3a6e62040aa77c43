"""Recognising an IVR's own prompts in the audio of a test call (`ivr call`).

Prompts are synthetic speech (espeak-ng) that went through G.711. Free recognition of that audio
is poor and a free word loop is slow, but a JSGF grammar whose alternatives are the whole prompt
sentences the flows can say decodes it exactly and quickly. So:

1. `segment()` cuts received audio into stretches of speech by frame energy;
2. `PromptGrammar` turns the prompt catalogue (ivr/flow/catalog.py) into a JSGF grammar
   `( <p0> | <p1> | ... )+` (several prompts back to back in one stretch decode as a sequence);
   template parts (`{{ x | say_currency }}`) become loops over number words (`<num>*`);
3. `PromptRecognizer.recognize()` decodes a stretch with PocketSphinx and splits the words back
   into prompts, each with its start time.

Without a catalogue the decoder's default language model is used (the text is then poor).
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from num2words import num2words

from ivr.speech.audio import resample

log = logging.getLogger(__name__)

ASR_RATE = 16000
FRAME_MS = 20

DIGIT_WORDS = ["zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
NUMBER_WORDS = [
    *DIGIT_WORDS,
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty",
    "ninety", "hundred", "thousand", "million", "billion", "and", "point", "minus", "a",
    # currency (say_currency)
    "dollar", "dollars", "cent", "cents", "euro", "euros", "pound", "pounds", "penny", "pence",
    # dates (say_date)
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "first", "second", "third", "fourth", "fifth", "sixth",
    "seventh", "eighth", "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth",
    "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth", "thirtieth",
]
"""What `say_number`, `say_currency`, `say_date` and `say_digits` can produce (English)."""

_TEMPLATE = re.compile(r"(\{\{.*?\}\}|\{%.*?%\})", re.S)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
SLOT = "\x00"
"""Prefix of the token standing for a template part inside a normalised prompt: SLOT + kind."""
SLOT_KINDS = ("digits", "number", "currency", "date", "any")

_SLOT_RULES = """\
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
<digits> = <digit>+ ;
"""
"""Number words as `say_number`, `say_currency`, `say_date`, `say_digits` say them (English)."""


def _slot_kind(template: str) -> str:
    for name, kind in (("say_digits", "digits"), ("say_currency", "currency"),
                       ("say_date", "date"), ("say_number", "number")):
        if name in template:
            return kind
    return "any"


# --- text normalisation ---------------------------------------------------------------------

def _number_words(token: str) -> str:
    clean = token.replace(",", "")
    try:
        if "." in clean:
            return str(num2words(float(clean))).replace("-", " ").replace(",", "")
        return str(num2words(int(clean))).replace("-", " ").replace(",", "")
    except (ValueError, OverflowError):
        return " ".join(DIGIT_WORDS[int(c) + 1 if c != "0" else 0] for c in clean if c.isdigit())


def normalize(text: str) -> list[str]:
    """Lowercase words as a recogniser says them: digits spelled, punctuation dropped.

    Template parts (`{{ ... }}`) become the `SLOT` token.
    """
    parts = _TEMPLATE.split(text)
    out: list[str] = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(SLOT + _slot_kind(part))
            continue
        part = _NUMBER.sub(lambda m: f" {_number_words(m.group())} ", part.lower())
        part = part.replace("&", " and ").replace("%", " percent ").replace("-", " ")
        part = part.replace("\u2019", "'")
        for word in re.findall(r"[a-z]+(?:'[a-z]+)?", part):
            out.append(word)
    return out


def normalize_text(text: str) -> str:
    """`normalize` as one string (template parts dropped): what `expect_prompt` compares."""
    return " ".join(w for w in normalize(text) if not w.startswith(SLOT))


# --- out-of-dictionary words ------------------------------------------------------------------

_ESPEAK_TO_ARPA = {
    "a": "AE", "A:": "AA", "aa": "AA", "A@": "AA R", "a#": "AH", "@": "AH", "@L": "AH L",
    "@2": "AH", "@5": "AH", "3": "ER", "3:": "ER", "E": "EH", "E2": "EH", "e@": "EH R", "eI": "EY",
    "I": "IH", "I2": "IH", "I#": "IH", "i": "IY", "i:": "IY", "i@": "IH R", "i@3": "IH R",
    "0": "AA", "O": "AO", "O:": "AO", "O@": "AO R", "o@": "AO R", "oU": "OW", "U": "UH",
    "u:": "UW", "U@": "UH R", "V": "AH", "aI": "AY", "aI@": "AY ER", "aU": "AW", "OI": "OY",
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "f": "F", "v": "V", "T": "TH",
    "D": "DH", "s": "S", "z": "Z", "S": "SH", "Z": "ZH", "h": "HH", "m": "M", "n": "N",
    "N": "NG", "l": "L", "r": "R", "w": "W", "j": "Y", "tS": "CH", "dZ": "JH", "t#": "T",
    "?": "T", "n-": "N", "l-": "L", "r-": "R", "m-": "M", "x": "K", "W": "W",
}


@lru_cache(maxsize=512)
def espeak_pronunciation(word: str) -> str | None:
    """A CMU-style pronunciation from espeak-ng's phonemes (for words cmudict lacks)."""
    try:
        proc = subprocess.run(["espeak-ng", "-q", "-x", "--sep=_", "-v", "en-us", word],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    phones: list[str] = []
    for chunk in proc.stdout.split():
        for ph in chunk.split("_"):
            ph = ph.replace("'", "").replace(",", "").replace("%", "").replace("=", "")
            if not ph:
                continue
            arpa = _ESPEAK_TO_ARPA.get(ph) or _ESPEAK_TO_ARPA.get(ph.rstrip(":"))
            if arpa is None:
                arpa = _ESPEAK_TO_ARPA.get(ph[0])
            if arpa:
                phones.append(arpa)
    return " ".join(phones) or None


# --- segmentation -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Segment:
    start: int
    """first sample"""
    end: int
    """one past the last sample"""


def frame_levels(samples: np.ndarray, rate: int) -> np.ndarray:
    """RMS level of each 20 ms frame."""
    n = rate * FRAME_MS // 1000
    usable = len(samples) // n * n
    if not usable:
        return np.zeros(0)
    frames = samples[:usable].astype(np.float64).reshape(-1, n)
    return np.asarray(np.sqrt((frames ** 2).mean(axis=1)))


def segment(samples: np.ndarray, rate: int, *, threshold: float = 60.0, gap_ms: int = 550,
            min_ms: int = 120, lead_ms: int = 60, pad_ms: int = 400) -> list[Segment]:
    """Stretches of speech: frames over `threshold` RMS, joined across pauses under `gap_ms`.

    espeak-ng pauses ~300-400 ms between sentences of one prompt, so one prompt is one segment;
    prompts played back to back may share a segment (the grammar decodes them as a sequence).
    """
    levels = frame_levels(samples, rate)
    n = rate * FRAME_MS // 1000
    active = np.flatnonzero(levels > threshold)
    out: list[Segment] = []
    if not len(active):
        return out
    gap = gap_ms // FRAME_MS
    start = prev = int(active[0])
    for idx in (int(i) for i in active[1:]):
        if idx - prev > gap:
            out.append(Segment(start, prev + 1))
            start = idx
        prev = idx
    out.append(Segment(start, prev + 1))
    lead, pad = lead_ms // FRAME_MS, pad_ms // FRAME_MS
    total = len(levels)
    return [Segment(max(0, s.start - lead) * n, min(total, s.end + pad) * n) for s in out
            if (s.end - s.start) * FRAME_MS >= min_ms]


# --- grammar ----------------------------------------------------------------------------------

@dataclass
class Pattern:
    text: str
    """the catalogue text (template as written)"""
    tokens: list[str]
    """words and SLOT tokens"""


@dataclass
class PromptGrammar:
    """The JSGF grammar of a prompt catalogue, and the word patterns to split results with."""

    patterns: list[Pattern]
    jsgf: str
    """the static prompts (no template parts): one whole prompt per decode, fast"""
    jsgf_dynamic: str
    """prompts with template parts (number grammars): slower, tried second"""
    slot_words: dict[str, set[str]]
    missing: dict[str, str | None] = field(default_factory=dict)
    """words not in the dictionary -> pronunciation added (None: dropped from the grammar)"""


def build_grammar(texts: Iterable[str], lookup: Any, *, add_word: Any = None,
                  vocabulary: Iterable[str] = ()) -> PromptGrammar:
    """JSGF `( <p0> | <p1> | ... )+` over the catalogue; `lookup(word)` is `Decoder.lookup_word`.

    Template parts become number grammars by their filter (`say_digits` -> digits, `say_currency`
    -> amounts, `say_date` -> dates, `say_number` -> numbers); a bare `{{ x }}` becomes a short
    loop over `vocabulary` (e.g. the flows' option phrases) and number words. A word the
    dictionary lacks gets an espeak-ng-derived pronunciation through `add_word(word, phones)`
    when given, and is dropped from its prompt otherwise.
    """
    missing: dict[str, str | None] = {}

    def known(word: str) -> bool:
        if word in missing:
            return missing[word] is not None
        if lookup(word) is not None:
            return True
        phones = espeak_pronunciation(word) if add_word is not None else None
        if phones and add_word is not None:
            try:
                add_word(word, phones)
            except Exception:
                phones = None
        missing[word] = phones
        if phones is None:
            log.warning("prompt word %r is not in the dictionary; dropped from the grammar", word)
        return phones is not None

    vocab = sorted({w for phrase in vocabulary for w in normalize(phrase)
                    if not w.startswith(SLOT) and known(w)} | set(NUMBER_WORDS))
    slot_words = {kind: set(NUMBER_WORDS) for kind in SLOT_KINDS}
    slot_words["digits"] = set(DIGIT_WORDS)
    slot_words["any"] = set(vocab)
    patterns: list[Pattern] = []
    seen: set[tuple[str, ...]] = set()
    for text in texts:
        tokens = [t for t in normalize(text) if t.startswith(SLOT) or known(t)]
        tokens = [t for i, t in enumerate(tokens)
                  if not (t.startswith(SLOT) and i and tokens[i - 1].startswith(SLOT))]
        if not any(not t.startswith(SLOT) for t in tokens) or tuple(tokens) in seen:
            continue
        seen.add(tuple(tokens))
        patterns.append(Pattern(text, tokens))
    def jsgf(chosen: list[Pattern], slots: bool) -> str:
        rules = []
        for i, p in enumerate(chosen):
            body = " ".join(f"<{t[1:]}>" if t.startswith(SLOT) else t for t in p.tokens)
            rules.append(f"<p{i}> = {body} ;")
        alts = " | ".join(f"<p{i}>" for i in range(len(chosen))) or "<digits>"
        return "\n".join([
            "#JSGF V1.0;",
            "grammar prompts;",
            f"public <prompts> = ( {alts} ) ;",
            *([_SLOT_RULES.rstrip(), f"<any> = ( {' | '.join(vocab)} )+ ;"] if slots or not chosen
              else []),
            *rules,
        ]) + "\n"

    static = [p for p in patterns if not any(t.startswith(SLOT) for t in p.tokens)]
    dynamic = [p for p in patterns if p not in static]
    return PromptGrammar(patterns, jsgf(static, False), jsgf(dynamic, True) if dynamic else "",
                         slot_words, missing)


def split_prompts(words: Sequence[str], patterns: Sequence[Pattern],
                  slot_words: dict[str, set[str]]) -> list[tuple[int, int, Pattern | None]]:
    """Split a decoded word sequence into consecutive prompts: [(first word, end, pattern)].

    Prefers the parse with the fewest prompts; words no pattern explains form unmatched parts.
    """
    n = len(words)

    def ends(p: Pattern, pos: int) -> set[int]:
        states = {pos}
        for tok in p.tokens:
            nxt: set[int] = set()
            for s in states:
                if tok.startswith(SLOT):
                    allowed = slot_words.get(tok[1:], set())
                    j = s
                    while j < n and words[j] in allowed:
                        j += 1
                        nxt.add(j)
                elif s < n and words[s] == tok:
                    nxt.add(s + 1)
            states = nxt
            if not states:
                break
        return {e for e in states if e > pos}

    Parse = tuple[int, list[tuple[int, int, Pattern | None]]]
    best: list[Parse | None] = [None] * (n + 1)
    best[n] = (0, [])
    for pos in range(n - 1, -1, -1):
        cands: list[Parse] = []
        for p in patterns:
            for e in ends(p, pos):
                tail = best[e]
                if tail is not None:
                    cands.append((tail[0] + 1, [(pos, e, p), *tail[1]]))
        if not cands:
            tail = best[pos + 1]
            assert tail is not None
            parts = tail[1]
            if parts and parts[0][2] is None:
                cands.append((tail[0] + 5, [(pos, parts[0][1], None), *parts[1:]]))
            else:
                cands.append((tail[0] + 10, [(pos, pos + 1, None), *parts]))
        best[pos] = min(cands, key=lambda c: c[0])
    result = best[0]
    return result[1] if result else []


# --- recognition ------------------------------------------------------------------------------

@dataclass
class Heard:
    """One prompt heard: start in ms (relative to the audio given), recognised text."""

    at_ms: int
    text: str
    match: str | None = None
    """the catalogue prompt it matched (template as written), if any"""
    end_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"at_ms": self.at_ms, "text": self.text}
        if self.match is not None:
            doc["match"] = self.match
        return doc


DYNAMIC_MAX_S = 5.0
"""Number grammars are slow on long audio; longer stretches only try the static prompts."""
BEAMS = {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80, "maxhmmpf": -1, "cmn": "batch"}
"""Wide beams: with the defaults a catalogue of ~40 prompts loses the right path on G.711 audio."""


class PromptRecognizer:
    """PocketSphinx constrained to a prompt catalogue (or its default LM without one).

    Per stretch of speech: decode against the static prompts; if the words are not exactly one
    prompt, against the prompts with template parts; if still not, split the stretch at its
    longest pause and recognise both halves (back-to-back prompts).
    """

    def __init__(self, catalogue: Sequence[str] | None, vocabulary: Iterable[str] = ()) -> None:
        from pocketsphinx import Decoder

        self.grammar: PromptGrammar | None = None
        if catalogue:
            self.decoder = Decoder(lm=None, loglevel="FATAL", **BEAMS)
            self.grammar = build_grammar(catalogue, self.decoder.lookup_word,
                                         add_word=self._add_word, vocabulary=vocabulary)
            self.searches = []
            if any(not any(t.startswith(SLOT) for t in p.tokens) for p in self.grammar.patterns):
                self.decoder.add_jsgf_string("static", self.grammar.jsgf)
                self.searches.append("static")
            if self.grammar.jsgf_dynamic:
                self.decoder.add_jsgf_string("dynamic", self.grammar.jsgf_dynamic)
                self.searches.append("dynamic")
        else:
            self.decoder = Decoder(loglevel="FATAL")
            self.searches = []

    def _add_word(self, word: str, phones: str) -> None:
        self.decoder.add_word(word, phones, True)

    @property
    def mode(self) -> str:
        return "catalogue" if self.grammar is not None else "default-lm"

    def decode(self, samples: np.ndarray, rate: int, search: str | None = None
               ) -> list[tuple[str, int, int]]:
        """Words with start/end in ms (relative to `samples`)."""
        pcm = resample(samples, rate, ASR_RATE) if rate != ASR_RATE else samples.astype(np.int16)
        # the grammar's final state needs trailing silence: a stretch cut right after the last
        # word often decodes to nothing (leading zeros, on the other hand, hurt)
        pcm = np.concatenate([pcm, np.zeros(ASR_RATE * 3 // 10, dtype=np.int16)])
        d = self.decoder
        if search is not None:
            d.activate_search(search)
        d.start_utt()
        d.process_raw(pcm.astype("<i2").tobytes(), full_utt=True)
        d.end_utt()
        if d.hyp() is None:
            return []
        out = []
        for seg in d.seg():
            word = re.sub(r"\(\d+\)$", "", seg.word)
            if word.startswith(("<", "[", "+")):
                continue
            out.append((word, seg.start_frame * 10, (seg.end_frame + 1) * 10))
        return out

    def _whole(self, words: list[tuple[str, int, int]]) -> Pattern | None:
        """The pattern the words are exactly, if any."""
        assert self.grammar is not None
        parts = split_prompts([w for w, _, _ in words], self.grammar.patterns,
                              self.grammar.slot_words)
        if len(parts) == 1 and parts[0][2] is not None:
            return parts[0][2]
        return None

    def recognize(self, samples: np.ndarray, rate: int, offset_ms: int = 0,
                  depth: int = 0) -> list[Heard]:
        """Prompts in one stretch of speech, each with its start time (+ offset_ms)."""
        if self.grammar is None:
            words = self.decode(samples, rate)
            if not words:
                return []
            return [Heard(offset_ms + words[0][1], " ".join(w for w, _, _ in words),
                          end_ms=offset_ms + words[-1][2])]
        best: list[tuple[str, int, int]] = []
        seconds = len(samples) / rate
        for search in self.searches:
            if search == "dynamic" and seconds > DYNAMIC_MAX_S:
                continue
            words = self.decode(samples, rate, search)
            pattern = self._whole(words) if words else None
            if pattern is not None:
                return [Heard(offset_ms + words[0][1], " ".join(w for w, _, _ in words),
                              pattern.text, end_ms=offset_ms + words[-1][2])]
            best = best or words
        cut = _longest_pause(samples, rate, min_ms=300) if depth < 2 else None
        if cut is not None:
            left = self.recognize(samples[:cut], rate, offset_ms, depth + 1)
            right = self.recognize(samples[cut:], rate, offset_ms + cut * 1000 // rate, depth + 1)
            if any(h.match for h in left + right):
                return left + right
        if not best:
            return []
        return [Heard(offset_ms + best[0][1], " ".join(w for w, _, _ in best),
                      end_ms=offset_ms + best[-1][2])]

    def recognize_all(self, samples: np.ndarray, rate: int) -> list[Heard]:
        """Segment then recognise a whole recording."""
        heard: list[Heard] = []
        for seg in segment(samples, rate):
            heard += self.recognize(samples[seg.start:seg.end], rate,
                                    offset_ms=seg.start * 1000 // rate)
        return heard


def _longest_pause(samples: np.ndarray, rate: int, threshold: float = 60.0,
                   min_ms: int = 200) -> int | None:
    """Sample index in the middle of the longest quiet run inside the audio (not at its ends)."""
    levels = frame_levels(samples, rate)
    quiet = levels <= threshold
    n = rate * FRAME_MS // 1000
    best: tuple[int, int] | None = None
    i = 0
    speech_seen = False
    while i < len(quiet):
        if not quiet[i]:
            speech_seen = True
            i += 1
            continue
        j = i
        while j < len(quiet) and quiet[j]:
            j += 1
        if speech_seen and j < len(quiet) and (best is None or j - i > best[1] - best[0]):
            best = (i, j)
        i = j
    if best is None or (best[1] - best[0]) * FRAME_MS < min_ms:
        return None
    return (best[0] + best[1]) // 2 * n


def expect_matches(expected: str, heard_text: str) -> bool:
    """`expect_prompt`: case-insensitive substring on normalised words."""
    needle = normalize_text(expected)
    hay = normalize_text(heard_text)
    return bool(needle) and needle in hay
