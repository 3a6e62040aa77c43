"""What a channel plays: one prompt. Neutral ground, so the flow layer, the queue wait (ivr.acd)
and the SIP layer share the type without importing each other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prompt:
    """One thing to play: synthesised text or an audio file (absolute path)."""

    text: str | None = None
    audio: str | None = None
    language: str = "en-US"

    def describe(self) -> str:
        return self.text if self.text is not None else f"[audio {self.audio}]"
