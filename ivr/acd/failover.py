"""ACD failover: of the ACDs on one shared store, only the holder of the lease `acd` acts.

The holder is *active*: it runs the ACD service (consumes requests, ticks, offers, callbacks).
The others are *standby*: connected to the database, trying to take the lease every
`renew_every` seconds, never consuming requests, so what workers send while no ACD is active
waits in the broker's persistent session that the next active one picks up (the session's
client id is the site's, not the node's).

The active renews every `renew_every`; when a renew does not succeed before the lease would
expire (by our monotonic clock, counted from when the renew that last succeeded was sent) it
stops acting at once. Taking over rebuilds the engine from the store (waiting callers, ringing
offers, agents, callbacks). The lease's fencing token says whether anyone else acted since our
own last tenure: if not, our engine and unsent outbox are still the truth and are kept; if so,
both are stale and are dropped (a deposed active that wakes up cannot send old offers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Literal

from ivr.acd.service import AcdService
from ivr.store.backend import StoreError
from ivr.store.lease import Lease

log = logging.getLogger("ivr.acd.failover")

State = Literal["active", "standby"]
LEASE = "acd"


class Failover:
    """Runs the ACD service while this node holds the lease; `service` is None on standby."""

    def __init__(self, lease: Lease, make: Callable[[], AcdService], *,
                 renew_every: float = 1.0,
                 on_change: Callable[[AcdService | None], None] | None = None) -> None:
        self.lease = lease
        self.make = make
        """Builds a fresh service (its engine restored from the store)."""
        self.renew_every = renew_every
        self.on_change = on_change
        self.service: AcdService | None = None
        self._kept: AcdService | None = None
        """The service of our last tenure, kept (stopped) until we know whether it is stale."""
        self._last_token: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._valid_until = 0.0
        self._call: asyncio.Task[bool] | None = None
        self.took_over_at: float | None = None
        """time.time() of our last taking over (for /health)."""

    @property
    def state(self) -> State:
        return "active" if self.service is not None else "standby"

    def acting(self) -> bool:
        """Whether we may act now: the lease is ours and not past its expiry by our clock."""
        return self.service is not None and time.monotonic() < self._valid_until

    async def run(self) -> None:
        try:
            while True:
                await self._step()
                await asyncio.sleep(self.renew_every)
        finally:
            service = self.service
            await self._stop_service()
            for left in (service, self._kept):
                if left is not None:
                    left.close()
            self._kept = None
            if self._call is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(self._call), 2.0)
            with contextlib.suppress(StoreError):
                if self._last_token is not None and self.lease.token is not None:
                    await asyncio.to_thread(self.lease.release)

    async def _ask(self, what: Callable[[], bool], timeout: float) -> bool | None:
        """One lease call in a thread, at most one at a time; None when it took too long."""
        if self._call is None or self._call.done():
            self._call = asyncio.get_running_loop().create_task(asyncio.to_thread(what))
        try:
            return await asyncio.wait_for(asyncio.shield(self._call), max(0.05, timeout))
        except asyncio.TimeoutError:
            return None
        except StoreError as exc:
            log.warning("ACD lease: store unavailable (%s)", exc)
            return False

    async def _step(self) -> None:
        sent = time.monotonic()
        if self.service is None:
            if self._call is not None and not self._call.done():
                return  # the last attempt still waits on the database
            if await self._ask(self.lease.try_acquire, self.renew_every * 2):
                self._valid_until = sent + self.lease.ttl * 0.9
                await self._take_over()
            return
        ok = await self._ask(self.lease.renew, self._valid_until - time.monotonic())
        if ok:
            self._valid_until = sent + self.lease.ttl * 0.9
        elif ok is False or time.monotonic() >= self._valid_until:
            log.error("ACD lease lost (%s): standing by", "taken or expired" if ok is False
                      else "the store did not answer before it expired")
            await self._step_down()

    async def _take_over(self) -> None:
        token = self.lease.token
        kept, self._kept = self._kept, None
        if kept is not None and token == self._last_token:
            service = kept  # nobody acted since: our state is still the truth
        else:
            if kept is not None:
                kept.outbox.clear()  # another active decided since: these are stale
                kept.close()
            service = await asyncio.to_thread(self.make)
            if token != self._last_token:
                service.outbox.clear()
        self._last_token = token
        self.service = service
        self.took_over_at = time.time()
        self._task = asyncio.get_running_loop().create_task(service.run())
        log.warning("ACD active (lease token %s): %d waiting, %d agents", token,
                    len(service.engine.waiting), len(service.engine.agents))
        if self.on_change is not None:
            self.on_change(service)

    async def _step_down(self) -> None:
        self._kept = self.service
        await self._stop_service()
        if self.on_change is not None:
            self.on_change(None)

    async def _stop_service(self) -> None:
        self.service = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
