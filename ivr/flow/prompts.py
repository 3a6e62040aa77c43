"""Prompt content as flows write it: text, `{audio: file}`, or a list mixing both."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from ivr.flow.channel import Prompt
from ivr.flow.loader import Path_

if TYPE_CHECKING:
    from ivr.flow.context import CallContext
    from ivr.flow.validate import Checker


class AudioRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audio: str = Field(description="file under audio/ (WAV); any sample rate")


PromptItem = str | AudioRef
PromptSpec = str | AudioRef | list[PromptItem]


def items(spec: PromptSpec | None) -> list[PromptItem]:
    if spec is None:
        return []
    return list(spec) if isinstance(spec, list) else [spec]


def build(ctx: CallContext, spec: PromptSpec | None) -> list[Prompt]:
    """Render templates now, so a prompt says what the variables hold at this moment."""
    language = ctx.flow.header.language
    out = []
    for item in items(spec):
        if isinstance(item, AudioRef):
            out.append(Prompt(audio=str(ctx.audio_path(item.audio)), language=language))
        else:
            out.append(Prompt(text=ctx.render(item), language=language))
    return out


def check(checker: Checker, path: Path_, spec: PromptSpec | None) -> None:
    """Templates parse and stay in the sandbox; audio files exist."""
    for i, item in enumerate(items(spec)):
        at = (*path, i) if isinstance(spec, list) else path
        if isinstance(item, AudioRef):
            checker.audio(at, item.audio)
        else:
            checker.template(at, item)
