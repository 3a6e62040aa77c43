"""Every prompt text a flow can speak, for recognising an IVR's prompts on a real call.

`ivr call` hears prompts as audio; recognising them against the set of sentences the flows can
actually say is fast and exact, where free speech recognition of synthetic speech is not. Each
node declares what it can say (`Node.prompts`); nothing here knows the node kinds. Texts keep
their `{{ ... }}` template parts: the recogniser turns those into number grammars.
"""

from __future__ import annotations

from collections.abc import Iterable

from ivr.flow.model import Flow


def prompt_texts(flow: Flow) -> list[str]:
    """Distinct prompt texts of one flow, in node order (templates left as written)."""
    seen: dict[str, None] = {}
    for node in flow.nodes.values():
        for text in node.prompts():
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
