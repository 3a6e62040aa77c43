"""Load a model in a throwaway process first: PocketSphinx exits the whole process (C `exit()`)
on a corrupt model file, which in a worker would drop every call it holds."""

from __future__ import annotations

import subprocess
import sys

from ivr.speech.asr.base import EngineError

PROBE_TIMEOUT = 60.0

_POCKETSPHINX = (
    "import sys\n"
    "from pocketsphinx import Decoder\n"
    "Decoder(hmm=sys.argv[1], lm=None, loglevel='FATAL')\n"
)


def probe_pocketsphinx(model_dir: str) -> None:
    """EngineError (with PocketSphinx's own complaint) when the model would not load."""
    try:
        proc = subprocess.run([sys.executable, "-c", _POCKETSPHINX, model_dir],
                              capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise EngineError(f"PocketSphinx model {model_dir} did not load within "
                          f"{PROBE_TIMEOUT:.0f}s") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit status {proc.returncode}"
        raise EngineError(f"PocketSphinx model {model_dir} is broken: {detail}")
