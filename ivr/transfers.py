"""Where a call may be sent: the `transfers.allow` list, shared by the flow and the front.

A transfer target chosen from caller input (`to: "sip:{{ number }}@carrier"`) is the classic toll
fraud: a caller types a premium number and the IVR pays for the call. So a `transfer` node, the
queue's agent legs and the front's check of an incoming REFER all ask this one policy, and a
target it does not allow is refused before any SIP goes out.

Patterns are globs over the target URI without its parameters: `*` is any run of characters
except `@ ; ?` (so it never spans the user/host boundary) and `?` is one such character;
matching ignores case. Every pattern becomes one regular expression that is both a Python `re`
and a POSIX ERE (Kamailio's `=~`): plain characters go in brackets, so no backslash escaping is
ever needed inside a Kamailio string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_ANY = "[^@;?]"
# what a pattern may contain: a URI's characters, no quote or backslash (it goes into kamailio.cfg)
_SAFE = re.compile(r"^[A-Za-z0-9:@.+*?_~=%/\[\]-]+$")
_PARAMS = "([;?].*)?"


def check_pattern(pattern: str) -> str:
    """The pattern as given, or ValueError when it cannot be a target glob."""
    if not pattern or not _SAFE.match(pattern) or ":" not in pattern:
        raise ValueError(f"transfer pattern {pattern!r} is not a URI glob like 'sip:*@pbx.example.net' "
                         "(letters, digits, URI punctuation, * and ?)")
    return pattern


def glob_regex(pattern: str) -> str:
    """The anchored regular expression of one glob (see the module docstring)."""
    out = []
    for ch in check_pattern(pattern):
        if ch == "*":
            out.append(f"{_ANY}*")
        elif ch == "?":
            out.append(_ANY)
        elif ch.isalnum():
            out.append(ch)
        else:
            out.append("[]]" if ch == "]" else f"[{ch}]")
    return "".join(out)


def union_regex(patterns: Iterable[str]) -> str:
    """One anchored expression matching any of `patterns` (with URI parameters allowed after),
    or "" when there is none (nothing is allowed)."""
    parts = [glob_regex(p) for p in patterns]
    return f"^({'|'.join(parts)}){_PARAMS}$" if parts else ""


def bare_uri(target: str) -> str:
    """`Name <sip:x@y;p>` or `<sip:x@y>` -> `sip:x@y;p`: the URI a pattern is matched against."""
    text = target.strip()
    if "<" in text and text.endswith(">"):
        text = text[text.index("<") + 1:-1]
    return text.strip()


@dataclass(frozen=True)
class TransferPolicy:
    """`allow` patterns from the config, plus exact URIs that are always allowed (the agents'
    configured phones: the admin chose them, no caller did)."""

    allow: tuple[str, ...] = ()
    exact: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for pattern in self.allow:
            check_pattern(pattern)

    @property
    def regex(self) -> str:
        return union_regex(self.allow)

    def allows(self, target: str) -> bool:
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
            return False  # a line break in a target is header injection, never a transfer
        uri = bare_uri(target)
        if uri.lower() in {e.lower() for e in self.exact}:
            return True
        expr = self.regex
        return bool(expr) and re.fullmatch(expr, uri, re.IGNORECASE) is not None

    def refusal(self, target: str) -> str | None:
        """None when `target` may be called, else the reason (for the CDR and the log)."""
        if self.allows(target):
            return None
        return f"transfer target {bare_uri(target)} refused: not in transfers.allow"
