"""`store:` config: SQLite by default, PostgreSQL with `url`, its password from the environment or
a 0600 file (never the URL); the factory opens what the config names; the dialect's SQL."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ivr.acd.service import AcdService
from ivr.config import EngineConfig, StoreSettings
from ivr.errors import ConfigError
from ivr.store.backend import StoreError
from ivr.store.open import open_backend, store_password
from ivr.store.postgres import _sql, redact
from ivr.store.sqlite import SqliteBackend


def test_without_a_url_the_store_is_the_sqlite_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = open_backend(StoreSettings())
    try:
        assert isinstance(db, SqliteBackend) and db.label == str(tmp_path / "var" / "ivr.sqlite")
    finally:
        db.close()
    assert (tmp_path / "var" / "ivr.sqlite").exists()
    ro = open_backend(StoreSettings(path="elsewhere.sqlite"), read_only=True)
    ro.close()
    assert not (tmp_path / "elsewhere.sqlite").exists()  # a report never creates the file


@pytest.mark.parametrize(("fields", "message"), [
    ({"url": "mysql://ivr@db/ivr"}, "expected postgresql://"),
    ({"url": "postgresql://ivr:hunter2@db/ivr"}, "no password in the URL"),
    ({"url": "postgresql://ivr@db/ivr", "password_env": "A", "password_file": "/x"}, "not both"),
    ({"password_env": "IVR_DB_PASSWORD"}, "apply to store.url"),
])
def test_bad_store_settings_are_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        StoreSettings(**fields)  # type: ignore[arg-type]


def test_the_password_comes_from_the_environment_or_a_private_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://ivr@127.0.0.1:5432/ivr"
    assert store_password(StoreSettings(url=url)) is None
    monkeypatch.setenv("IVR_DB_PASSWORD", "s3cret")
    assert store_password(StoreSettings(url=url, password_env="IVR_DB_PASSWORD")) == "s3cret"
    monkeypatch.delenv("IVR_DB_PASSWORD")
    with pytest.raises(ConfigError, match="IVR_DB_PASSWORD"):
        store_password(StoreSettings(url=url, password_env="IVR_DB_PASSWORD"))
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    os.chmod(secret, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        store_password(StoreSettings(url=url, password_file=secret))
    os.chmod(secret, 0o600)
    assert store_password(StoreSettings(url=url, password_file=secret)) == "from-file"


def test_postgresql_sql_and_logs() -> None:
    assert _sql("SELECT strftime('%s') WHERE a = ? AND b = ?") == \
        "SELECT strftime('%%s') WHERE a = %s AND b = %s"
    assert redact("postgresql://ivr:pw@10.0.0.9:5433/site") == "postgresql://ivr@10.0.0.9:5433/site"
    assert "pw" not in redact("host=db user=ivr password=pw dbname=ivr")


def test_the_acd_outlives_a_store_outage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """A write that fails past store.retry loses that message, not the ACD: the next one works."""
    config = EngineConfig.model_validate({"queues": {"general": {}},
                                          "agents": {"alice": {"queues": ["general"]}}})
    svc = AcdService.create(config, tmp_path / "ivr.sqlite", tmp_path / "outbox.sqlite", "mqtt://x")
    try:
        svc.agent_action("alice", "login")
        healthy = svc.store.db.transaction

        def down(*args: Any, **kw: Any) -> Any:
            raise StoreError("store postgresql://ivr@db:5432/ivr: connection refused")

        monkeypatch.setattr(svc.store.db, "transaction", down)
        request = {"op": "enqueue", "call_id": "c1", "queue": "general", "key": "k1",
                   "reply_to": "ivr/acd/reply/w1"}
        svc.on_message("ivr/acd/request", json.dumps(request).encode())  # does not raise
        assert "store unavailable" in caplog.text
        monkeypatch.setattr(svc.store.db, "transaction", healthy)
        svc.on_message("ivr/acd/request", json.dumps({**request, "call_id": "c2",
                                                      "key": "k2"}).encode())
        assert "c2" in svc.engine.waiting and svc.store.queue_record("c2") is not None
    finally:
        svc.close()
