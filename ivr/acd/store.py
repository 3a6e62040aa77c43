"""The ACD's SQLite tables, in the supervisor's store file (next to the CDRs).

- `acd_calls`: every call waiting in a queue, callbacks included, so a restarted supervisor (even
  after SIGKILL) has the same queues with the same places.
- `acd_agents`: agent presence (ready, away, logged out, on a call) across restarts.
- `acd_log`: one row per call that entered a queue, for `ivr report` (ASA, service level,
  abandonment) and for `GET /calls/<id>/context` after the call left the queue.
- `acd_offers`: which agents were offered which call (an agent's API token reads only those
  calls' context).
- `acd_meta`: a persistent message sequence, so idempotency keys never repeat across restarts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ivr.acd.model import Agent, QueuedCall
from ivr.store.sqlite import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS acd_calls (call_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS acd_agents (name TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS acd_log (
  call_id TEXT PRIMARY KEY, queue TEXT, flow TEXT, caller TEXT, priority INTEGER,
  enqueued_at REAL, offered_at REAL, answered_at REAL, ended_at REAL, agent TEXT,
  outcome TEXT, attempts INTEGER DEFAULT 0, callback INTEGER DEFAULT 0, context TEXT
);
CREATE INDEX IF NOT EXISTS acd_log_enqueued ON acd_log(enqueued_at);
CREATE TABLE IF NOT EXISTS acd_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS acd_offers (call_id TEXT NOT NULL, agent TEXT NOT NULL,
  PRIMARY KEY (call_id, agent));
"""

_LOG_FIELDS = ("queue", "flow", "caller", "priority", "enqueued_at", "offered_at", "answered_at",
               "ended_at", "agent", "outcome", "attempts", "callback", "context")


class AcdStore(Database):
    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA, timeout=10)

    # -- Persistence (engine) ----------------------------------------------------------------
    def save_call(self, call: QueuedCall) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO acd_calls(call_id, data) VALUES (?, ?)",
                             (call.call_id, json.dumps(call.to_row(), default=str)))

    def delete_call(self, call_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM acd_calls WHERE call_id = ?", (call_id,))

    def load_calls(self) -> list[QueuedCall]:
        with self._lock:
            rows = self._db.execute("SELECT data FROM acd_calls").fetchall()
        return [QueuedCall.from_row(json.loads(r[0])) for r in rows]

    def save_agent(self, agent: Agent) -> None:
        data = {"state": agent.state.value, "call_id": agent.call_id, "calls": agent.calls,
                "idle_since": agent.idle_since, "uri": agent.uri, "queues": agent.queues,
                "skills": agent.skills}
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO acd_agents(name, data) VALUES (?, ?)",
                             (agent.name, json.dumps(data)))

    def load_agents(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT name, data FROM acd_agents").fetchall()
        return {str(r[0]): json.loads(r[1]) for r in rows}

    # -- history -----------------------------------------------------------------------------
    def log(self, call_id: str, **fields: Any) -> None:
        """Upsert the call's queue record; `None` values leave a column as it was."""
        values = {k: (json.dumps(v, default=str) if k == "context" else v)
                  for k, v in fields.items() if k in _LOG_FIELDS and v is not None}
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO acd_log(call_id) VALUES (?)", (call_id,))
            if values:
                sets = ", ".join(f"{k} = ?" for k in values)
                self._db.execute(f"UPDATE acd_log SET {sets} WHERE call_id = ?",
                                 (*values.values(), call_id))

    def blank_context(self, before: float) -> int:
        """Retention: forget the agent context (the flow's variables) of calls queued before
        `before`; how many were blanked."""
        with self._lock:
            cur = self._db.execute("UPDATE acd_log SET context = NULL WHERE enqueued_at < ? "
                                   "AND context IS NOT NULL", (before,))
            return int(cur.rowcount)

    def bump_attempts(self, call_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE acd_log SET attempts = attempts + 1, "
                             "offered_at = COALESCE(offered_at, strftime('%s','now')) "
                             "WHERE call_id = ?", (call_id,))

    def add_offer(self, call_id: str, agent: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO acd_offers(call_id, agent) VALUES (?, ?)",
                             (call_id, agent))

    def was_offered(self, call_id: str, agent: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM acd_offers WHERE call_id = ? AND agent = ?",
                                   (call_id, agent)).fetchone()
        return row is not None

    def queue_record(self, call_id: str) -> dict[str, Any] | None:
        """The call's acd_log row without its context: queue, agent, times, outcome."""
        with self._lock:
            cur = self._db.execute(
                "SELECT queue, priority, enqueued_at, offered_at, answered_at, ended_at, agent, "
                "outcome, attempts, callback FROM acd_log WHERE call_id = ?", (call_id,))
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
        return None if row is None else dict(zip(names, row, strict=True))

    def agent_of(self, call_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT agent FROM acd_log WHERE call_id = ? AND answered_at "
                                   "IS NOT NULL", (call_id,)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def logged_context(self, call_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT context FROM acd_log WHERE call_id = ?",
                                   (call_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        out: dict[str, Any] = json.loads(row[0])
        return out

    def next_seq(self) -> int:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO acd_meta(key, value) VALUES ('seq', 0)")
            self._db.execute("UPDATE acd_meta SET value = value + 1 WHERE key = 'seq'")
            row = self._db.execute("SELECT value FROM acd_meta WHERE key = 'seq'").fetchone()
        return int(row[0])
