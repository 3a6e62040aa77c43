"""Subprocess entry: render one utterance with pyttsx3 to a WAV file.

Runs in its own process because pyttsx3's espeak driver holds a global engine and can hang;
the parent enforces a timeout (see ivr.speech.tts).
"""

from __future__ import annotations

import contextlib
import sys


def main(argv: list[str]) -> int:
    out, voice, rate, text = argv[1], argv[2], int(argv[3]), argv[4]
    import pyttsx3

    engine = pyttsx3.init("espeak")
    engine.setProperty("rate", rate)
    # an unknown voice keeps the default rather than failing the prompt
    with contextlib.suppress(Exception):
        engine.setProperty("voice", voice)
    engine.save_to_file(text, out)
    engine.runAndWait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
