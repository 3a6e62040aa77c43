"""Offline speech recognition: a streaming recognizer interface, two engines, VAD, a file service.

`base` defines `Engine` / `Recognizer` / `Result` (and names `Grammar`, the neutral description
from ivr.lang.grammars that every engine takes); `pocketsphinx` and `vosk` implement them; `vad`
cuts utterances from PCM frames; `service` runs recorded audio through VAD + recognizer
(`ivr simulate` / `ivr test` `audio:` steps) and builds an engine from the config. Nothing here
imports the flow layer.
"""

from ivr.speech.asr.base import Engine, EngineError, Grammar, Recognizer, Result
from ivr.speech.asr.vad import Endpointer, VadEvent

__all__ = ["Endpointer", "Engine", "EngineError", "Grammar", "Recognizer", "Result", "VadEvent"]
