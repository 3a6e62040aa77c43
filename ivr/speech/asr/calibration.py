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

MODELS: dict[tuple[str, str], Model] = {
    # bench/asr_real.py --fit, 2026-11-30, the fit half of real_voice v1 (720 trials per engine)
    ("pocketsphinx", "digits"): (-1.909, {"word_posterior": 0.354, "agreement": 0.547,
                                          "fallback": 0.0}),
    ("pocketsphinx", "yes_no"): (-4.144, {"word_posterior": 0.164, "agreement": 0.517,
                                          "fallback": -0.44}),
    ("pocketsphinx", "phrases"): (-4.053, {"word_posterior": 0.076, "agreement": 0.738,
                                           "fallback": -0.454}),
    # Whisper errs too rarely per kind to fit each (2 wrong results of 250, both digits, in
    # the fit half): one model fitted on every kind's results
    **{("whisper", kind): (-2.677, {"match": 1.258, "agreement": 1.03, "token_prob": -0.12,
                                     "margin": 0.409, "no_speech": -0.068})
       for kind in ("digits", "yes_no", "phrases")},
}
"""(engine, grammar kind) -> fitted model (`phrases` on menu and yes/no trials together: the
same fuzzy reading of a phrase list)."""

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


CAPPED_BY_AGREEMENT = frozenset({("whisper", "yes_no")})
"""A yes/no answer is no surer than the share of Whisper's beam that gives that answer: with two
meanings the beam's split is itself P(yes). (Measured: the one wrong yes/no answer on the
real-voice corpus, "incorrect" under line noise heard as "correct", had 60 % of the beam; right
answers 66-100 %. The logistic model, fitted on few failures, scored it 0.97.)"""


def calibrate(engine: str, kind: str, features: Mapping[str, float]) -> float:
    """P(right) for a result with these raw features, in [0, 1]."""
    bias, weights = MODELS.get((engine, kind)) or FALLBACK.get(engine, (0.0, {}))
    z = bias + sum(w * transform(name, float(features.get(name, 0.0)))
                   for name, w in weights.items())
    p = 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))
    if (engine, kind) in CAPPED_BY_AGREEMENT and "agreement" in features:
        p = min(p, float(features["agreement"]))
    return p
