"""The leak scanner finds sensitive values in what the IVR wrote, in the shapes leaks take,
and does not cry wolf over ports, timestamps and fractions."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import leak_scan
import pytest


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Outside the session's temp root: the session's own leak scan must not find the values
    these tests plant."""
    with tempfile.TemporaryDirectory(prefix="leak-scan-") as d:
        yield Path(d)


def _server_root(tmp_path: Path) -> Path:
    root = tmp_path / "srv"
    (root / "var" / "prompts").mkdir(parents=True)
    (root / "ivr.yaml").write_text("sip: {}\n")
    return root


@pytest.mark.parametrize("text", [
    '{"msg": "account 40719263 accepted"}',
    '{"msg": "You entered 4 0 7 1 9 2 6 3."}',
    '{"msg": "heard four zero seven one nine two six three"}',
    '{"msg": "ref 4-0-7-1-9-2-6-3"}',
])
def test_a_typed_value_in_a_log_is_found_in_each_shape(tmp_path: Path, text: str) -> None:
    root = _server_root(tmp_path)
    (root / "serve.log").write_text(text + "\n")
    files, hits = leak_scan.scan(tmp_path, ["40719263"])
    assert files == 1 and [h.path.name for h in hits] == ["serve.log"], hits


def test_a_value_in_a_cdr_database_and_in_a_prompt_file_name_is_found(tmp_path: Path) -> None:
    root = _server_root(tmp_path)
    db = sqlite3.connect(root / "var" / "ivr.sqlite")
    db.execute("create table cdr (doc text)")
    db.execute("insert into cdr values (?)", (json.dumps({"variables": {"copy": "4826"}}),))
    db.commit()
    db.close()
    (root / "var" / "prompts" / "you-entered-4826.wav").write_bytes(b"RIFF")
    _, hits = leak_scan.scan(tmp_path, ["4826"])
    assert sorted(h.path.name for h in hits) == ["ivr.sqlite", "you-entered-4826.wav"], hits


def test_a_luhn_valid_card_run_is_found_without_being_named(tmp_path: Path) -> None:
    root = _server_root(tmp_path)
    (root / "serve.log").write_text('{"variables": {"pan": "4539578763621486"}}\n')
    _, hits = leak_scan.scan(tmp_path, [])
    assert [h.what for h in hits] == ["Luhn-valid 16-digit run"], hits


def test_masked_values_numbers_inside_longer_ones_timestamps_and_fractions_are_not_leaks(
        tmp_path: Path) -> None:
    root = _server_root(tmp_path)
    lines = [
        '{"variables": {"account": "****9263", "pin": "****"}}',
        '{"port": 14826, "ts_ms": 1796000000000, "t": 17960000000000000}',
        '{"took": 0.4539578763621486}',  # a Luhn-valid run behind a decimal point
        '{"id": "a4539578763621486b"}',  # inside an identifier
    ]
    (root / "serve.log").write_text("\n".join(lines) + "\n")
    assert leak_scan.luhn_ok("4539578763621486")
    _, hits = leak_scan.scan(tmp_path, ["40719263", "4826"])
    assert hits == []


def test_only_what_the_ivr_wrote_is_scanned(tmp_path: Path) -> None:
    """The caller typed the value: its own logs hold it and are not a leak."""
    _server_root(tmp_path)
    (tmp_path / "sipp_messages.log").write_text("INFO dtmf 40719263\n")
    in_process = leak_scan.ivr_wrote(tmp_path / "acd")
    in_process.mkdir()
    (in_process / "events.jsonl").write_text('{"account": "40719263"}\n')
    try:
        _, hits = leak_scan.scan(tmp_path, ["40719263"])
    finally:
        leak_scan.IVR_DIRS.discard(in_process)
    assert [h.path.name for h in hits] == ["events.jsonl"], hits


def test_flows_and_their_cases_are_what_people_wrote_not_leaks(tmp_path: Path) -> None:
    root = _server_root(tmp_path)
    (root / "flows").mkdir()
    (root / "flows" / "bank.test.yaml").write_text('steps: [{dtmf: "40719263"}]\n')
    (root / "serve.log").write_text('{"msg": "****9263"}\n')
    files, hits = leak_scan.scan(tmp_path, ["40719263"])
    assert (files, hits) == (1, [])


def test_a_canary_too_short_to_find_reliably_is_refused() -> None:
    with pytest.raises(ValueError, match="4\\+ digits"):
        leak_scan.typed("123")
