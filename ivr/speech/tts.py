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
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ivr.metrics import TTS_RENDER
from ivr.speech.audio import convert

log = logging.getLogger(__name__)

RENDER_TIMEOUT = 20.0


class TtsError(Exception):
    """Rendering failed (engine missing, crashed or timed out)."""


@dataclass(frozen=True)
class Voice:
    engine: str = "espeak-ng"
    voice: str = "en-us"
    rate: int = 165


def _espeak_voice(language: str, voice: str) -> str:
    """A flow's language picks the voice unless the engine config names one for it."""
    lang = language.lower()
    if lang.startswith("en") or not lang:
        return voice
    return {"zh-cn": "cmn", "zh": "cmn", "ko-kr": "ko"}.get(lang, lang.split("-")[0])


FLITE_RATE = 170
"""Words per minute of flite's voices at their natural duration."""


def _render_cmd(engine: str, text: str | None, out: Path, voice: str, rate: int) -> list[str]:
    """The synthesiser's command line; with `text` None it reads the text from stdin."""
    if engine == "flite":  # CMU's diphone/cluster voices (kal, awb, rms, slt)
        stretch = f"duration_stretch={FLITE_RATE / rate:.3f}"
        source = ["-f", "/dev/stdin"] if text is None else ["-t", text]
        return ["flite", "-voice", voice, "--setf", stretch, *source, "-o", str(out)]
    # `engine: pyttsx3` renders through espeak-ng directly: pyttsx3 2.99's espeak driver
    # truncates save_to_file output ("one. two" came out as 30 ms), and it is the same voice.
    source = ["--stdin"] if text is None else ["--", text]
    return ["espeak-ng", "-w", str(out), "-v", voice, "-s", str(rate), *source]


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
                 key_file: Path | None = None, private_dir: Path | None = None) -> None:
        """`key_file`: the naming secret, by default `<root>.key` beside the directory (so a
        copy of the directory alone does not carry it); `private_dir`: where sensitive prompts
        are rendered for one playback (the system's temporary directory by default)."""
        self.root = root
        self.voice = voice
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

    def key(self, text: str, language: str = "en-US") -> str:
        v = self.voice
        raw = f"{v.engine}|{_espeak_voice(language, v.voice)}|{v.rate}|{self.sample_rate}|{text}"
        return hmac.new(self._secret, raw.encode(), hashlib.sha256).hexdigest()[:32]

    def path_for(self, text: str, language: str = "en-US") -> Path:
        return self.root / f"t-{self.key(text, language)}.wav"

    def cached(self, text: str, language: str = "en-US") -> Path | None:
        p = self.path_for(text, language)
        return p if p.is_file() else None

    def render_sync(self, text: str, language: str = "en-US") -> Path:
        """Render now (flow load, CLI); blocking, so never call it on an event loop."""
        dst = self.path_for(text, language)
        if dst.is_file():
            return dst
        with tempfile.TemporaryDirectory(prefix="ivr-tts-") as tmp:
            raw = Path(tmp) / "raw.wav"
            self._synthesise(text, language, raw, private=False)
            convert(raw, dst, self.sample_rate)
        return dst

    def _synthesise(self, text: str, language: str, raw: Path, *, private: bool) -> None:
        with TTS_RENDER.time():
            self._run_engine(text, language, raw, private=private)

    def _run_engine(self, text: str, language: str, raw: Path, *, private: bool) -> None:
        voice = _espeak_voice(language, self.voice.voice)
        cmd = _render_cmd(self.voice.engine, None if private else text, raw, voice,
                          self.voice.rate)
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=RENDER_TIMEOUT, check=False,
                                  input=text.encode() if private else None)
        except subprocess.TimeoutExpired:
            raise TtsError(f"TTS timed out after {RENDER_TIMEOUT}s") from None
        except FileNotFoundError as exc:
            raise TtsError(f"TTS engine not found: {exc.filename}") from None
        if proc.returncode != 0 or not raw.is_file() or raw.stat().st_size < 100:
            raise TtsError(f"TTS failed: {proc.stderr.decode(errors='replace').strip()}")

    def render_private_sync(self, text: str, language: str = "en-US") -> Path:
        """A sensitive prompt in a file of its own, never in the cache; `discard` it after
        playback. Blocking, like `render_sync`."""
        if self.private_dir is not None:
            self.private_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        home = Path(tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=self.private_dir))  # 0700
        try:
            raw = home / "raw.wav"
            self._synthesise(text, language, raw, private=True)
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
