"""The seam between a flow and whatever carries the call.

The same interpreter runs over a SIP call in a worker, a text console (`ivr simulate`) and scripted
steps (`ivr test`). A channel plays prompts, listens for one input, and performs the terminal
actions (queue, transfer, record, hang up). Input that arrives while a prompt plays (barge-in,
type-ahead) is kept by the channel and returned by the next `listen`.

A channel raises `CallerHangup` from any method once the caller is gone.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ivr.prompt import Prompt

if TYPE_CHECKING:
    from ivr.acd.wait import QueueRequest, QueueResult

__all__ = ["Prompt"]  # the thing a channel plays; its home is neutral so ivr.acd can use it

InputMode = Literal["dtmf", "speech"]


@dataclass(frozen=True)
class ListenSpec:
    """What the flow waits for now; a channel uses as much of it as its medium allows."""

    timeout: float = 5.0
    interdigit_timeout: float = 3.0
    max_digits: int = 1
    min_digits: int = 1
    terminator: str | None = None
    dtmf_keys: tuple[str, ...] = ()
    """Whole keys that end a DTMF entry at once (menu options and globals)."""
    speech: bool = True
    phrases: tuple[str, ...] = ()
    """Phrase grammar for the recogniser (options and globals); empty with `builtin`."""
    builtin: str | None = None
    barge_in: bool = True
    language: str = "en-US"
    max_speech: float = 15.0
    """Seconds of speech after which the caller's utterance is cut and decoded as it is."""
    digits_counted: bool = False
    """min_digits/max_digits are the node's own `digits: {min, max}` (a spoken `digits` grammar
    is then bounded by them, even at one digit), not the one-key default of a listen."""


@dataclass(frozen=True)
class Input:
    """One thing the caller did."""

    mode: InputMode
    value: str
    confidence: float = 1.0
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class TransferRequest:
    to: str
    mode: str = "refer"
    headers: Mapping[str, str] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordRequest:
    max_seconds: float = 60.0
    beep: bool = True
    name: str = "recording"


class Channel(abc.ABC):
    """What a flow may ask of the call that carries it."""

    @property
    def speech_available(self) -> bool:
        """Whether this call's speech is recognised; without it, input nodes play their
        `dtmf_prompt` (the DTMF wording) instead of a prompt that offers "or say ..."."""
        return True

    def speech_for(self, language: str) -> bool:
        """Whether speech in `language` is recognised on this call: a language without its
        engine (`speech.asr.languages`) runs DTMF-only, as a call without speech does."""
        return self.speech_available

    def private(self, node: str) -> contextlib.AbstractAsyncContextManager[None]:
        """A span in which the caller gives, or hears read back, a sensitive value: a channel
        that records the call holds silence for it and notes the span (`ivr.flow.pauses`).
        Spans may nest; a channel that records nothing ignores them."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool = True) -> None:
        """Play prompts in order; returns early when the caller barges in."""

    @abc.abstractmethod
    async def listen(self, spec: ListenSpec) -> Input | None:
        """One input, or None when the caller gave none in time (noinput)."""

    @abc.abstractmethod
    async def enqueue(self, request: QueueRequest) -> QueueResult:
        """Hand the caller to an agent queue and wait for the outcome (`ivr.acd.wait`)."""

    @abc.abstractmethod
    async def transfer(self, request: TransferRequest) -> bool:
        """Transfer the call; False when the far end refused or failed."""

    @abc.abstractmethod
    async def record(self, request: RecordRequest) -> str | None:
        """Record the caller; the file path, or None when nothing was recorded."""

    @abc.abstractmethod
    async def hangup(self) -> None:
        """End the call from the IVR side."""
