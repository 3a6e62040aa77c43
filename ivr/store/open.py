"""The one way in to the store: PostgreSQL when `store.url` is set, else the SQLite file
`store.path`. serve, `ivr report`, `ivr purge`, retention and the web views all open it here
(the ACD's tables too: `AcdStore(open_backend(config.store))`, its own connection)."""

from __future__ import annotations

import os
from pathlib import Path

from ivr.config import EngineConfig, StoreSettings
from ivr.errors import ConfigError
from ivr.secret_file import read_private
from ivr.store.backend import Backend
from ivr.store.db import Store
from ivr.store.sqlite import SqliteBackend


def store_password(settings: StoreSettings) -> str | None:
    """The database password from `password_env` or the 0600 `password_file`; None without."""
    if settings.password_env:
        value = os.environ.get(settings.password_env)
        if not value:
            raise ConfigError(f"store.password_env: environment variable {settings.password_env} "
                              "(the database password) is not set")
        return value
    if settings.password_file:
        return read_private(settings.password_file, "store.password_file").strip()
    return None


def sqlite_path(settings: StoreSettings) -> Path:
    path = Path(settings.path)
    return path if path.is_absolute() else Path.cwd() / path


def open_backend(settings: StoreSettings, *, read_only: bool = False) -> Backend:
    """A connection to the configured database. `read_only` (reports) never creates a SQLite
    file that is not there (its reads find no tables, hence nothing)."""
    if settings.url is None:
        return SqliteBackend(sqlite_path(settings), read_only=read_only)
    from ivr.store.postgres import PostgresBackend  # psycopg only where a site uses it

    return PostgresBackend(settings.url, password=store_password(settings), retry_s=settings.retry)


def open_store(config: EngineConfig) -> Store:
    """The CDR and event store."""
    return Store(open_backend(config.store))
