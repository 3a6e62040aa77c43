"""Recorded prompt packs and voice fallback over real SIP: `ivr serve` plays a pack's studio
recordings (Allison's, from the Asterisk sound pack) instead of TTS, says a say-as value by
concatenating the pack's fragments, and when the language's TTS command fails falls back to
espeak-ng; the call goes on to its end either way. `ivr call` (given the same config) names the
prompts as they played."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from real_voice import SOUNDS_DIRS
from server import REPO, Server, ivr_call, start_server

from ivr.speech.audio import read_wav
from ivr.speech.packs import prompt_id
from ivr.speech.prompt_match import features

SOUNDS = next(d for d in SOUNDS_DIRS if (d / "hello-world.wav").is_file())
WELCOME = "您好，欢迎致电。"
BALANCE = "您的余额是{{ amount | say_currency }}。"
RECORDED = {  # what the pack holds -> the studio recording standing in for it
    f"{prompt_id(WELCOME)}.wav": "hello-world.wav",
    f"{prompt_id('您的余额是')}.wav": "your.wav",
    "say/十.wav": "digits/10.wav", "say/二.wav": "digits/2.wav", "say/元.wav": "digits/dollars.wav",
    "say/三.wav": "digits/3.wav", "say/角.wav": "goodbye.wav",
}
FLOW = f"""
flow: packed
language: zh-CN
start: hi
nodes:
  hi: {{say: "{WELCOME}", next: set}}
  set: {{set: {{amount: "12.30"}}, next: bal}}
  bal: {{say: "{BALANCE}", next: bye}}
  bye: {{say: "再见。", hangup: true}}
"""


HEARD = 0.5
"""Median log-mel distance under which a recording was heard (the same audio through G.711:
0.15-0.4; other words: above 0.8). The median, as a file's first frames may reach the caller
a little clipped when its player starts."""


def best_match(heard: np.ndarray, recording: np.ndarray) -> tuple[int, float]:
    """Where in `heard` a recording fits best (frame index) and how well (median over its
    frames of the log-mel distance), its leading and trailing silence left out."""
    h, c = features(heard), features(recording)
    voiced = np.nonzero(c.max(axis=1) > 4.5)[0]
    c = c[voiced[0]: voiced[-1] + 1]
    windows = np.lib.stride_tricks.sliding_window_view(h, c.shape)[:, 0]
    dist = np.median(np.abs(windows - c[None]).mean(axis=2), axis=1)
    i = int(np.argmin(dist))
    return i, float(dist[i])


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("packs")
    (root / "flows").mkdir()
    (root / "flows" / "packed.yaml").write_text(FLOW, encoding="utf-8")
    for name, src in RECORDED.items():
        dst = root / "packs" / "zh-CN" / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SOUNDS / src, dst)
    broken = root / "broken-tts"  # the site's Mandarin engine, failing
    broken.write_text("#!/bin/sh\necho 'licence expired' >&2\nexit 3\n")
    broken.chmod(0o755)
    defaults = yaml.safe_load((REPO / "ivr" / "defaults.yaml").read_text())
    server = start_server(root, max_calls=4, extra={
        "routes": {**defaults["routes"], "5100": "packed"},
        "prompts": {"packs": str(root / "packs")},
        "speech": {**defaults["speech"], "tts": {
            **defaults["speech"]["tts"],
            "languages": {"zh-CN": {"engine": "command", "command": [str(broken), "{out}"],
                                    "timeout": "5s"}}}}})
    try:
        yield server
    finally:
        server.stop()


def test_the_pack_plays_instead_of_tts_and_a_failing_engine_falls_back(packed: Server,
                                                                       tmp_path: Path) -> None:
    before = len(packed.calls())
    wav = tmp_path / "heard.wav"
    code, doc, err = ivr_call(packed, f"sip:5100@{packed.uri_host}", "--record", str(wav),
                              "--config", str(packed.root / "ivr.yaml"))
    assert code == 0, err[-2000:]
    # the recordings played, in order: the welcome, then the balance from its fixed part and
    # the fragments 十 二 元 三 角 (a recording the pack does not hold was not heard)
    heard, rate = read_wav(wav)
    assert rate == 8000
    where = {name: best_match(heard, read_wav(SOUNDS / src)[0]) for name, src in RECORDED.items()}
    assert all(d < HEARD for _, d in where.values()), where
    assert sorted(where, key=lambda n: where[n][0]) == list(RECORDED), where
    assert best_match(heard, read_wav(SOUNDS / "digits/7.wav")[0])[1] > HEARD  # not played
    # `ivr call`, with the IVR's config, names them as the catalogue's prompts; 再见 came from
    # espeak-ng after the zh-CN command failed, and the call ended where the flow ends
    prompts: list[dict[str, Any]] = doc["prompts"]  # type: ignore[assignment]
    texts = [p["text"] for p in prompts if p["heard_by"] == "catalogue"]
    assert texts == [WELCOME, BALANCE, "再见。"], doc["prompts"]
    (cdr,) = packed.wait_cdrs(before + 1)[before:]
    assert cdr["path"] == ["hi", "set", "bal", "bye"], cdr
    said = [t["text"] for t in cdr["transcript"] if t["who"] == "ivr"]
    assert said == [WELCOME, "您的余额是十二元三角。", "再见。"], cdr["transcript"]
    assert "licence expired" in packed.log_tail(20000)
    packed.wait_idle()
