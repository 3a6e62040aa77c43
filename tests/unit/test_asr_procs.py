"""Decoder processes (ivr.speech.asr.procs): decodes run in child processes, GIL free here; any
idle child takes the next one; a result is the in-process decoder's, whichever child ran it and
whatever it decoded before; a dead or stalled child costs one nomatch; close() leaves none."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import real_voice

from ivr.config import AsrSettings
from ivr.speech.asr.base import EngineError, Result
from ivr.speech.asr.pocketsphinx import PocketSphinxEngine
from ivr.speech.asr.procs import ProcessEngine
from ivr.speech.asr.service import load_engine, read_any_wav
from ivr.speech.audio import resample


@pytest.fixture(scope="module")
def clips() -> list[tuple[real_voice.Trial, bytes]]:
    """A few real-voice menu answers and 4-digit codes at 8 kHz, as a call has them."""
    items = real_voice.subset(real_voice.build(), sets=("menu", "digits4"), channels=("ulaw",))
    trials = [t for t in real_voice.trials(items) if t.set in ("menu", "digits4")][:6]
    out = []
    for t in trials:
        samples, rate = read_any_wav(Path(t.utterance.path))
        out.append((t, resample(samples, rate, 8000).astype("<i2").tobytes()))
    return out


@pytest.fixture
def engine() -> Iterator[ProcessEngine]:
    eng = ProcessEngine("pocketsphinx", None, 2, timeout=3.0)
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def single() -> Iterator[ProcessEngine]:
    """One child: a fault has no other child to hide behind."""
    eng = ProcessEngine("pocketsphinx", None, 1, timeout=3.0)
    try:
        yield eng
    finally:
        eng.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def _decode(eng: ProcessEngine | PocketSphinxEngine, trial: real_voice.Trial,
            pcm: bytes) -> Result | None:
    rec = eng.new_recognizer(trial.grammar, 8000)
    try:
        rec.accept(pcm)
        return rec.finalize()
    finally:
        rec.close()


def test_results_are_the_in_process_decoders_in_any_order_on_any_child(
        engine: ProcessEngine, clips: list[tuple[real_voice.Trial, bytes]]) -> None:
    local = PocketSphinxEngine()
    expected = [_decode(local, t, pcm) for t, pcm in clips]
    assert any(r is not None for r in expected)
    forward = [_decode(engine, t, pcm) for t, pcm in clips]
    backward = [_decode(engine, t, pcm) for t, pcm in reversed(clips)][::-1]
    key = [(r.text, r.confidence, r.alternatives) if r else None for r in expected]
    assert [(r.text, r.confidence, r.alternatives) if r else None for r in forward] == key
    assert [(r.text, r.confidence, r.alternatives) if r else None for r in backward] == key


def test_a_decode_takes_an_idle_child_while_another_is_busy(
        engine: ProcessEngine, clips: list[tuple[real_voice.Trial, bytes]]) -> None:
    trial, pcm = clips[0]
    first = engine.pids()
    assert len(first) == 2  # both started with the engine: none loads while callers wait
    _decode(engine, trial, pcm)
    held = engine._acquire()  # as if a long decode ran there
    try:
        assert _decode(engine, trial, pcm) is not None
        pids = engine.pids()
        assert sorted(pids) == sorted(first) and held.pid in pids
        assert engine.started == 2
    finally:
        engine._release(held, ok=True)
    # both idle now: concurrent decodes run on both children, never a third
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for t, p in clips:
                _decode(engine, t, p)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors
    assert engine.started == 2 and sorted(engine.pids()) == sorted(pids)


def test_a_child_that_died_idle_is_replaced_without_a_nomatch(
        single: ProcessEngine, clips: list[tuple[real_voice.Trial, bytes]]) -> None:
    trial, pcm = clips[0]
    (child,) = single._idle
    pid = child.pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    # exited as a whole (its main thread shows as a zombie while other threads still exit)
    while child.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _decode(single, trial, pcm) is not None
    assert pid not in single.pids() and len(single.pids()) == 1 and single.faults == 1


def test_a_child_killed_mid_decode_costs_one_nomatch_and_is_started_again(
        single: ProcessEngine, clips: list[tuple[real_voice.Trial, bytes]]) -> None:
    trial, pcm = clips[0]
    (pid,) = single.pids()
    # killed while our decode is under way (it waits on the child's answer)
    threading.Timer(0.01, os.kill, (pid, signal.SIGKILL)).start()
    with pytest.raises(EngineError):
        _decode(single, trial, pcm * 20)  # long enough to be under way when the kill lands
    assert single.faults == 1
    assert _decode(single, trial, pcm) is not None
    assert pid not in single.pids() and len(single.pids()) == 1


def test_a_stalled_child_is_a_nomatch_within_its_timeout(
        single: ProcessEngine, clips: list[tuple[real_voice.Trial, bytes]]) -> None:
    trial, pcm = clips[0]
    (pid,) = single.pids()
    os.kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    with pytest.raises(EngineError):
        _decode(single, trial, pcm)
    assert time.monotonic() - started < 3.0 + 2.0
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)  # killed, not left stopped
    assert _decode(single, trial, pcm) is not None


def test_close_ends_every_child_and_later_decodes_are_errors(
        clips: list[tuple[real_voice.Trial, bytes]]) -> None:
    eng = ProcessEngine("pocketsphinx", None, 2)
    trial, pcm = clips[0]
    held = eng._acquire()
    _decode(eng, trial, pcm)
    eng._release(held, ok=True)
    pids = eng.pids()
    assert len(pids) == 2
    eng.close()
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)
    with pytest.raises(EngineError):
        _decode(eng, trial, pcm)


def test_a_worker_decodes_pocketsphinx_in_processes_unless_told_not_to() -> None:
    got = load_engine(AsrSettings(engine="pocketsphinx", decoder_processes=1), processes=True)
    try:
        assert isinstance(got.engine, ProcessEngine) and got.ready
        assert "1 decoder process" in got.message
    finally:
        assert got.engine is not None
        got.engine.close()
    off = load_engine(AsrSettings(engine="pocketsphinx", decoder_processes=0), processes=True)
    assert isinstance(off.engine, PocketSphinxEngine)
    bad = load_engine(AsrSettings(engine="pocketsphinx", model="/nonexistent"), processes=True)
    assert not bad.ready and bad.engine is None
