"""`ivr report` from a CDR store with calls and ACD log rows, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from stores import StoreSite

from ivr.acd.report import build_report, queue_figures
from ivr.acd.store import AcdStore
from ivr.store.db import Store

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _call(store: Store, call_id: str, flow: str, at: float, end: str, queue: str | None = None) -> None:
    store.record_event({"call_id": call_id, "seq": 1, "kind": "call.start", "at": at, "flow": flow,
                        "caller": "+1555", "worker": "1"})
    store.record_event({"call_id": call_id, "seq": 2, "kind": "call.end", "at": at + 60,
                        "end": {"kind": end, "queue": queue}})


def test_report_containment_transfers_abandonment_sl_asa(tmp_path: Path, store_site: StoreSite,
                                                         run_cli: Callable[..., Any]) -> None:
    store, acd = Store(store_site.backend()), AcdStore(store_site.backend())
    _call(store, "c1", "bank", T0, "hangup")
    _call(store, "c2", "bank", T0 + 1, "hangup")
    _call(store, "c3", "bank", T0 + 2, "transfer")
    _call(store, "c4", "bank", T0 + 3, "queue", "general")
    _call(store, "c5", "bank", T0 + 4, "queue", "general")
    _call(store, "c6", "demo", T0 + 5, "queue", "general")
    _call(store, "old", "demo", T0 - 86400 * 30, "hangup")
    acd.log("c4", queue="general", flow="bank", enqueued_at=T0 + 10, answered_at=T0 + 20,
            outcome="answered", agent="alice")
    acd.log("c5", queue="general", flow="bank", enqueued_at=T0 + 10, answered_at=T0 + 50,
            outcome="answered", agent="bob")
    acd.log("c6", queue="general", flow="demo", enqueued_at=T0 + 10, outcome="abandoned")
    store.close()
    acd.close()
    (tmp_path / "ivr.yaml").write_text(yaml.safe_dump({"store": store_site.config()}))

    r = run_cli("report", "--since", "2026-01-01T00:00:00+00:00", "--json")
    assert r.code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["total"]["calls"] == 6
    bank = doc["flows"]["bank"]
    assert (bank["calls"], bank["contained"], bank["transfers"], bank["to_queue"]) == (5, 2, 1, 2)
    assert bank["containment"] == 0.4
    general = doc["queues"]["general"]
    assert (general["queued"], general["answered"], general["abandoned"]) == (3, 2, 1)
    assert general["abandonment"] == round(1 / 3, 4)
    assert general["service_level"] == round(1 / 3, 4)  # only c4 within 20 s
    assert general["asa_s"] == 25.0
    assert doc["flows"]["demo"]["queue"]["abandoned"] == 1

    r = run_cli("report")
    assert r.code == 0, r.output
    assert "general" in r.stdout and "bank" in r.stdout
    assert run_cli("report", "--since", "yesterday-ish").code == 2


def test_wallboard_figures_per_queue_with_its_own_threshold(store_site: StoreSite) -> None:
    db = store_site.backend()
    acd = AcdStore(db)
    acd.log("a", queue="general", enqueued_at=T0, answered_at=T0 + 15, outcome="answered")
    acd.log("b", queue="general", enqueued_at=T0, answered_at=T0 + 40, outcome="answered")
    acd.log("c", queue="vip", enqueued_at=T0, outcome="abandoned", callback=True)
    acd.log("old", queue="vip", enqueued_at=T0 - 86400, outcome="abandoned")
    figures = queue_figures(db, T0, {"general": 10.0, "empty": 20.0})
    db.close()
    assert figures["general"]["service_level"] == 0.0  # neither within general's 10 s
    assert figures["general"]["asa_s"] == 27.5
    assert (figures["vip"]["queued"], figures["vip"]["abandoned"], figures["vip"]["callbacks"]) \
        == (1, 1, 1)
    assert figures["empty"]["queued"] == 0


def test_a_report_of_a_store_no_one_wrote_yet_is_empty(store_site: StoreSite) -> None:
    if store_site.pg is None:  # no file yet: read as empty, and not created by the read
        doc = build_report(store_site.path)
        assert not store_site.path.exists()
    else:  # an empty database: no tables yet
        db = store_site.backend()
        try:
            doc = build_report(db)
        finally:
            db.close()
    assert doc["total"]["calls"] == 0 and doc["queues"] == {}
