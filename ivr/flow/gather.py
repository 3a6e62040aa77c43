"""The prompt-listen-escalate loop shared by every input node (VoiceXML's FIA, in small).

Rules (from the flow language): noinput and nomatch events count together against `retries`;
after each of the first `retries` events the next escalation prompt plays (lists are used in order,
the last one repeats), then the node's prompt again; one more event goes to `on_fail`. Globals are
active in every input node; node options win over globals with the same key. A `repeat` global
replays the prompt without counting an event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ivr.flow.channel import Input, ListenSpec, Prompt
from ivr.flow.context import CallContext
from ivr.flow.model import GlobalLink
from ivr.flow.prompts import text_prompt
from ivr.lang import messages
from ivr.lang.grammars import default_confidence
from ivr.lang.normalize import best_phrase


@dataclass
class Settings:
    """Effective input settings of one node: its own values over the flow's defaults."""

    timeout: float
    interdigit_timeout: float
    retries: int
    barge_in: bool
    confidence: float
    max_speech: float = 15.0


@dataclass
class Gathered:
    kind: Literal["matched", "goto", "failed"]
    value: Any = None
    target: str | None = None
    set: dict[str, Any] = field(default_factory=dict)


Interpret = Callable[[Input], Any]
"""Returns the node's value for an input, or None for a nomatch."""


def settings_for(ctx: CallContext, node: Any, builtin: str | None = None) -> Settings:
    """The node's value, else the flow's `defaults`; a confidence neither sets is the default
    of the node's built-in grammar (`builtin`; phrases: None), see ivr.lang.grammars."""
    d = ctx.flow.header.defaults

    def pick(name: str) -> Any:
        own = getattr(node, name, None)
        if own is None and name == "confidence" and name not in d.model_fields_set:
            return default_confidence(builtin)
        return own if own is not None else getattr(d, name)

    return Settings(
        timeout=pick("timeout"),
        interdigit_timeout=pick("interdigit_timeout"),
        retries=pick("retries"),
        barge_in=pick("barge_in"),
        confidence=pick("confidence"),
        max_speech=pick("max_speech"),
    )


def global_for(links: list[GlobalLink], got: Input) -> GlobalLink | None:
    for link in links:
        if got.mode == "dtmf" and link.dtmf is not None and got.value == link.dtmf:
            return link
        if got.mode == "speech" and link.speech and best_phrase(got.value, link.speech):
            return link
    return None


def global_keys(links: list[GlobalLink]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """DTMF keys and phrases of the globals, for the listen spec and the grammar."""
    keys = tuple(link.dtmf for link in links if link.dtmf)
    phrases = tuple(p for link in links for p in link.speech)
    return keys, phrases


def escalation_texts(noinput: list[str], nomatch: list[str], language: str) -> list[str]:
    """What the loop below may say on noinput and nomatch in `language`: the node's lists, or
    the defaults of the language's message catalogue."""
    defaults = [key for key, own in (("noinput", noinput), ("nomatch", nomatch)) if not own]
    return [*noinput, *nomatch, *(messages.text(language, key) for key in defaults)]


def _escalation(ctx: CallContext, texts: list[str], count: int, fallback: str) -> str:
    if not texts:
        return ctx.message(fallback)
    return texts[min(count, len(texts)) - 1]


async def gather(
    ctx: CallContext,
    *,
    prompts: Callable[[], list[Prompt]],
    spec: ListenSpec,
    settings: Settings,
    interpret: Interpret,
    noinput: list[str],
    nomatch: list[str],
    sensitive: bool = False,
    confirm: Callable[[Any], Awaitable[bool]] | None = None,
) -> Gathered:
    """Run the input loop until a match, a global's goto, or too many failures."""
    events = noinputs = nomatches = 0
    before: list[Prompt] = []
    while True:
        await ctx.play([*before, *prompts()], barge_in=settings.barge_in)
        before = []
        got = await ctx.listen(spec)
        kind: str
        if got is None:
            kind = "noinput"
        elif got.mode == "speech" and got.confidence < settings.confidence:
            kind = "nomatch"
        else:
            value = interpret(got)
            link = None if value is not None else global_for(ctx.flow.header.globals, got)
            if value is not None:
                shown = str(value) if isinstance(value, (str, int, float)) else None
                ctx.note_input(got, sensitive=sensitive, value=shown)
                if confirm is None or await confirm(value):
                    return Gathered("matched", value=value)
                kind = "rejected"
            elif link is not None:
                ctx.note_input(got)
                if link.action == "repeat":
                    continue
                return Gathered("goto", target=link.goto, set=dict(link.set))
            else:
                ctx.transcript.append({"who": "caller", "text": "(no match)"})
                kind = "nomatch"
        if kind != "rejected":
            ctx.note_event(kind)
        events += 1
        if events > settings.retries:
            return Gathered("failed")
        if kind == "noinput":
            noinputs += 1
            before = [text_prompt(ctx, _escalation(ctx, noinput, noinputs, "noinput"))]
        elif kind == "nomatch":
            nomatches += 1
            before = [text_prompt(ctx, _escalation(ctx, nomatch, nomatches, "nomatch"))]
