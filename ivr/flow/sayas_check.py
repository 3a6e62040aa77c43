"""Load-time check that a template's say-as filters have words for their language.

`{{ n | say_number }}` speaks the call's language (the flow's, at load), `say_number("ko-KR")`
the one named; a language without say-as (`ivr.lang.sayas`) is a validation error here rather
than a call that breaks on the prompt.
"""

from __future__ import annotations

from jinja2 import TemplateSyntaxError, nodes

from ivr.flow.sandbox import text_env
from ivr.lang.sayas import supported
from ivr.lang.sayas.filters import FILTERS

LANGUAGE_ARG = {name: (1 if name == "say_currency" else 0) for name in FILTERS}
"""Position of a filter's `language` among its arguments (say_currency's comes after currency)."""


def languages_used(source: str, default: str) -> list[str]:
    """The languages a template's say-as filters speak: named ones, else `default`."""
    try:
        tree = text_env().parse(source)
    except TemplateSyntaxError:
        return []  # reported by check_source
    out = []
    for node in tree.find_all(nodes.Filter):
        if node.name not in LANGUAGE_ARG:
            continue
        named = next((kw.value for kw in node.kwargs if kw.key == "language"), None)
        if named is None and len(node.args) > LANGUAGE_ARG[node.name]:
            named = node.args[LANGUAGE_ARG[node.name]]
        if named is None:
            out.append(default)
        elif isinstance(named, nodes.Const) and isinstance(named.value, str):
            out.append(named.value)
    return out


def problem(source: str, default: str) -> str | None:
    """Why the template's say-as cannot speak, or None."""
    for language in languages_used(source, default):
        if not supported(language):
            return (f"say-as has no words for language {language!r} (ivr.lang.sayas has "
                    "en, zh-CN, ko)")
    return None
