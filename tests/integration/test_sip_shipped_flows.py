"""The shipped flows' whole suite both ways: `ivr test flows/` and `ivr test --sip flows/`.

Every case in flows/*.test.yaml runs as a real call against a test server `ivr test --sip`
starts (front, workers, recogniser, store), with the case's stubs in its X-IVR-Test header. A
case that passes offline and fails over SIP fails here, and so does coverage below offline's.
On failure the server's config, log and each call's log, report and audio are kept under the
test's tmp_path (`--server-dir`) for a look.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server import ivr_test

PARALLEL = 6
"""Calls at a time: the suite's calls are mostly the IVR talking (~25 min of audio in all), so
they overlap well even on two cores; the caller hears each call after it ends."""
SUITE_TIMEOUT = 12 * 60
"""Bound for the whole SIP run (measured ~4-6 min on two busy cores)."""


def _failed(report: dict[str, Any]) -> list[str]:
    return [f"{c['flow']}: {c['name']}: {c.get('message')}" for c in report["cases"]
            if not c["passed"]]


def test_every_shipped_case_passes_over_sip_as_offline_with_the_same_coverage(
        tmp_path: Path) -> None:
    offline = ivr_test("flows/", timeout=120)
    assert offline["cases"] and not _failed(offline), _failed(offline)
    assert not offline["problems"], offline["problems"]

    server_dir = tmp_path / "server"
    sip = ivr_test("--sip", "--parallel", str(PARALLEL), "--server-dir", str(server_dir),
                    "flows/", timeout=SUITE_TIMEOUT)
    assert not sip["problems"], sip["problems"]
    names = sorted((c["flow"], c["name"]) for c in sip["cases"])
    assert names == sorted((c["flow"], c["name"]) for c in offline["cases"])
    assert not _failed(sip), "\n".join(_failed(sip)) + f"\n(calls kept in {server_dir})"
    assert sip["coverage"] == offline["coverage"]
    assert all(cov["unreached"] == [] for cov in sip["coverage"].values()), sip["coverage"]
