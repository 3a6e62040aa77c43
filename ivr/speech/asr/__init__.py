"""Offline speech recognition: a streaming recognizer interface, two engines, VAD, a file service.

`base` defines `Engine` / `Recognizer` / `Result` / `Grammar`; `pocketsphinx` and `vosk` implement
them; `vad` cuts utterances from PCM frames; `service` runs a WAV file through VAD + recognizer
(`ivr simulate` / `ivr test` `audio:` steps) and builds an engine from the config.
"""

from ivr.speech.asr.base import Engine, EngineError, Grammar, Recognizer, Result
from ivr.speech.asr.vad import Endpointer, VadEvent

__all__ = ["Endpointer", "Engine", "EngineError", "Grammar", "Recognizer", "Result", "VadEvent"]
