"""The jinja2 sandbox templates run in, and how it notices a template reading a secret.

Flows are written by ops staff, not programmers we trust with the process: templates run in
jinja2's immutable sandbox, made strict (an unsafe attribute is an error, not a blank).

It also watches for secrets (`ivr.lang.secret`). A render reads its values in few ways, and each
is a hook here: a name (the context's `resolve_or_missing`), an attribute or item (the sandbox's
`getattr`/`getitem`), a method call (`call`), a filter (every filter is wrapped) and an operator
(all arithmetic operators are intercepted). Each hook calls `touch()` when what it sees is, or
holds, a secret; the secret types' own dunders catch what Python does without asking jinja
(`str()` in `~` and output, slicing, iteration). `ivr.flow.templates` turns a touched render into
a secret. A name is checked shallowly for dicts (so `{{ last.mode }}` after a sensitive collect
stays plain; `last.value` is caught by `getattr`), deeply for lists (loops take items unseen).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, ItemsView, ValuesView
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined
from jinja2.exceptions import SecurityError
from jinja2.nativetypes import NativeCodeGenerator, native_concat
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ivr.lang.masking import mask
from ivr.lang.sayas.filters import FILTERS
from ivr.lang.secret import HIDDEN, Masked, contains_secret, is_secret, touch


def _reads(value: Any) -> None:
    """A value the template got hold of: a secret itself, or a sequence it will iterate."""
    if is_secret(value) or (isinstance(value, (list, tuple, set, frozenset))
                            and contains_secret(value)):
        touch()


def _holds(value: Any) -> None:
    """A value passed into or out of code (filter, method): any secret inside counts."""
    if isinstance(value, (ValuesView, ItemsView)):
        value = list(value)
    if contains_secret(value):
        touch()


class _WatchingContext(Context):
    def resolve_or_missing(self, key: str) -> Any:
        value = super().resolve_or_missing(key)
        _reads(value)
        return value


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, made strict and watching for secrets."""

    context_class = _WatchingContext
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} "
                            "object is unsafe")

    def getattr(self, obj: Any, attribute: str) -> Any:
        _reads(obj)
        value = super().getattr(obj, attribute)
        _reads(value)
        return value

    def getitem(self, obj: Any, argument: Any) -> Any:
        _reads(obj)
        value = super().getitem(obj, argument)
        _reads(value)
        return value

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        for arg in (*args, *kwargs.values()):
            _holds(arg)
        result = super().call(__context, __obj, *args, **kwargs)
        _holds(result)
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if is_secret(left) or is_secret(right):
            touch()
        return super().call_binop(context, operator, left, right)

    def call_unop(self, context: Context, operator: str, arg: Any) -> Any:
        if is_secret(arg):
            touch()
        return super().call_unop(context, operator, arg)


class _SandboxedNativeEnvironment(_Sandbox):
    """Sandbox that returns native Python values, for `set` and numeric fields."""

    code_generator_class = NativeCodeGenerator
    concat = staticmethod(native_concat)  # type: ignore[assignment]


KEEPS_THE_VALUE = frozenset({*FILTERS, "mask", "string", "trim", "upper", "lower", "default", "d",
                             "e", "escape"})
"""Filters that say the same value another way: in a record's render (`ivr.flow.templates`)
they leave a secret's stand-in as it is (`You entered ****5678`, not `* * * * 5 6 7 8`); any
other filter given a stand-in gives `****` (`{{ account | length }}` says nothing)."""


def _watched(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that notes secrets going in or coming out (jinja's own filters included)."""
    keeps = name in KEEPS_THE_VALUE

    @functools.wraps(f)  # keeps jinja's pass_context/pass_environment marks
    def filter_(*args: Any, **kwargs: Any) -> Any:
        stand_in = next((a for a in args if isinstance(a, Masked)), None)
        if stand_in is not None:
            return stand_in if keeps else Masked(HIDDEN)
        for arg in (*args, *kwargs.values()):
            _holds(arg)
        result = f(*args, **kwargs)
        _holds(result)
        return result
    return filter_


def _configure(env: ImmutableSandboxedEnvironment) -> None:
    env.filters.update(FILTERS, mask=mask)
    env.filters = {name: _watched(name, f) for name, f in env.filters.items()}


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
