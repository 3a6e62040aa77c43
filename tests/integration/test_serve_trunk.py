"""`ivr serve` with a registering trunk: the front registers with the password from the
environment, and the carrier's calls to the registered contact run the flow of the dialled number
on a real worker."""

from __future__ import annotations

import secrets
import socket
import subprocess
from pathlib import Path

import pytest
from scenarios import registrar_scenario
from server import start_server
from sipp_run import run_sipp

pytestmark = pytest.mark.integration

TRUNK_SRC = "127.0.0.2"


def free_udp(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def test_serve_registers_the_trunk_and_runs_its_calls(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    password = "pw:" + secrets.token_hex(8)
    monkeypatch.setenv("IVR_SERVE_TRUNK_PW", password)  # inherited by `ivr serve`
    rport = free_udp(TRUNK_SRC)
    root = tmp_path / "srv"
    root.mkdir()
    # the front's port is chosen by start_server: accept the registration for any contact port
    scen = tmp_path / "registrar.xml"
    scen.write_text(registrar_scenario("2001", password, "carrier@127.0.0.1:[0-9]+", 600, rounds=1))
    registrar = subprocess.Popen(
        ["sipp", "-sf", str(scen), "-i", TRUNK_SRC, "-p", str(rport), "-m", "1", "-nostdin",
         "-timeout", "60s", "-timeout_error", "-trace_msg", "-message_file", str(tmp_path / "reg.msg")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    server = None
    try:
        server = start_server(root, max_calls=4, extra_sip={"prestart_workers": 1},
                              extra={"speech": {"asr": {"engine": "none"}}},
                              trunks=[{"name": "carrier", "registrar": f"sip:{TRUNK_SRC}:{rport}",
                                       "username": "2001", "password_env": "IVR_SERVE_TRUNK_PW"}])
        _, err = registrar.communicate(timeout=60)
        assert registrar.returncode == 0, err[-2000:]
        server.wait(lambda: server.health().get("trunks") == {"carrier": "registered"}, 5,
                    "the trunk to show as registered in /health")

        # the carrier calls the registered contact; To carries 3000, routed to the quick flow
        result = run_sipp(server.uri_host, "uac_trunk_did.xml", service="carrier", local_ip=TRUNK_SRC,
                          timeout=30, extra=["-key", "did", "3000"])
        assert result.successful == 1, result.output[-3000:]
        (cdr,) = server.wait_cdrs(1)
        assert cdr["flow"] == "quick", cdr

        for log in (server.log_path, root / "var" / "front" / "kamailio.log",
                    root / "var" / "front" / "kamailio.cfg", root / "ivr.yaml"):
            assert password not in log.read_text(errors="replace"), log
    finally:
        if registrar.poll() is None:
            registrar.kill()
            registrar.wait(5)
        if server is not None:
            server.stop()
