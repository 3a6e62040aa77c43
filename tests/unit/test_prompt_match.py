"""Finding rendered prompts in received audio (what `ivr call` uses for static prompts)."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import numpy as np

from ivr.speech.audio import read_wav
from ivr.speech.prompt_match import find_prompts
from ivr.speech.tts import PromptCache, Voice


def _through_g711(path: Path, tmp: Path) -> np.ndarray:
    """Round trip through 8 kHz mu-law with sox, as a phone line does."""
    ulaw, back = tmp / "x.ul.wav", tmp / "x.back.wav"
    subprocess.run(["sox", str(path), "-r", "8000", "-e", "u-law", str(ulaw)], check=True)
    subprocess.run(["sox", str(ulaw), "-e", "signed", "-b", "16", str(back)], check=True)
    return read_wav(back)[0]


def test_prompts_are_found_in_order_and_near_misses_are_not(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path / "cache", Voice(), 8000)
    said = ["Hello.", "Press 1.", "You pressed one.", "Goodbye."]
    silence = np.zeros(4000, dtype=np.int16)
    parts = [np.concatenate([read_wav(cache.render_sync(t))[0], silence]) for t in said]
    line = tmp_path / "line.wav"
    from ivr.speech.audio import write_wav

    write_wav(line, np.concatenate(parts), 8000)
    heard = _through_g711(line, tmp_path)
    candidates = [(t, read_wav(cache.render_sync(t))[0])
                  for t in [*said, "Press 2.", "Press 1 now.", "Goodbye now.", "Welcome to Acme Bank."]]
    found = find_prompts(heard, candidates)
    assert [f.text for f in found] == said
    assert all(a.end_ms <= b.at_ms for a, b in itertools.pairwise(found))


def test_nothing_is_found_in_silence_or_noise() -> None:
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(16000) * 300).astype(np.int16)
    tone = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440) * 8000).astype(np.int16)
    assert find_prompts(np.zeros(16000, dtype=np.int16), [("Hello.", tone)]) == []
    assert find_prompts(noise, [("Hello.", tone)]) == []


MENU = ("For your data balance press 1 or say data. To report a fault press 2 or say fault. "
        "For your bill press 3 or say bill. To speak to an agent press 0 or say agent.")
MENU_KEYS = ("For your data balance press 1. To report a fault press 2. For your bill press 3. "
             "To speak to an agent press 0.")


def _glitched(samples: np.ndarray) -> np.ndarray:
    """What a busy media clock does to a long prompt: 20-60 ms dropped here, repeated there."""
    out, at = [], 0
    for cut, drop, repeat in [(16000, 480, 0), (30000, 0, 320), (45000, 160, 0), (60000, 0, 160)]:
        out.append(samples[at:cut])
        if repeat:
            out.append(samples[cut - repeat: cut])
        at = cut + drop
    out.append(samples[at:])
    return np.concatenate(out)


def test_a_long_prompt_is_found_though_the_line_dropped_and_repeated_frames(tmp_path: Path) -> None:
    from ivr.speech.audio import write_wav

    cache = PromptCache(tmp_path / "cache", Voice(), 8000)
    menu, keys = (read_wav(cache.render_sync(t))[0] for t in (MENU, MENU_KEYS))
    pause = np.zeros(4000, dtype=np.int16)
    line = tmp_path / "line.wav"
    write_wav(line, np.concatenate([pause, _glitched(menu), pause, keys, pause]), 8000)
    heard = _through_g711(line, tmp_path)
    found = find_prompts(heard, [(MENU, menu), (MENU_KEYS, keys)])
    assert [f.text for f in found] == [MENU, MENU_KEYS]
    # the other wording is not taken for the glitched one, nor the other way round
    assert find_prompts(heard[: 4000 + len(menu)], [(MENU_KEYS, keys)]) == []


def test_a_prompt_clipped_by_the_start_of_the_audio_is_found(tmp_path: Path) -> None:
    from ivr.speech.audio import write_wav

    cache = PromptCache(tmp_path / "cache", Voice(), 8000)
    welcome = read_wav(cache.render_sync("Welcome to Telco customer care."))[0]
    voiced = int(np.nonzero(np.abs(welcome) > 500)[0][0])
    line = tmp_path / "line.wav"
    write_wav(line, np.concatenate([welcome[voiced + 1200:], np.zeros(4000, dtype=np.int16)]), 8000)
    found = find_prompts(_through_g711(line, tmp_path), [("Welcome to Telco customer care.", welcome)])
    assert [f.text for f in found] == ["Welcome to Telco customer care."]


def test_a_prompt_is_found_off_the_hop_grid_and_with_frames_dropped(tmp_path: Path) -> None:
    """A call's audio starts anywhere within a 20 ms hop, and a loaded machine's sound clock may
    drop a frame: espeak-ng's Mandarin voice was missed either way before (distance 0.4+)."""
    cache = PromptCache(tmp_path / "cache", Voice(), 8000)
    menu = "查询话费或流量请按1，故障报修请按2，人工服务请按0。"
    near = "查询话费或流量请按1或说查询，故障报修请按2或说报修，人工服务请按0或说人工。"
    fault = "手机没有信号请按1，上网速度慢请按2，无法拨打电话请按3。"
    audio = {t: read_wav(cache.render_sync(t, "zh-CN"))[0] for t in (menu, near, fault)}
    said = audio[menu]
    third = len(said) // 3
    dropped = np.concatenate([said[:third], said[third + 160: 2 * third],
                              said[2 * third + 160:]])  # two 20 ms frames lost
    pad = np.zeros(4000, dtype=np.int16)
    for line in (np.concatenate([pad[:4080], said, pad]),  # half a hop off the grid
                 np.concatenate([pad[:4037], dropped, pad])):
        found = find_prompts(line, list(audio.items()))
        assert [f.text for f in found] == [menu], [(f.text, f.distance) for f in found]


def test_a_prompt_as_played_wins_over_the_static_pieces_of_its_template(tmp_path: Path) -> None:
    from ivr.speech.audio import write_wav

    cache = PromptCache(tmp_path / "cache", Voice(), 8000)
    full = "You are reporting slow internet. Is that right?"
    piece = "Is that right?"  # the template's static tail, named by the template
    template = "You are reporting {{ fault_label }}. Is that right?"
    line = tmp_path / "line.wav"
    pad = np.zeros(4000, dtype=np.int16)
    write_wav(line, np.concatenate([pad, read_wav(cache.render_sync(full))[0], pad]), 8000)
    found = find_prompts(_through_g711(line, tmp_path),
                         [(template, read_wav(cache.render_sync(piece))[0]),
                          (full, read_wav(cache.render_sync(full))[0])])
    assert [f.text for f in found] == [full], [(f.text, f.distance) for f in found]


def test_a_scripted_caller_waits_for_each_prompt_its_case_expects(tmp_path: Path) -> None:
    """`ivr call --script`: each input waits for the prompts its case expects before it, heard
    by sound in what came in; a prompt not heard yet keeps the turn open."""
    from ivr.call_cmd import _expect_before_inputs
    from ivr.flow.testing import parse_step
    from ivr.sip.caller import Action, _still_unheard

    cache = PromptCache(tmp_path / "cache", Voice(), 8000)
    catalogue = [(t, "en-US") for t in ("Your balance is ready.", "Is there anything else?",
                                        "Goodbye.")]
    steps = [parse_step(s) for s in (
        {"expect_prompt": "balance"}, {"expect_prompt": "anything else"}, {"say": "no"},
        {"expect_prompt": "nothing like this"}, {"dtmf": "1"}, {"expect_prompt": "Goodbye"})]
    actions = [Action("say", "no"), Action("dtmf", "1")]
    _expect_before_inputs(steps, actions, catalogue, cache)
    assert [[[t for t, _ in g] for g in a.after] for a in actions] == [
        [["Your balance is ready."], ["Is there anything else?"]], []]

    first = read_wav(cache.render_sync("Your balance is ready."))[0]
    gap = np.zeros(8000 * 2, dtype=np.int16)  # a busy IVR's pause between the two prompts
    so_far = np.concatenate([first, gap]).astype("<i2").tobytes()
    assert [[t for t, _ in g] for g in _still_unheard(so_far, actions[0].after)] == [
        ["Is there anything else?"]]
    both = so_far + read_wav(cache.render_sync("Is there anything else?"))[0].astype("<i2").tobytes()
    assert _still_unheard(both, actions[0].after) == []
