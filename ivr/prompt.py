"""What a channel plays: one prompt. Neutral ground, so the flow layer, the queue wait (ivr.acd)
and the SIP layer share the type without importing each other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Piece:
    """Part of a rendered template prompt: a fixed text, or what a say-as filter said (which a
    recorded prompt pack plays from its fragments, ivr.speech.packs)."""

    text: str
    say_as: bool = False


@dataclass(frozen=True)
class Prompt:
    """One thing to play: synthesised text or an audio file (absolute path).

    `shown` is set when the text carries a sensitive value ("You entered 4 0 7 1 ..."): records
    show it instead of the text, and the text is synthesised privately, never into the shared
    prompt cache (whose files outlive the call)."""

    text: str | None = None
    audio: str | None = None
    language: str = "en-US"
    shown: str | None = None
    pieces: tuple[Piece, ...] | None = None
    """A template prompt's parts in order, when each is fixed text or a say-as value."""

    @property
    def sensitive(self) -> bool:
        return self.shown is not None

    def describe(self) -> str:
        """The prompt as records show it (masked when sensitive)."""
        if self.shown is not None:
            return self.shown
        return self.text if self.text is not None else f"[audio {self.audio}]"
