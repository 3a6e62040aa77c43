"""The say-as filters of the template language, in the call's language.

`{{ amount | say_number }}` speaks the language the call is in now (the scope's
`call.language`, which is the flow's language until the call switches); an explicit argument
(`say_number("zh-CN")`) wins. A value a filter cannot read is said as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context

from ivr.lang.sayas import SayAs, speaker
from ivr.lang.sayas.values import to_date, to_decimal, to_seconds, to_time

DEFAULT_LANGUAGE = "en-US"


def call_language(context: Context | Mapping[str, Any]) -> str:
    """The language a render speaks: the scope's `call.language`, else en-US."""
    call = context.get("call")
    language = call.get("language") if isinstance(call, Mapping) else None
    return language if isinstance(language, str) and language else DEFAULT_LANGUAGE


def _say(context: Context, language: str | None) -> SayAs:
    return speaker(language or call_language(context))


@pass_context
def say_number(context: Context, value: Any, language: str | None = None) -> str:
    number = to_decimal(value)
    return str(value) if number is None else _say(context, language).number(number)


@pass_context
def say_digits(context: Context, value: Any, language: str | None = None) -> str:
    """Digits one by one: TTS reads '12345678' as a number otherwise."""
    return _say(context, language).digits(str(value))


@pass_context
def say_currency(context: Context, value: Any, currency: str | None = None,
                 language: str | None = None) -> str:
    """An amount with its unit words; `currency` defaults to the language's (USD, CNY, KRW)."""
    amount = to_decimal(value)
    say = _say(context, language)
    if amount is None:
        return str(value)
    return say.currency(amount, currency or say.default_currency)


@pass_context
def say_ordinal(context: Context, value: Any, language: str | None = None) -> str:
    number = to_decimal(value)
    if number is None or number != int(number):
        return str(value)
    return _say(context, language).ordinal(int(number))


@pass_context
def say_date(context: Context, value: Any, language: str | None = None) -> str:
    date = to_date(value)
    return str(value) if date is None else _say(context, language).date(date)


@pass_context
def say_time(context: Context, value: Any, language: str | None = None) -> str:
    time = to_time(value)
    return str(value) if time is None else _say(context, language).time(time)


@pass_context
def say_duration(context: Context, value: Any, language: str | None = None) -> str:
    """A duration given in seconds (or a timedelta)."""
    seconds = to_seconds(value)
    return str(value) if seconds is None else _say(context, language).duration(seconds)


FILTERS: dict[str, Callable[..., str]] = {
    "say_number": say_number, "say_digits": say_digits, "say_currency": say_currency,
    "say_ordinal": say_ordinal, "say_date": say_date, "say_time": say_time,
    "say_duration": say_duration,
}
"""Filter name -> filter; `language` is each one's last argument."""
