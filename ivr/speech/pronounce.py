"""Pronunciations for words the CMU dictionary lacks, from espeak-ng's phonemes.

PocketSphinx decodes only words its dictionary knows; flows name brands, places and Korean-made
words it does not. espeak-ng, which already speaks our prompts, knows how to say any word, so its
phonemes mapped to CMU's ARPAbet give the decoder a usable entry (the engine's phrases and the
`ivr call` prompt grammar both use it).
"""

from __future__ import annotations

import subprocess
from functools import lru_cache

_ESPEAK_TO_ARPA = {
    "a": "AE", "A:": "AA", "aa": "AA", "A@": "AA R", "a#": "AH", "@": "AH", "@L": "AH L",
    "@2": "AH", "@5": "AH", "3": "ER", "3:": "ER", "E": "EH", "E2": "EH", "e@": "EH R", "eI": "EY",
    "I": "IH", "I2": "IH", "I#": "IH", "i": "IY", "i:": "IY", "i@": "IH R", "i@3": "IH R",
    "0": "AA", "O": "AO", "O:": "AO", "O@": "AO R", "o@": "AO R", "oU": "OW", "U": "UH",
    "u:": "UW", "U@": "UH R", "V": "AH", "aI": "AY", "aI@": "AY ER", "aU": "AW", "OI": "OY",
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "f": "F", "v": "V", "T": "TH",
    "D": "DH", "s": "S", "z": "Z", "S": "SH", "Z": "ZH", "h": "HH", "m": "M", "n": "N",
    "N": "NG", "l": "L", "r": "R", "w": "W", "j": "Y", "tS": "CH", "dZ": "JH", "t#": "T",
    "?": "T", "n-": "N", "l-": "L", "r-": "R", "m-": "M", "x": "K", "W": "W",
}


@lru_cache(maxsize=512)
def espeak_pronunciation(word: str) -> str | None:
    """A CMU-style pronunciation from espeak-ng's phonemes (for words cmudict lacks)."""
    try:
        proc = subprocess.run(["espeak-ng", "-q", "-x", "--sep=_", "-v", "en-us", word],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    phones: list[str] = []
    for chunk in proc.stdout.split():
        for ph in chunk.split("_"):
            ph = ph.replace("'", "").replace(",", "").replace("%", "").replace("=", "")
            if not ph:
                continue
            arpa = _ESPEAK_TO_ARPA.get(ph) or _ESPEAK_TO_ARPA.get(ph.rstrip(":"))
            if arpa is None:
                arpa = _ESPEAK_TO_ARPA.get(ph[0])
            if arpa:
                phones.append(arpa)
    return " ".join(phones) or None
