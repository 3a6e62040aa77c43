"""Every prompt text a flow can speak, for recognising an IVR's prompts on a real call.

`ivr call` hears prompts as audio; recognising them against the set of sentences the flows can
actually say is fast and exact, where free speech recognition of synthetic speech is not. Each
node declares what it can say in a given language (`Node.prompts`); nothing here knows the node
kinds. A flow's calls can be in its own language and in each it switches to
(ivr/flow/languages.py), so its prompts are listed for each, tagged with the language (which
picks the voice that renders them). Texts keep their `{{ ... }}` template parts: the
recogniser turns those into number grammars.
"""

from __future__ import annotations

from collections.abc import Iterable

from ivr.flow.languages import flow_languages
from ivr.flow.model import Flow
from ivr.lang import messages


def prompt_pairs(flow: Flow) -> list[tuple[str, str]]:
    """Distinct (text, language) of one flow, in node order (templates left as written). A flow
    that switches language may say its own texts in any of its languages (which voice speaks
    them depends on the path), so each comes once per language; a system prompt comes in the
    language of its catalogue."""
    seen: dict[tuple[str, str], None] = {}
    # a language without its catalogue is a validation problem of the flow; its texts are not
    # listed (serve pre-renders even flows it reports problems in)
    for language in (lang for lang in flow_languages(flow) if messages.problem(lang) is None):
        for node in flow.nodes.values():
            for text in node.prompts(language):
                text = " ".join(text.split())
                if text:
                    seen.setdefault((text, language), None)
    return list(seen)


def prompt_texts(flow: Flow) -> list[str]:
    """Distinct prompt texts of one flow (every language it can be in)."""
    return list(dict.fromkeys(text for text, _ in prompt_pairs(flow)))


def catalogue(flows: Iterable[Flow]) -> list[str]:
    """Distinct prompt texts of several flows (subflows included when loaded)."""
    seen: dict[str, None] = {}
    for flow in flows:
        for text in prompt_texts(flow):
            seen.setdefault(text, None)
    return list(seen)
