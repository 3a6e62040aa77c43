"""Templates and conditions for flows: rendered in the sandbox (`ivr.flow.sandbox`), tainted
when they read a secret.

We refuse, at load time, any attribute or item lookup of a name starting with an underscore, so
`{{ ''.__class__ }}` is a validation error with a line number rather than a runtime surprise on a
live call.

Taint: a render that read a secret (the sandbox notes it) returns a secret
(`ivr.lang.secret.Secret`), whatever the template did to the value: `{{ account | string }}`,
`{{ account[0:4] }}`, `{{ account ~ '' }}`, `"Acct {{ account }}"`. As a last check a render
whose output contains a secret of its scope verbatim is tainted too. What such a result shows in
records is the same template rendered again with every secret replaced by its masked form
(`You entered ****5678.`), so a record can never tell more than the masks do. In that render a
filter that says the value another way keeps the mask (`say_digits`, `string`, `upper`...), any
other filter gives `****` (`{{ account | length }}`, `| int`); a render that fails shows `****`.
Error messages of a render that read a secret say what failed, not the value that made it fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError

from ivr.errors import FlowRuntimeError
from ivr.flow.sandbox import native_env, text_env
from ivr.lang.masking import mask
from ivr.lang.secret import (
    HIDDEN,
    MIN_SCRUB,
    Secret,
    forms,
    is_secret,
    scrub,
    secrets_in,
    stand_ins,
    taint,
    tracking,
)

__all__ = ["check_source", "evaluate", "is_template", "mask", "render", "render_value"]

MAX_RENDER_CHARS = 10_000
"""A prompt longer than this is a bug in the flow, not something to synthesise."""


def check_source(source: str, *, expression: bool = False) -> str | None:
    """Return why a template or condition is unacceptable, or None when it is fine."""
    env = text_env()
    try:
        tree = env.parse("{{ (" + source + ") }}" if expression else source)
    except TemplateSyntaxError as exc:
        return f"template syntax error: {exc.message}"
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        key: Any = node.attr if isinstance(node, nodes.Getattr) else getattr(node, "arg", None)
        name = getattr(key, "value", key)
        if isinstance(name, str) and name.startswith("_"):
            return f"template may not access '{name}' (private names are blocked by the sandbox)"
    return None


_PLAIN = re.compile(r"^[^{}]*$")
_SINGLE = re.compile(r"^\{\{-?(?P<expr>.*?)-?\}\}$", re.DOTALL)


def is_template(source: str) -> bool:
    return not _PLAIN.match(source)


def _failure(what: str, exc: Exception, touched: bool, scope: Mapping[str, Any]) -> FlowRuntimeError:
    """The flow error for a failed render; its message never carries a secret."""
    if touched:
        detail = f"{type(exc).__name__} (details withheld: the template read a sensitive value)"
    elif isinstance(exc, (SecurityError, UndefinedError, TemplateSyntaxError)):
        detail = str(exc)
    else:  # filters run user data; a bad value must not kill the call
        detail = f"{type(exc).__name__}: {exc}"
    return FlowRuntimeError(scrub(f"{what} failed: {detail}", secrets_in(list(scope.values()))))


def _echoes(out: Any, scope: Mapping[str, Any]) -> bool:
    """Whether a rendered text contains a secret of the scope as written or spoken."""
    if not isinstance(out, str) or not out:
        return False
    text = str.__str__(out)
    return any(form in text for s in secrets_in(list(scope.values())) for form in forms(s)
               if len(form) >= MIN_SCRUB)


def _record_form(again: Callable[[Mapping[str, Any]], Any], scope: Mapping[str, Any]) -> str:
    """What a tainted result shows: the same template over the masked stand-ins of the scope."""
    try:
        with tracking():
            out = again(stand_ins(scope))
    except Exception:
        return HIDDEN
    if out is None or isinstance(out, ChainableUndefined):
        return HIDDEN
    return scrub(str(out), secrets_in(list(scope.values())))


def render(source: str, scope: Mapping[str, Any]) -> str:
    """Render a text template; sandbox violations become a flow error, not a crash.

    The result is a `Secret` when the template read one (see the module docstring)."""
    if not is_template(source):
        return source
    with tracking() as note:
        try:
            out = text_env().from_string(source).render(dict(scope))
        except Exception as exc:
            raise _failure(f"template {source!r}", exc, note.touched, scope) from None
    if len(out) > MAX_RENDER_CHARS:
        raise FlowRuntimeError(f"template {source!r} rendered {len(out)} characters")
    if not (note.touched or _echoes(out, scope)):
        return out
    return Secret(out, _record_form(lambda s: text_env().from_string(source).render(dict(s)), scope))


def _tainted(value: Any, touched: bool, scope: Mapping[str, Any],
             again: Callable[[Mapping[str, Any]], Any]) -> Any:
    """A `set` value as stored: a secret when its render read one (containers: each leaf)."""
    if isinstance(value, ChainableUndefined):
        return None
    if not (touched or _echoes(value, scope)) or value is None or isinstance(value, bool):
        return value  # (a dict or list may still hold secrets; they stay secrets)
    if is_secret(value):
        return value  # `{{ account }}`: the secret itself, shown as it always was
    if isinstance(value, (str, int, float)):
        return taint(value, _record_form(again, scope))
    return taint(value, HIDDEN)


def render_value(value: Any, scope: Mapping[str, Any]) -> Any:
    """Render a `set` value: templates give native types ('{{ 1 + 1 }}' is 2), others stay."""
    if isinstance(value, dict):
        return {k: render_value(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, scope) for v in value]
    if not isinstance(value, str) or not is_template(value):
        return value
    single = _SINGLE.match(value)
    if single:
        # exactly one {{ expression }}: its value as is (a string stays a string, never
        # literal_eval'd into a number the way jinja's native rendering would)
        try:
            expr = text_env().compile_expression(single.group("expr"), undefined_to_none=True)
        except TemplateSyntaxError:
            pass  # e.g. "{{ a }} and {{ b }}": not one expression; render it below
        else:
            with tracking() as note:
                try:
                    out = expr(**dict(scope))
                except Exception as exc:
                    raise _failure(f"template {value!r}", exc, note.touched, scope) from None
            return _tainted(out, note.touched, scope, lambda s: expr(**dict(s)))
    template = native_env().from_string(value)
    with tracking() as note:
        try:
            out = template.render(dict(scope))
        except Exception as exc:
            raise _failure(f"template {value!r}", exc, note.touched, scope) from None
    return _tainted(out, note.touched, scope, lambda s: template.render(dict(s)))


def evaluate(condition: str, scope: Mapping[str, Any]) -> bool:
    """Evaluate a `switch` condition; undefined names are falsy, never an exception."""
    with tracking() as note:
        try:
            expr = text_env().compile_expression(condition, undefined_to_none=True)
            return bool(expr(**dict(scope)))
        except UndefinedError:
            return False  # e.g. `customer.balance > 1000` when the lookup failed: not true
        except Exception as exc:
            raise _failure(f"condition {condition!r}", exc, note.touched, scope) from None
