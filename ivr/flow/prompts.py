"""Prompt content as flows write it: text, `{audio: file}`, or a list mixing both."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from ivr.flow.channel import Prompt
from ivr.flow.loader import Path_
from ivr.flow.templates import is_template
from ivr.lang.numbers import say_as_kind
from ivr.lang.secret import is_secret, reveal, shown
from ivr.lang.spoken import template_parts
from ivr.prompt import Piece

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


def texts(spec: PromptSpec | None) -> list[str]:
    """The text items of a prompt (audio files are not spoken by TTS)."""
    return [item for item in items(spec) if isinstance(item, str)]


def build(ctx: CallContext, spec: PromptSpec | None) -> list[Prompt]:
    """Render templates now, so a prompt says what the variables hold at this moment."""
    language = ctx.language
    out = []
    for item in items(spec):
        if isinstance(item, AudioRef):
            out.append(Prompt(audio=str(ctx.audio_path(item.audio)), language=language))
        else:
            out.append(text_prompt(ctx, item))
    return out


def text_prompt(ctx: CallContext, source: str) -> Prompt:
    """A text prompt rendered now; one that read a sensitive value shows masked and is
    synthesised privately (`Prompt.shown`)."""
    text = ctx.render(source)
    if is_secret(text):
        return Prompt(text=reveal(text), language=ctx.language, shown=shown(text))
    return Prompt(text=text, language=ctx.language, pieces=pieces(ctx, source))


def pieces(ctx: CallContext, source: str) -> tuple[Piece, ...] | None:
    """A template prompt as fixed texts and say-as values, so a recorded prompt pack can play
    it (ivr.speech.packs); None when a part is anything else (`{{ name }}`, `{% if %}`)."""
    if not is_template(source):
        return None
    out = []
    for i, part in enumerate(template_parts(source)):
        if i % 2 == 0:
            out.append(Piece(part))
            continue
        if not part.startswith("{{") or say_as_kind(part) == "any":
            return None
        said = ctx.render(part)
        if is_secret(said):
            return None
        out.append(Piece(said, say_as=True))
    return tuple(out)


def build_for_input(ctx: CallContext, prompt: PromptSpec, dtmf_prompt: PromptSpec | None
                    ) -> list[Prompt]:
    """An input node's prompt: its DTMF wording when the call has no speech recognition."""
    use_dtmf = dtmf_prompt is not None and not ctx.channel.speech_for(ctx.language)
    return build(ctx, dtmf_prompt if use_dtmf else prompt)


DTMF_PROMPT_HELP = ("played instead of prompt when the call has no speech recognition (engine "
                    "not ready or off, or none for the call's language), so callers are not "
                    "invited to say anything")


def check(checker: Checker, path: Path_, spec: PromptSpec | None) -> None:
    """Templates parse and stay in the sandbox; audio files exist."""
    for i, item in enumerate(items(spec)):
        at = (*path, i) if isinstance(spec, list) else path
        if isinstance(item, AudioRef):
            checker.audio(at, item.audio)
        else:
            checker.template(at, item)
