"""The JSGF grammar of a prompt catalogue, and splitting decoded words back into prompts.

`ivr call` recognises the IVR's prompts against the sentences its flows can say
(ivr/flow/catalog.py): one alternative per prompt, `( <p0> | <p1> | ... )+`, so several prompts
back to back in one stretch of speech decode as a sequence. Template parts (`{{ x | say_currency }}`)
become the number rules of ivr.lang.grammars by their say-as filter.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ivr.lang.grammars import ENGLISH_JSGF
from ivr.lang.numbers import SAY_AS_WORDS, SPOKEN_DIGITS
from ivr.lang.spoken import SLOT, SLOT_KINDS, spoken_tokens
from ivr.speech.pronounce import espeak_pronunciation

log = logging.getLogger(__name__)


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

    vocab = sorted({w for phrase in vocabulary for w in spoken_tokens(phrase)
                    if not w.startswith(SLOT) and known(w)} | set(SAY_AS_WORDS))
    slot_words = {kind: set(SAY_AS_WORDS) for kind in SLOT_KINDS}
    slot_words["digits"] = set(SPOKEN_DIGITS)
    slot_words["any"] = set(vocab)
    patterns: list[Pattern] = []
    seen: set[tuple[str, ...]] = set()
    for text in texts:
        tokens = [t for t in spoken_tokens(text) if t.startswith(SLOT) or known(t)]
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
            *([ENGLISH_JSGF.rstrip(), f"<any> = ( {' | '.join(vocab)} )+ ;"] if slots or not chosen
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
