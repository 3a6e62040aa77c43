"""Which pjsua2 this environment loads, and how many calls one process of it can carry.

`scripts/build-pjsua2.sh` installs pjsua2 built from pjproject source with server limits and a
marker package (`pjsua2_build`); without a build the PyPI wheel `pjsua2-python` (4 calls per
process, no SRTP) is the fallback. The limit is read from the loaded library (pjsua's default
`max_calls` is its compiled `PJSUA_MAX_CALLS`), never taken from config alone.
"""

from __future__ import annotations

import functools
import importlib.metadata as metadata
import importlib.util
import logging
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger("ivr.sip")

WHEEL_LIMIT = 4
"""What the PyPI wheel was compiled with."""


@dataclass(frozen=True)
class PjBuild:
    """The loaded pjsua2: `build` is "source" or "wheel"."""

    version: str
    build: str
    max_calls: int
    srtp: bool

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def probe() -> PjBuild:
    """Import pjsua2 and read its limits (cheap: no endpoint is created)."""
    import pjsua2 as pj

    max_calls = int(pj.UaConfig().maxCalls)
    source = importlib.util.find_spec("pjsua2_build") is not None and _version("pjsua2-python") is None
    version = _version("pjsua2") if source else _version("pjsua2-python")
    return PjBuild(version=version or "unknown", build="source" if source else "wheel",
                   max_calls=max_calls, srtp=source)


def warn_if_wheel(build: PjBuild) -> None:
    """One clear line when the engine runs on the fallback wheel."""
    if build.build == "wheel" or build.max_calls <= WHEEL_LIMIT:
        log.warning("pjsua2 %s is the PyPI wheel: %d calls per worker process and no SRTP; "
                    "run scripts/build-pjsua2.sh .venv/bin/python (make serve does) to build "
                    "pjproject from source", build.version, build.max_calls)
