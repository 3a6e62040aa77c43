"""Text as words to compare: what a caller said against the phrases a flow wrote.

A recogniser returns one of its grammar's phrases, a text channel whatever was typed; both are
matched here the same way, in any script (Korean phrases too): lowercase, punctuation dropped,
and the longest phrase that occurs as whole words wins, so "check my balance please" selects
"balance".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"[^\w']+", re.UNICODE)


def normalize(text: str) -> str:
    """Lowercase words separated by one space; punctuation other than apostrophes dropped."""
    return " ".join(w for w in _WORD.split(text.lower()) if w)


def contains(said: str, form: str) -> bool:
    """Whether normalised `form` occurs in normalised `said` as whole words."""
    return f" {form} " in f" {said} "


def longest_form(said: str, forms: Iterable[str]) -> str | None:
    """The longest of the normalised `forms` contained in normalised `said` (first on a tie)."""
    best: str | None = None
    for form in forms:
        if form and contains(said, form) and (best is None or len(form) > len(best)):
            best = form
    return best


def best_phrase(text: str, phrases: Iterable[str]) -> str | None:
    """The phrase (as written) whose words occur in `text` and are the longest, or None."""
    forms: dict[str, str] = {}
    for phrase in phrases:
        forms.setdefault(normalize(phrase), phrase)
    best = longest_form(normalize(text), forms)
    return None if best is None else forms[best]
