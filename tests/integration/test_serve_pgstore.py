"""`ivr serve` with `store.url` on a real PostgreSQL: a real SIP call's CDR lands in PostgreSQL
(not in a SQLite file), survives a database restart before the next call, and `ivr report` reads
them from there."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from server import IVR_BIN, ivr_call, start_server

from ivr.secret_file import write_private


def _ended(pg: Any, db: str, count: int) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + 30
    while len(ended := [r for r in _cdrs(pg, db) if r[3] is not None]) < count:
        assert time.monotonic() < deadline, f"not {count} ended CDRs: {_cdrs(pg, db)}"
        time.sleep(0.2)
    return ended


def _cdrs(pg: Any, db: str) -> list[tuple[Any, ...]]:
    with pg.admin(db) as conn:
        has = conn.execute("SELECT to_regclass('calls') IS NOT NULL").fetchone()
        if not has or not has[0]:
            return []
        return list(conn.execute("SELECT call_id, flow, end_kind, ended_at FROM calls").fetchall())


def test_a_call_cdr_lands_in_postgresql_and_ivr_report_reads_it(pg_server: Any,
                                                                  tmp_path: Path) -> None:
    db = pg_server.new_database()
    secret = tmp_path / "db-password"
    write_private(secret, pg_server.password + "\n")
    server = start_server(tmp_path / "serve", max_calls=4, extra_sip={"prestart_workers": 1},
                          extra={"store": {"url": pg_server.url(db),
                                           "password_file": str(secret)}})
    try:
        code, _, err = ivr_call(server, f"sip:3000@{server.uri_host}", "--dtmf", "1")
        assert code == 0, err[-2000:]
        (call_id, flow, end_kind, _), = _ended(pg_server, db, 1)
        assert flow == "quick" and end_kind == "hangup"
        status, cdr = server.get(f"/calls/{call_id}")  # the API reads the same store
        assert status == 200 and cdr["flow"] == "quick"
        pg_server.restart()  # every connection of the server is cut
        code, _, err = ivr_call(server, f"sip:3000@{server.uri_host}", "--dtmf", "1")
        assert code == 0, err[-2000:]
        assert {r[2] for r in _ended(pg_server, db, 2)} == {"hangup"}
        status, calls = server.get("/calls")
        assert status == 200 and len(calls["calls"]) == 2
        with pg_server.admin(db) as conn:  # both calls' start, answer and end events
            kinds = conn.execute("SELECT call_id, array_agg(kind) FROM events "
                                 "GROUP BY call_id").fetchall()
        assert len(kinds) == 2
        assert all({"call.start", "call.answer", "call.end"} <= set(k) for _, k in kinds), kinds
    finally:
        server.stop()
    assert not (server.root / "var" / "ivr.sqlite").exists()  # nothing went to SQLite
    with pg_server.admin(db) as conn:  # the ACD's tables live there too
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"calls", "events", "acd_calls", "acd_agents", "acd_log", "acd_meta"} <= tables

    report = subprocess.run([str(IVR_BIN), "report", "--config", str(server.root / "ivr.yaml"),
                             "--json"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env=dict(os.environ), check=False)
    assert report.returncode == 0, report.stderr
    figures = json.loads(report.stdout)
    assert figures["total"]["calls"] == 2 and figures["flows"]["quick"]["contained"] == 2
