"""Every message a subscriber's broker session delivered, even when the link drops.

paho acknowledges a QoS 1 message as it arrives and aiomqtt queues it for the iterator; when the
link drops, aiomqtt's iterator raises at once, dropping what is still queued: messages the
broker counts as delivered, lost (a CDR consumer slowed by its database, then a broker restart,
lost call events that way). `every_message` yields those too before the error goes up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiomqtt


async def every_message(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Message]:
    try:
        async for message in client.messages:
            yield message
    except aiomqtt.MqttError:
        queue = client._queue  # aiomqtt has no public way to the rest
        while not queue.empty():
            yield queue.get_nowait()
        raise
