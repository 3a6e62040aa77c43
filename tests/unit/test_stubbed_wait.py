"""A stubbed queue wait over SIP (ivr.sip.stubbed): virtual time, real prompts said once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import pytest

from ivr.errors import CallerHangup
from ivr.prompt import Prompt
from ivr.sip.control import SipCallControl
from ivr.sip.stubbed import StubbedAgents


class FakeControl:
    def __init__(self) -> None:
        self.played: list[list[str]] = []
        self.gone = False

    def check(self) -> None:
        if self.gone:
            raise CallerHangup()

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool = True) -> None:
        self.check()
        self.played.append([p.text or "" for p in prompts])


def _agents(control: FakeControl) -> StubbedAgents:
    return StubbedAgents(cast(SipCallControl, cast(Any, control)))


def test_an_announcement_just_heard_is_not_played_again() -> None:
    control = FakeControl()
    agents = _agents(control)
    position = [Prompt(text="You are number 1 in the queue."),
                Prompt(text="Your expected wait is about 2 minutes.")]
    offer = [Prompt(text="To keep your place and be called back, press 1.")]

    async def wait() -> None:
        for _ in range(14):  # a 5 minute wait's updates, back to back in virtual time
            await agents.play(position, barge_in=False)
        await agents.play(offer, barge_in=True)
        await agents.play(position, barge_in=False)

    asyncio.run(wait())
    assert control.played == [[p.text for p in position], [offer[0].text]]


def test_a_skipped_announcement_still_notices_the_caller_left() -> None:
    control = FakeControl()
    agents = _agents(control)
    words = [Prompt(text="You are number 1 in the queue.")]
    asyncio.run(agents.play(words, barge_in=False))
    control.gone = True
    with pytest.raises(CallerHangup):
        asyncio.run(agents.play(words, barge_in=False))
