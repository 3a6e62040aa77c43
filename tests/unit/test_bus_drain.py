"""every_message (ivr/bus/drain.py): messages already acknowledged and queued when the link
drops still reach the consumer, then the error does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import aiomqtt
import pytest

from ivr.bus.drain import every_message


class DroppedLink:
    """aiomqtt's shape: `messages` raises at a disconnect while `_queue` still holds some."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()

    @property
    def messages(self) -> AsyncIterator[str]:
        async def gen() -> AsyncIterator[str]:
            yield "first"
            for left in ("second", "third"):
                self._queue.put_nowait(left)
            raise aiomqtt.MqttError("Disconnected during message iteration")
        return gen()


def test_queued_messages_are_yielded_before_the_error() -> None:
    async def main() -> list[Any]:
        seen: list[Any] = []
        with pytest.raises(aiomqtt.MqttError):
            async for m in every_message(cast(aiomqtt.Client, DroppedLink())):
                seen.append(m)
        return seen
    assert asyncio.run(main()) == ["first", "second", "third"]
