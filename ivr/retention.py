"""Retention: what a call leaves behind is kept for a set number of days, then purged.

Recordings (whole-call recordings and record-node messages under `<state>/recordings`) are
deleted; CDR transcripts and variables are blanked in place (the row, its timings and its outcome
stay for reports), in the `call.end` events they came from too, and the queue log's agent context
with the variables. The supervisor runs `purge` periodically (`Supervisor.purge_forever`) and
`ivr purge` runs it on demand; both are idempotent, so running either at any time is safe.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.acd.store import AcdStore
from ivr.config import RetentionSettings
from ivr.store.backend import Backend
from ivr.store.db import Store

log = logging.getLogger("ivr.retention")

DAY = 86400.0
AUDIO_SUFFIXES = (".wav",)


@dataclass
class PurgeReport:
    """What one purge removed (or, with dry_run, would remove)."""

    recordings: list[str] = field(default_factory=list)
    transcripts: int = 0
    variables: int = 0
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"recordings": len(self.recordings), "files": list(self.recordings),
                "transcripts": self.transcripts, "variables": self.variables,
                "dry_run": self.dry_run}


def _cutoff(days: float | None, now: float) -> float | None:
    return None if days is None else now - days * DAY


def old_files(root: Path, before: float) -> list[Path]:
    """Audio files under `root` last written before `before` (recordings never change after the
    call, so the modification time is when the call ended)."""
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.rglob("*")):
        with contextlib.suppress(OSError):
            if path.suffix in AUDIO_SUFFIXES and path.is_file() and path.stat().st_mtime < before:
                out.append(path)
    return out


def _remove_empty_dirs(root: Path) -> None:
    """Day directories emptied by the purge go too (deepest first; `root` stays)."""
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()  # fails, as wanted, on a directory that still holds something


def _open(target: Path | Backend, dry_run: bool) -> Store | None:
    """The store to purge: an open backend (SQLite or PostgreSQL, ivr/store/open.py), or a
    SQLite path (not created by a dry run)."""
    if isinstance(target, Path) and dry_run and not target.exists():
        return None
    return Store(target)


def purge(settings: RetentionSettings, target: Path | Backend, recordings: Path, *,
          now: float | None = None, dry_run: bool = False) -> PurgeReport:
    """Apply `settings` to the store `target` and the files under `recordings`; a path is
    opened and closed here, a backend stays open (its owner closes it)."""
    now = time.time() if now is None else now
    report = PurgeReport(dry_run=dry_run)
    rec_before = _cutoff(settings.recordings_days, now)
    text_before = _cutoff(settings.transcripts_days, now)
    vars_before = _cutoff(settings.variables_days, now)
    store = _open(target, dry_run)
    try:
        if rec_before is not None:
            report.recordings = _purge_recordings(store, recordings, rec_before, dry_run)
        if store is not None and not dry_run:
            if text_before is not None:
                report.transcripts = store.blank_before("transcript", text_before)
            if vars_before is not None:
                report.variables = store.blank_before("variables", vars_before)
                AcdStore(store.db).blank_context(vars_before)
        elif store is not None:
            report.transcripts = _count(store, "transcript", text_before)
            report.variables = _count(store, "variables", vars_before)
    finally:
        if store is not None and isinstance(target, Path):
            store.close()
    if report.recordings or report.transcripts or report.variables:
        log.info("retention purge%s: %d recordings, %d transcripts, %d variable sets",
                 " (dry run)" if dry_run else "", len(report.recordings), report.transcripts,
                 report.variables)
    return report


def _purge_recordings(store: Store | None, root: Path, before: float, dry_run: bool) -> list[str]:
    """Files of CDRs older than `before`, and any other old file under `root` (record-node
    messages, a recording whose CDR never arrived)."""
    gone: list[str] = []
    named = store.recordings_before(before) if store is not None else []
    for call_id, name in named:
        path = Path(name)
        inside = _inside(path, root)
        if not inside:
            # a CDR is written from bus events: never delete a file it names outside our tree
            log.warning("retention: CDR %s names a recording outside %s; not deleted", call_id,
                        root)
        if not dry_run:
            if inside:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            if store is not None:
                store.forget_recording(call_id)
        if inside:
            gone.append(str(path))
    for path in old_files(root, before):
        if str(path) in gone:
            continue
        if not dry_run:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        gone.append(str(path))
    if not dry_run and root.is_dir():
        _remove_empty_dirs(root)
    return gone


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve()) and path.suffix in AUDIO_SUFFIXES
    except (OSError, RuntimeError):
        return False


def _count(store: Store, column: str, before: float | None) -> int:
    if before is None:
        return 0
    return sum(1 for c in store.calls() if c["started_at"] is not None
               and c["started_at"] < before and c.get(column) not in (None, [], {}))
