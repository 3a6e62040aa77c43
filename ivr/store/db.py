"""SQLite store of the supervisor: CDRs and call events, idempotent by (call id, sequence).

Events arrive at least once (workers resend from their outbox until acknowledged), so every write is
keyed and a duplicate is a no-op. WAL mode lets `ivr report` read while the supervisor writes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ivr.store.sqlite import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
  call_id TEXT PRIMARY KEY,
  flow TEXT, flow_version TEXT, caller TEXT, dialed TEXT, worker TEXT,
  started_at REAL, answered_at REAL, ended_at REAL,
  end_kind TEXT, end_reason TEXT, end_node TEXT, queue TEXT, target TEXT,
  path TEXT, variables TEXT, transcript TEXT, recording TEXT, recording_pauses TEXT,
  end_context TEXT, disposition TEXT
);
CREATE TABLE IF NOT EXISTS events (
  call_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, at REAL NOT NULL,
  data TEXT NOT NULL, PRIMARY KEY (call_id, seq)
);
CREATE INDEX IF NOT EXISTS calls_started ON calls(started_at);
"""

_CALL_FIELDS = (
    "flow", "flow_version", "caller", "dialed", "worker", "started_at", "answered_at", "ended_at",
    "end_kind", "end_reason", "end_node", "queue", "target", "path", "variables", "transcript",
    "recording", "recording_pauses", "end_context", "disposition",
)
_ADDED_COLUMNS = ("recording", "recording_pauses", "end_context", "disposition")
"""Columns newer than the first schema: added to a store an older version created."""
_JSON_FIELDS = ("path", "variables", "transcript", "recording_pauses", "end_context", "disposition")


class Store(Database):
    """One connection, used from the supervisor's loop (writes are small and quick)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)
        with self._lock:
            have = {str(r[1]) for r in self._db.execute("PRAGMA table_info(calls)")}
            for column in _ADDED_COLUMNS:
                if column not in have:
                    self._db.execute(f"ALTER TABLE calls ADD COLUMN {column} TEXT")

    def record_event(self, event: dict[str, Any]) -> bool:
        """Apply one worker event; False when it was a duplicate."""
        call_id, seq, kind = str(event["call_id"]), int(event["seq"]), str(event["kind"])
        at = float(event.get("at", time.time()))
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO events(call_id, seq, kind, at, data) VALUES (?,?,?,?,?)",
                (call_id, seq, kind, at, json.dumps(event, default=str)),
            )
            if cur.rowcount == 0:
                return False
            self._apply(call_id, kind, at, event)
        return True

    def _apply(self, call_id: str, kind: str, at: float, event: dict[str, Any]) -> None:
        self._db.execute("INSERT OR IGNORE INTO calls(call_id, started_at) VALUES (?, ?)",
                         (call_id, at))
        fields: dict[str, Any] = {}
        if kind == "call.start":
            fields = {k: event.get(k) for k in ("flow", "flow_version", "caller", "dialed", "worker")}
            fields["started_at"] = at
        elif kind == "call.answer":
            fields = {"answered_at": at}
        elif kind == "call.end":
            end = event.get("end") or {}
            fields = {
                "ended_at": at, "end_kind": end.get("kind"), "end_reason": event.get("reason"),
                "end_node": end.get("node"), "queue": end.get("queue"), "target": end.get("target"),
                "path": json.dumps(event.get("path", [])),
                "variables": json.dumps(event.get("variables", {}), default=str),
                "transcript": json.dumps(event.get("transcript", []), default=str),
                "recording": event.get("recording"),
                "recording_pauses": (json.dumps(event["recording_pauses"])
                                     if event.get("recording") else None),
                # what a queue or transfer handed on (masked), e.g. for `ivr test --sip`
                "end_context": json.dumps(end["context"]) if end.get("context") else None,
            }
        fields = {k: v for k, v in fields.items() if k in _CALL_FIELDS and v is not None}
        if fields:
            sets = ", ".join(f"{k} = ?" for k in fields)
            self._db.execute(f"UPDATE calls SET {sets} WHERE call_id = ?", (*fields.values(), call_id))

    def set_disposition(self, call_id: str, disposition: dict[str, Any]) -> None:
        """The agent's wrap-up (code, notes, agent, at), kept on the call's CDR; the row may
        come before the call's own events (they fill in the rest)."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO calls(call_id, started_at) VALUES (?, ?)",
                             (call_id, time.time()))
            self._db.execute("UPDATE calls SET disposition = ? WHERE call_id = ?",
                             (json.dumps(disposition), call_id))

    def close_calls_of(self, worker: str, reason: str) -> int:
        """A worker died: its open calls ended with it (no call.end event will come)."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE calls SET ended_at = ?, end_kind = 'error', end_reason = ? "
                "WHERE worker = ? AND ended_at IS NULL",
                (time.time(), reason, worker),
            )
            return int(cur.rowcount)

    def call(self, call_id: str) -> dict[str, Any] | None:
        with self._lock:
            cur = self._db.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,))
            row = cur.fetchone()
            if row is None:
                return None
            names = [d[0] for d in cur.description]
        out = dict(zip(names, row, strict=True))
        for key in _JSON_FIELDS:
            if out.get(key):
                out[key] = json.loads(out[key])
        return out

    def calls(self, since: float = 0.0) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute("SELECT call_id FROM calls WHERE started_at >= ? "
                                   "ORDER BY started_at", (since,))
            ids = [r[0] for r in cur.fetchall()]
        return [c for c in (self.call(i) for i in ids) if c is not None]

    # -- retention (ivr/retention.py) ---------------------------------------------------
    def recordings_before(self, before: float) -> list[tuple[str, str]]:
        """(call id, recording path) of calls started before `before` that still name a file."""
        with self._lock:
            rows = self._db.execute("SELECT call_id, recording FROM calls WHERE started_at < ? "
                                    "AND recording IS NOT NULL", (before,)).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def forget_recording(self, call_id: str) -> None:
        """The recording's file is gone: the CDR keeps its pauses, not the path."""
        with self._lock:
            self._db.execute("UPDATE calls SET recording = NULL WHERE call_id = ?", (call_id,))

    def blank_before(self, column: str, before: float) -> int:
        """Blank `transcript` or `variables` of calls started before `before`, in the CDR and in
        the call.end events it was built from; how many CDRs were blanked."""
        empty = {"transcript": "[]", "variables": "{}"}[column]
        with self._lock:
            cur = self._db.execute(
                f"UPDATE calls SET {column} = ? WHERE started_at < ? AND {column} IS NOT NULL "
                f"AND {column} != ?", (empty, before, empty))
            self._db.execute(
                f"UPDATE events SET data = json_set(data, '$.{column}', json(?)) "
                f"WHERE kind = 'call.end' AND json_type(data, '$.{column}') IS NOT NULL "
                f"AND json_extract(data, '$.{column}') != ? AND call_id IN "
                "(SELECT call_id FROM calls WHERE started_at < ?)", (empty, empty, before))
            if column == "variables":  # the queue/transfer context holds the same values
                self._db.execute("UPDATE calls SET end_context = NULL WHERE started_at < ?",
                                 (before,))
                self._db.execute(
                    "UPDATE events SET data = json_remove(data, '$.end.context') WHERE "
                    "kind = 'call.end' AND json_type(data, '$.end.context') IS NOT NULL AND "
                    "call_id IN (SELECT call_id FROM calls WHERE started_at < ?)", (before,))
            return int(cur.rowcount)
