"""Logs of a real `ivr serve` with four workers: a broken flow edit is one error line per problem
(the supervisor's, not one per worker), and log levels change at run time in every worker
(SIGUSR1/SIGUSR2, `ivr log-level`, PUT /log-level)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server import IVR_BIN, Server, start_server

from ivr.config import load_config
from ivr.flow.validate import load_flows


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("logs"), max_calls=16, calls_per_worker=4)
    try:
        yield srv
    finally:
        srv.stop()


def lines_since(server: Server, offset: int) -> list[dict[str, Any]]:
    """The JSON log lines written after byte `offset` of serve.log (pjsip's own lines skipped)."""
    out = []
    with server.log_path.open("rb") as f:
        f.seek(offset)
        for raw in f.read().decode(errors="replace").splitlines():
            if raw.startswith("{"):
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    continue
    return out


def worker_ids(server: Server) -> set[str]:
    return {w["id"] for w in server.health()["workers"] if w["alive"]}


def reloaded(server: Server, offset: int) -> list[dict[str, Any]]:
    """Wait until the supervisor and every worker have reloaded the flows since `offset`."""
    workers = worker_ids(server)

    def done() -> list[dict[str, Any]] | None:
        lines = lines_since(server, offset)
        ready = any(r["logger"] == "ivr.serve" and r["msg"].startswith("flows ready")
                    for r in lines)
        loaded = {r["worker"] for r in lines if r["msg"].startswith("flows loaded")}
        return lines if ready and loaded >= workers else None
    return list(server.wait(done, 20, "the supervisor and every worker to reload"))


def levels(server: Server) -> dict[str, Any]:
    status, doc = server.get("/log-level")
    assert status == 200, doc
    return dict(doc)


def test_a_broken_flow_edit_is_one_error_line_per_problem(server: Server) -> None:
    assert len(worker_ids(server)) == 4
    flow = server.flows / "quick.yaml"
    good = flow.read_text()
    broken = good.replace('{dtmf: "1", goto: one}', '{dtmf: "1", goto: elsewhere}')
    assert broken != good
    problems = [str(p) for p in load_flows([_write(server.root / "check" / "quick.yaml", broken)],
                                           load_config(server.root / "ivr.yaml")).errors]
    problems = [p.split(": ", 1)[1] for p in problems]  # the message, without the path
    assert any("unknown node 'elsewhere'" in p for p in problems), problems
    offset = server.log_path.stat().st_size
    try:
        _replace(flow, broken)  # at once: the watcher must not see a half-written file
        lines = reloaded(server, offset)
        errors = [r for r in lines if r["level"] == "error"]
        for problem in problems:
            said = [r for r in errors if problem in r["msg"]]
            assert len(said) == 1, (problem, said)
            assert said[0]["logger"] == "ivr.serve" and said[0]["worker"] == "-"
        assert len(errors) == len(problems), errors

        # more verbose (SIGUSR1 to the supervisor): the workers follow, and their own view of the
        # problems (debug) shows up once per worker; the error line is still the supervisor's
        os.kill(server.proc.pid, signal.SIGUSR1)
        server.wait(lambda: levels(server)["levels"]["root"] == "DEBUG"
                    and all(levels(server)["workers"].values()), 10, "root DEBUG in every worker")
        offset = server.log_path.stat().st_size
        os.kill(server.proc.pid, signal.SIGHUP)
        lines = reloaded(server, offset)
        debug = [r for r in lines if r["level"] == "debug" and "elsewhere" in r["msg"]
                 and r["logger"] == "ivr.worker"]
        assert {r["worker"] for r in debug} == worker_ids(server)
        assert len([r for r in lines if r["level"] == "error" and "elsewhere" in r["msg"]]) == 1
    finally:
        _replace(flow, good)
        os.kill(server.proc.pid, signal.SIGUSR2)  # back to INFO
        server.wait(lambda: levels(server)["levels"]["root"] == "INFO"
                    and all(levels(server)["workers"].values()), 10, "root INFO again")


def _replace(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def ivr_log_level(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(IVR_BIN), "log-level", *args, "--server", f"http://127.0.0.1:{server.http_port}",
         "--token", server.token], capture_output=True, text=True, timeout=30, check=False)


def test_ivr_log_level_sets_a_logger_in_every_worker(server: Server) -> None:
    """Each worker says at INFO (logger ivr.worker) which levels it applied: silent once
    ivr.worker is at WARNING, and once each when it is back at INFO."""
    def applied(offset: int) -> list[str]:
        return sorted(r["worker"] for r in lines_since(server, offset)
                      if r["msg"].startswith("log levels now"))

    offset = server.log_path.stat().st_size
    done = ivr_log_level(server, "warning", "--logger", "ivr.worker")
    assert done.returncode == 0, done.stderr
    assert "ivr.worker: WARNING" in done.stdout.splitlines() and not done.stderr
    doc = levels(server)
    assert doc["levels"]["ivr.worker"] == "WARNING" and len(doc["workers"]) == 4
    assert all(doc["workers"].values())  # the PUT returned once every worker applied it
    assert applied(offset) == []
    offset = server.log_path.stat().st_size
    done = ivr_log_level(server, "INFO", "--logger", "ivr.worker")
    assert done.returncode == 0, done.stderr
    assert applied(offset) == sorted(worker_ids(server))
    shown = ivr_log_level(server)
    assert shown.returncode == 0 and "root: INFO" in shown.stdout.splitlines(), shown.stdout


def test_bad_levels_and_loggers_are_refused_with_a_reason(server: Server) -> None:
    done = ivr_log_level(server, "LOUD")
    assert done.returncode == 2 and "LOUD" in done.stderr
    status, doc = server.request("PUT", "/log-level", {"level": "LOUD"})
    assert status == 400 and "is not one of DEBUG, INFO, WARNING, ERROR" in doc["error"]
    status, doc = server.request("PUT", "/log-level", {"level": "DEBUG", "logger": "a b"})
    assert status == 400 and "is not dotted words" in doc["error"]
    status, doc = server.request("PUT", "/log-level", {"logger": "ivr"})
    assert status == 400 and "level" in doc["error"]
    status, _ = server.request("PUT", "/log-level", {"level": "DEBUG"}, token=None)
    assert status == 401
    assert levels(server)["levels"]["root"] == "INFO"  # nothing changed
