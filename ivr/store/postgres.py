"""The store's PostgreSQL backend: the shared database of a site with more than one node.

One connection and a lock (the stores are called from one loop; a pool would buy nothing). Every
unit of work is one transaction; when the server goes away (restart, failover, a cut link) the
connection is dropped, reopened and the whole unit run again, for up to `retry_s`: the stores'
writes are idempotent by their keys, so a unit that did commit before the link broke is
harmless to repeat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from ivr.store.backend import Backend, Dialect, StoreError, T, Tx, statements

log = logging.getLogger("ivr.store")

SCHEMA_LOCK = 0x1F5_70BE
"""Advisory lock key held while creating tables: two nodes starting at once would otherwise
race on the catalog (CREATE ... IF NOT EXISTS is not safe against a concurrent twin)."""


def _path(path: Sequence[str]) -> str:
    return "'{" + ",".join(path) + "}'"


class PostgresDialect(Dialect):
    name = "postgresql"
    now = "extract(epoch from clock_timestamp())::double precision"

    def columns_sql(self, table: str) -> tuple[str, tuple[Any, ...]]:
        return ("SELECT column_name AS name FROM information_schema.columns WHERE table_name = ? "
                "AND table_schema = current_schema()", (table,))

    def json_get(self, column: str, path: Sequence[str]) -> str:
        return f"({column}::jsonb #> {_path(path)})"

    def json_has(self, column: str, path: Sequence[str]) -> str:
        return f"({column}::jsonb #> {_path(path)} IS NOT NULL)"

    def json_set(self, column: str, path: Sequence[str]) -> str:
        return f"jsonb_set({column}::jsonb, {_path(path)}, ?::jsonb)::text"

    def json_remove(self, column: str, path: Sequence[str]) -> str:
        return f"({column}::jsonb #- {_path(path)})::text"

    @property
    def json_param(self) -> str:
        return "?::jsonb"


def _sql(sql: str) -> str:
    """Our `?` placeholders as psycopg's `%s` (a literal `%` doubled first)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _args(args: Sequence[Any]) -> tuple[Any, ...]:
    # our flag columns are integers (as in SQLite); psycopg would send a bool as boolean
    return tuple(int(a) if isinstance(a, bool) else a for a in args)


class _PgTx:
    def __init__(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        self._conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return int(self._conn.execute(_sql(sql), _args(args)).rowcount)

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self._conn.execute(_sql(sql), _args(args)).fetchall()


def redact(url: str) -> str:
    """The URL for logs: host, port, database and user, never a password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable url)"
    return (f"postgresql://{info.get('user') or ''}@{info.get('host') or ''}:"
            f"{info.get('port') or 5432}/{info.get('dbname') or ''}")


class PostgresBackend(Backend):
    """A PostgreSQL database at `url` (libpq URL or key=value string); `password`, when
    given, overrides one in the URL (it comes from the environment or a 0600 file)."""

    dialect = PostgresDialect()

    def __init__(self, url: str, *, password: str | None = None, retry_s: float = 15.0,
                 connect_timeout: float = 5.0) -> None:
        self.label = redact(url)
        self._conninfo = make_conninfo(url, **({"password": password} if password else {}),
                                       connect_timeout=max(1, int(connect_timeout)),
                                       application_name="ivr")
        self.retry_s = retry_s
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        self._closed = False
        try:
            self._connected()  # a wrong URL or password fails at startup, not at the first call
        except psycopg.Error as exc:
            raise StoreError(f"store {self.label}: {str(exc).strip()}") from None

    def _connected(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = psycopg.connect(self._conninfo, autocommit=True, row_factory=dict_row)
        return self._conn

    def transaction(self, work: Callable[[Tx], T], *, write: bool = True) -> T:
        deadline = time.monotonic() + self.retry_s
        delay = 0.1
        with self._lock:
            while True:
                if self._closed:
                    raise StoreError(f"store {self.label} is closed")
                try:
                    conn = self._connected()
                    with conn.transaction():
                        return work(_PgTx(conn))
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    # the server went away or is starting; a failed connect or a broken link
                    if time.monotonic() + delay > deadline:
                        raise StoreError(f"store {self.label}: {exc}".strip()) from exc
                    log.warning("store %s unavailable (%s); retrying", self.label,
                                str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
                    if self._conn is not None and (self._conn.broken or self._conn.closed):
                        self._conn.close()
                        self._conn = None
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)

    def schema(self, ddl: str) -> None:
        def work(tx: Tx) -> None:
            tx.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
            for statement in statements(ddl):
                tx.execute(statement)
        self.transaction(work)

    def rows_if_table(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            return self.rows(sql, args)
        except psycopg.errors.UndefinedTable:
            return []

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
