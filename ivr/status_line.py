"""The status line a child process (worker, recognition service) writes to the supervisor.

A child prints `{"status": {...}}` as one JSON line on stdout whenever its state changes; the
supervisor reads its pipe and keeps the latest one (health, metrics, readiness). One writer and one
reader here keep both ends of that pipe in step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

PREFIX = b'{"status"'


def rss_kb() -> int:
    """Resident memory now (not the peak), for the leak tests and /health."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def write_status(status: dict[str, Any]) -> bool:
    """Send one status line; False when the supervisor's end of the pipe is gone."""
    try:
        sys.stdout.write(json.dumps({"status": status}) + "\n")
        sys.stdout.flush()
        return True
    except (BrokenPipeError, ValueError):
        return False


async def read_statuses(stream: asyncio.StreamReader) -> AsyncIterator[dict[str, Any]]:
    """The status documents of a child's stdout, in order; other lines and bad JSON skipped."""
    async for line in stream:
        if line.startswith(PREFIX):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                yield json.loads(line)["status"]
