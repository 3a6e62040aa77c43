"""How every SQLite file of ours is opened (one connection, a lock, WAL, the schema), and the
store's SQLite backend.

The supervisor's store (CDRs, events), the ACD's tables and each process's outbox are all one
connection used from the process's loop and, briefly, from helper threads; WAL lets readers
(`ivr report`, a second process) read while it writes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ivr.store.backend import Backend, Dialect, T, Tx


class Database:
    """One SQLite file: `_db` guarded by `_lock`, created with its schema on first open."""

    def __init__(self, path: Path, schema: str, *, timeout: float = 5.0,
                 synchronous: str | None = "NORMAL") -> None:
        """`synchronous=None` keeps SQLite's default (FULL): for a file that must survive a
        power cut, like an outbox; NORMAL is safe against a killed process, which is enough for
        records that can be rebuilt or resent."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                   timeout=timeout)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        if synchronous is not None:
            self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(schema)

    def close(self) -> None:
        self._db.close()


def _path(path: Sequence[str]) -> str:
    return "'$." + ".".join(path) + "'"


class SqliteDialect(Dialect):
    name = "sqlite"
    now = "((julianday('now') - 2440587.5) * 86400.0)"

    def columns_sql(self, table: str) -> tuple[str, tuple[Any, ...]]:
        return "SELECT name FROM pragma_table_info(?)", (table,)

    def json_get(self, column: str, path: Sequence[str]) -> str:
        return f"json_extract({column}, {_path(path)})"

    def json_has(self, column: str, path: Sequence[str]) -> str:
        return f"(json_type({column}, {_path(path)}) IS NOT NULL)"

    def json_set(self, column: str, path: Sequence[str]) -> str:
        return f"json_set({column}, {_path(path)}, json(?))"

    def json_remove(self, column: str, path: Sequence[str]) -> str:
        return f"json_remove({column}, {_path(path)})"

    @property
    def json_param(self) -> str:
        return "json(?)"


class _SqliteTx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return int(self._db.execute(sql, tuple(args)).rowcount)

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self._db.execute(sql, tuple(args))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


class SqliteBackend(Database, Backend):
    """A store file on this box: the single-box default. A write is one `BEGIN IMMEDIATE`
    transaction (it waits for another writer of the file rather than failing halfway)."""

    dialect = SqliteDialect()

    def __init__(self, path: Path, *, timeout: float = 10.0, read_only: bool = False) -> None:
        self.label = str(path)
        if not read_only:
            super().__init__(path, "", timeout=timeout)
            return
        # `ivr report` and the like: read what is there, never create the file
        self.path = path
        self._lock = threading.Lock()
        self._db = (sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False,
                                    isolation_level=None, timeout=timeout) if path.exists()
                    else sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None))

    def transaction(self, work: Callable[[Tx], T], *, write: bool = True) -> T:
        with self._lock:
            if not write:
                return work(_SqliteTx(self._db))
            self._db.execute("BEGIN IMMEDIATE")
            try:
                out = work(_SqliteTx(self._db))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return out

    def schema(self, ddl: str) -> None:
        with self._lock:
            self._db.executescript(ddl)

    def rows_if_table(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            return self.rows(sql, args)
        except sqlite3.OperationalError as exc:  # no such table: nothing was written yet
            if "no such table" not in str(exc):
                raise
            return []

    def close(self) -> None:
        self._db.close()
