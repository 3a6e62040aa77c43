"""Secrets on disk: read only from files no one else can read, written 0600 from the start.

A token or password in a group- or world-readable file is as good as published on a shared host,
so reading one is refused with the `chmod` that fixes it; a file we create never exists with
wider permissions, not even for a moment (created with mode 0600, then renamed into place).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from ivr.errors import ConfigError


def read_private(path: Path, what: str) -> str:
    """The file's text; a ConfigError if it is missing or readable by group or others."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{what} {path} is not a regular file")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{what} {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
                          f"run: chmod 600 {path}")
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror or exc}") from None


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 (atomically: readers see the old or the new file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
