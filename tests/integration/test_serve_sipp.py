"""`ivr serve` under real SIP traffic from SIPp, through the Kamailio front."""

from __future__ import annotations

from server import Server
from sipp_run import sipp_result, start_sipp


def test_forty_concurrent_callers_drive_the_menu_with_rfc4733_dtmf(ivr_server: Server) -> None:
    """Speech is on, as shipped: silent DTMF callers are never heard as saying something.

    They once were (2 in 200 calls under load): SIPp advertises media ports it never binds, the
    OS handed the same numbers to workers' RTP sockets, and a worker sent one call's prompts into
    another call. Workers now keep RTP inside `sip.rtp_ports` (10000-20000), away from the
    ephemeral range where SIPp's (and most softphones') ports live.
    """
    before = len(ivr_server.calls())
    sipp = start_sipp(ivr_server.uri_host, "ivr_menu_dtmf.xml", calls=40, rate=20, limit=40,
                      timeout=60)
    try:
        ivr_server.wait(lambda: ivr_server.health()["calls"] >= 30, 20, "30 calls up")
        media = ivr_server.worker_media_ports()
    finally:
        out, _ = sipp.communicate(timeout=75)
    result = sipp_result(sipp.returncode, out)
    assert result.successful == 40, result.output[-3000:]
    assert len(media) >= 30 and all(10000 <= p < 20000 for p in media), sorted(media)
    assert ivr_server.health()["speech"]["ready"]
    cdrs = ivr_server.wait_cdrs(before + 40, timeout=20)[before:]
    for cdr in cdrs:
        assert cdr["flow"] == "acme-bank"
        assert cdr["path"][:4] == ["welcome", "hours", "main", "ask_account"], cdr
        assert cdr["end_reason"] == "caller hangup"
        assert cdr["end_node"] == "ask_account"
        assert cdr["answered_at"] is not None
    assert len({c["worker"] for c in cdrs}) >= 10  # spread over the pool, 4 per worker at most
    ivr_server.wait_idle()
