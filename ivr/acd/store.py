"""The ACD's tables, in the supervisor's store (next to the CDRs; SQLite or PostgreSQL).

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
from ivr.store.backend import Backend, Tx
from ivr.store.db import backend_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS acd_calls (call_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS acd_agents (name TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS acd_log (
  call_id TEXT PRIMARY KEY, queue TEXT, flow TEXT, caller TEXT, priority BIGINT,
  enqueued_at DOUBLE PRECISION, offered_at DOUBLE PRECISION, answered_at DOUBLE PRECISION,
  ended_at DOUBLE PRECISION, agent TEXT,
  outcome TEXT, attempts BIGINT DEFAULT 0, callback BIGINT DEFAULT 0, context TEXT
);
CREATE INDEX IF NOT EXISTS acd_log_enqueued ON acd_log(enqueued_at);
CREATE TABLE IF NOT EXISTS acd_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS acd_offers (call_id TEXT NOT NULL, agent TEXT NOT NULL,
  PRIMARY KEY (call_id, agent));
"""

_LOG_FIELDS = ("queue", "flow", "caller", "priority", "enqueued_at", "offered_at", "answered_at",
               "ended_at", "agent", "outcome", "attempts", "callback", "context")


class AcdStore:
    """The ACD's rows over one backend (a path is a SQLite file)."""

    def __init__(self, target: Path | Backend) -> None:
        self.db = backend_of(target)
        self.db.schema(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- Persistence (engine) ----------------------------------------------------------------
    def save_call(self, call: QueuedCall) -> None:
        self.db.execute("INSERT INTO acd_calls(call_id, data) VALUES (?, ?) ON CONFLICT (call_id) "
                        "DO UPDATE SET data = excluded.data",
                        (call.call_id, json.dumps(call.to_row(), default=str)))

    def delete_call(self, call_id: str) -> None:
        self.db.execute("DELETE FROM acd_calls WHERE call_id = ?", (call_id,))

    def load_calls(self) -> list[QueuedCall]:
        rows = self.db.rows("SELECT data FROM acd_calls")
        return [QueuedCall.from_row(json.loads(r["data"])) for r in rows]

    def save_agent(self, agent: Agent) -> None:
        data = {"state": agent.state.value, "call_id": agent.call_id, "calls": agent.calls,
                "idle_since": agent.idle_since, "uri": agent.uri, "queues": agent.queues,
                "skills": agent.skills}
        self.db.execute("INSERT INTO acd_agents(name, data) VALUES (?, ?) ON CONFLICT (name) "
                        "DO UPDATE SET data = excluded.data", (agent.name, json.dumps(data)))

    def load_agents(self) -> dict[str, dict[str, Any]]:
        rows = self.db.rows("SELECT name, data FROM acd_agents")
        return {str(r["name"]): json.loads(r["data"]) for r in rows}

    # -- history -----------------------------------------------------------------------------
    def log(self, call_id: str, **fields: Any) -> None:
        """Upsert the call's queue record; `None` values leave a column as it was."""
        values = {k: (json.dumps(v, default=str) if k == "context" else v)
                  for k, v in fields.items() if k in _LOG_FIELDS and v is not None}

        def work(tx: Tx) -> None:
            tx.execute("INSERT INTO acd_log(call_id) VALUES (?) ON CONFLICT DO NOTHING",
                       (call_id,))
            if values:
                sets = ", ".join(f"{k} = ?" for k in values)
                tx.execute(f"UPDATE acd_log SET {sets} WHERE call_id = ?",
                           (*values.values(), call_id))
        self.db.transaction(work)

    def blank_context(self, before: float) -> int:
        """Retention: forget the agent context (the flow's variables) of calls queued before
        `before`; how many were blanked."""
        return self.db.execute("UPDATE acd_log SET context = NULL WHERE enqueued_at < ? "
                               "AND context IS NOT NULL", (before,))

    def bump_attempts(self, call_id: str) -> None:
        self.db.execute("UPDATE acd_log SET attempts = attempts + 1, "
                        f"offered_at = COALESCE(offered_at, {self.db.dialect.now}) "
                        "WHERE call_id = ?", (call_id,))

    def add_offer(self, call_id: str, agent: str) -> None:
        self.db.execute("INSERT INTO acd_offers(call_id, agent) VALUES (?, ?) "
                        "ON CONFLICT DO NOTHING", (call_id, agent))

    def was_offered(self, call_id: str, agent: str) -> bool:
        return self.db.row("SELECT 1 AS one FROM acd_offers WHERE call_id = ? AND agent = ?",
                           (call_id, agent)) is not None

    def queue_record(self, call_id: str) -> dict[str, Any] | None:
        """The call's acd_log row without its context: queue, agent, times, outcome."""
        return self.db.row(
            "SELECT queue, priority, enqueued_at, offered_at, answered_at, ended_at, agent, "
            "outcome, attempts, callback FROM acd_log WHERE call_id = ?", (call_id,))

    def agent_of(self, call_id: str) -> str | None:
        row = self.db.row("SELECT agent FROM acd_log WHERE call_id = ? AND answered_at "
                          "IS NOT NULL", (call_id,))
        return None if row is None or row["agent"] is None else str(row["agent"])

    def logged_context(self, call_id: str) -> dict[str, Any] | None:
        row = self.db.row("SELECT context FROM acd_log WHERE call_id = ?", (call_id,))
        if row is None or row["context"] is None:
            return None
        out: dict[str, Any] = json.loads(row["context"])
        return out

    def next_seq(self) -> int:
        """The next message sequence (a unit retried after a lost link may skip one: keys
        stay unique, which is all they promise)."""
        def work(tx: Tx) -> int:
            tx.execute("INSERT INTO acd_meta(key, value) VALUES ('seq', 0) ON CONFLICT DO NOTHING")
            return int(tx.rows("UPDATE acd_meta SET value = value + 1 WHERE key = 'seq' "
                               "RETURNING value")[0]["value"])
        return self.db.transaction(work)
