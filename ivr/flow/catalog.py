"""Every prompt text a flow can speak, for recognising an IVR's prompts on a real call.

`ivr call` hears prompts as audio; recognising them against the set of sentences the flows can
actually say is fast and exact, where free speech recognition of synthetic speech is not. Texts
keep their `{{ ... }}` template parts: the recogniser turns those into a loop over number words.
"""

from __future__ import annotations

from collections.abc import Iterable

from ivr.flow import prompts
from ivr.flow.gather import DEFAULT_NOINPUT, DEFAULT_NOMATCH
from ivr.flow.model import Flow, Node

RETRY_TEXT = "Let's try again."
"""What `collect` says after a confirmation is refused (ivr/flow/nodes/collect.py)."""


def _texts(spec: prompts.PromptSpec | None) -> list[str]:
    return [item for item in prompts.items(spec) if isinstance(item, str)]


def node_texts(node: Node) -> list[str]:
    """Texts one node can speak: say, menu/collect prompt + escalations, confirm, record."""
    out: list[str] = []
    say = getattr(node, "say", None)
    if say is not None and node.kind == "say":
        out += _texts(say)
    for key in ("menu", "collect", "record"):
        spec = getattr(node, key, None)
        if spec is None or node.kind != key:
            continue
        out += _texts(getattr(spec, "prompt", None))
        out += _texts(getattr(spec, "dtmf_prompt", None))
        out += _texts(getattr(spec, "confirm", None))
        for name in ("noinput", "nomatch"):
            out += [t for t in getattr(spec, name, []) if isinstance(t, str)]
        if key in ("menu", "collect"):
            # gather's defaults when the node has no escalation list of its own
            if not getattr(spec, "noinput", None):
                out.append(DEFAULT_NOINPUT)
            if not getattr(spec, "nomatch", None):
                out.append(DEFAULT_NOMATCH)
        if key == "collect" and getattr(spec, "confirm", None) is not None:
            out.append(RETRY_TEXT)
    own = getattr(node, "catalog_texts", None)
    if callable(own):
        out += own()  # what a node says on its own account (the queue's whisper and wait words)
    return out


def prompt_texts(flow: Flow) -> list[str]:
    """Distinct prompt texts of one flow, in node order (templates left as written)."""
    seen: dict[str, None] = {}
    for node in flow.nodes.values():
        for text in node_texts(node):
            text = " ".join(text.split())
            if text:
                seen.setdefault(text, None)
    return list(seen)


def catalogue(flows: Iterable[Flow]) -> list[str]:
    """Distinct prompt texts of several flows (subflows included when loaded)."""
    seen: dict[str, None] = {}
    for flow in flows:
        for text in prompt_texts(flow):
            seen.setdefault(text, None)
    return list(seen)
