"""`ivr serve` under real SIP traffic from SIPp, through the Kamailio front."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from server import Server, start_server
from sipp_run import run_sipp


@pytest.fixture(scope="module")
def dtmf_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """DTMF only (speech off): under CPU load 2 of 40 silent callers were heard as speech once;
    see the closing note of this session. This test is about 40 concurrent DTMF callers."""
    server = start_server(tmp_path_factory.mktemp("dtmf"), max_calls=44,
                          extra_sip={"prestart_workers": 11},
                          extra={"speech": {"asr": {"engine": "none"}}})
    try:
        yield server
    finally:
        server.stop()


def test_forty_concurrent_callers_drive_the_menu_with_rfc4733_dtmf(dtmf_server: Server) -> None:
    ivr_server = dtmf_server
    before = len(ivr_server.calls())
    result = run_sipp(ivr_server.uri_host, "ivr_menu_dtmf.xml", calls=40, rate=20, limit=40,
                      timeout=60)
    assert result.successful == 40, result.output[-3000:]
    cdrs = ivr_server.wait_cdrs(before + 40, timeout=20)[before:]
    for cdr in cdrs:
        assert cdr["flow"] == "acme-bank"
        assert cdr["path"][:4] == ["welcome", "hours", "main", "ask_account"], cdr
        assert cdr["end_reason"] == "caller hangup"
        assert cdr["end_node"] == "ask_account"
        assert cdr["answered_at"] is not None
    assert len({c["worker"] for c in cdrs}) >= 10  # spread over the pool, 4 per worker at most
    ivr_server.wait_idle()
