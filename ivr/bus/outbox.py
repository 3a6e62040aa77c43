"""Durable outbox: whatever leaves a process is written here first, deleted after PUBACK.

A broker restart or a killed worker loses nothing: on the next start the sender resends what is
left. Each message carries an idempotency key (call id + sequence) so consumers drop duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import aiomqtt

from ivr.bus.auth import ANONYMOUS, BusAuth, broker_address
from ivr.store.sqlite import Database

log = logging.getLogger(__name__)

__all__ = ["Outbox", "broker_address", "send_forever"]  # broker_address: for old imports


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "key TEXT UNIQUE NOT NULL, topic TEXT NOT NULL, payload TEXT NOT NULL, created REAL);"
)


class Outbox(Database):
    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA, synchronous=None)
        self.wakeup = asyncio.Event()
        self.emptied = asyncio.Event()
        self.connected = False
        """Whether `send_forever` holds a broker session now (for /metrics)."""

    def put(self, topic: str, payload: dict[str, Any], key: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO outbox(key, topic, payload, created) VALUES (?,?,?,?)",
                (key, topic, json.dumps(payload, default=str, ensure_ascii=False), time.time()),
            )
        self.wakeup.set()

    def pending(self, limit: int = 100) -> list[tuple[int, str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload FROM outbox ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def done(self, row_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

    async def drained(self) -> None:
        """Wait until every message has been acknowledged."""
        while self.count():
            self.wakeup.set()
            self.emptied.clear()
            await self.emptied.wait()

    def clear(self) -> int:
        """Drop everything unsent (a deposed ACD's decisions, superseded): how many went."""
        with self._lock:
            return int(self._db.execute("DELETE FROM outbox").rowcount)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


async def send_forever(outbox: Outbox, url: str, client_id: str, auth: BusAuth = ANONYMOUS,
                       will: aiomqtt.Will | None = None,
                       hello: tuple[str, str] | None = None) -> None:
    """Deliver the outbox at least once; reconnects with backoff while the broker is away.
    `will` is what the broker publishes when this process vanishes without a goodbye; `hello`
    (topic, payload) is published on every connect, before the outbox."""
    delay = 0.2
    while True:
        try:
            async with auth.client(url, identifier=client_id, timeout=5, will=will) as client:
                delay = 0.2
                outbox.connected = True
                if hello is not None:
                    await client.publish(hello[0], hello[1], qos=1)
                while True:
                    rows = outbox.pending()
                    if not rows:
                        outbox.emptied.set()
                        outbox.wakeup.clear()
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(outbox.wakeup.wait(), timeout=1.0)
                        continue
                    for row_id, topic, payload in rows:
                        await client.publish(topic, payload, qos=1)
                        outbox.done(row_id)
        except aiomqtt.MqttError as exc:
            outbox.connected = False
            log.warning("bus unavailable (%s); %d messages wait in the outbox", exc, outbox.count())
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
