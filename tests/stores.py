"""The store tests' fixture: the same test over both backends (SQLite file, real PostgreSQL).

`store_site` is parametrized; each PostgreSQL case gets a fresh database on the session's
server (tests/pg.py). `backend()` opens a new connection each time, as a restarted process would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ivr.secret_file import write_private
from ivr.store.backend import Backend
from ivr.store.postgres import PostgresBackend
from ivr.store.sqlite import SqliteBackend


@dataclass
class StoreSite:
    kind: str
    tmp: Path
    pg: Any = None
    dbname: str = ""

    @property
    def path(self) -> Path:
        return self.tmp / "var" / "ivr.sqlite"

    def backend(self) -> Backend:
        if self.pg is None:
            return SqliteBackend(self.path)
        return PostgresBackend(self.pg.url(self.dbname), password=self.pg.password, retry_s=30)

    def config(self) -> dict[str, Any]:
        """The `store:` section that points ivr at this site (the password in a 0600 file)."""
        if self.pg is None:
            return {"path": str(self.path)}
        secret = self.tmp / "db-password"
        write_private(secret, self.pg.password + "\n")
        return {"url": self.pg.url(self.dbname), "password_file": str(secret)}

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """The test's own read, on its own connection."""
        db = self.backend()
        try:
            return db.rows(sql, args)
        finally:
            db.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_site(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSite:
    if request.param == "sqlite":
        return StoreSite("sqlite", tmp_path)
    pg = request.getfixturevalue("pg_server")
    return StoreSite("postgresql", tmp_path, pg, pg.new_database())
