"""Flow file schema: the flow header, and the base every node kind derives from.

Each node kind is one class in `ivr/flow/nodes/`: its pydantic fields are the schema, its `edges`
feed validation and graphs, and its `run` is the behaviour. The registry maps the kind key to the
class; nothing else in the engine names a kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ivr.durations import Duration
from ivr.flow.loader import Document, Path_

if TYPE_CHECKING:
    from ivr.flow.context import CallContext
    from ivr.flow.validate import Checker

NODE_TYPES: dict[str, type[Node]] = {}
"""kind key -> node class; filled as node modules are imported."""


@dataclass(frozen=True)
class Edge:
    """A possible transition: where it is written (path inside the node), label, target."""

    path: Path_
    label: str
    target: str


class Node(BaseModel):
    """Base of all node kinds. Subclasses set `kind` and declare their fields and exits."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: ClassVar[str] = ""
    waits_for_input: ClassVar[bool] = False

    hangup: bool = Field(False, description="end the call after this node")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            NODE_TYPES[cls.kind] = cls

    def edges(self) -> list[Edge]:
        """Transitions this node can take; used by validation, coverage and graphs."""
        out = []
        for name in ("next", "on_fail", "on_error", "on_timeout", "open", "closed"):
            target = getattr(self, name, None)
            if isinstance(target, str):
                out.append(Edge((name,), name, target))
        return out

    def check(self, checker: Checker, path: Path_) -> None:
        """Semantic checks beyond the schema (audio files, queues, calendars...)."""

    def prompts(self, language: str) -> list[str]:
        """Every text this node can speak while the call is in `language` (its system prompts
        come from that language's catalogue), templates as written: the prompt catalogue that
        `serve` renders ahead and `ivr call` recognises (ivr/flow/catalog.py) asks each node."""
        return []

    async def run(self, ctx: CallContext) -> str | None:
        """Do the node's work; return the next node id, or None to end (or return)."""
        raise NotImplementedError


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout: Duration = 5.0
    interdigit_timeout: Duration = 3.0
    retries: int = Field(3, ge=0, le=10)
    barge_in: bool = True
    confidence: float = Field(0.5, ge=0.0, le=1.0)
    max_speech: Duration = 15.0


class GlobalLink(BaseModel):
    """An input active in every input node of the flow (a VoiceXML link)."""

    model_config = ConfigDict(extra="forbid")

    dtmf: str | None = Field(None, pattern=r"^[0-9*#A-D]{1,4}$")
    speech: list[str] = Field(default_factory=list)
    goto: str | None = None
    action: Literal["repeat"] | None = None
    set: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_effect(self) -> GlobalLink:
        if (self.goto is None) == (self.action is None):
            raise ValueError("a global needs exactly one of goto or action")
        if self.dtmf is None and not self.speech:
            raise ValueError("a global needs dtmf or speech")
        return self


class Voice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: int | None = Field(None, ge=50, le=500)
    voice: str | None = None


class FlowHeader(BaseModel):
    """Everything in a flow file except the nodes' own schemas."""

    model_config = ConfigDict(extra="forbid")

    flow: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str | None = None
    language: str = "en-US"
    voice: Voice = Field(default_factory=Voice)
    defaults: Defaults = Field(default_factory=Defaults)
    globals: list[GlobalLink] = Field(default_factory=list)
    sensitive: list[str] = Field(default_factory=list, description="variables always masked")
    record_calls: bool = Field(False, description="record every call of this flow (whole call, "
                               "paused while a sensitive input is collected)")
    start: str
    nodes: dict[str, dict[str, Any]]


@dataclass
class Flow:
    """A validated flow, ready to run. Immutable by convention: calls share it."""

    header: FlowHeader
    nodes: dict[str, Node]
    doc: Document
    version: str = ""
    sensitive: frozenset[str] = field(default_factory=frozenset)

    @property
    def id(self) -> str:
        return self.header.flow

    @property
    def file(self) -> str:
        return self.doc.file
