"""Voices as plugins: the `command` and `http` engines, per-language choice, and fallback to the
next engine (never a dead call) when one fails, with the same keyed prompt cache."""

from __future__ import annotations

import asyncio
import sys
import time
import wave
from io import BytesIO
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import ValidationError

from ivr.config import EngineConfig
from ivr.speech.audio import read_wav
from ivr.speech.engines import TtsError, engine
from ivr.speech.tts import PromptCache, Voice
from ivr.speech.voices import prompt_cache


def wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    buf = BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x20\x00" * int(rate * seconds))
    return buf.getvalue()


def script(tmp_path: Path, name: str, body: str) -> Path:
    """A tiny engine: `body` runs with `text` (argv[1] or stdin), `out` and `log` defined."""
    path = tmp_path / name
    path.write_text(f"""#!{sys.executable}
import sys, time, wave
args = sys.argv[1:]
out = args[args.index("--out") + 1] if "--out" in args else None
text = args[args.index("--text") + 1] if "--text" in args else sys.stdin.read()
open({str(tmp_path / (name + '.log'))!r}, "a").write(repr(sys.argv) + "\\n")
def tone(seconds):
    import io
    buf = io.BytesIO()
    with wave.open(out or buf, "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
        w.writeframes(b"\\x20\\x00" * int(8000 * seconds))
    if out is None:
        sys.stdout.buffer.write(buf.getvalue())
{body}
""")
    path.chmod(0o755)
    return path


def calls(tmp_path: Path, name: str) -> list[str]:
    log = tmp_path / f"{name}.log"
    return log.read_text().splitlines() if log.is_file() else []


def seconds(path: Path) -> float:
    samples, rate = read_wav(path)
    return len(samples) / rate


def test_command_with_text_and_out_arguments(tmp_path: Path) -> None:
    prog = script(tmp_path, "tts", "tone(0.1 * len(text))")
    voice = Voice("command", command=(str(prog), "--text", "{text}", "--out", "{out}"))
    cache = PromptCache(tmp_path / "c", voice, 8000)
    path = cache.render_sync("你好吗", "zh-CN")
    assert seconds(path) == pytest.approx(0.3)
    assert "你好吗" in calls(tmp_path, "tts")[0]
    assert cache.render_sync("你好吗", "zh-CN") == path  # cached: not run again
    assert len(calls(tmp_path, "tts")) == 1


def test_command_reading_stdin_and_writing_stdout(tmp_path: Path) -> None:
    prog = script(tmp_path, "tts", "tone(0.1 * len(text))")
    cache = PromptCache(tmp_path / "c", Voice("command", command=(str(prog),)), 8000)
    assert seconds(cache.render_sync("abcd", "en-US")) == pytest.approx(0.4)
    assert "abcd" not in calls(tmp_path, "tts")[0]


async def test_a_sensitive_prompt_never_goes_on_a_command_line(tmp_path: Path) -> None:
    prog = script(tmp_path, "tts", "tone(0.1 * len(text))")
    argv_voice = Voice("command", command=(str(prog), "--text", "{text}", "--out", "{out}"))
    cache = PromptCache(tmp_path / "c", argv_voice, 8000, private_dir=tmp_path / "private")
    path = await cache.render_private("You entered 4 0 7 1.", "en-US")
    assert path.is_file() and seconds(path) > 0.5  # espeak-ng said it instead
    assert calls(tmp_path, "tts") == []
    PromptCache.discard(path)
    stdin_voice = Voice("command", command=(str(prog), "--out", "{out}"))
    cache = PromptCache(tmp_path / "c2", stdin_voice, 8000, private_dir=tmp_path / "private")
    path = await cache.render_private("You entered 4 0 7 1.", "en-US")
    assert seconds(path) == pytest.approx(2.0)
    assert not any("4 0 7 1" in line for line in calls(tmp_path, "tts"))


def test_a_failing_command_falls_back_and_rests(tmp_path: Path) -> None:
    prog = script(tmp_path, "tts", "sys.exit(3)")
    cache = PromptCache(tmp_path / "c", Voice(), 8000,
                        languages={"zh": Voice("command", command=(str(prog), "--out", "{out}"))})
    path = cache.render_sync("你好", "zh-CN")
    assert seconds(path) > 0.2  # espeak-ng (cmn) rendered it
    assert path == cache.path_for("你好", "zh-CN", Voice())
    assert cache.cached("你好", "zh-CN") is None  # the command's own rendering is still owed
    cache.render_sync("再见", "zh-CN")
    assert len(calls(tmp_path, "tts")) == 1  # resting after its failure: not tried again


def test_a_hung_command_is_cut_at_its_timeout(tmp_path: Path) -> None:
    prog = script(tmp_path, "tts", "time.sleep(30)")
    slow = Voice("command", command=(str(prog), "--out", "{out}"), timeout=0.5)
    started = time.monotonic()
    with pytest.raises(TtsError, match="timed out"):
        engine("command").synthesise(slow, "x", "en-US", tmp_path / "o.wav", private=False)
    assert time.monotonic() - started < 5
    cache = PromptCache(tmp_path / "c", Voice(), 8000, languages={"en": slow})
    assert seconds(cache.render_sync("hello", "en-US")) > 0.2


def test_each_language_has_its_engine_and_its_own_cache_key(tmp_path: Path) -> None:
    prog = script(tmp_path, "tts", "tone(1.5)")
    zh = Voice("command", command=(str(prog), "--out", "{out}"))
    cache = PromptCache(tmp_path / "c", Voice(), 8000, languages={"zh-CN": zh})
    assert seconds(cache.render_sync("你好", "zh-CN")) == pytest.approx(1.5)
    assert seconds(cache.render_sync("hello", "en-US")) != pytest.approx(1.5)
    assert cache.path_for("hi", "zh-CN") != cache.path_for("hi", "en-US")
    assert cache.chain("zh-CN")[0] == zh and cache.chain("en-US") == [Voice()]


Served = tuple[web.AppRunner, str, list[dict[str, object]]]


async def tts_server(status: int = 200, delay: float = 0.0) -> Served:
    got: list[dict[str, object]] = []

    async def speak(request: web.Request) -> web.Response:
        body = await request.json()
        got.append(body)
        await asyncio.sleep(delay)
        if status != 200:
            return web.Response(status=status, text="engine down")
        return web.Response(body=wav_bytes(0.1 * len(str(body["text"]))), content_type="audio/wav")

    app = web.Application()
    app.router.add_post("/tts", speak)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/tts", got


async def test_http_engine_posts_text_and_language(tmp_path: Path) -> None:
    runner, url, got = await tts_server()
    try:
        cache = PromptCache(tmp_path / "c", Voice("http", voice="xiaoyan", url=url), 8000)
        path = await cache.render("您好", "zh-CN")
        assert seconds(path) == pytest.approx(0.2)
        assert got == [{"text": "您好", "language": "zh-CN", "voice": "xiaoyan", "rate": 165}]
        assert await cache.render("您好", "zh-CN") == path and len(got) == 1
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("status", "delay"), [(500, 0.0), (200, 3.0)])
async def test_http_engine_failure_or_timeout_falls_back(tmp_path: Path, status: int,
                                                         delay: float) -> None:
    runner, url, got = await tts_server(status, delay)
    try:
        cache = PromptCache(tmp_path / "c", Voice("http", url=url, timeout=1.0), 8000)
        path = await cache.render("hello there", "en-US")
        assert seconds(path) > 0.3 and path == cache.path_for("hello there", "en-US", Voice())
        assert len(got) == 1
    finally:
        await runner.cleanup()


def test_engine_settings_are_checked_and_reach_the_cache(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs command"):
        EngineConfig.model_validate({"speech": {"tts": {"engine": "command"}}})
    with pytest.raises(ValidationError, match="needs url"):
        EngineConfig.model_validate({"speech": {"tts": {"languages": {"zh-CN": {"engine": "http"}}}}})
    config = EngineConfig.model_validate({
        "speech": {"tts": {"languages": {"zh-CN": {"engine": "command", "timeout": "5s",
                                                   "command": ["/opt/tts/bin/say", "{out}"]}}}},
        "prompts": {"packs": str(tmp_path / "packs")}})
    cache = prompt_cache(tmp_path / "c", config, 8000)
    assert cache.chain("zh-CN")[0] == Voice("command", command=("/opt/tts/bin/say", "{out}"),
                                            timeout=5.0)
    assert cache.pack is not None and cache.pack.root == tmp_path / "packs"
