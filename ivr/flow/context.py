"""Per-call state a flow reads and writes, and the record of what happened.

One `CallContext` per call, owned by the task that runs the call's flow; nothing here is shared
between calls. Sensitive values are stored as given (the flow needs them, e.g. to look an account
up) and masked on every way out: `masked_variables`, inputs, transcript, context for agents.
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

from ivr.config import EngineConfig
from ivr.errors import FlowRuntimeError
from ivr.flow.channel import Channel, Input, ListenSpec, Prompt
from ivr.flow.templates import render
from ivr.lang.masking import mask
from ivr.lang.numbers import say_digits

if TYPE_CHECKING:
    from ivr.flow.model import Flow

EndKind = Literal["hangup", "queue", "transfer", "error", "inputs_exhausted"]

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

    # -- variables -----------------------------------------------------------------------
    def scope(self) -> dict[str, Any]:
        """Names templates may use: flow variables, then the call-level ones."""
        caller = {"number": "", "name": "", "dialed": "", "sip_headers": {}, **self.caller}
        call = {"id": self.call_id, "started_at": self.started_at.isoformat()}
        return {**self.variables, "caller": caller, "call": call, "last": dict(self.last)}

    def assign(self, name: str, value: Any, *, sensitive: bool = False) -> None:
        self.variables[name] = value
        if sensitive:
            self.sensitive.add(name)

    def is_sensitive(self, name: str) -> bool:
        root = name.split(".", 1)[0]
        return root in self.sensitive or root in self.flow.sensitive

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
        return mask(value) if self.is_sensitive(name) and value is not None else value

    def masked_variables(self) -> dict[str, Any]:
        return {k: self.masked(k, v) for k, v in self.variables.items()}

    def context_of(self, names: Iterable[str]) -> dict[str, Any]:
        """What an agent or far end is handed: the named values, sensitive ones masked."""
        return {n: self.masked(n, self.lookup(n)) for n in names}

    def render(self, source: str) -> str:
        return render(source, self.scope())

    def mask_text(self, text: str) -> str:
        """Mask any sensitive value that appears verbatim in text (prompts, transcripts)."""
        for name in self.sensitive | set(self.flow.sensitive):
            value = self.variables.get(name)
            if value not in (None, ""):
                for form in {str(value), say_digits(value)}:
                    text = text.replace(form, mask(value))
        return text

    def now(self) -> dt.datetime:
        return self.clock()

    # -- channel wrappers that keep the record ---------------------------------------------
    async def play(self, prompts: list[Prompt], *, barge_in: bool = True) -> None:
        carries = False
        for p in prompts:
            text = self.mask_text(p.describe())
            carries = carries or text != p.describe()
            self.prompts.append(text)
            self.transcript.append({"who": "ivr", "text": text})
        # a prompt that reads a sensitive value out is a private span: a recording holds silence
        async with self.channel.private(self.node_id) if carries else contextlib.nullcontext():
            await self.channel.play(prompts, barge_in=barge_in)

    async def listen(self, spec: ListenSpec) -> Input | None:
        self.steps_since_input = 0
        return await self.channel.listen(spec)

    def note_input(self, got: Input, *, sensitive: bool = False, value: str | None = None) -> None:
        """Record an accepted input (and make it `last`)."""
        # mask what was understood ("one two ... eight" shows as ****5678), not the raw utterance
        shown = mask(value if value is not None else got.value) if sensitive else got.value
        self.last = {"value": value if value is not None else got.value, "mode": got.mode,
                     "confidence": got.confidence}
        self.inputs.append({"node": self.node_id, "mode": got.mode, "value": shown,
                            "confidence": got.confidence})
        self.transcript.append({"who": "caller", "text": shown})

    def end(self, kind: EndKind, **details: Any) -> None:
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
