"""Retention: recordings older than N days are deleted, older transcripts and variables blanked
(CDR, call.end events, queue log), newer ones kept; `ivr purge` runs the same purge. On SQLite
and on PostgreSQL alike (the store_site fixture)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from stores import StoreSite

from ivr.acd.store import AcdStore
from ivr.config import RecordingSettings, RetentionSettings
from ivr.retention import PurgeReport, purge
from ivr.store.db import Store

DAY = 86400.0
NOW = 1_800_000_000.0


def _call(store: Store, call_id: str, started: float, recording: Path | None = None) -> None:
    store.record_event({"call_id": call_id, "seq": 1, "kind": "call.start", "at": started,
                        "flow": "acme-bank"})
    end: dict[str, Any] = {
        "call_id": call_id, "seq": 2, "kind": "call.end", "at": started + 60,
        "end": {"kind": "hangup", "node": "bye"}, "reason": "caller hangup", "path": ["a", "b"],
        "variables": {"account": "****5678", "intent": "balance"},
        "transcript": [{"who": "caller", "text": "balance"}]}
    if recording is not None:
        end.update(recording=str(recording),
                   recording_pauses=[{"node": "ask_account", "start_ms": 4000, "end_ms": 9000}])
    store.record_event(end)


def _wav(path: Path, age_days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")
    t = NOW - age_days * DAY
    os.utime(path, (t, t))
    return path


def _purge(site: StoreSite, settings: RetentionSettings, rec: Path, **kw: Any) -> PurgeReport:
    """A purge as `ivr purge` runs it: SQLite by its path, PostgreSQL over a connection."""
    if site.pg is None:
        return purge(settings, site.path, rec, **kw)
    db = site.backend()
    try:
        return purge(settings, db, rec, **kw)
    finally:
        db.close()


def _cdr(site: StoreSite, call_id: str) -> dict[str, Any]:
    store = Store(site.backend())
    try:
        cdr = store.call(call_id)
    finally:
        store.close()
    assert cdr is not None
    return cdr


@pytest.fixture
def setup(tmp_path: Path, store_site: StoreSite) -> tuple[StoreSite, Path, dict[str, Path]]:
    db, rec = store_site, tmp_path / "var" / "recordings"
    files = {"old": _wav(rec / "2026-01-01" / "old.wav", 40),
             "new": _wav(rec / "2026-02-08" / "new.wav", 2),
             "old_message": _wav(rec / "old-message-20260101.wav", 40),
             "new_message": _wav(rec / "new-message-20260208.wav", 1)}
    store = Store(db.backend())
    _call(store, "old", NOW - 40 * DAY, files["old"])
    _call(store, "new", NOW - 2 * DAY, files["new"])
    store.close()
    acd = AcdStore(db.backend())
    acd.log("old", enqueued_at=NOW - 40 * DAY, context={"account": "****5678"})
    acd.log("new", enqueued_at=NOW - 2 * DAY, context={"account": "****1111"})
    acd.close()
    return db, rec, files


def _events(db: StoreSite, call_id: str) -> dict[str, Any]:
    rows = db.rows("SELECT data FROM events WHERE call_id = ? AND kind = 'call.end'", (call_id,))
    return dict(json.loads(rows[0]["data"]))


def _contexts(db: StoreSite) -> dict[str, Any]:
    return {r["call_id"]: r["context"] for r in db.rows("SELECT call_id, context FROM acd_log")}


def test_old_recordings_go_new_ones_stay(setup: tuple[StoreSite, Path, dict[str, Path]]) -> None:
    db, rec, files = setup
    report = _purge(db, RetentionSettings(recordings_days=30), rec, now=NOW)
    assert sorted(report.recordings) == sorted([str(files["old"]), str(files["old_message"])])
    assert not files["old"].exists() and not files["old_message"].exists()
    assert files["new"].exists() and files["new_message"].exists()
    assert not (rec / "2026-01-01").exists()  # the emptied day directory went too
    old, new = _cdr(db, "old"), _cdr(db, "new")
    assert old["recording"] is None  # the path of a deleted file is cleared...
    assert old["recording_pauses"] == [{"node": "ask_account", "start_ms": 4000, "end_ms": 9000}]
    assert new["recording"] == str(files["new"])
    # ...and nothing else was touched without its own setting
    assert old["transcript"] and old["variables"]


def test_old_transcripts_and_variables_are_blanked_everywhere(
        setup: tuple[StoreSite, Path, dict[str, Path]]) -> None:
    db, rec, files = setup
    report = _purge(db, RetentionSettings(transcripts_days=30, variables_days=30), rec, now=NOW)
    assert (report.transcripts, report.variables, report.recordings) == (1, 1, [])
    old, new = _cdr(db, "old"), _cdr(db, "new")
    assert (old["transcript"], old["variables"]) == ([], {})
    assert old["path"] == ["a", "b"] and old["end_kind"] == "hangup"  # reports still work
    assert new["transcript"] == [{"who": "caller", "text": "balance"}]
    assert new["variables"]["intent"] == "balance"
    old_end, new_end = _events(db, "old"), _events(db, "new")
    assert (old_end["transcript"], old_end["variables"]) == ([], {})
    assert new_end["variables"]["intent"] == "balance" and new_end["transcript"]
    assert _contexts(db) == {"old": None, "new": json.dumps({"account": "****1111"})}
    assert files["old"].exists()  # no recordings_days: recordings are kept
    again = _purge(db, RetentionSettings(transcripts_days=30, variables_days=30), rec, now=NOW)
    assert (again.transcripts, again.variables) == (0, 0)  # idempotent


def test_a_cdr_naming_a_file_outside_the_recordings_is_never_deleted(
        tmp_path: Path, store_site: StoreSite) -> None:
    db, rec = store_site, tmp_path / "recordings"
    victim = _wav(tmp_path / "precious.wav", 100)
    store = Store(db.backend())
    _call(store, "forged", NOW - 40 * DAY, victim)
    store.close()
    report = _purge(db, RetentionSettings(recordings_days=30), rec, now=NOW)
    assert victim.exists() and report.recordings == []


def test_a_dry_run_changes_nothing(setup: tuple[StoreSite, Path, dict[str, Path]]) -> None:
    db, rec, files = setup
    report = _purge(db, RetentionSettings(recordings_days=30, transcripts_days=30,
                                          variables_days=30), rec, now=NOW, dry_run=True)
    assert len(report.recordings) == 2 and (report.transcripts, report.variables) == (1, 1)
    assert all(p.exists() for p in files.values())
    old = _cdr(db, "old")
    assert old["transcript"] and old["recording"] == str(files["old"])


def test_an_older_store_gains_the_recording_columns(tmp_path: Path, store_site: StoreSite) -> None:
    old = store_site.backend()
    old.execute("CREATE TABLE calls (call_id TEXT PRIMARY KEY, flow TEXT, flow_version TEXT, "
                "caller TEXT, dialed TEXT, worker TEXT, started_at DOUBLE PRECISION, "
                "answered_at DOUBLE PRECISION, ended_at DOUBLE PRECISION, end_kind TEXT, "
                "end_reason TEXT, end_node TEXT, queue TEXT, target TEXT, path TEXT, "
                "variables TEXT, transcript TEXT)")
    old.close()
    store = Store(store_site.backend())
    _call(store, "c1", NOW, tmp_path / "c1.wav")
    cdr = store.call("c1")
    store.close()
    assert cdr is not None and cdr["recording"] == str(tmp_path / "c1.wav")
    assert cdr["recording_pauses"][0]["node"] == "ask_account"


def test_recording_is_opt_in_by_route_flow_or_flow_header() -> None:
    settings = RecordingSettings(routes=["1000"], flows=["telco-care"])
    assert settings.wanted("1000", "acme-bank", False)
    assert settings.wanted("2000", "telco-care", False)
    assert settings.wanted("3000", "quick", True)
    assert not settings.wanted("3000", "quick", False)
    assert not RecordingSettings().wanted("1000", "acme-bank", False)


def test_ivr_purge_applies_the_configured_retention(
        setup: tuple[StoreSite, Path, dict[str, Path]], run_cli: Callable[..., Any],
        tmp_path: Path) -> None:
    db, rec, files = setup
    # the files are 40 and 1-2 days old relative to NOW, so age them relative to the real clock
    for name, days in (("old", 40), ("new", 2), ("old_message", 40), ("new_message", 1)):
        t = time.time() - days * DAY
        os.utime(files[name], (t, t))
    cfg = tmp_path / "ivr.yaml"
    cfg.write_text(yaml.safe_dump({"store": db.config(), "retention": {"recordings_days": 30}}))
    usage = run_cli("purge", "--config", cfg, "--state-dir", rec.parent, "--transcripts-days", "0")
    assert usage.code == 2
    dry = run_cli("purge", "--config", cfg, "--state-dir", rec.parent, "--dry-run", "--json")
    assert dry.code == 0 and json.loads(dry.stdout)["recordings"] == 2  # the two 40-day-old files
    assert files["old_message"].exists()
    done = run_cli("purge", "--config", cfg, "--state-dir", rec.parent)
    assert done.code == 0, done.output
    assert not files["old_message"].exists() and files["new_message"].exists()
    empty = tmp_path / "none.yaml"
    empty.write_text(yaml.safe_dump({"store": db.config()}))
    nothing = run_cli("purge", "--config", empty, "--state-dir", rec.parent)
    assert nothing.code == 2 and "no retention is configured" in nothing.output
