"""The supervisor's store: CDRs and call events, idempotent by (call id, sequence).

Events arrive at least once (workers resend from their outbox until acknowledged), so every write is
keyed and a duplicate is a no-op. On SQLite (one box) WAL mode lets `ivr report` read while the
supervisor writes; on PostgreSQL (a site) every node shares the same tables (ivr/store/open.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ivr.metrics import STORE_WRITE
from ivr.store.backend import Backend, Tx
from ivr.store.sqlite import SqliteBackend

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
  call_id TEXT PRIMARY KEY,
  flow TEXT, flow_version TEXT, caller TEXT, dialed TEXT, worker TEXT,
  started_at DOUBLE PRECISION, answered_at DOUBLE PRECISION, ended_at DOUBLE PRECISION,
  end_kind TEXT, end_reason TEXT, end_node TEXT, queue TEXT, target TEXT,
  path TEXT, variables TEXT, transcript TEXT, recording TEXT, recording_pauses TEXT,
  end_context TEXT, disposition TEXT
);
CREATE TABLE IF NOT EXISTS events (
  call_id TEXT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
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
_NEW_CALL = "INSERT INTO calls(call_id, started_at) VALUES (?, ?) ON CONFLICT DO NOTHING"


def backend_of(target: Path | Backend) -> Backend:
    """A store's database: a path is a SQLite file (the single-box default, and the tests')."""
    return SqliteBackend(target) if isinstance(target, Path) else target


class Store:
    """CDRs and events over one backend, used from the supervisor's loop (writes are small)."""

    def __init__(self, target: Path | Backend) -> None:
        self.db = backend_of(target)
        self.db.schema(SCHEMA)
        self.db.add_columns("calls", _ADDED_COLUMNS)

    def close(self) -> None:
        self.db.close()

    def record_event(self, event: dict[str, Any]) -> bool:
        """Apply one worker event; False when it was a duplicate."""
        call_id, seq, kind = str(event["call_id"]), int(event["seq"]), str(event["kind"])
        at = float(event.get("at", time.time()))
        data = json.dumps(event, default=str)

        def work(tx: Tx) -> bool:
            if not tx.execute("INSERT INTO events(call_id, seq, kind, at, data) VALUES "
                              "(?,?,?,?,?) ON CONFLICT DO NOTHING",
                              (call_id, seq, kind, at, data)):
                return False
            self._apply(tx, call_id, kind, at, event)
            return True
        with STORE_WRITE.time():
            return self.db.transaction(work)

    @staticmethod
    def _apply(tx: Tx, call_id: str, kind: str, at: float, event: dict[str, Any]) -> None:
        tx.execute(_NEW_CALL, (call_id, at))
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
            tx.execute(f"UPDATE calls SET {sets} WHERE call_id = ?", (*fields.values(), call_id))

    def set_disposition(self, call_id: str, disposition: dict[str, Any]) -> None:
        """The agent's wrap-up (code, notes, agent, at), kept on the call's CDR; the row may
        come before the call's own events (they fill in the rest)."""
        def work(tx: Tx) -> None:
            tx.execute(_NEW_CALL, (call_id, time.time()))
            tx.execute("UPDATE calls SET disposition = ? WHERE call_id = ?",
                       (json.dumps(disposition), call_id))
        self.db.transaction(work)

    def close_calls_of(self, worker: str, reason: str) -> int:
        """A worker died: its open calls ended with it (no call.end event will come)."""
        return self.db.execute(
            "UPDATE calls SET ended_at = ?, end_kind = 'error', end_reason = ? "
            "WHERE worker = ? AND ended_at IS NULL", (time.time(), reason, worker))

    @staticmethod
    def _decoded(row: dict[str, Any]) -> dict[str, Any]:
        for key in _JSON_FIELDS:
            if row.get(key):
                row[key] = json.loads(row[key])
        return row

    def call(self, call_id: str) -> dict[str, Any] | None:
        row = self.db.row("SELECT * FROM calls WHERE call_id = ?", (call_id,))
        return None if row is None else self._decoded(row)

    def calls(self, since: float = 0.0) -> list[dict[str, Any]]:
        return [self._decoded(r) for r in self.db.rows(
            "SELECT * FROM calls WHERE started_at >= ? ORDER BY started_at", (since,))]

    # -- retention (ivr/retention.py) ---------------------------------------------------
    def recordings_before(self, before: float) -> list[tuple[str, str]]:
        """(call id, recording path) of calls started before `before` that still name a file."""
        rows = self.db.rows("SELECT call_id, recording FROM calls WHERE started_at < ? "
                            "AND recording IS NOT NULL", (before,))
        return [(str(r["call_id"]), str(r["recording"])) for r in rows]

    def forget_recording(self, call_id: str) -> None:
        """The recording's file is gone: the CDR keeps its pauses, not the path."""
        self.db.execute("UPDATE calls SET recording = NULL WHERE call_id = ?", (call_id,))

    def blank_before(self, column: str, before: float) -> int:
        """Blank `transcript` or `variables` of calls started before `before`, in the CDR and in
        the call.end events it was built from; how many CDRs were blanked."""
        empty = {"transcript": "[]", "variables": "{}"}[column]
        d = self.db.dialect
        old = "call_id IN (SELECT call_id FROM calls WHERE started_at < ?)"

        def work(tx: Tx) -> int:
            count = tx.execute(
                f"UPDATE calls SET {column} = ? WHERE started_at < ? AND {column} IS NOT NULL "
                f"AND {column} != ?", (empty, before, empty))
            tx.execute(
                f"UPDATE events SET data = {d.json_set('data', [column])} WHERE kind = 'call.end' "
                f"AND {d.json_has('data', [column])} AND {d.json_get('data', [column])} != "
                f"{d.json_param} AND {old}", (empty, empty, before))
            if column == "variables":  # the queue/transfer context holds the same values
                tx.execute("UPDATE calls SET end_context = NULL WHERE started_at < ?", (before,))
                tx.execute(
                    f"UPDATE events SET data = {d.json_remove('data', ['end', 'context'])} WHERE "
                    f"kind = 'call.end' AND {d.json_has('data', ['end', 'context'])} AND {old}",
                    (before,))
            return count
        return self.db.transaction(work)
