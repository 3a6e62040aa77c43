"""`engine: command`: any local program that turns text into WAV (a site's licensed voice).

The command is an argument list, run without a shell. Placeholders, replaced whole-word inside
each argument: `{text}`, `{out}` (the WAV file to write), `{language}`, `{voice}`, `{rate}`.
Without `{text}` the text goes to the program's stdin (UTF-8); without `{out}` the program
writes the WAV to stdout. A sensitive prompt never goes on a command line (other users see
those in the process list): a command that takes `{text}` fails for it, and the next engine
renders it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ivr.speech.engines.base import Engine, TtsError, Voice, check_wav

PLACEHOLDERS = ("{text}", "{out}", "{language}", "{voice}", "{rate}")


def argv(voice: Voice, text: str, language: str, out: Path) -> list[str]:
    values = {"{text}": text, "{out}": str(out), "{language}": language,
              "{voice}": voice.voice, "{rate}": str(voice.rate)}
    args = []
    for arg in voice.command:
        for name, value in values.items():
            arg = arg.replace(name, value)
        args.append(arg)
    return args


class CommandEngine(Engine):
    def identity(self, voice: Voice, language: str) -> str:
        return f"command|{json.dumps(list(voice.command))}|{language}|{voice.voice}|{voice.rate}"

    def synthesise(self, voice: Voice, text: str, language: str, out: Path, *,
                   private: bool) -> None:
        if not voice.command:
            raise TtsError("tts engine command: no command configured")
        on_argv = any("{text}" in a for a in voice.command)
        if private and on_argv:
            raise TtsError("a sensitive prompt is not put on a command line ({text}); "
                           "configure the command to read stdin")
        to_file = any("{out}" in a for a in voice.command)
        try:
            proc = subprocess.run(argv(voice, text, language, out), capture_output=True,
                                  timeout=voice.timeout, check=False,
                                  input=None if on_argv else text.encode())
        except subprocess.TimeoutExpired:
            raise TtsError(f"tts command timed out after {voice.timeout}s") from None
        except OSError as exc:
            raise TtsError(f"tts command {voice.command[0]!r} cannot run: {exc}") from None
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()[-300:]
            raise TtsError(f"tts command exited {proc.returncode}: {err}")
        if not to_file:
            out.write_bytes(proc.stdout)
        check_wav(out, "tts command")
