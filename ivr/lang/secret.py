"""Values that remember they are sensitive (taint), and how they show wherever they go.

Masking by variable name leaks as soon as a flow copies a value (`set: {copy: "{{ account }}"}`)
or reaches it another way (`last.value`, a subflow's variable). So the value itself carries the
mark: a `Secret` is a `str` (a `SecretInt`/`SecretFloat` a number) with a `shown` form, the masked
text every record uses (`****5678`). The flow gets the real value and uses it as any other; code
on the way out calls `shown()` (deep: dicts and lists of secrets too), `scrub()` for free text.

Python drops a str subclass on most operations (slicing, `+`, `str()`), so a value alone cannot
keep its mark through a template. Templates are therefore watched as a whole
(`ivr.flow.templates`): while one renders, `tracking()` holds a note, and anything that reads a
secret (the sandbox's name, attribute, item, call, filter and operator hooks, and the dunder
methods below that Python calls behind the template's back: `str()`, formatting, slicing,
iteration, `+`, `%`, `*`) sets it; a render that set it returns a secret.

The `repr` of a secret is masked, so an accidental `{value!r}` in a log or an exception message
shows `Secret('****5678')`, never the value.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, SupportsIndex

from ivr.lang.masking import mask
from ivr.lang.numbers import DIGITS, say_digits
from ivr.lang.sayas import speaker

HIDDEN = "****"
"""How a value derived from a secret shows when nothing of it may be shown."""

DIGIT_LANGUAGES = ("zh-CN", "ko-KR")
"""Languages besides English whose digit words a secret is also scrubbed in."""
MIN_SCRUB = 3
"""Secrets shorter than this are not searched for in free text (`scrub`): a one-digit piece of
an account would mask every digit of a log line and protect nothing."""


@dataclass
class _Note:
    touched: bool = False


_note: contextvars.ContextVar[_Note | None] = contextvars.ContextVar("ivr_secret_note", default=None)


def touch() -> None:
    """A secret was read: the render under way (if any) is tainted."""
    note = _note.get()
    if note is not None:
        note.touched = True


@contextlib.contextmanager
def tracking() -> Iterator[_Note]:
    """Note whether any secret is read inside the block (one template render)."""
    note = _Note()
    token = _note.set(note)
    try:
        yield note
    finally:
        _note.reset(token)


class Tainted:
    """Mixin of the secret types: the masked form records show instead of the value."""

    shown: str

    def reveal(self) -> Any:
        """The plain value, for the one place that needs it (an http request, TTS)."""
        raise NotImplementedError


class Secret(Tainted, str):
    """A string from (or computed from) a sensitive input."""

    def __new__(cls, value: object, shown: str | None = None) -> Secret:
        self = super().__new__(cls, str.__str__(value) if isinstance(value, str) else str(value))
        self.shown = mask(str.__str__(self)) if shown is None else shown
        return self

    def reveal(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"Secret({self.shown!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self.reveal(), self.shown))

    # every way Python turns or cuts it into another str marks the render under way
    def __str__(self) -> str:
        touch()
        return self.reveal()

    def __format__(self, spec: str) -> str:
        touch()
        return format(self.reveal(), spec)

    def __getitem__(self, key: SupportsIndex | slice) -> str:
        touch()
        return str.__getitem__(self, key)

    def __iter__(self) -> Iterator[str]:
        touch()
        return str.__iter__(self)

    def __add__(self, other: str) -> str:
        touch()
        return str.__add__(self, other)

    def __radd__(self, other: str) -> str:
        touch()
        return other + self.reveal()

    def __mod__(self, other: Any) -> str:
        touch()
        return str.__mod__(self, other)

    def __rmod__(self, other: Any) -> Any:
        touch()
        return NotImplemented

    def __mul__(self, n: SupportsIndex) -> str:
        touch()
        return str.__mul__(self, n)

    __rmul__ = __mul__


class SecretInt(Tainted, int):
    """A number from a sensitive input (`set: {pin: 4321}` under a sensitive name)."""

    def __new__(cls, value: int, shown: str | None = None) -> SecretInt:
        self = super().__new__(cls, value)
        self.shown = mask(int.__repr__(self)) if shown is None else shown
        return self

    def reveal(self) -> int:
        return int(self)

    def __repr__(self) -> str:
        return f"SecretInt({self.shown!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (SecretInt, (self.reveal(), self.shown))

    def __str__(self) -> str:
        touch()
        return int.__repr__(self)

    def __format__(self, spec: str) -> str:
        touch()
        return format(self.reveal(), spec)


class SecretFloat(Tainted, float):
    """An amount from a sensitive input."""

    def __new__(cls, value: float, shown: str | None = None) -> SecretFloat:
        self = super().__new__(cls, value)
        self.shown = mask(float.__repr__(self)) if shown is None else shown
        return self

    def reveal(self) -> float:
        return float(self)

    def __repr__(self) -> str:
        return f"SecretFloat({self.shown!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (SecretFloat, (self.reveal(), self.shown))

    def __str__(self) -> str:
        touch()
        return float.__repr__(self)

    def __format__(self, spec: str) -> str:
        touch()
        return format(self.reveal(), spec)


class Masked(str):
    """A secret's shown form standing in for it when a template is rendered for the record;
    the say-as filters pass it through (`You entered ****5678`, not `* * * * 5 6 7 8`)."""


# -- deep helpers ------------------------------------------------------------------------------

def is_secret(value: Any) -> bool:
    return isinstance(value, Tainted)


def contains_secret(value: Any) -> bool:
    """A secret, or a dict/list/tuple/set holding one at any depth."""
    if isinstance(value, Tainted):
        return True
    if isinstance(value, dict):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(contains_secret(v) for v in value)
    return False


def secrets_in(value: Any) -> Iterator[Tainted]:
    """Every secret held in value (itself, or at any depth of dicts and sequences)."""
    if isinstance(value, Tainted):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from secrets_in(v)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            yield from secrets_in(v)


def taint(value: Any, shown: str | None = None) -> Any:
    """value as secrets: strings and numbers wrapped (deep), secrets, None and bools as they are.

    `shown` is the record's form for a scalar; by default `mask(value)`, enough for a caller or
    agent to recognise (`****5678`), too little to reuse."""
    if value is None or isinstance(value, (bool, Tainted)):
        return value
    if isinstance(value, str):
        return Secret(value, shown)
    if isinstance(value, int):
        return SecretInt(value, shown)
    if isinstance(value, float):
        return SecretFloat(value, shown)
    if isinstance(value, dict):
        return {k: taint(v, shown) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(taint(v, shown) for v in value)
    return Secret(str(value), shown if shown is not None else mask(value))


def shown(value: Any) -> Any:
    """value as records show it: each secret (at any depth) replaced by its shown form."""
    if isinstance(value, Tainted):
        return value.shown
    if isinstance(value, dict):
        return {k: shown(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(shown(v) for v in value)
    return value


def stand_ins(value: Any) -> Any:
    """value for a record's render: each secret replaced by a `Masked` of its shown form."""
    if isinstance(value, Tainted):
        return Masked(value.shown)
    if isinstance(value, dict):
        return {k: stand_ins(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(stand_ins(v) for v in value)
    return value


def reveal(value: Any) -> Any:
    """value with every secret (at any depth) as its plain type: what goes on the wire."""
    if isinstance(value, Tainted):
        return value.reveal()
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(reveal(v) for v in value)
    return value


def forms(secret: Tainted) -> list[str]:
    """How a secret may appear in free text: as written, digit by digit, and as digit words
    (what a recogniser heard: "four oh seven one"; a Mandarin or Korean prompt's 四零七一,
    사 영 칠 일)."""
    raw = str(secret.reveal())
    out = [raw]
    spaced = say_digits(raw)
    if spaced != raw:
        out.append(spaced)
    if raw.isdigit() and raw.isascii():
        out += [" ".join(DIGITS[int(c)] for c in raw),
                " ".join("oh" if c == "0" else DIGITS[int(c)] for c in raw)]
        for language in DIGIT_LANGUAGES:
            said = speaker(language).digits(raw)
            out += [said, said.replace(" ", "")]
    return list(dict.fromkeys(out))


def scrub(text: str, secrets: Iterable[Tainted]) -> str:
    """text with every appearance of the secrets replaced by their shown forms, in one pass
    (longest first, so a copy of a number inside a longer one cannot leave a tail, and a mask
    once written is not masked again)."""
    pairs: dict[str, str] = {}
    for s in secrets:
        for form in forms(s):
            if len(form) >= MIN_SCRUB:
                pairs.setdefault(form, s.shown)
    out = str.__str__(text) if isinstance(text, str) else str(text)
    if not pairs:
        return out
    pattern = "|".join(re.escape(f) for f in sorted(pairs, key=len, reverse=True))
    return re.sub(pattern, lambda m: pairs[m.group(0)], out)


def taint_echoes(value: Any, secrets: Iterable[Tainted]) -> Any:
    """value (a back-end's JSON answer) with every string or number that contains one of the
    secrets made a secret itself: a lookup that echoes the account it was asked for must not
    put the account back into plain variables."""
    known = list(secrets)
    if not known:
        return value
    if isinstance(value, dict):
        return {k: taint_echoes(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [taint_echoes(v, known) for v in value]
    if isinstance(value, (str, int, float)) and not isinstance(value, (bool, Tainted)):
        text = str(value)
        if any(form in text for s in known for form in forms(s) if len(form) >= MIN_SCRUB):
            return taint(value, scrub(text, known))
    return value


# -- the secrets of the call under way, for the log filter -------------------------------------

call_secrets: contextvars.ContextVar[list[Tainted] | None] = contextvars.ContextVar(
    "ivr_call_secrets", default=None)
"""The running call's secrets (set by the interpreter for its task); `ivr.log` scrubs every line
logged from that task with them, so a value a message or an exception echoes is masked."""


def scrub_current(text: str) -> str:
    secrets = call_secrets.get()
    return scrub(text, secrets) if secrets else text
