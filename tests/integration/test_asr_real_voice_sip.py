"""Real human voices over real SIP calls: the real-voice corpus (tests/real_voice.py) played into
`ivr serve` with `ivr call --play`, recognised by the default engine (Whisper in the shared
recognition service) through RTP, the VAD and the flow's grammars.

Twelve calls, each saying a 4-digit code, one of sixteen menu options and a yes/no answer
(flows/realvoice.yaml; no retries, so every utterance counts once), over the corpus's channels
(PCM, mu-law, G.722 resampled to the call's 8 kHz; line noise for the last utterance, see
QUIET_TAIL). The issue's figures, on this
subset: codes >= 90 % accepted and right, menu >= 95 %, yes/no >= 97 % (all twelve), and no false
accept (a wrong value the flow took). Calls run four at a time; what the caller said is read from
each CDR's transcript (after which prompt), and compared as multisets because a CDR does not name
the test's call.
"""

from __future__ import annotations

import concurrent.futures
from collections import Counter
from pathlib import Path

import pytest
import real_voice
from server import ivr_call, start_server

from ivr.lang.grammars import parse_builtin

CALLS = 12
PARALLEL = 4
TARGETS = {"code": 0.90, "pick": 0.95, "answer": 0.97}
"""The issue's targets. Twelve calls cannot tell 97 % from 92 % (one miss is 8 %): the corpus
test (tests/unit/test_asr_real_voice.py) holds the engine to them over hundreds of trials; over
SIP a node may miss (a nomatch, never a wrong value) at most as often as its target allows on
twelve calls rounded up to one."""
PROMPTS = {"Please say your four digit code.": "code",
           "Which service would you like to change?": "pick",
           "Is that right? Please answer yes or no.": "answer"}
"""flows/realvoice.yaml's prompts (long enough to outlast the caller's trailing quiet: an early
answer must not start the next prompt while `ivr call` is still sending)."""


QUIET_TAIL = ("pcm8", "ulaw", "g722")
"""Channels for utterances another prompt follows: a `noise` file's line noise runs on after the
words, and once the IVR answers (at the first pause) that noise barges into the next prompt, a
nomatch there. Barge-in on line noise is turn-taking's subject (issue 12 part B); the last
utterance of each call (yes/no) also comes through line noise."""


def _pick(items: list[real_voice.Utterance], set_: str, n: int,
          channels: tuple[str, ...] = real_voice.CHANNELS) -> list[real_voice.Utterance]:
    """n utterances of a set, spread over contents and rotating through the channels."""
    pool = [u for u in items if u.set == set_]
    contents = list(dict.fromkeys(u.id.rsplit(".", 1)[0] for u in pool))
    out = []
    for i in range(n):
        content = contents[(i * max(1, len(contents) // n)) % len(contents)]
        channel = channels[i % len(channels)]
        out.append(next(u for u in pool if u.id == f"{content}.{channel}"))
    return out


@pytest.mark.integration
def test_real_voices_over_sip(tmp_path_factory: pytest.TempPathFactory) -> None:
    items = real_voice.build()
    codes, menus = (_pick(items, s, CALLS, QUIET_TAIL) for s in ("digits4", "menu"))
    answers = _pick(items, "yes_no", CALLS)
    root = tmp_path_factory.mktemp("realvoice")
    server = start_server(root, max_calls=8,
                          extra={"routes": {"5000": "realvoice", "default": "realvoice"}})
    try:
        assert server.health()["speech"]["ready"], server.health()
        uri = f"sip:5000@{server.uri_host}"

        def call(i: int) -> int:
            code, _, err = ivr_call(server, uri, "--play", codes[i].path, "--play", menus[i].path,
                                    "--play", answers[i].path, call_timeout=60, timeout=90)
            assert code == 0, err[-2000:]
            return code

        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(call, range(CALLS)))
        cdrs = server.wait_cdrs(CALLS, timeout=60)
        heard: dict[str, list[str]] = {"code": [], "pick": [], "answer": []}
        for cdr in cdrs:  # what the caller said after each node's prompt
            node = None
            for line in cdr["transcript"]:
                if line["who"] == "ivr":
                    node = PROMPTS.get(line["text"])
                elif node is not None and line["text"] != "(no match)":
                    heard[node].append(line["text"])
                    node = None
        truth = {"code": Counter(u.truth for u in codes), "pick": Counter(u.truth for u in menus),
                 "answer": Counter(u.truth for u in answers)}
        values = {"code": Counter(parse_builtin("digits", v) for v in heard["code"]),
                  "pick": Counter(heard["pick"]),
                  "answer": Counter(parse_builtin("yes_no", v) for v in heard["answer"])}
        for node, target in TARGETS.items():
            right = sum((values[node] & truth[node]).values())
            accepted = sum(values[node].values())
            detail = (f"{node}: heard {dict(values[node])}, said {dict(truth[node])}; "
                      f"{[c['transcript'] for c in cdrs]}")
            allowed = max(1, int(CALLS * (1 - target)))
            assert CALLS - right <= allowed, detail
            assert accepted - right == 0, f"false accepts: {detail}"
        server.wait_idle()
    finally:
        server.stop()


def test_the_sip_subset_spans_the_channels() -> None:
    items = real_voice.build()
    for set_, channels in (("digits4", QUIET_TAIL), ("menu", QUIET_TAIL),
                           ("yes_no", real_voice.CHANNELS)):
        picked = _pick(items, set_, CALLS, channels)
        assert {u.channel for u in picked} == set(channels)
        assert all(Path(u.path).is_file() for u in picked)
