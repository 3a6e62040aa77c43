"""`engine: http`: a site's TTS server. One POST per prompt, JSON
`{"text", "language", "voice", "rate"}`, answered 200 with the WAV as the body. `timeout`
bounds connecting and each wait for data (httpx's timeouts). The text is in the body, never in
the URL (no access log holds it).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from ivr.speech.engines.base import Engine, TtsError, Voice, check_wav


class HttpEngine(Engine):
    def identity(self, voice: Voice, language: str) -> str:
        return f"http|{voice.url}|{language}|{voice.voice}|{voice.rate}"

    def synthesise(self, voice: Voice, text: str, language: str, out: Path, *,
                   private: bool) -> None:
        if not voice.url:
            raise TtsError("tts engine http: no url configured")
        body = {"text": text, "language": language, "voice": voice.voice, "rate": voice.rate}
        try:
            reply = httpx.post(voice.url, json=body, timeout=voice.timeout)
        except httpx.TimeoutException:
            raise TtsError(f"tts server timed out after {voice.timeout}s") from None
        except httpx.HTTPError as exc:
            raise TtsError(f"tts server unreachable: {type(exc).__name__}") from None
        if reply.status_code != 200:
            raise TtsError(f"tts server answered {reply.status_code}")
        out.write_bytes(reply.content)
        check_wav(out, "tts server")
