"""Confidence that means what it says: an engine's raw evidence mapped to P(the result is right).

Each engine reports raw evidence per result (`Result.features`): PocketSphinx its lattice
posterior and n-best agreement, Whisper its token probability, how well the transcript reads as
the grammar and how much of the beam agrees. Raw numbers are not probabilities: a 4-digit
string PocketSphinx decoded exactly had a posterior of 0.007, because the posterior of a
multi-word path is a product over words and is split between silence paths. A logistic model
per engine and grammar kind (`digits`, `yes_no`, `phrases`) turns the evidence into a
probability, fitted on the real-voice corpus (`bench/asr_real.py --fit`, fitting half of the
codes, reliability measured on the other half: bench/RESULTS.md "Real voices").

The flows' thresholds (`confidence:`, default per built-in in ivr.lang.grammars) compare with
that probability, whichever engine decoded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

Model = tuple[float, Mapping[str, float]]
"""(bias, weight per feature) of a logistic model over `transform`ed features."""

MODELS: dict[tuple[str, str], Model] = {}
"""(engine, grammar kind) -> fitted model; filled in below from bench/asr_real.py --fit."""

FALLBACK: dict[str, Model] = {
    "whisper": (-4.0, {"match": 4.0, "agreement": 2.0, "token_prob": 2.0}),
    "pocketsphinx": (-2.0, {"posterior": 1.0, "agreement": 2.0}),
}
"""Before fitting (and for an engine/kind never fitted): a monotone guess."""


def transform(name: str, value: float) -> float:
    """Features enter the model as log-odds (probabilities) or as they are (margins)."""
    if name in ("margin", "words"):
        return value
    p = min(0.99, max(0.01, value))
    return math.log(p / (1.0 - p))


def calibrate(engine: str, kind: str, features: Mapping[str, float]) -> float:
    """P(right) for a result with these raw features, in [0, 1]."""
    bias, weights = MODELS.get((engine, kind)) or FALLBACK.get(engine, (0.0, {}))
    z = bias + sum(w * transform(name, float(features.get(name, 0.0)))
                   for name, w in weights.items())
    return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))
