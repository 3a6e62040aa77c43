"""From what a node listens for to what a recogniser may hear.

A node's `ListenSpec` is the flow's view (keys, timeouts, phrases, a built-in name); engines take
the neutral `ivr.lang.grammars.Grammar` built here, so they never import the flow layer.
"""

from __future__ import annotations

import logging

from ivr.flow.channel import ListenSpec
from ivr.lang.grammars import Grammar, builtins_for
from ivr.lang.normalize import normalize

log = logging.getLogger(__name__)


def speech_grammar(spec: ListenSpec) -> Grammar:
    """The grammar of a listen spec: its phrases (deduplicated, empty ones dropped) and its
    built-in when the language's recognisers have words for it (`digits` bounded by the
    collect's digit counts)."""
    builtin = spec.builtin if builtins_for(spec.language).has_words(spec.builtin) else None
    if spec.builtin and builtin is None:
        log.warning("built-in grammar %r has no speech words; phrases only", spec.builtin)
    lo, hi = 1, 0
    if builtin == "digits" and (spec.max_digits > 1 or spec.digits_counted):
        lo, hi = max(1, spec.min_digits), spec.max_digits
    return Grammar(tuple(dict.fromkeys(p for p in spec.phrases if normalize(p))), builtin,
                   spec.language, lo, hi)
