"""How every SQLite file of ours is opened: one connection, a lock, WAL, the schema.

The supervisor's store (CDRs, events), the ACD's tables and each process's outbox are all one
connection used from the process's loop and, briefly, from helper threads; WAL lets readers
(`ivr report`, a second process) read while it writes.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


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
