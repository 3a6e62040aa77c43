"""The languages a flow's calls can be in: its `language:` and every `set: {language: ...}`.

A switch can be written wherever assignments are (a `set` node, a menu option's or a global's
`set`), so this reads the document, not the node kinds: any `set` mapping with a `language` key.
Validation checks each one has a message catalogue; the prompt catalogue (ivr/flow/catalog.py)
lists the system prompts of each.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ivr.flow.context import LANGUAGE
from ivr.flow.loader import Path_
from ivr.flow.model import Flow
from ivr.flow.templates import is_template


def switches(flow: Flow) -> list[tuple[Path_, Any]]:
    """Where the flow sets the call's language, and the value written there."""
    return list(_walk(flow.doc.data, ()))


def _walk(data: Any, path: Path_) -> Iterator[tuple[Path_, Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "set" and isinstance(value, dict) and LANGUAGE in value:
                yield (*path, key, LANGUAGE), value[LANGUAGE]
            yield from _walk(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _walk(value, (*path, i))


def flow_languages(flow: Flow) -> list[str]:
    """The flow's language first, then each fixed one it can switch to (templates left out)."""
    out = [flow.header.language]
    for _, value in switches(flow):
        if isinstance(value, str) and not is_template(value) and value not in out:
            out.append(value)
    return out
