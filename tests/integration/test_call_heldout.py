"""A held-out check of `ivr call`: a flow written here from the flow-language doc alone, served
with the defaults from one directory and called from another that has no flows at all."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server import IVR_BIN, Server, start_server

GARDEN = """\
flow: garden
start: welcome
nodes:
  welcome:
    say: "Welcome to the garden center."
    next: menu
  menu:
    menu:
      prompt: "For opening hours press 1. For directions press 2."
      options:
        - {dtmf: "1", goto: hours}
        - {dtmf: "2", goto: directions}
    on_fail: bye
  hours:
    say: "We are open from nine to five, Monday to Saturday."
    next: bye
  directions:
    say: "We are next to the railway station."
    next: bye
  bye:
    say: "Thank you for calling. Goodbye."
    hangup: true
"""
GARDEN_SCRIPT = """\
flow: garden
cases:
  - name: hours
    steps:
      - expect_prompt: "garden"
      - dtmf: "1"
      - expect_prompt: "monday"
"""


@pytest.fixture(scope="module")
def garden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("garden")
    (root / "flows").mkdir()
    (root / "flows" / "garden.yaml").write_text(GARDEN)
    server = start_server(root, max_calls=4, extra={"routes": {"7000": "garden",
                                                               "default": "acme-bank"}})
    try:
        yield server
    finally:
        server.stop()


def _call_from(cwd: Path, server: Server, *args: str) -> tuple[int, dict[str, Any], str]:
    """`ivr call ... --json` run in `cwd`, with no --flows and no config: the defaults."""
    cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([str(IVR_BIN), "call", f"sip:7000@{server.uri_host}", *args, "--json",
                           "--timeout", "40"], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "XDG_CACHE_HOME": str(cwd)})
    try:
        return proc.returncode, json.loads(proc.stdout), proc.stderr
    except ValueError:
        raise AssertionError(f"no JSON: {proc.stdout[-500:]} {proc.stderr[-2000:]}") from None


def _texts(doc: dict[str, Any]) -> str:
    return " | ".join(str(p["text"]).lower() for p in doc["prompts"])


def test_a_flow_the_caller_has_never_seen_is_heard_by_asr(garden: Server, tmp_path: Path) -> None:
    code, doc, err = _call_from(tmp_path / "elsewhere", garden, "--dtmf", "1")
    assert code == 0, err[-2000:]
    assert "no flows found" in doc["recogniser"] and "whisper" in doc["recogniser"], doc
    prompts = doc["prompts"]
    assert len(prompts) >= 4 and all(p["heard_by"] == "asr" for p in prompts), prompts
    assert all(0 < p["confidence"] <= 1 and p["end_ms"] > p["at_ms"] for p in prompts), prompts
    heard = _texts(doc)
    said = ["garden", "press", "monday", "saturday", "goodbye"]  # the hours branch, in order
    at = [heard.find(word) for word in said]
    assert -1 not in at and at == sorted(at), heard
    assert "railway" not in heard, heard
    menu_end = max(p["end_ms"] for p in prompts if "press" in p["text"].lower())
    assert doc["sent"][0]["at_ms"] >= menu_end - 500, (doc["sent"], prompts)
    assert doc["end"]["by"] == "remote" and doc["end"]["cause"].startswith("200"), doc["end"]
    assert doc["nothing_recognised"] is False
    garden.wait_idle()


def test_pocketsphinx_alone_still_reports_every_utterance(garden: Server, tmp_path: Path) -> None:
    code, doc, err = _call_from(tmp_path / "elsewhere", garden, "--dtmf", "2", "--asr",
                                "pocketsphinx")
    assert code == 0, err[-2000:]
    assert "pocketsphinx" in doc["recogniser"], doc
    prompts = doc["prompts"]
    assert len(prompts) >= 4 and all(p["heard_by"] == "asr" and p["text"] for p in prompts), prompts
    assert doc["end"]["by"] == "remote", doc["end"]
    garden.wait_idle()


def test_from_the_serving_directory_the_catalogue_names_the_prompts(garden: Server) -> None:
    code, doc, err = _call_from(garden.root, garden, "--dtmf", "2", "--flows", str(garden.flows))
    assert code == 0, err[-2000:]
    heard = [(p["heard_by"], p["text"]) for p in doc["prompts"]]
    assert heard == [("catalogue", "Welcome to the garden center."),
                     ("catalogue", "For opening hours press 1. For directions press 2."),
                     ("catalogue", "We are next to the railway station."),
                     ("catalogue", "Thank you for calling. Goodbye.")], heard
    garden.wait_idle()


def test_a_script_passes_by_asr_and_fails_when_nothing_is_recognised(garden: Server,
                                                                      tmp_path: Path) -> None:
    script = tmp_path / "garden.test.yaml"
    script.write_text(GARDEN_SCRIPT)
    code, doc, err = _call_from(tmp_path / "elsewhere", garden, "--script", str(script))
    assert code == 0 and doc["passed"] is True, (doc, err[-2000:])
    code, doc, _ = _call_from(tmp_path / "elsewhere", garden, "--script", str(script),
                              "--asr", "none")
    assert code == 1 and doc["passed"] is False and doc["nothing_recognised"] is True, doc
    assert doc["speech_ms"] > 1000 and doc["unrecognised"], doc
    assert "nothing in it was recognised" in doc["failures"][0], doc["failures"]
    garden.wait_idle()
