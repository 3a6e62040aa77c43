"""`collect`: gather digits and/or speech into a variable, with optional confirmation."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ivr.durations import Duration
from ivr.flow import prompts
from ivr.flow.channel import Input, ListenSpec, Prompt
from ivr.flow.gather import escalation_texts, gather, global_keys, settings_for
from ivr.flow.loader import Path_
from ivr.flow.model import Node
from ivr.flow.nodes.set import assign_all
from ivr.flow.prompts import PromptSpec
from ivr.lang import messages
from ivr.lang.grammars import BUILTINS, builtin_phrases, dtmf_builtin, parse_builtin
from ivr.lang.normalize import best_phrase

if TYPE_CHECKING:
    from ivr.flow.context import CallContext
    from ivr.flow.validate import Checker


class Digits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: int = Field(1, ge=1, le=64)
    max: int = Field(16, ge=1, le=64)
    terminator: str | None = Field("#", pattern=r"^[#*]$")

    @model_validator(mode="after")
    def _order(self) -> Digits:
        if self.min > self.max:
            raise ValueError("digits.min is greater than digits.max")
        return self


class CollectSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: PromptSpec
    dtmf_prompt: PromptSpec | None = Field(None, description=prompts.DTMF_PROMPT_HELP)
    digits: Digits | None = None
    speech: str | list[str] | None = Field(
        None, description="built-in grammar (digits, number, yes_no, currency, date) or phrases"
    )
    into: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    sensitive: bool = False
    confirm: PromptSpec | None = None
    noinput: list[str] = Field(default_factory=list)
    nomatch: list[str] = Field(default_factory=list)
    timeout: Duration | None = None
    interdigit_timeout: Duration | None = None
    retries: int | None = Field(None, ge=0, le=10)
    barge_in: bool | None = None
    confidence: float | None = Field(None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _some_input(self) -> CollectSpec:
        if self.digits is None and self.speech is None:
            raise ValueError("collect needs digits, speech, or both")
        if isinstance(self.speech, str) and self.speech not in BUILTINS:
            raise ValueError(f"unknown built-in grammar {self.speech!r}; one of {', '.join(BUILTINS)}")
        return self


class CollectNode(Node):
    kind = "collect"
    waits_for_input = True

    collect: CollectSpec
    next: str | None = None
    on_fail: str | None = None

    def check(self, checker: Checker, path: Path_) -> None:
        spec = self.collect
        prompts.check(checker, (*path, "collect", "prompt"), spec.prompt)
        prompts.check(checker, (*path, "collect", "dtmf_prompt"), spec.dtmf_prompt)
        prompts.check(checker, (*path, "collect", "confirm"), spec.confirm)
        for key in ("noinput", "nomatch"):
            for i, text in enumerate(getattr(spec, key)):
                checker.template((*path, "collect", key, i), text)

    def prompts(self, language: str) -> list[str]:
        spec = self.collect
        return [*prompts.texts(spec.prompt), *prompts.texts(spec.dtmf_prompt),
                *prompts.texts(spec.confirm),
                *escalation_texts(spec.noinput, spec.nomatch, language),
                *([messages.text(language, "retry")] if spec.confirm is not None else [])]

    def _builtin(self) -> str | None:
        return self.collect.speech if isinstance(self.collect.speech, str) else None

    def _spec(self, ctx: CallContext) -> ListenSpec:
        s = settings_for(ctx, self.collect)
        d = self.collect.digits
        g_keys, g_phrases = global_keys(ctx.flow.header.globals)
        speech = self.collect.speech
        phrases = tuple(speech) if isinstance(speech, list) else ()
        return ListenSpec(
            timeout=s.timeout, interdigit_timeout=s.interdigit_timeout,
            max_digits=d.max if d else 1, min_digits=d.min if d else 1, digits_counted=d is not None,
            terminator=d.terminator if d else None,
            dtmf_keys=tuple(k for k in g_keys if not k.isdigit()),
            speech=speech is not None, phrases=phrases + g_phrases if phrases else (),
            builtin=self._builtin(), barge_in=s.barge_in, language=ctx.language,
            max_speech=s.max_speech,
        )

    def interpret(self, got: Input) -> str | None:
        """The collected value, or None for a nomatch (wrong length, not in grammar)."""
        spec = self.collect
        if got.mode == "dtmf":
            if spec.digits is None:
                value = dtmf_builtin(self._builtin() or "", got.value) if self._builtin() else None
                return value
            digits = got.value
            if not digits.isdigit() or not spec.digits.min <= len(digits) <= spec.digits.max:
                return None
            return digits
        if spec.speech is None:
            return None
        if isinstance(spec.speech, list):
            return best_phrase(got.value, spec.speech)
        value = parse_builtin(spec.speech, got.value)
        if value is not None and spec.speech == "digits" and spec.digits is not None and not (
            spec.digits.min <= len(value) <= spec.digits.max
        ):
            return None
        return value

    async def _confirm(self, ctx: CallContext, value: Any) -> bool:
        spec = self.collect
        ctx.assign(spec.into, value, sensitive=spec.sensitive)
        s = settings_for(ctx, spec, "yes_no")
        await ctx.play(prompts.build(ctx, spec.confirm), barge_in=s.barge_in)
        got = await ctx.listen(
            ListenSpec(timeout=s.timeout, interdigit_timeout=s.interdigit_timeout, max_digits=1,
                       dtmf_keys=("1", "2"), speech=True, phrases=tuple(builtin_phrases("yes_no")),
                       builtin="yes_no", barge_in=s.barge_in, language=ctx.language,
                       max_speech=s.max_speech)
        )
        if got is None:
            return False
        answer = (dtmf_builtin("yes_no", got.value) if got.mode == "dtmf"
                  else parse_builtin("yes_no", got.value))
        if got.mode == "speech" and got.confidence < s.confidence:
            answer = None  # an unsure "yes" confirms nothing: the caller is asked again
        if answer is not None:
            ctx.note_input(got, value=answer)
        if answer == "yes":
            return True
        ctx.variables.pop(spec.into, None)
        # said after the caller refuses a confirmation
        await ctx.play([Prompt(text=ctx.message("retry"), language=ctx.language)])
        return False

    async def run(self, ctx: CallContext) -> str | None:
        # a sensitive input is collected in a private span: a call recording holds silence
        sensitive = self.collect.sensitive
        async with ctx.channel.private(ctx.node_id) if sensitive else contextlib.nullcontext():
            return await self._collect(ctx)

    async def _collect(self, ctx: CallContext) -> str | None:
        spec = self.collect
        result = await gather(
            ctx,
            prompts=lambda: prompts.build_for_input(ctx, spec.prompt, spec.dtmf_prompt),
            spec=self._spec(ctx),
            settings=settings_for(ctx, spec, self._builtin()),
            interpret=self.interpret,
            noinput=spec.noinput,
            nomatch=spec.nomatch,
            sensitive=spec.sensitive or spec.into in ctx.flow.sensitive,
            confirm=(lambda v: self._confirm(ctx, v)) if spec.confirm is not None else None,
        )
        if result.kind == "matched":
            ctx.assign(spec.into, result.value, sensitive=spec.sensitive)
            return self.next
        if result.kind == "goto":
            assign_all(ctx, result.set)
            return result.target
        return self.on_fail
