"""Turning YAML documents into flows, and checking them as a set against the engine config.

Schema errors come from pydantic (one model per node kind); the semantic checks here are those a
schema cannot express: targets that do not exist, nodes no path reaches, audio files that are not
on disk, names of calendars/queues/flows that the config or the flow set does not define, and
templates that do not parse or try to leave the sandbox.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

import ivr.flow.nodes  # noqa: F401 - fills the node registry
from ivr.config import EngineConfig
from ivr.errors import Problem, ProblemsError
from ivr.flow.languages import switches
from ivr.flow.loader import Document, Path_, load_file
from ivr.flow.model import NODE_TYPES, Flow, FlowHeader, Node
from ivr.flow.pack_check import check_pack
from ivr.flow.sayas_check import problem as sayas_problem
from ivr.flow.templates import check_source, is_template
from ivr.lang import messages
from ivr.speech.packs import PromptPack
from ivr.yamldoc import validation_problems

_NODE_ID = r"^[A-Za-z_][A-Za-z0-9_.-]*$"


def find_audio(flow_file: str, config: EngineConfig, name: str) -> Path | None:
    """Where a flow's `{audio: name}` lives: beside the flow, in ../audio, or config.audio."""
    p = Path(name)
    if p.is_absolute():
        return p if p.is_file() else None
    base = Path(flow_file).resolve().parent
    for candidate in (base / p, base.parent / "audio" / p, Path(config.audio) / p):
        if candidate.is_file():
            return candidate
    return None


@dataclass
class Checker:
    """Collects problems for one flow document."""

    doc: Document
    config: EngineConfig
    flow_ids: set[str]
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    language: str = "en-US"
    """The flow's language: what a template's say-as speaks unless it names another."""

    def error(self, path: Path_, message: str) -> None:
        self.errors.append(self.doc.problem(path, message))

    def warn(self, path: Path_, message: str) -> None:
        self.warnings.append(self.doc.problem(path, message))

    def template(self, path: Path_, source: str, *, expression: bool = False) -> None:
        if not expression and not is_template(source):
            return
        why = check_source(source, expression=expression) or sayas_problem(source, self.language)
        if why:
            self.error(path, why)

    def assignments(self, path: Path_, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            if isinstance(value, str):
                self.template((*path, name), value)
            elif isinstance(value, Mapping):
                self.assignments((*path, name), value)
            elif isinstance(value, list):
                self.assignments((*path, name), {str(i): v for i, v in enumerate(value)})

    def audio(self, path: Path_, name: str) -> None:
        if find_audio(self.doc.file, self.config, name) is None:
            self.error(path, f"audio file {name!r} not found (looked beside the flow, in ../audio "
                       f"and in {self.config.audio})")

    def calendar(self, path: Path_, name: str) -> None:
        if name not in self.config.calendars:
            known = ", ".join(sorted(self.config.calendars)) or "none"
            self.error(path, f"unknown calendar {name!r} (the engine config defines: {known})")

    def queue(self, path: Path_, name: str) -> None:
        if name not in self.config.queues:
            known = ", ".join(sorted(self.config.queues)) or "none"
            self.error(path, f"unknown queue {name!r} (the engine config defines: {known})")

    def flow_ref(self, path: Path_, flow_id: str) -> None:
        if flow_id not in self.flow_ids:
            self.error(path, f"unknown flow {flow_id!r} for subflow")


def _parse_node(doc: Document, node_id: str, raw: Any) -> tuple[Node | None, list[Problem]]:
    path: Path_ = ("nodes", node_id)
    if not isinstance(raw, dict):
        return None, [doc.problem(path, f"node {node_id!r} must be a mapping with one kind key")]
    kinds = [k for k in raw if k in NODE_TYPES and k != "hangup"]
    if len(kinds) > 1:
        return None, [doc.problem((*path, kinds[1]),
                                  f"node {node_id!r} has more than one kind: {', '.join(kinds)}")]
    if not kinds and "hangup" not in raw:
        unknown = next(iter(raw), None)
        known = ", ".join(sorted(NODE_TYPES))
        at = (*path, unknown) if unknown is not None else path
        return None, [doc.problem(at, f"unknown node kind {unknown!r} in node {node_id!r}; "
                                  f"expected one of: {known}")]
    cls = NODE_TYPES[kinds[0] if kinds else "hangup"]
    try:
        return cls.model_validate(raw), []
    except ValidationError as exc:
        return None, validation_problems(doc, exc, path)


def parse_flow(doc: Document) -> Flow:
    """Schema-check one document into a Flow (semantic checks come later, per flow set)."""
    if not isinstance(doc.data, dict):
        raise ProblemsError([doc.problem((), "a flow file must be a mapping with flow, start "
                                         "and nodes")])
    try:
        header = FlowHeader.model_validate(doc.data)
    except ValidationError as exc:
        found = validation_problems(doc, exc)
        # still report node-level problems when the header is fine about nodes
        raw_nodes = doc.data.get("nodes")
        if isinstance(raw_nodes, dict):
            for node_id, raw in raw_nodes.items():
                found += _parse_node(doc, str(node_id), raw)[1]
        raise ProblemsError(found) from None
    problems: list[Problem] = []
    nodes: dict[str, Node] = {}
    for node_id, raw in header.nodes.items():
        if not re.match(_NODE_ID, str(node_id)):
            problems.append(doc.problem(("nodes", node_id), f"node id {node_id!r} may use letters, "
                                        "digits, _ . - and must not start with a digit"))
        node, errs = _parse_node(doc, str(node_id), raw)
        problems += errs
        if node is not None:
            nodes[str(node_id)] = node
    if problems:
        raise ProblemsError(problems)
    digest = hashlib.sha256(repr(doc.data).encode()).hexdigest()[:12]
    return Flow(header=header, nodes=nodes, doc=doc, version=digest,
                sensitive=frozenset(header.sensitive))


def check_flow(flow: Flow, config: EngineConfig, flow_ids: set[str]) -> Checker:
    """Semantic checks of one parsed flow."""
    header = flow.header
    checker = Checker(flow.doc, config, flow_ids, language=header.language)
    why = messages.problem(header.language)
    if why is not None:
        checker.error(("language",), why)
    for at, value in switches(flow):
        if not isinstance(value, str):
            checker.error(at, "language must be a language tag such as en-US")
        elif not is_template(value) and (why := messages.problem(value)) is not None:
            checker.error(at, f"cannot switch to language {value!r}: {why}")
    if header.start not in flow.nodes:
        checker.error(("start",), f"start node {header.start!r} does not exist")
    roots = [header.start]
    for i, link in enumerate(header.globals):
        if link.goto is not None:
            roots.append(link.goto)
            if link.goto not in flow.nodes:
                checker.error(("globals", i, "goto"), f"global goes to unknown node {link.goto!r}")
        checker.assignments(("globals", i, "set"), link.set)
    for node_id, node in flow.nodes.items():
        path: Path_ = ("nodes", node_id)
        for edge in node.edges():
            if edge.target not in flow.nodes:
                checker.error((*path, *edge.path), f"{node_id}: goes to unknown node {edge.target!r}")
        node.check(checker, path)
    seen: set[str] = set()
    todo = deque(r for r in roots if r in flow.nodes)
    while todo:
        nid = todo.popleft()
        if nid in seen:
            continue
        seen.add(nid)
        todo.extend(e.target for e in flow.nodes[nid].edges() if e.target in flow.nodes)
    for node_id in flow.nodes:
        if node_id not in seen:
            checker.error(("nodes", node_id), f"node {node_id!r} is unreachable from start")
    if config.prompts.packs is not None:
        check_pack(checker, flow, PromptPack(config.prompts.packs))
    return checker


@dataclass
class FlowSet:
    """Flows loaded from files, by id, with every problem found."""

    flows: dict[str, Flow] = field(default_factory=dict)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def load_flows(files: Iterable[Path], config: EngineConfig) -> FlowSet:
    """Parse and check flow files together (subflow references cross files)."""
    result = FlowSet()
    parsed: list[Flow] = []
    for f in files:
        try:
            flow = parse_flow(load_file(f))
        except ProblemsError as exc:
            result.errors += exc.problems
            continue
        if flow.id in result.flows:
            other = result.flows[flow.id].file
            result.errors.append(flow.doc.problem(("flow",), f"flow id {flow.id!r} is already "
                                                  f"used by {other}"))
            continue
        result.flows[flow.id] = flow
        parsed.append(flow)
    ids = set(result.flows)
    for flow in parsed:
        checker = check_flow(flow, config, ids)
        result.errors += checker.errors
        result.warnings += checker.warnings
    result.errors.sort()
    result.warnings.sort()
    return result
