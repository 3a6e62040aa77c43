"""PostgreSQL going away under a writing store: writes wait for it (reconnecting) and none is
lost; past `store.retry` a write fails with a clear error instead of hanging."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from ivr.acd.store import AcdStore
from ivr.store.backend import StoreError
from ivr.store.db import Store
from ivr.store.postgres import PostgresBackend


@pytest.fixture
def pg(pg_server: Any) -> Any:
    return pg_server


def _event(call_id: str, seq: int) -> dict[str, Any]:
    return {"call_id": call_id, "seq": seq, "kind": "call.start", "at": 1000.0 + seq,
            "flow": "bank", "worker": "w1"}


def test_a_server_restart_between_two_writes_loses_neither(pg: Any) -> None:
    db = pg.new_database()
    store = Store(PostgresBackend(pg.url(db), password=pg.password, retry_s=30))
    acd = AcdStore(PostgresBackend(pg.url(db), password=pg.password, retry_s=30))
    assert store.record_event(_event("before", 1))
    acd.log("before", queue="general", enqueued_at=1.0)
    pg.restart()  # every connection is cut; the stores find out on their next write
    assert store.record_event(_event("after", 1))
    acd.log("after", queue="general", enqueued_at=2.0)
    assert [c["call_id"] for c in store.calls()] == ["before", "after"]
    assert acd.queue_record("before") is not None and acd.queue_record("after") is not None
    store.close()
    acd.close()


def test_writes_during_a_restart_wait_for_the_server_and_all_land(
        pg: Any, caplog: pytest.LogCaptureFixture) -> None:
    db = pg.new_database()
    store = Store(PostgresBackend(pg.url(db), password=pg.password, retry_s=30))
    down = threading.Event()

    def bounce() -> None:
        pg.stop()
        down.set()
        time.sleep(1.5)  # long enough that writes meet a dead server, not just a cut link
        pg.start()

    t = threading.Thread(target=bounce)
    t.start()
    try:
        written = 0
        for seq in range(1, 41):
            if seq == 10:
                assert down.wait(30)
            store.record_event(_event("c1", seq))
            written += 1
            time.sleep(0.02)
    finally:
        t.join(60)
    assert written == 40
    assert any("unavailable" in r.getMessage() for r in caplog.records)  # it did wait
    rows = store.db.rows("SELECT seq FROM events WHERE call_id = ? ORDER BY seq", ("c1",))
    assert [r["seq"] for r in rows] == list(range(1, 41))
    store.close()


def test_past_the_retry_bound_a_write_fails_clearly(pg: Any) -> None:
    db = pg.new_database()
    store = Store(PostgresBackend(pg.url(db), password=pg.password, retry_s=1.0))
    pg.stop()
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreError, match=r"postgresql://ivr@127\.0\.0\.1"):
            store.record_event(_event("c1", 1))
        assert time.monotonic() - t0 < 10
    finally:
        pg.start()
    assert store.record_event(_event("c1", 1))  # and it works again once the server is back
    store.close()


def test_a_wrong_password_fails_at_open_without_the_password_in_the_message(pg: Any) -> None:
    with pytest.raises(StoreError) as caught:
        PostgresBackend(pg.url(), password="not-the-password", retry_s=1.0)
    assert "not-the-password" not in str(caught.value)
    assert "password authentication failed" in str(caught.value)
