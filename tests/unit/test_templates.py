"""Templates: speech filters, native `set` values, conditions, and the sandbox."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import Harness

from ivr.errors import FlowRuntimeError
from ivr.flow.templates import check_source, evaluate, render, render_value
from ivr.flow.validate import parse_flow
from ivr.lang.numbers import say_currency, say_date, say_digits, say_number
from ivr.yamldoc import parse_text


@pytest.mark.parametrize(
    ("source", "scope", "expected"),
    [
        ("{{ account | say_digits }}", {"account": "12345678"}, "1 2 3 4 5 6 7 8"),
        ("{{ n | say_number }}", {"n": 42}, "forty two"),
        ("{{ n | say_number }}", {"n": "3.5"}, "three point five"),
        ("{{ b | say_currency }}", {"b": 1042.5}, "one thousand and forty two dollars and fifty cents"),
        ("{{ b | say_currency }}", {"b": 1}, "one dollar"),
        ("{{ b | say_currency }}", {"b": "0.01"}, "zero dollars and one cent"),
        ("{{ b | say_currency('GBP') }}", {"b": 2.5}, "two pounds and fifty pence"),
        ("{{ d | say_date }}", {"d": "2026-03-02"}, "March second, twenty twenty six"),
        ("{{ d | say_date }}", {"d": dt.date(2026, 12, 25)}, "December twenty fifth, twenty twenty six"),
        ("{{ a | mask }}", {"a": "12345678"}, "****5678"),
        ("Hello {{ caller.name | default('there') }}", {"caller": {}}, "Hello there"),
        ("{{ missing.deeply.nested }}", {}, ""),
    ],
)
def test_filters_and_rendering(source: str, scope: dict[str, object], expected: str) -> None:
    assert render(source, scope) == expected


def test_filters_leave_values_they_cannot_read() -> None:
    assert say_number("abc") == "abc"
    assert say_currency("lots") == "lots"
    assert say_date("not a date") == "not a date"
    assert say_digits("12 34") == "1 2 3 4"


def test_plain_text_is_not_rendered() -> None:
    assert render("Press 1.", {}) == "Press 1."


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ 1 + 1 }}", 2),
        ("{{ 2.5 * 2 }}", 5.0),
        ("{{ [1, 'a'] }}", [1, "a"]),
        ("{{ {'k': 1} }}", {"k": 1}),
        ("{{ s }}", "12345678"),
        ("{{ s | length }}", 8),
        ("{{ flag }}", True),
        ("{{ undefined_name }}", None),
        ("{{ 'a' }}-{{ 'b' }}", "a-b"),
        ("id {{ n }}", "id 7"),
        ("plain", "plain"),
        (5, 5),
    ],
)
def test_render_value_native_types(value: object, expected: object) -> None:
    out = render_value(value, {"s": "12345678", "flag": True, "n": 7})
    assert out == expected
    assert type(out) is type(expected)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("tier == 'gold'", True),
        ("tier == 'silver'", False),
        ("balance > 1000 and tier in ['gold', 'platinum']", True),
        ("nothing", False),
        ("nothing.at.all == 'x'", False),
        ("nothing > 3", False),  # an undefined value in a comparison is false, not an exception
    ],
)
def test_conditions(condition: str, expected: bool) -> None:
    assert evaluate(condition, {"tier": "gold", "balance": 1042.5}) is expected


ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ x.__class__ }}",
    "{{ x['__class__'] }}",
    "{{ x | attr('__class__') }}",
    "{{ x['__cla' ~ 'ss__'] }}",
    "{{ cycler.__init__.__globals__ }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_blocks_python_internals_at_runtime(source: str) -> None:
    with pytest.raises(FlowRuntimeError, match=r"unsafe|undefined"):
        render(source, {"x": "text"})
    with pytest.raises(FlowRuntimeError):
        render_value(source, {"x": "text"})


def test_sandbox_blocks_internals_in_conditions() -> None:
    with pytest.raises(FlowRuntimeError, match="unsafe"):
        evaluate("x.__class__.__name__ == 'str'", {"x": "s"})


@pytest.mark.parametrize("source", ESCAPES[:3])
def test_private_names_are_refused_when_checked(source: str) -> None:
    why = check_source(source)
    assert why is not None and "private names are blocked" in why


def test_syntax_errors_are_reported_by_the_check() -> None:
    assert check_source("{{ foo( }}") == "template syntax error: unexpected '}', expected ')'"
    assert check_source("a ==", expression=True) is not None
    assert check_source("tier == 'gold'", expression=True) is None


def test_mutating_a_value_is_refused() -> None:
    with pytest.raises(FlowRuntimeError):
        render("{{ items.append(3) }}", {"items": [1, 2]})


def test_a_huge_render_is_refused() -> None:
    with pytest.raises(FlowRuntimeError, match="rendered"):
        render("{{ 'x' * 20000 }}", {})


async def test_runtime_sandbox_violation_ends_the_call_in_error(harness: Harness) -> None:
    # bypass validation (which refuses this flow) to prove the runtime sandbox holds on its own
    text = """flow: t
start: a
nodes:
  a: {say: "hi", next: b}
  b: {say: "{{ ''.__class__.__mro__ }}", next: c}
  c: {say: "never"}
"""
    flow = parse_flow(parse_text(text, "t.yaml"))
    result = await harness.run({"t": flow})
    assert result.end.kind == "error"
    assert result.end.node == "b"
    assert "unsafe" in (result.end.message or "")
    assert result.ctx.prompts == ["hi"]


async def test_sandbox_bypassing_the_static_check_still_fails_at_runtime(harness: Harness) -> None:
    result = await harness.run("""
        flow: t
        start: a
        nodes:
          a: {set: {leak: "{{ caller | attr('__class__') }}"}, next: b}
          b: {say: "never"}
    """)
    assert result.end.kind == "error"
    assert result.end.node == "a"
    assert "leak" not in result.ctx.variables
