"""API tokens: `role[:agent]=secret` entries, kept only as SHA-256 digests, checked in constant time.

Entries come from an environment variable or a 0600 file (never from flows or `ivr.yaml`), separated
by newlines, commas or spaces, `#` starting a comment:

    admin=3q2+7w...            # everything, changes included
    read=sha256:9f86d0...      # dashboards: GET queues, agents, calls, metrics
    agent:bob=Zk1...           # bob's own state changes and the context of calls offered to bob

A secret is either the token itself (at least 16 characters; `ivr token` makes one) or
`sha256:<hex>` of it, so a file need not hold usable tokens at all. Tokens are random, so one
SHA-256 is enough (no password stretching); every stored digest is compared with
`hmac.compare_digest`, all of them on every request, so timing says nothing about which matched.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from ivr.errors import ConfigError

MIN_LENGTH = 16
_AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_HASHED = re.compile(r"^sha256:([0-9a-fA-F]{64})$")


class Role(str, enum.Enum):
    admin = "admin"
    agent = "agent"
    read = "read"


@dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for."""

    role: Role
    agent: str | None = None

    @property
    def can_read(self) -> bool:
        """Dashboards' view: the live state of everything, no changes."""
        return self.role in (Role.admin, Role.read)

    def __str__(self) -> str:
        return f"agent:{self.agent}" if self.role is Role.agent else self.role.value


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token() -> str:
    """256 random bits, URL-safe (no `,`, `=`, `#` or spaces, so it fits any entry list)."""
    return secrets.token_urlsafe(32)


def parse_principal(text: str) -> Principal:
    """`admin`, `read` or `agent:<name>`; a ValueError saying what is allowed otherwise."""
    role, sep, agent = text.partition(":")
    if role == Role.agent.value:
        if not sep or not _AGENT_NAME.match(agent):
            raise ValueError(f"{text!r}: an agent token names its agent, e.g. agent:bob")
        return Principal(Role.agent, agent)
    if role in (Role.admin.value, Role.read.value) and not sep:
        return Principal(Role(role))
    raise ValueError(f"unknown role {text!r}; one of admin, read, agent:<name>")


class TokenSet:
    """The tokens a server accepts."""

    def __init__(self, entries: Iterable[tuple[bytes, Principal]] = ()) -> None:
        self._entries = list(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __add__(self, other: TokenSet) -> TokenSet:
        return TokenSet([*self._entries, *other._entries])

    @property
    def principals(self) -> list[Principal]:
        return [p for _, p in self._entries]

    @classmethod
    def single(cls, token: str, principal: Principal) -> TokenSet:
        return cls([(digest(token), principal)])

    @classmethod
    def parse(cls, text: str, source: str) -> TokenSet:
        """Entries from `text`; a ConfigError naming `source` and line, never the secret."""
        entries: list[tuple[bytes, Principal]] = []
        for lineno, line in enumerate(text.splitlines(), 1):
            for item in line.split("#", 1)[0].replace(",", " ").split():
                where = f"{source}:{lineno}"
                who, sep, secret = item.partition("=")
                if not sep or not secret:
                    raise ConfigError(f"{where}: expected role=token (e.g. admin=..., "
                                      f"agent:bob=...), got an entry starting {item[:6]!r}")
                try:
                    principal = parse_principal(who)
                except ValueError as exc:
                    raise ConfigError(f"{where}: {exc}") from None
                hashed = _HASHED.match(secret)
                if hashed:
                    entries.append((bytes.fromhex(hashed.group(1)), principal))
                elif len(secret) < MIN_LENGTH:
                    raise ConfigError(f"{where}: the {principal} token is shorter than {MIN_LENGTH} "
                                      "characters; `ivr token` makes a strong one")
                else:
                    entries.append((digest(secret), principal))
        seen: dict[bytes, Principal] = {}
        for d, principal in entries:
            if seen.setdefault(d, principal) != principal:
                raise ConfigError(f"{source}: one token is given two roles ({seen[d]}, {principal})")
        return cls(entries)

    def verify(self, token: str) -> Principal | None:
        """The principal of `token`, or None. Compares against every entry (constant time)."""
        wanted = digest(token)
        found: Principal | None = None
        for stored, principal in self._entries:
            if hmac.compare_digest(stored, wanted):
                found = principal
        return found
