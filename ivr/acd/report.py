"""`ivr report`: contact-centre figures from the CDR store (`calls`) and the ACD log (`acd_log`),
in SQLite or PostgreSQL alike.

Definitions:
- calls: calls that started since the date (per flow: by the flow that answered).
- contained (self-service containment): calls that ended in the IVR without reaching a queue or
  a transfer and without an error (`end_kind` not queue, transfer or error); rate = contained /
  ended calls.
- transfers: calls that ended with a transfer.
- queued: calls that entered a queue (the ACD log), per queue and per flow; answered,
  abandoned (the caller hung up while waiting or ringing), timeouts (max wait), overflow (empty or
  full queue), callbacks (converted to a callback).
- abandonment = abandoned / queued.
- service level = answered within the threshold (default 20 s) / (queued - overflow): the share of
  callers who got an agent quickly among those who waited.
- ASA (average speed of answer) = mean of (answered - enqueued) over answered calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ivr.store.backend import Backend
from ivr.store.sqlite import SqliteBackend


@contextlib.contextmanager
def _reading(store: Path | Backend) -> Iterator[Backend]:
    """The store to read: an open backend as it is, a SQLite path opened read-only for the read
    (a missing file reads as empty)."""
    if not isinstance(store, Path):
        yield store
        return
    db = SqliteBackend(store, read_only=True)
    try:
        yield db
    finally:
        db.close()


def _queue_stats(rows: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    queued = len(rows)
    answered = [r for r in rows if r["answered_at"] is not None]
    speeds = [max(0.0, r["answered_at"] - r["enqueued_at"]) for r in answered
              if r["enqueued_at"] is not None]
    abandoned = sum(1 for r in rows if r["outcome"] == "abandoned")
    overflow = sum(1 for r in rows if r["outcome"] == "overflow")
    waited = queued - overflow
    fast = sum(1 for s in speeds if s <= threshold)
    return {
        "queued": queued, "answered": len(answered), "abandoned": abandoned,
        "timeouts": sum(1 for r in rows if r["outcome"] == "timeout"), "overflow": overflow,
        "callbacks": sum(1 for r in rows if r["callback"]),
        "waiting": sum(1 for r in rows if r["outcome"] is None),
        "abandonment": round(abandoned / queued, 4) if queued else None,
        "service_level": round(fast / waited, 4) if waited else None,
        "service_level_s": threshold,
        "asa_s": round(sum(speeds) / len(speeds), 1) if speeds else None,
    }


def _call_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ended = [r for r in rows if r["ended_at"] is not None]
    contained = sum(1 for r in ended if r["end_kind"] not in ("queue", "transfer", "error"))
    return {"calls": len(rows), "ended": len(ended), "contained": contained,
            "containment": round(contained / len(ended), 4) if ended else None,
            "transfers": sum(1 for r in ended if r["end_kind"] == "transfer"),
            "to_queue": sum(1 for r in ended if r["end_kind"] == "queue"),
            "errors": sum(1 for r in ended if r["end_kind"] == "error")}


def build_report(store: Path | Backend, since: float = 0.0, threshold: float = 20.0
                 ) -> dict[str, Any]:
    """The report's figures from `store` (tables not created yet read as no rows)."""
    with _reading(store) as db:
        calls = db.rows_if_table("SELECT call_id, flow, started_at, ended_at, end_kind FROM calls "
                                 "WHERE started_at >= ?", (since,))
        acd = db.rows_if_table(
            "SELECT l.call_id, l.queue, COALESCE(l.flow, c.flow) AS flow, l.enqueued_at, "
            "l.answered_at, l.outcome, l.callback FROM acd_log l LEFT JOIN calls c "
            "ON c.call_id = l.call_id WHERE l.enqueued_at >= ?", (since,))
    flows: dict[str, Any] = {}
    for flow in sorted({str(r["flow"]) for r in calls} | {str(r["flow"]) for r in acd}):
        flows[flow] = {**_call_stats([r for r in calls if str(r["flow"]) == flow]),
                       "queue": _queue_stats([r for r in acd if str(r["flow"]) == flow], threshold)}
    queues = {q: _queue_stats([r for r in acd if r["queue"] == q], threshold)
              for q in sorted({str(r["queue"]) for r in acd})}
    return {"since": since, "total": {**_call_stats(calls), "queue": _queue_stats(acd, threshold)},
            "flows": flows, "queues": queues}


def queue_figures(store: Path | Backend, since: float, thresholds: dict[str, float]
                  ) -> dict[str, Any]:
    """Per queue, the report's figures for calls queued since `since`, each queue's service
    level against its own threshold (the wallboard's numbers)."""
    if isinstance(store, Path) and not store.exists():
        return {}
    with _reading(store) as db:
        acd = db.rows_if_table("SELECT call_id, queue, enqueued_at, answered_at, outcome, "
                               "callback FROM acd_log WHERE enqueued_at >= ?", (since,))
    return {q: _queue_stats([r for r in acd if r["queue"] == q], thresholds.get(q, 20.0))
            for q in sorted({str(r["queue"]) for r in acd} | set(thresholds))}


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def render(report: dict[str, Any]) -> str:
    lines = []
    t = report["total"]
    q = t["queue"]
    lines.append(f"calls {t['calls']}  contained {t['contained']} ({_pct(t['containment'])})  "
                 f"transfers {t['transfers']}  queued {q['queued']}  answered {q['answered']}  "
                 f"abandoned {q['abandoned']} ({_pct(q['abandonment'])})  service level "
                 f"{_pct(q['service_level'])} in {q['service_level_s']:g}s  ASA "
                 f"{'-' if q['asa_s'] is None else str(q['asa_s']) + 's'}")
    lines.append("")
    lines.append(f"{'flow':<20}{'calls':>7}{'contained':>11}{'transfers':>11}{'queued':>8}"
                 f"{'abandon':>9}{'SL':>8}{'ASA':>8}")
    for name, f in report["flows"].items():
        fq = f["queue"]
        lines.append(f"{name:<20}{f['calls']:>7}{_pct(f['containment']):>11}{f['transfers']:>11}"
                     f"{fq['queued']:>8}{_pct(fq['abandonment']):>9}{_pct(fq['service_level']):>8}"
                     f"{'-' if fq['asa_s'] is None else fq['asa_s']:>8}")
    lines.append("")
    lines.append(f"{'queue':<20}{'queued':>8}{'answered':>10}{'abandon':>9}{'timeout':>9}"
                 f"{'overflow':>10}{'callback':>10}{'SL':>8}{'ASA':>8}")
    for name, s in report["queues"].items():
        lines.append(f"{name:<20}{s['queued']:>8}{s['answered']:>10}{_pct(s['abandonment']):>9}"
                     f"{s['timeouts']:>9}{s['overflow']:>10}{s['callbacks']:>10}"
                     f"{_pct(s['service_level']):>8}{'-' if s['asa_s'] is None else s['asa_s']:>8}")
    return "\n".join(lines) + "\n"
