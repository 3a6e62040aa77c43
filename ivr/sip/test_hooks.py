"""Test hooks: a flow test case's stubs carried in the INVITE, for `ivr test --sip`.

The `X-IVR-Test` header names the flow to run, the CDR id the tester will read back, and the
case's stubs (`ivr.flow.stubs.Stubs`: clock, http, caller, variables, queues, transfers,
speech). Only a server whose config says `test_hooks: true` takes them, and only for the call
that carries them; any other server answers such an INVITE 403 (the header would let a caller
pick the flow, the clock and the back-ends' answers). The value is JSON, or the same JSON
deflated and base64url-encoded (what `encode` writes: it keeps the INVITE under the UDP
size at which SIP stacks switch to TCP).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
import zlib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ivr.flow.stubs import Stubs

HEADER = "X-IVR-Test"
MAX_JSON_BYTES = 64 * 1024
"""A hook larger than this once inflated is refused (no inflating bombs)."""


class HookRefused(Exception):
    """The INVITE's test hook is not taken: `status` is the SIP answer (403, 400, 404)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class TestHook(BaseModel):
    """One test call: which flow, under which CDR id, with which stubs."""

    __test__ = False  # not a pytest class
    model_config = ConfigDict(extra="forbid")

    flow: str
    call_id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[0-9a-f]{32}$")
    stubs: Stubs = Field(default_factory=Stubs)

    def caller(self, info: Mapping[str, Any]) -> dict[str, Any]:
        """The caller as the flow sees it: the INVITE's, with the case's caller in its place
        (as offline, where a case that names no caller is +15550000000)."""
        return {**info, **self.stubs.caller.model_dump()}


def encode(hook: TestHook) -> str:
    """The header value: compact JSON (stubs at their defaults left out), deflated, base64url."""
    doc = {"flow": hook.flow, "call_id": hook.call_id,
           "stubs": hook.stubs.model_dump(mode="json", exclude_defaults=True)}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def decode(value: str) -> TestHook:
    """The hook in a header value; HookRefused(400) says what is wrong with it."""
    text = value.strip()
    if not text.startswith("{"):
        try:
            packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            inflater = zlib.decompressobj()
            raw = inflater.decompress(packed, MAX_JSON_BYTES + 1)
        except (binascii.Error, ValueError, zlib.error) as exc:
            raise HookRefused(400, f"{HEADER} is neither JSON nor deflated base64url JSON: "
                              f"{exc}") from None
        if len(raw) > MAX_JSON_BYTES or inflater.unconsumed_tail:
            raise HookRefused(400, f"{HEADER} inflates beyond {MAX_JSON_BYTES} bytes")
        text = raw.decode("utf-8", "replace")
    if len(text) > MAX_JSON_BYTES:
        raise HookRefused(400, f"{HEADER} is larger than {MAX_JSON_BYTES} bytes")
    try:
        return TestHook.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()
        raise HookRefused(400, f"{HEADER} is not a valid test hook: "
                          f"{' '.join(first[:3])}") from None


_NAME = re.compile(re.escape(HEADER), re.I)


def header_value(headers: Mapping[str, str]) -> str | None:
    """The header's value among an INVITE's headers (names are case-insensitive)."""
    return next((v for k, v in headers.items() if _NAME.fullmatch(k.strip())), None)


def from_invite(headers: Mapping[str, str], *, enabled: bool,
                flows: Mapping[str, Any]) -> TestHook | None:
    """The call's test hook, None for an ordinary call; HookRefused when the INVITE carries one
    this server must not take: 403 with test_hooks off, 400 malformed, 404 an unknown flow."""
    value = header_value(headers)
    if value is None:
        return None
    if not enabled:
        raise HookRefused(403, f"an INVITE carries {HEADER} but test_hooks is off")
    hook = decode(value)
    if hook.flow not in flows:
        raise HookRefused(404, f"{HEADER} names flow {hook.flow!r}, which this server does "
                          "not serve")
    return hook
