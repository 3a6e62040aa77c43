"""`menu`: a prompt and options picked by DTMF key or by a spoken phrase."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ivr.durations import Duration
from ivr.flow import prompts
from ivr.flow.channel import Input, ListenSpec
from ivr.flow.gather import escalation_texts, gather, global_keys, settings_for
from ivr.flow.loader import Path_
from ivr.flow.model import Edge, Node
from ivr.flow.nodes.set import assign_all
from ivr.flow.prompts import PromptSpec
from ivr.lang.normalize import best_phrase

if TYPE_CHECKING:
    from ivr.flow.context import CallContext
    from ivr.flow.validate import Checker


class Option(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dtmf: str | None = Field(None, pattern=r"^[0-9*#A-D]{1,4}$")
    speech: list[str] = Field(default_factory=list)
    goto: str
    set: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _reachable(self) -> Option:
        if self.dtmf is None and not self.speech:
            raise ValueError("an option needs dtmf or speech")
        return self


class MenuSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: PromptSpec
    dtmf_prompt: PromptSpec | None = Field(None, description=prompts.DTMF_PROMPT_HELP)
    options: list[Option] = Field(min_length=1)
    noinput: list[str] = Field(default_factory=list)
    nomatch: list[str] = Field(default_factory=list)
    timeout: Duration | None = None
    interdigit_timeout: Duration | None = None
    retries: int | None = Field(None, ge=0, le=10)
    barge_in: bool | None = None
    confidence: float | None = Field(None, ge=0.0, le=1.0)
    on_fail: str | None = Field(None, description="same as the node-level on_fail (either place)")
    sensitive: bool = Field(False, description="the caller's choice is sensitive: `last.value` "
                            "and the chosen option's `set` values are masked wherever they go")


class MenuNode(Node):
    kind = "menu"
    waits_for_input = True

    menu: MenuSpec
    on_fail: str | None = None

    @model_validator(mode="after")
    def _one_on_fail(self) -> MenuNode:
        if self.on_fail is not None and self.menu.on_fail is not None:
            raise ValueError("on_fail is given both in the node and in menu; keep one")
        return self

    @property
    def fail_target(self) -> str | None:
        """`on_fail` as a node key or, as the flow language's example writes it, inside menu."""
        return self.on_fail if self.on_fail is not None else self.menu.on_fail

    def edges(self) -> list[Edge]:
        out = [
            Edge(("menu", "options", i, "goto"), opt.dtmf or (opt.speech[0] if opt.speech else ""),
                 opt.goto)
            for i, opt in enumerate(self.menu.options)
        ]
        if self.menu.on_fail is not None:
            out.append(Edge(("menu", "on_fail"), "on_fail", self.menu.on_fail))
        return out + super().edges()

    def check(self, checker: Checker, path: Path_) -> None:
        spec = self.menu
        prompts.check(checker, (*path, "menu", "prompt"), spec.prompt)
        prompts.check(checker, (*path, "menu", "dtmf_prompt"), spec.dtmf_prompt)
        for key in ("noinput", "nomatch"):
            for i, text in enumerate(getattr(spec, key)):
                checker.template((*path, "menu", key, i), text)
        if self.fail_target is None:
            checker.error(path, "menu has no on_fail: say where callers go after the last retry")
        seen_keys: dict[str, int] = {}
        seen_phrases: dict[str, int] = {}
        for i, opt in enumerate(spec.options):
            at = (*path, "menu", "options", i)
            if opt.dtmf is not None:
                if opt.dtmf in seen_keys:
                    checker.error((*at, "dtmf"), f"duplicate DTMF key {opt.dtmf!r} "
                                  f"(also option {seen_keys[opt.dtmf] + 1})")
                seen_keys.setdefault(opt.dtmf, i)
            for j, phrase in enumerate(opt.speech):
                norm = phrase.strip().lower()
                if norm in seen_phrases and seen_phrases[norm] != i:
                    checker.error((*at, "speech", j), f"phrase {phrase!r} is also in option "
                                  f"{seen_phrases[norm] + 1}")
                seen_phrases.setdefault(norm, i)
            checker.assignments((*at, "set"), opt.set)

    def prompts(self, language: str) -> list[str]:
        spec = self.menu
        return [*prompts.texts(spec.prompt), *prompts.texts(spec.dtmf_prompt),
                *escalation_texts(spec.noinput, spec.nomatch, language)]

    def _spec(self, ctx: CallContext) -> ListenSpec:
        s = settings_for(ctx, self.menu)
        g_keys, g_phrases = global_keys(ctx.flow.header.globals)
        keys = tuple(o.dtmf for o in self.menu.options if o.dtmf) + g_keys
        phrases = tuple(p for o in self.menu.options for p in o.speech) + g_phrases
        return ListenSpec(
            timeout=s.timeout, interdigit_timeout=s.interdigit_timeout,
            max_digits=max((len(k) for k in keys), default=1), min_digits=1,
            dtmf_keys=keys, speech=bool(phrases), phrases=phrases, barge_in=s.barge_in,
            language=ctx.language, max_speech=s.max_speech,
        )

    def _pick(self, got: Input) -> Option | None:
        if got.mode == "dtmf":
            return next((o for o in self.menu.options if o.dtmf == got.value), None)
        phrases = [p for o in self.menu.options for p in o.speech]
        phrase = best_phrase(got.value, phrases)
        return next((o for o in self.menu.options if phrase in o.speech), None) if phrase else None

    async def run(self, ctx: CallContext) -> str | None:
        spec = self.menu
        result = await gather(
            ctx,
            prompts=lambda: prompts.build_for_input(ctx, spec.prompt, spec.dtmf_prompt),
            spec=self._spec(ctx),
            settings=settings_for(ctx, spec),
            interpret=lambda got: (o.goto and o) if (o := self._pick(got)) else None,
            noinput=spec.noinput,
            nomatch=spec.nomatch,
            sensitive=spec.sensitive,
        )
        if result.kind == "matched":
            option: Option = result.value
            assign_all(ctx, option.set, sensitive=spec.sensitive)
            return option.goto
        if result.kind == "goto":
            assign_all(ctx, result.set)
            return result.target
        return self.fail_target
