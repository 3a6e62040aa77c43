"""A lease in the shared store: one holder at a time of a named role (the active ACD).

The lease is a row (name, holder, expiry, fencing token). Expiry is computed and compared by the
database server's clock only, so a node whose clock is off can neither steal a live lease nor
keep a dead one. The token grows on every change of holder: the holder stamps it on its writes
and the store can refuse a write stamped with an older token (a holder that paused past its
expiry and came back). On SQLite (one box) the same SQL runs: the lease is simply always ours.
"""

from __future__ import annotations

from typing import Any

from ivr.store.backend import Backend, Tx

SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
  name TEXT PRIMARY KEY, holder TEXT, expires_at DOUBLE PRECISION NOT NULL,
  token BIGINT NOT NULL
)
"""


class Lease:
    """`holder`'s claim on lease `name`, for `ttl` seconds from each acquire or renew."""

    def __init__(self, store: Any, name: str, holder: str, ttl: float) -> None:
        """`store` is a Store, an AcdStore or a Backend: anything on the shared database."""
        self.db: Backend = store if isinstance(store, Backend) else store.db
        self.name, self.me, self.ttl = name, holder, float(ttl)
        self.token: int | None = None
        """The fencing token of our tenure; None while we do not hold the lease."""
        self.db.schema(SCHEMA)

    def try_acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours (then it is extended)."""
        now = self.db.dialect.now

        def work(tx: Tx) -> int | None:
            tx.execute(
                "INSERT INTO leases(name, holder, expires_at, token) "
                f"VALUES (?, ?, {now} + ?, 1) ON CONFLICT (name) DO UPDATE SET "
                "holder = excluded.holder, expires_at = excluded.expires_at, "
                "token = leases.token + CASE WHEN leases.holder = excluded.holder THEN 0 ELSE 1 END "
                f"WHERE leases.holder = excluded.holder OR leases.expires_at < {now}",
                (self.name, self.me, self.ttl))
            found = tx.rows("SELECT holder, token FROM leases WHERE name = ?", (self.name,))
            return int(found[0]["token"]) if found and found[0]["holder"] == self.me else None
        self.token = self.db.transaction(work)
        return self.token is not None

    def renew(self) -> bool:
        """Extend our unexpired lease; False (and no token) when it lapsed or was taken."""
        now = self.db.dialect.now
        changed = self.db.execute(
            f"UPDATE leases SET expires_at = {now} + ? WHERE name = ? AND holder = ? "
            f"AND expires_at >= {now} AND token = ?", (self.ttl, self.name, self.me, self.token))
        if not changed:
            self.token = None
        return bool(changed)

    def release(self) -> None:
        """Give the lease up now (a clean stop): the next holder need not wait for the expiry."""
        self.db.execute(f"UPDATE leases SET holder = NULL, expires_at = {self.db.dialect.now} - 1 "
                        "WHERE name = ? AND holder = ?", (self.name, self.me))
        self.token = None

    def holder(self) -> str | None:
        """Who holds the lease now (by the server's clock); None when it is free."""
        row = self.db.row(f"SELECT holder FROM leases WHERE name = ? AND expires_at >= "
                          f"{self.db.dialect.now}", (self.name,))
        return None if row is None or row["holder"] is None else str(row["holder"])

    def current_token(self) -> int:
        """The lease's fencing token now (0 before anyone held it): a write stamped with a
        smaller token comes from a holder that lost the lease."""
        row = self.db.row("SELECT token FROM leases WHERE name = ?", (self.name,))
        return 0 if row is None else int(row["token"])
