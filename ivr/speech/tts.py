"""Text to speech with a shared cache, so no caller waits for TTS on a fixed prompt.

Static prompts are rendered when a flow loads; dynamic text (balances, dates) is rendered when a
call needs it. Rendering always runs in a subprocess with a timeout: a hung synthesiser costs one
prompt, never a worker's event loop. The cache is a directory of WAV files keyed by
text+voice+rate+sample rate; every worker reads it, writes are atomic renames.

A file name is an HMAC of that key under a per-install secret (`<cache>.key`, 0600, beside the
cache directory, made on first use): a sha256 of the text alone let anyone holding the cache
directory hash the 10^8 eight-digit candidates of "You entered 4 0 7 1 ..." and read the
number back. `ivr serve` removes names from before the key when it starts. A prompt that carries a
sensitive value never enters the cache at all: `render_private` synthesises it into a file of its
own (0600 in a 0700 directory, the text passed on stdin so no process listing shows it) that the
player deletes with `discard` once it has played.

Voices are plugins (`ivr.speech.engines`): a language may have its own engine
(`speech.tts.languages`), and when an engine fails the next one renders (the language's, then
the default one, then espeak-ng), so a call never dies on TTS. A prompt a recorded pack holds
(`ivr.speech.packs`) plays from the pack and is never synthesised.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ivr.prompt import Prompt
from ivr.speech.audio import convert, write_wav
from ivr.speech.engines import RENDER_TIMEOUT, TtsError, Voice, engine
from ivr.speech.packs import PromptPack

__all__ = ["RENDER_TIMEOUT", "PromptCache", "TtsError", "Voice", "voice_for"]

log = logging.getLogger(__name__)

FAILED_ENGINE_REST = 30.0
"""After a failure an engine is skipped this long (a dead TTS server costs one timeout, not one
per prompt)."""
PACK_TAIL = 0.25
"""Silence after a prompt played from a pack: the player ends when it has read its last file,
which cuts about 150 ms of what is still to be heard, and studio recordings end tight (TTS
renderings carry their own trailing silence)."""
FALLBACK = Voice()
"""The engine of last resort: espeak-ng is always installed."""


def voice_for(voices: Mapping[str, Voice], language: str) -> Voice | None:
    """A language's own voice: its exact tag, else its primary language (zh covers zh-CN)."""
    lang = language.lower()
    by = {k.lower(): v for k, v in voices.items()}
    return by.get(lang) or by.get(lang.split("-")[0])


KEY_BYTES = 32
PRIVATE_PREFIX = "ivr-private-"
_LEGACY_NAME = re.compile(r"^[0-9a-f]{32}\.wav$")
"""A cache name from before the keyed names (a plain sha256 of the text: reversible)."""


def install_key(path: Path) -> bytes:
    """The install's cache key: read, or made once (0600; the first of racing workers wins)."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_BYTES))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # atomic, and never over a key another process made
        finally:
            os.unlink(tmp)
        key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise TtsError(f"prompt cache key {path} is damaged ({len(key)} bytes); delete it "
                       "and the cache directory to start afresh")
    return key


class PromptCache:
    """Rendered prompts on disk, shared by every worker of a node."""

    def __init__(self, root: Path, voice: Voice, sample_rate: int = 16000, *,
                 key_file: Path | None = None, private_dir: Path | None = None,
                 languages: Mapping[str, Voice] | None = None,
                 pack: PromptPack | None = None) -> None:
        """`key_file`: the naming secret, by default `<root>.key` beside the directory (so a
        copy of the directory alone does not carry it); `private_dir`: where sensitive prompts
        are rendered for one playback (the system's temporary directory by default);
        `languages`: voices of their own for some languages; `pack`: recorded prompts."""
        self.root = root
        self.voice = voice
        self.languages = dict(languages or {})
        self.pack = pack
        self._resting: dict[Voice, float] = {}
        self.sample_rate = sample_rate
        self.private_dir = private_dir
        root.mkdir(parents=True, exist_ok=True)
        self._secret = install_key(key_file or root.with_name(root.name + ".key"))

    def forget_unkeyed(self) -> int:
        """Delete renderings named the old way (sha256 of the text, reversible); the owner of
        the cache calls it once at start (`ivr serve`), since processes of an older version
        may still be reading a shared one. Returns how many went."""
        gone = 0
        for old in self.root.iterdir():
            if _LEGACY_NAME.match(old.name):
                old.unlink(missing_ok=True)
                gone += 1
        return gone

    def chain(self, language: str = "en-US") -> list[Voice]:
        """The voices that may render a language, in order: its own, the default, espeak-ng."""
        own = voice_for(self.languages, language)
        return list(dict.fromkeys(v for v in (own, self.voice, FALLBACK) if v is not None))

    def key(self, text: str, language: str = "en-US", voice: Voice | None = None) -> str:
        v = voice or self.chain(language)[0]
        raw = f"{engine(v.engine).identity(v, language)}|{self.sample_rate}|{text}"
        return hmac.new(self._secret, raw.encode(), hashlib.sha256).hexdigest()[:32]

    def path_for(self, text: str, language: str = "en-US", voice: Voice | None = None) -> Path:
        return self.root / f"t-{self.key(text, language, voice)}.wav"

    def cached(self, text: str, language: str = "en-US") -> Path | None:
        """The recording or rendering that plays now, if there is one already."""
        recorded = self.recorded(text, language)
        if recorded is not None:
            return recorded
        p = self.path_for(text, language)
        return p if p.is_file() else None

    def recorded(self, text: str, language: str = "en-US") -> Path | None:
        """The pack's recording of a prompt text at the call rate, if the pack has one."""
        src = self.pack.recording(text, language) if self.pack is not None else None
        return None if src is None else self.prepare_audio(src)

    def pack_files(self, prompt: Prompt) -> list[Path] | None:
        """A prompt played from the pack (a recording, or fixed parts and say-as fragments),
        at the call rate; None when the pack cannot say it. Blocking (reads, converts)."""
        found = self.pack.files(prompt) if self.pack is not None else None
        if found is None:
            return None
        return [*(self.prepare_audio(p) for p in found), self.silence(PACK_TAIL)]

    def silence(self, seconds: float) -> Path:
        """A file of silence at the call rate (made once)."""
        dst = self.root / f"silence-{round(seconds * 1000)}ms-{self.sample_rate}.wav"
        if not dst.is_file():
            write_wav(dst, np.zeros(round(seconds * self.sample_rate), dtype=np.int16),
                      self.sample_rate)
        return dst

    def render_sync(self, text: str, language: str = "en-US") -> Path:
        """Render now (flow load, CLI); blocking, so never call it on an event loop."""
        hit = self.cached(text, language)
        if hit is not None:
            return hit
        failures = []
        for voice in self.chain(language):
            dst = self.path_for(text, language, voice)
            if dst.is_file():
                return dst
            if self._resting.get(voice, 0.0) > time.monotonic():
                continue
            with tempfile.TemporaryDirectory(prefix="ivr-tts-") as tmp:
                raw = Path(tmp) / "raw.wav"
                try:
                    self._synthesise(voice, text, language, raw, private=False)
                except TtsError as exc:
                    failures.append(self._failed(voice, exc))
                    continue
                convert(raw, dst, self.sample_rate)
            return dst
        raise TtsError("; ".join(failures) or "every tts engine is resting after a failure")

    def _failed(self, voice: Voice, exc: TtsError) -> str:
        self._resting[voice] = time.monotonic() + FAILED_ENGINE_REST
        log.warning("tts engine %s failed (%s); the next engine renders", voice.engine, exc)
        return f"{voice.engine}: {exc}"

    def _synthesise(self, voice: Voice, text: str, language: str, raw: Path, *,
                    private: bool) -> None:
        engine(voice.engine).synthesise(voice, text, language, raw, private=private)

    def render_private_sync(self, text: str, language: str = "en-US") -> Path:
        """A sensitive prompt in a file of its own, never in the cache; `discard` it after
        playback. Blocking, like `render_sync`."""
        if self.private_dir is not None:
            self.private_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        home = Path(tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=self.private_dir))  # 0700
        try:
            raw = home / "raw.wav"
            failures = []
            for voice in self.chain(language):
                if self._resting.get(voice, 0.0) > time.monotonic():
                    continue
                try:
                    self._synthesise(voice, text, language, raw, private=True)
                    break
                except TtsError:  # its message may echo the text (an engine's stderr)
                    failures.append(f"{voice.engine} failed")
                    raw.unlink(missing_ok=True)
            else:
                raise TtsError("; ".join(failures) or "every tts engine is resting")
            dst = home / "prompt.wav"
            convert(raw, dst, self.sample_rate)
            dst.chmod(0o600)
            raw.unlink()
        except BaseException:
            shutil.rmtree(home, ignore_errors=True)
            raise
        return dst

    async def render_private(self, text: str, language: str = "en-US") -> Path:
        return await asyncio.to_thread(self.render_private_sync, text, language)

    @staticmethod
    def discard(path: Path) -> None:
        """Delete a private rendering (its directory with it); other paths are left alone."""
        if path.parent.name.startswith(PRIVATE_PREFIX):
            shutil.rmtree(path.parent, ignore_errors=True)

    async def render(self, text: str, language: str = "en-US") -> Path:
        """Cached path, rendering in a thread (which runs the subprocess) on a miss."""
        if self.pack is None:  # else the pack's file is read and converted: in the thread
            hit = self.cached(text, language)
            if hit is not None:
                return hit
        return await asyncio.to_thread(self.render_sync, text, language)

    def prepare_audio(self, src: Path) -> Path:
        """An ops-supplied WAV converted once to the call rate, cached by content."""
        digest = hashlib.sha256(src.read_bytes()).hexdigest()[:32]
        dst = self.root / f"file-{digest}-{self.sample_rate}.wav"
        if not dst.is_file():
            convert(src, dst, self.sample_rate)
        return dst
