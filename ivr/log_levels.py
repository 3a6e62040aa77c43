"""Log levels changed at run time, the same in the supervisor and every worker.

The supervisor owns the levels (`ivr log-level`, SIGUSR1 more verbose, SIGUSR2 less) and writes
them to `<state dir>/log-levels.json`; each worker applies that file at start and whenever it
changes (checked twice a second), so a restarted worker starts at the current levels too, and
reports the file's `seq` in its status line: the supervisor knows when all of them applied it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ROOT = ""
"""The root logger's key in the levels (`--logger` omitted)."""


def check_level(level: str) -> str:
    """The level's canonical name; ValueError for anything else."""
    name = level.strip().upper()
    if name not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    return name


def check_logger(name: str) -> str:
    if name and not all(part and all(c.isalnum() or c in "_-" for c in part)
                        for part in name.split(".")):
        raise ValueError(f"logger name {name[:80]!r} is not dotted words (e.g. ivr.sip)")
    return name


def apply(levels: dict[str, str]) -> None:
    """Set each named logger's level ("" is the root)."""
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)


def stepped(level: str, step: int) -> str:
    """One level more verbose (step -1) or less (+1), within DEBUG..ERROR."""
    index = LEVELS.index(level) if level in LEVELS else LEVELS.index("INFO")
    return LEVELS[max(0, min(len(LEVELS) - 1, index + step))]


def root_level() -> str:
    return logging.getLevelName(logging.getLogger().level)


@dataclass
class LevelsFile:
    """`log-levels.json`: `{"seq": n, "levels": {logger: level}}`, replaced atomically."""

    path: Path
    seq: int = 0
    levels: dict[str, str] = field(default_factory=dict)
    _stamp: tuple[int, int, int] | None = None

    def write(self, levels: dict[str, str]) -> int:
        """Supervisor: apply here and publish to the workers; the new seq."""
        apply(levels)
        self.seq += 1
        self.levels = dict(levels)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"seq": self.seq, "levels": self.levels}))
        os.replace(tmp, self.path)
        return self.seq

    def set(self, level: str, logger: str = ROOT) -> int:
        levels = {**self.levels, logger: level}
        if logger == ROOT:  # the root's level applies to every logger not named on its own
            levels = {ROOT: level, **{k: v for k, v in self.levels.items() if k != ROOT}}
        return self.write(levels)

    def step(self, step: int) -> int:
        """SIGUSR1 (-1) / SIGUSR2 (+1): the root one level more or less verbose."""
        return self.set(stepped(self.levels.get(ROOT, root_level()), step))

    def poll(self) -> bool:
        """Worker: apply the file when it changed since the last poll; True when it did."""
        try:
            st = self.path.stat()
        except OSError:
            return False
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # each write is a new inode
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            doc = json.loads(self.path.read_text())
            levels = {check_logger(str(k)): check_level(str(v))
                      for k, v in dict(doc["levels"]).items()}
            apply(levels)
            self.seq, self.levels = int(doc["seq"]), levels
            return True
        return False
