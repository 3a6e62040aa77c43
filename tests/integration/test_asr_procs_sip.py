"""Decoder processes under a real `ivr serve` (speech.asr.engine: pocketsphinx): each worker
decodes in child processes of its own; a spoken call is recognised there, a killed child costs
at most one nomatch and the next call is recognised; `ivr serve`'s stop leaves no child behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from server import REPO, Server, ivr_call, start_server

PROCESSES = 2


@pytest.fixture(scope="module")
def ps_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    defaults = yaml.safe_load((REPO / "ivr" / "defaults.yaml").read_text())
    server = start_server(tmp_path_factory.mktemp("procs"), max_calls=8, extra={
        "speech": {**defaults["speech"], "asr": {"engine": "pocketsphinx",
                                                 "decoder_processes": PROCESSES}},
    }, timeout=90)
    try:
        yield server
    finally:
        server.stop()


def decoders() -> dict[int, int]:
    """Live decoder processes on this machine: pid -> parent pid."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if b"ivr.speech.asr.decoder_proc" in cmd and stat[0] != "Z":
            out[int(d.name)] = int(stat[1])
    return out


def agent_call(server: Server) -> dict[str, Any]:
    before = len(server.calls())
    code, _, err = ivr_call(server, "sip:1000@" + server.uri_host, "--voice", "espeak-ng:en-us",
                            "--say", "agent", call_timeout=40)
    assert code == 0, err[-2000:]
    (cdr,) = server.wait_cdrs(before + 1, timeout=40)[before:]
    return cdr


def test_calls_are_decoded_in_the_workers_children_and_survive_a_killed_one(
        ps_server: Server) -> None:
    health = ps_server.health()
    assert health["speech"]["ready"], health["speech"]
    assert f"in {PROCESSES} decoder processes" in health["speech"]["message"]
    workers = {int(w["pid"]) for w in health["workers"] if w["alive"] and w.get("pid")}
    assert workers
    cdr = agent_call(ps_server)
    assert "agent" in cdr["path"], (cdr["path"], cdr["transcript"])
    children = decoders()
    mine = {pid: parent for pid, parent in children.items() if parent in workers}
    assert mine, children  # every decode ran in a worker's child, not in the worker
    assert all(list(mine.values()).count(w) <= PROCESSES for w in workers)
    for pid in mine:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while set(mine) & set(decoders()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a zombie main thread shows first; the rest of the process exits after
    # a child found dead is replaced before the decode: the next calls are recognised
    for _ in range(2):
        cdr = agent_call(ps_server)
        assert "agent" in cdr["path"], (cdr["path"], cdr["transcript"])
    assert all(w["restarts"] == 0 for w in ps_server.health()["workers"])  # no worker died
    ps_server.wait_idle()


def test_stopping_serve_ends_every_decoder_process(ps_server: Server) -> None:
    workers = {int(w["pid"]) for w in ps_server.health()["workers"] if w["alive"]}
    children = {pid for pid, parent in decoders().items() if parent in workers}
    assert children
    ps_server.proc.send_signal(signal.SIGTERM)  # not stop(): its killpg would hide a leak
    ps_server.proc.wait(30)
    deadline = time.monotonic() + 10
    while children & set(decoders()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not children & set(decoders())  # not even reparented to init
