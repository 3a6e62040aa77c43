"""Generated caller audio for the ASR tests: espeak-ng -> 8 kHz G.711 (mu-law) -> 16-bit WAV.

Files are cached per test session (keyed by text, voice, speed, noise) so every test module
reuses the same renders. Speech is padded with 0.4 s of silence before and 0.9 s after, so the
VAD sees an onset and a trailing silence as on a call.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LEAD_S = 0.4
VOICES = ("en-us", "en+f3", "en+m3")
FLITE_VOICES = ("flite:awb", "flite:rms", "flite:kal", "flite:slt")
SPEEDS = (140, 170, 200)


def render(cache: Path, text: str, *, voice: str = "en-us", speed: int = 170,
           noise: float = 0.0, lead: float = LEAD_S, tail: float = 0.9) -> Path:
    # sox -R: repeatable dither and noise. Without it the +-1 LSB dither on the padded silence
    # differs run to run, and once in a while the VAD heard speech in it (a flaky onset test).
    key = hashlib.sha1(f"{text}|{voice}|{speed}|{noise}|{lead}|{tail}".encode()).hexdigest()[:16]
    out = cache / f"{key}.wav"
    if out.is_file():
        return out
    raw, ulaw = cache / f"{key}.raw.wav", cache / f"{key}.ulaw.wav"
    if voice.startswith("flite:"):  # CMU flite voices: flite:awb, flite:rms, flite:kal ...
        subprocess.run(["flite", "-voice", voice[6:], "--setf",
                        f"duration_stretch={170 / speed:.3f}", "-t", text, "-o", str(raw)],
                       check=True, capture_output=True)
    else:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), "--", text],
                       check=True, capture_output=True)
    subprocess.run(["sox", "-R", str(raw), "-r", "8000", "-c", "1", str(cache / f"{key}.8k.wav"),
                    "pad", str(lead), str(tail)], check=True, capture_output=True)
    src = cache / f"{key}.8k.wav"
    if noise:
        noise_wav = cache / f"{key}.noise.wav"
        subprocess.run(["sox", "-R", str(src), str(noise_wav), "synth", "whitenoise", "vol", str(noise)],
                       check=True, capture_output=True)
        mixed = cache / f"{key}.mix.wav"
        subprocess.run(["sox", "-R", "-m", str(src), str(noise_wav), str(mixed)], check=True,
                       capture_output=True)
        src = mixed
    subprocess.run(["sox", "-R", str(src), "-e", "u-law", str(ulaw)], check=True, capture_output=True)
    subprocess.run(["sox", "-R", str(ulaw), "-e", "signed", "-b", "16", str(out)], check=True,
                   capture_output=True)
    return out


def menu_options(flow: str, node: str) -> dict[str, list[str]]:
    """option goto -> phrases of a shipped flow's menu, plus the flow's globals (by goto)."""
    doc = yaml.safe_load((ROOT / "flows" / f"{flow}.yaml").read_text())
    out: dict[str, list[str]] = {}
    for opt in doc["nodes"][node]["menu"]["options"]:
        out.setdefault(opt["goto"], []).extend(str(p) for p in opt.get("speech", []))
    for link in doc.get("globals", []):
        if link.get("speech"):
            out.setdefault(link["goto"], []).extend(str(p) for p in link["speech"])
    return out
