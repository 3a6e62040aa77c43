"""Per-call state a flow reads and writes, and the record of what happened.

One `CallContext` per call, owned by the task that runs the call's flow; nothing here is shared
between calls. Sensitive values are stored tainted (`ivr.lang.secret.Secret`: the real value,
which the flow needs to look an account up, carrying its masked form) and shown masked on every
way out: `masked_variables`, inputs, transcript, prompts, context for agents. A value is tainted
where it enters (a `sensitive` input, a name in the flow's `sensitive:` list) and stays so through
templates, copies, `last` and subflows (`ivr.flow.templates`); `secrets` keeps every secret the
call has seen, so free text (an error body, a log line) is scrubbed of them too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from ivr import tracing
from ivr.config import EngineConfig
from ivr.errors import FlowRuntimeError
from ivr.flow.channel import Channel, Input, ListenSpec, Prompt
from ivr.flow.templates import render
from ivr.lang import messages
from ivr.lang.masking import mask
from ivr.lang.secret import Tainted, contains_secret, scrub, secrets_in, shown, taint

if TYPE_CHECKING:
    from ivr.flow.model import Flow

EndKind = Literal["hangup", "queue", "transfer", "error", "inputs_exhausted"]

LANGUAGE = "language"
"""The variable that holds the call's language once a flow sets it (`set: {language: ...}`)."""

MAX_STEPS_WITHOUT_INPUT = 100
"""Nodes a flow may pass without waiting for the caller before we call it a loop."""


@dataclass
class End:
    """How a call's flow ended; keys match `ivr simulate --json`'s `end`."""

    kind: EndKind
    node: str | None = None
    queue: str | None = None
    target: str | None = None
    context: dict[str, Any] | None = None
    message: str | None = None
    by: Literal["caller", "ivr"] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "node": self.node}
        for key in ("queue", "target", "context", "message", "by"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass
class CallContext:
    """State of one call as the flow sees it."""

    channel: Channel
    config: EngineConfig
    flows: Mapping[str, Flow]
    flow: Flow
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.timezone.utc))
    http_client: httpx.AsyncClient | None = None
    caller: dict[str, Any] = field(default_factory=dict)
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    audio_dir: Path = Path("audio")
    max_steps_without_input: int = MAX_STEPS_WITHOUT_INPUT

    variables: dict[str, Any] = field(default_factory=dict)
    sensitive: set[str] = field(default_factory=set)
    last: dict[str, Any] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)
    visited: list[tuple[str, str]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    transcript: list[dict[str, str]] = field(default_factory=list)
    ending: End | None = None
    node_id: str = ""
    steps_since_input: int = 0
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    run_subflow: Callable[[str], Awaitable[bool]] | None = None
    top_flow_id: str = ""
    secrets: list[Tainted] = field(default_factory=list)
    """Every secret this call has held, for scrubbing free text (`mask_text`, logs)."""
    start_language: str = ""
    """The call's language until the flow sets `language`: the top flow's `language:`."""

    def __post_init__(self) -> None:
        if not self.start_language:
            self.start_language = self.flow.header.language
        for name in list(self.variables):  # given before the flow ran (a test case, a callback)
            if name in self.flow.sensitive:
                self.assign(name, self.variables[name])

    # -- language ------------------------------------------------------------------------
    @property
    def language(self) -> str:
        """The call's language now: prompts, system prompts (ivr/lang/messages), the TTS voice
        and the recogniser follow it. A flow changes it with `set: {language: en-US}`."""
        value = self.variables.get(LANGUAGE)
        return value if isinstance(value, str) and value else self.start_language

    def message(self, key: str, /, **values: Any) -> str:
        """A system prompt (ivr/lang/messages) in the call's language."""
        try:
            return messages.text(self.language, key, **values)
        except messages.MessageError as exc:
            raise FlowRuntimeError(str(exc), node=self.node_id) from None

    # -- variables -----------------------------------------------------------------------
    def scope(self) -> dict[str, Any]:
        """Names templates may use: flow variables, then the call-level ones."""
        caller = {"number": "", "name": "", "dialed": "", "sip_headers": {}, **self.caller}
        call = {"id": self.call_id, "started_at": self.started_at.isoformat(),
                "language": self.language}
        return {**self.variables, "caller": caller, "call": call, "last": dict(self.last)}

    def assign(self, name: str, value: Any, *, sensitive: bool = False) -> None:
        """Store a variable; a sensitive input or a name the flow lists as sensitive taints it."""
        if name == LANGUAGE:  # the call's language: only one that has its system prompts
            why = messages.problem(str(value))
            if why is not None:
                raise FlowRuntimeError(f"cannot switch the call to language {value!r}: {why}",
                                       node=self.node_id)
        if sensitive or name in self.flow.sensitive:
            value = taint(value)
        self.remember(value)
        self.variables[name] = value
        if contains_secret(value):
            self.sensitive.add(name)
        else:
            self.sensitive.discard(name)

    def remember(self, value: Any) -> None:
        """Keep the secrets in value for scrubbing free text, even after a variable changes."""
        known = {id(s) for s in self.secrets}
        self.secrets.extend(s for s in secrets_in(value) if id(s) not in known)

    def is_sensitive(self, name: str) -> bool:
        root = name.split(".", 1)[0]
        return root in self.flow.sensitive or contains_secret(self.variables.get(root))

    def lookup(self, dotted: str) -> Any:
        """`customer.name` from the variables, None when any part is missing."""
        value: Any = self.scope()
        for part in dotted.split("."):
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            else:
                return None
        return value

    def masked(self, name: str, value: Any) -> Any:
        """value as records show it: secrets masked, and a value given untainted under a name
        the flow lists as sensitive masked whole."""
        if value is None:
            return None
        if contains_secret(value):
            return shown(value)
        return mask(value) if name.split(".", 1)[0] in self.flow.sensitive else value

    def masked_variables(self) -> dict[str, Any]:
        return {k: self.masked(k, v) for k, v in self.variables.items()}

    def context_of(self, names: Iterable[str]) -> dict[str, Any]:
        """What an agent or far end is handed: the named values, sensitive ones masked."""
        return {n: self.masked(n, self.lookup(n)) for n in names}

    def render(self, source: str) -> str:
        """The template rendered; a `Secret` when it read one (show it with `shown`)."""
        out = render(source, self.scope())
        self.remember(out)
        return out

    def mask_text(self, text: str) -> str:
        """Free text (an error message, a body a back-end echoed) with every secret this call
        has held masked, as written or spoken digit by digit."""
        self.remember([self.variables, self.last])
        return scrub(shown(text), self.secrets)

    def now(self) -> dt.datetime:
        return self.clock()

    # -- channel wrappers that keep the record ---------------------------------------------
    async def play(self, prompts: list[Prompt], *, barge_in: bool = True) -> None:
        carries = False
        for p in prompts:
            text = self.mask_text(p.describe())
            carries = carries or p.sensitive or text != p.describe()
            self.prompts.append(text)
            self.transcript.append({"who": "ivr", "text": text})
        # a prompt that reads a sensitive value out is a private span: a recording holds silence
        with tracing.span("prompt", prompts=len(prompts), barge_in=barge_in):
            async with self.channel.private(self.node_id) if carries else contextlib.nullcontext():
                await self.channel.play(prompts, barge_in=barge_in)

    async def listen(self, spec: ListenSpec) -> Input | None:
        self.steps_since_input = 0
        with tracing.span("listen", speech=spec.speech, timeout_s=spec.timeout):
            return await self.channel.listen(spec)

    def note_input(self, got: Input, *, sensitive: bool = False, value: str | None = None) -> None:
        """Record an accepted input (and make it `last`); a sensitive one is tainted."""
        understood: Any = value if value is not None else got.value
        heard: Any = got.value
        if sensitive:
            # mask what was understood ("one two ... eight" shows as ****5678), not the utterance
            understood = heard = taint(understood)
            self.remember(understood)
        self.last = {"value": understood, "mode": got.mode, "confidence": got.confidence}
        self.inputs.append({"node": self.node_id, "mode": got.mode, "value": shown(heard),
                            "confidence": got.confidence})
        self.transcript.append({"who": "caller", "text": shown(heard)})

    def end(self, kind: EndKind, **details: Any) -> None:
        for key in ("message", "target"):  # free text for the CDR: no secret in it
            if isinstance(details.get(key), str):
                details[key] = self.mask_text(details[key])
        if self.ending is None:
            self.ending = End(kind=kind, node=self.node_id, **details)

    def step(self, flow: Flow, node_id: str) -> None:
        """Called by the interpreter on entering a node; bounds loops without input."""
        self.node_id = node_id
        top = self.top_flow_id or flow.id
        self.path.append(node_id if flow.id == top else f"{flow.id}/{node_id}")
        self.visited.append((flow.id, node_id))
        self.steps_since_input += 1
        if self.steps_since_input > self.max_steps_without_input:
            raise FlowRuntimeError(
                f"flow passed {self.max_steps_without_input} nodes without waiting for the caller "
                f"(last at {node_id!r}); a goto cycle has no input node or exit",
                node=node_id,
            )

    def audio_path(self, name: str) -> Path:
        p = Path(name)
        return p if p.is_absolute() else self.audio_dir / p
