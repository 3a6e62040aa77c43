"""A caller's utterance in a WAV file as a flow input: the `audio:` step of `ivr simulate` and
`ivr test` (the `Recognizer` hook of ivr.flow.scripted).

The speech service decodes under the node's grammar (ivr.flow.grammar builds it from the listen
spec) and answers in the engines' terms; here that becomes what the node receives:
- no speech within `spec.timeout` -> None (noinput);
- speech the grammar does not cover, an engine error, or a decode that takes longer than
  `decode_timeout` -> Input("speech", "", 0.0), a nomatch (confidence 0 is below any threshold);
- otherwise Input("speech", phrase as written in the flow (or the built-in's words), confidence,
  alternatives).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ivr.config import EngineConfig
from ivr.flow.channel import Input, ListenSpec
from ivr.flow.grammar import speech_grammar
from ivr.speech.asr.base import Engine
from ivr.speech.asr.service import RATE, engine_from_config, load_pcm, recognize_pcm

NOMATCH = Input("speech", "", 0.0)


def recognize_file(path: str | Path, spec: ListenSpec, engine: Engine, *,
                   trailing_silence: float = 0.7, max_speech: float | None = None,
                   decode_timeout: float | None = 10.0) -> Input | None:
    """The caller's utterance in a WAV file (any rate/width/channels) under a listen spec (its
    `max_speech` unless given)."""
    kind, result = recognize_pcm(load_pcm(path), RATE, speech_grammar(spec), engine,
                                 timeout=spec.timeout, trailing_silence=trailing_silence,
                                 max_speech=spec.max_speech if max_speech is None else max_speech,
                                 decode_timeout=decode_timeout)
    if kind == "noinput":
        return None
    if result is None:
        return NOMATCH
    return Input("speech", result.text, round(result.confidence, 3), result.alternatives)


def file_recognizer(config: EngineConfig) -> Callable[[str, ListenSpec], Input | None]:
    """The `audio:` step hook for ScriptedChannel / run_tests; loads the engine on first use.

    With speech not ready, an `audio:` step is a nomatch (the flow's DTMF wording follows).
    """

    def hook(path: str, spec: ListenSpec) -> Input | None:
        engine = engine_from_config(config)
        if engine is None:
            return NOMATCH
        return recognize_file(path, spec, engine)

    return hook
