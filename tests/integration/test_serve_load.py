"""Many calls: nothing leaks; flows reload under load with zero dropped calls."""

from __future__ import annotations

import time
from pathlib import Path

from scenarios import bye, call_setup, pause, scenario
from server import Server
from sipp_run import run_sipp, start_sipp

QUICK = "3000"


def _scenario(tmp_path: Path, name: str, hold_ms: int) -> str:
    path = tmp_path / f"{name}.xml"
    path.write_text(scenario(name, call_setup(), pause(hold_ms), bye()))
    return str(path)


def test_200_calls_leave_no_call_player_task_or_memory_behind(ivr_server: Server,
                                                              tmp_path: Path) -> None:
    short = _scenario(tmp_path, "short", 300)
    warm = run_sipp(ivr_server.uri_host, short, calls=22, rate=20, limit=2, service=QUICK)
    assert warm.successful == 22, warm.output[-2000:]
    ivr_server.wait_idle()
    rss_before = {w["id"]: w["rss_kb"] for w in ivr_server.health()["workers"] if w["alive"]}
    before = len(ivr_server.calls())

    r = run_sipp(ivr_server.uri_host, short, calls=200, rate=20, limit=2, service=QUICK, timeout=120)
    assert r.successful == 200, r.output[-2000:]
    cdrs = ivr_server.wait_cdrs(before + 200, timeout=30)[before:]
    reasons = {c["end_reason"] for c in cdrs}
    assert reasons == {"caller hangup"}, [c for c in cdrs if c["end_reason"] != "caller hangup"][:3]

    health = ivr_server.wait_idle()
    workers = [w for w in health["workers"] if w["alive"] and w["id"] in rss_before]
    assert sum(w["created"].get("call", 0) for w in workers) >= 200
    for w in workers:
        assert w["media"] == {} and w["tasks"] == 0
        growth = w["rss_kb"] - rss_before[w["id"]]
        assert growth < 4096, f"worker {w['id']} grew {growth} KiB over ~20 calls"


def test_flows_reload_under_load_with_zero_dropped_calls(ivr_server: Server, tmp_path: Path) -> None:
    quick = ivr_server.flows / "quick.yaml"
    original = quick.read_text()
    old_version = ivr_server.health()["flows"]["quick"]
    before = len(ivr_server.calls())
    long = _scenario(tmp_path, "long", 6000)
    sipp = start_sipp(ivr_server.uri_host, long, service=QUICK, calls=20, rate=40, timeout=40)
    try:
        ivr_server.wait(lambda: ivr_server.health()["calls"] >= 20, 10, "20 live calls")
        # a broken edit first: the last good version keeps serving, with file:line:col logged
        quick.write_text(original.replace("  hello:\n", "  hello: [\n"))
        ivr_server.wait(lambda: f"{quick}:" in ivr_server.log_tail(20000), 10, "the problem logged")
        # then a good edit while the same 20 calls are still up
        quick.write_text(original.replace('say: "Hello."', 'say: "Hello again."'))
        new_version = ivr_server.wait(
            lambda: (v := ivr_server.health()["flows"].get("quick")) != old_version and v, 10,
            "the new flow version")
        assert ivr_server.health()["calls"] >= 20  # nobody was dropped by the reloads
        out, _ = sipp.communicate(timeout=60)
    finally:
        if sipp.poll() is None:
            sipp.kill()
        quick.write_text(original)
    assert sipp.returncode == 0 and "Successful call" in out, out[-2000:]
    cdrs = ivr_server.wait_cdrs(before + 20, timeout=30)[before:]
    assert len(cdrs) == 20
    assert all(c["end_reason"] == "caller hangup" and c["flow_version"] == old_version for c in cdrs)
    assert all(w["flows"].get("quick") == new_version
               for w in ivr_server.health()["workers"] if w["alive"])
    # the next call gets the edited flow
    after = len(ivr_server.calls())
    ivr_server.wait(lambda: ivr_server.health()["flows"].get("quick") != new_version, 10,
                    "the restored version")
    r = run_sipp(ivr_server.uri_host, _scenario(tmp_path, "next", 300), service=QUICK)
    assert r.successful == 1
    (cdr,) = ivr_server.wait_cdrs(after + 1)[after:]
    assert cdr["flow_version"] == ivr_server.health()["flows"]["quick"]
    time.sleep(0.1)
    ivr_server.wait_idle()
