"""Integration fixtures: a real `ivr serve` per module (front, workers, broker, store)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from server import Server, start_server


@pytest.fixture(scope="module")
def ivr_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("serve"), max_calls=44,
                          extra_sip={"prestart_workers": 11})
    try:
        yield server
    finally:
        server.stop()
