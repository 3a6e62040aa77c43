"""The recognition service and its client over a real unix socket, with a fake model."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.config import AsrSettings
from ivr.speech.asr import wire
from ivr.speech.asr.base import Engine, EngineError, Grammar, Recognizer, Result
from ivr.speech.asr.remote import RemoteEngine, RemoteRecognizer
from ivr.speech.asr.server import RecognitionService, bind, serve_until
from ivr.speech.asr.service import AsrReadiness, LanguageRouter, load_engine, shared_models


class FakeRecognizer(Recognizer):
    def __init__(self, engine: FakeEngine, grammar: Grammar, rate: int) -> None:
        self.engine, self.grammar, self.rate, self.pcm = engine, grammar, rate, b""

    def accept(self, pcm: bytes) -> None:
        self.pcm += pcm

    def finalize(self) -> Result | None:
        self.engine.seen.append((self.grammar, self.rate, len(self.pcm)))
        if self.engine.stall:
            time.sleep(self.engine.stall)
        if self.pcm.startswith(b"boom"):
            raise RuntimeError("the decoder crashed")
        if not self.pcm:
            return None
        return Result(self.grammar.phrases[0], 0.75, self.grammar.phrases[1:])

    def reset(self) -> None:
        self.pcm = b""


class FakeEngine(Engine):
    name = "fake"

    def __init__(self) -> None:
        self.seen: list[tuple[Grammar, int, int]] = []
        self.stall = 0.0

    def new_recognizer(self, grammar: Grammar, sample_rate: int = 8000) -> Recognizer:
        return FakeRecognizer(self, grammar, sample_rate)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, FakeEngine, RecognitionService]]:
    service = RecognitionService(AsrSettings(engine="none"))
    assert service.models == {}  # nothing shared in that config: nothing loads
    engine = FakeEngine()
    service.models = {"fake:m": AsrReadiness(engine, True, "speech ready: fake"),
                      "vosk:broken": AsrReadiness(None, False, "speech not ready: no model")}
    path = tmp_path / "asr.sock"
    server = bind(path, service)
    stop = threading.Event()
    thread = threading.Thread(target=serve_until, args=(server, stop), daemon=True)
    thread.start()
    yield path, engine, service
    stop.set()
    thread.join(2)
    assert not thread.is_alive()
    server.server_close()


def test_an_utterance_is_decoded_by_the_shared_model(served: tuple[Path, FakeEngine,
                                                                    RecognitionService]) -> None:
    path, engine, service = served
    assert path.stat().st_mode & 0o777 == 0o600  # owner only
    remote = RemoteEngine(path, "fake", "m")
    assert remote.status()["ready"] is True
    grammar = Grammar(("balance", "agent"), builtin="digits", language="en-GB", min_words=4,
                      max_words=8)
    rec = remote.new_recognizer(grammar, 8000)
    assert isinstance(rec, RemoteRecognizer)
    rec.accept(b"\x01\x00" * 4000)
    rec.accept(b"\x01\x00" * 4000)
    assert rec.finalize() == Result("balance", 0.75, ("agent",))
    assert engine.seen == [(grammar, 8000, 16000)]  # the grammar arrives whole
    rec.accept(b"\x01\x00" * 10)
    rec.reset()
    assert rec.finalize() is None  # reset dropped the audio: nothing heard
    assert service.status()["decodes"] == 2


def test_failures_come_back_as_engine_errors_and_the_service_stays_up(
        served: tuple[Path, FakeEngine, RecognitionService]) -> None:
    path, _, service = served
    grammar = Grammar(("balance",))
    with pytest.raises(EngineError, match="the decoder crashed"):
        RemoteEngine(path, "fake", "m").decode(grammar, 8000, b"boom")
    with pytest.raises(EngineError, match="no model"):
        RemoteEngine(path, "vosk", "broken").decode(grammar, 8000, b"\0\0")
    with pytest.raises(EngineError, match="does not serve"):
        RemoteEngine(path, "vosk", "other").status()
    with socket.socket(socket.AF_UNIX) as sock:  # garbage, then a hang-up mid-message
        sock.connect(str(path))
        sock.sendall(wire.HEADER.pack(10, 0) + b"{not json")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        sock.sendall(wire.HEADER.pack(2**30, 0))
        with pytest.raises(wire.WireError):
            wire.recv(sock)  # refused as too large: the service hangs up
    assert RemoteEngine(path, "fake", "m").decode(grammar, 8000, b"\0\0") is not None
    assert service.status()["failures"] == 1


def test_a_stalled_decode_times_out_on_the_client(
        served: tuple[Path, FakeEngine, RecognitionService]) -> None:
    path, engine, _ = served
    engine.stall = 2.0
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"did not answer within 0\.3s"):
        RemoteEngine(path, "fake", "m", timeout=0.3).decode(Grammar(("x",)), 8000, b"\0\0")
    assert time.monotonic() - started < 1.5


def test_a_missing_service_is_an_engine_error_and_speech_not_ready(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="unreachable"):
        RemoteEngine(tmp_path / "none.sock", "vosk", "lang:ko").decode(Grammar(("x",)), 8000, b"")
    settings = AsrSettings(engine="vosk", model="lang:ko")
    started = time.monotonic()
    got = load_engine(settings, tmp_path / "none.sock", wait=0.3)
    assert not got.ready and got.engine is None and "unreachable" in got.message
    assert time.monotonic() - started < 2


def test_the_worker_reaches_shared_models_there_and_loads_the_rest_itself(
        served: tuple[Path, FakeEngine, RecognitionService]) -> None:
    path, _, service = served
    service.models["vosk:lang:ko"] = service.models.pop("fake:m")
    settings = AsrSettings.model_validate(
        {"engine": "pocketsphinx", "languages": {"ko": {"engine": "vosk", "model": "lang:ko"}}})
    got = load_engine(settings, path)
    assert got.ready, got.message
    assert isinstance(got.engine, LanguageRouter)
    ko = got.engine.engine_for("ko-KR")
    assert isinstance(ko, RemoteEngine) and "shared" in got.message
    assert not isinstance(got.engine.default, RemoteEngine)  # PocketSphinx stays in the worker
    broken = AsrSettings(engine="vosk", model="broken")
    service.models["vosk:broken"] = AsrReadiness(None, False, "speech not ready: bad model")
    got = load_engine(broken, path)
    assert not got.ready and got.message == "speech not ready: bad model"


@pytest.mark.parametrize(("doc", "shared"), [
    ({}, [("whisper", None)]),  # the default engine: Whisper, shared
    ({"engine": "pocketsphinx"}, []),
    ({"engine": "none", "model": "x"}, []),
    ({"engine": "vosk", "model": "/m"}, [("vosk", "/m")]),
    ({"engine": "vosk"}, []),  # falls back to PocketSphinx
    ({"engine": "vosk", "shared": True}, [("pocketsphinx", None)]),
    ({"engine": "vosk", "model": "/m", "shared": False}, []),
    ({"languages": {"ko": {"engine": "vosk", "model": "lang:ko"},
                    "ko-KR": {"engine": "vosk", "model": "lang:ko"}}},
     [("whisper", None), ("vosk", "lang:ko")]),
    ({"engine": "pocketsphinx", "shared": True,
      "languages": {"ko": {"engine": "vosk", "model": "lang:ko"}}},
     [("pocketsphinx", None), ("vosk", "lang:ko")]),
])
def test_which_models_are_shared(doc: dict[str, object],
                                 shared: list[tuple[str, str | None]]) -> None:
    assert shared_models(AsrSettings.model_validate(doc)) == shared
