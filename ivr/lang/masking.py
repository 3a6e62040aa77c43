"""How a sensitive value is shown wherever it leaves the interpreter."""

from __future__ import annotations

from typing import Any


def mask(value: Any, keep: int = 4) -> str:
    """`****1234`: enough for a caller or agent to recognise, too little to reuse."""
    text = str(value)
    if not text:
        return ""
    shown = text[-keep:] if keep and len(text) > keep else ""
    return "****" + shown
