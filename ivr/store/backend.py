"""The store's seam between its SQL and the database under it (SQLite or PostgreSQL).

The stores (CDRs and events, the ACD's tables, the lease) write one SQL text for both databases:
`?` placeholders, `ON CONFLICT` upserts and `DOUBLE PRECISION`/`BIGINT` columns mean the same in
both. What differs (the server's clock, JSON functions, listing a table's columns) comes from the
backend's `Dialect`; how a unit of work runs (a lock and one connection; for PostgreSQL a
transaction retried after a reconnect) comes from the `Backend`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from ivr.errors import IvrError

T = TypeVar("T")


class StoreError(IvrError):
    """The database could not be reached (within the retry bound) or refused the work."""


class Tx(Protocol):
    """Statements of one unit of work (one transaction where the backend has them)."""

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; how many rows it changed."""

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one query; its rows by column name."""


class Dialect(ABC):
    """The few SQL expressions that are spelled differently per database."""

    name: str
    now: str
    """Seconds since the epoch from the database server's clock (never the client's)."""

    @abstractmethod
    def columns_sql(self, table: str) -> tuple[str, tuple[Any, ...]]:
        """A query whose rows carry `name`: the columns `table` has."""

    @abstractmethod
    def json_get(self, column: str, path: Sequence[str]) -> str:
        """The JSON value at `path` in the text column, comparable with `json_param`."""

    @abstractmethod
    def json_has(self, column: str, path: Sequence[str]) -> str:
        """True where the JSON in the column has a value (null included) at `path`."""

    @abstractmethod
    def json_set(self, column: str, path: Sequence[str]) -> str:
        """The column's JSON text with `path` set to the JSON of one `?` parameter."""

    @abstractmethod
    def json_remove(self, column: str, path: Sequence[str]) -> str:
        """The column's JSON text without `path`."""

    @property
    @abstractmethod
    def json_param(self) -> str:
        """A `?` parameter holding JSON text, as a JSON value."""


class Backend(ABC):
    """One database, used from one process's loop and briefly from helper threads."""

    dialect: Dialect
    label: str
    """Where the data lives, for logs and errors (never a password)."""

    @abstractmethod
    def transaction(self, work: Callable[[Tx], T], *, write: bool = True) -> T:
        """Run `work` as one unit: all of it or none. `work` may run more than once (after a
        lost connection), so it must be idempotent by its keys."""

    @abstractmethod
    def schema(self, ddl: str) -> None:
        """Create what `ddl` (statements separated by `;`) creates, where it is missing."""

    @abstractmethod
    def rows_if_table(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read; none when a table it reads does not exist yet."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection (idempotent)."""

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.transaction(lambda tx: tx.execute(sql, args))

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.transaction(lambda tx: tx.rows(sql, args), write=False)

    def row(self, sql: str, args: Sequence[Any] = ()) -> dict[str, Any] | None:
        found = self.rows(sql, args)
        return found[0] if found else None

    def add_columns(self, table: str, columns: Sequence[str], kind: str = "TEXT") -> None:
        """Columns newer than a table's first schema, added to a table an older version made."""
        def work(tx: Tx) -> None:
            have = {str(r["name"]) for r in tx.rows(*self.dialect.columns_sql(table))}
            for column in columns:
                if column not in have:
                    tx.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        self.transaction(work)


def statements(ddl: str) -> list[str]:
    """The statements of a schema text (no `;` inside our statements)."""
    return [s.strip() for s in ddl.split(";") if s.strip()]
