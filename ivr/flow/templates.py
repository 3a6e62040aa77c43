"""Sandboxed templates and conditions for flows.

Flows are written by ops staff, not programmers we trust with the process: templates run in
jinja2's immutable sandbox, and we also refuse, at load time, any attribute or item lookup of a
name starting with an underscore, so `{{ ''.__class__ }}` is a validation error with a line number
rather than a runtime surprise on a live call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.nativetypes import NativeCodeGenerator, native_concat
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ivr.errors import FlowRuntimeError
from ivr.lang.masking import mask
from ivr.lang.numbers import say_currency, say_date, say_digits, say_number

MAX_RENDER_CHARS = 10_000
"""A prompt longer than this is a bug in the flow, not something to synthesise."""


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, made strict: reaching for an unsafe attribute is an error, not a blank."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} "
                            "object is unsafe")


class _SandboxedNativeEnvironment(_Sandbox):
    """Sandbox that returns native Python values, for `set` and numeric fields."""

    code_generator_class = NativeCodeGenerator
    concat = staticmethod(native_concat)  # type: ignore[assignment]


def _configure(env: ImmutableSandboxedEnvironment) -> None:
    env.filters.update(
        say_digits=say_digits,
        say_number=say_number,
        say_currency=say_currency,
        say_date=say_date,
        mask=mask,
    )


@lru_cache(maxsize=1)
def text_env() -> ImmutableSandboxedEnvironment:
    env = _Sandbox(undefined=ChainableUndefined, autoescape=False)
    _configure(env)
    return env


@lru_cache(maxsize=1)
def native_env() -> ImmutableSandboxedEnvironment:
    env = _SandboxedNativeEnvironment(undefined=ChainableUndefined, autoescape=False)
    _configure(env)
    return env


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


def render(source: str, scope: Mapping[str, Any]) -> str:
    """Render a text template; sandbox violations become a flow error, not a crash."""
    if not is_template(source):
        return source
    try:
        out = text_env().from_string(source).render(dict(scope))
    except (SecurityError, UndefinedError, TemplateSyntaxError) as exc:
        raise FlowRuntimeError(f"template {source!r} failed: {exc}") from None
    except Exception as exc:  # filters run user data; a bad value must not kill the call
        raise FlowRuntimeError(f"template {source!r} failed: {type(exc).__name__}: {exc}") from None
    if len(out) > MAX_RENDER_CHARS:
        raise FlowRuntimeError(f"template {source!r} rendered {len(out)} characters")
    return out


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
            try:
                return expr(**dict(scope))
            except (SecurityError, UndefinedError) as exc:
                raise FlowRuntimeError(f"template {value!r} failed: {exc}") from None
            except Exception as exc:
                raise FlowRuntimeError(f"template {value!r} failed: {type(exc).__name__}: {exc}") \
                    from None
    try:
        out = native_env().from_string(value).render(dict(scope))
    except (SecurityError, UndefinedError, TemplateSyntaxError) as exc:
        raise FlowRuntimeError(f"template {value!r} failed: {exc}") from None
    except Exception as exc:
        raise FlowRuntimeError(f"template {value!r} failed: {type(exc).__name__}: {exc}") from None
    if isinstance(out, ChainableUndefined):
        return None
    return out


def evaluate(condition: str, scope: Mapping[str, Any]) -> bool:
    """Evaluate a `switch` condition; undefined names are falsy, never an exception."""
    try:
        expr = text_env().compile_expression(condition, undefined_to_none=True)
        return bool(expr(**dict(scope)))
    except UndefinedError:
        return False  # e.g. `customer.balance > 1000` when the lookup failed: not true
    except (SecurityError, TemplateSyntaxError) as exc:
        raise FlowRuntimeError(f"condition {condition!r} failed: {exc}") from None
    except Exception as exc:
        raise FlowRuntimeError(f"condition {condition!r} failed: {type(exc).__name__}: {exc}") from None
