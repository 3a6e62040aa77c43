"""Fixtures for every test layer. Helpers live in tests/helpers.py (unit),
tests/integration/server.py (a real `ivr serve`) and tests/unit/asr_audio.py (speech audio),
importable by name from any test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
for _path in (HERE, HERE / "integration", HERE / "unit"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from helpers import config, config_file, harness, run_cli  # noqa: E402, F401 - fixtures
from server import Server, start_server  # noqa: E402
from stores import store_site  # noqa: E402, F401 - fixture: both store backends


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A real PostgreSQL (tests/pg.py), started once for the session when a test asks."""
    from pg import PgServer

    server = PgServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def ivr_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real `ivr serve` (front, 11 warm workers, broker, store) for one test module."""
    server = start_server(tmp_path_factory.mktemp("serve"), max_calls=44,
                          extra_sip={"prestart_workers": 11})
    try:
        yield server
    finally:
        server.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The leak scan (tests/leak_scan.py) over everything the IVR wrote in this run: once any
    integration test ran, a sensitive value found anywhere fails the run."""
    import leak_scan

    ran = {Path(str(item.path)).parent.name for item in session.items}
    if "integration" not in ran or session.config.option.collectonly:
        return
    root = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    files, hits = leak_scan.scan(root)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"leak scan: {files} files the IVR wrote under {root}, "
             f"{len(leak_scan.TYPED)} typed sensitive values and card-like runs: "
             f"{len(hits)} found"] + [f"  LEAK {hit}" for hit in hits[:50]]
    if reporter is not None:
        reporter.write("\n")
        for line in lines:
            reporter.write_line(line, red=bool(hits))
    if hits:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
