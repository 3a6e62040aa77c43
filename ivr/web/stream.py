"""`GET /events`: server-sent events for the pages (text/event-stream).

Every connection starts with a `snapshot` event (the whole state the page shows), so a page that
reconnects (after a network drop or a server restart) replaces what it shows rather than
patching stale state; then the live events the token may see (`ivr.web.hub`), and a
`heartbeat` at least every `desktop.heartbeat`: a page that hears nothing for longer knows it
is not live. A subscriber that fell behind gets a new snapshot instead of the backlog. The
stream ends when the server shuts down (`EventHub.close`) or the page goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import web

from ivr.access.middleware import principal
from ivr.access.tokens import Role
from ivr.web.desktop import Desktop
from ivr.web.hub import RESYNC

RETRY_MS = 1000


def frame(kind: str, data: Any, event_id: str | None = None) -> bytes:
    """One SSE message (JSON data on one line)."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()


def events_handler(desktop: Desktop) -> Any:
    async def events(request: web.Request) -> web.StreamResponse:
        who = principal(request)
        if who is None:  # the policy lets no anonymous request through; be sure
            raise web.HTTPUnauthorized()
        agent = who.agent if who.role is Role.agent else None
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        hub = desktop.hub
        sub = hub.subscribe(who)
        try:
            await resp.write(f"retry: {RETRY_MS}\n\n".encode())
            await resp.write(frame("snapshot", desktop.snapshot(agent, who.can_read),
                                   hub.next_id()))
            while True:
                try:
                    event = await asyncio.wait_for(sub.queue.get(),
                                                   desktop.settings.heartbeat)
                except asyncio.TimeoutError:
                    await resp.write(frame("heartbeat", {"at": time.time()}))
                    continue
                if event is None:
                    break
                if event is RESYNC:
                    sub.resynced()
                    await resp.write(frame("snapshot", desktop.snapshot(agent, who.can_read),
                                           hub.next_id()))
                    continue
                await resp.write(frame(event.kind, event.data, event.id))
        except (ConnectionResetError, ConnectionError):
            pass  # the page went away
        finally:
            hub.unsubscribe(sub)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await resp.write_eof()
        return resp

    return events
