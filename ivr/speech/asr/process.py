"""The supervisor's handle on the recognition service process (ivr.speech.asr.server).

Started before the workers, so a worker's first status already says whether speech is ready;
restarted when it dies (calls meanwhile hear a nomatch and the DTMF path goes on); stopped last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from ivr.status_line import read_statuses

log = logging.getLogger("ivr.serve")

START_BOUND = 120.0
"""Loading a large vosk model from a cold disk takes tens of seconds."""


class RecognitionProcess:
    def __init__(self, socket_path: Path, config_path: Path | None) -> None:
        self.socket = socket_path
        self.config_path = config_path
        self.proc: asyncio.subprocess.Process | None = None
        self.status: dict[str, Any] = {}
        self.restarts = 0
        self.ready = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        cmd = [sys.executable, "-m", "ivr.speech.asr.server", "--socket", str(self.socket)]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        self.ready.clear()
        self.status = {}
        self.proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
        self._reader = asyncio.get_running_loop().create_task(self._read(self.proc))
        try:
            await asyncio.wait_for(self.ready.wait(), START_BOUND)
        except asyncio.TimeoutError:
            log.error("the recognition service did not start within %.0fs", START_BOUND)

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for status in read_statuses(proc.stdout):
            self.status = status
            self.ready.set()

    async def check(self) -> None:
        """Restart the service if it died (called from the supervisor's watch loop)."""
        if self.proc is None or self.alive:
            return
        self.restarts += 1
        log.error("the recognition service exited with %s; restarting", self.proc.returncode)
        await self.start()

    def as_json(self) -> dict[str, Any]:
        return {"alive": self.alive, "loaded": self.ready.is_set(),
                "pid": self.proc.pid if self.proc else None, "restarts": self.restarts,
                "socket": str(self.socket),
                **{k: self.status.get(k) for k in ("rss_kb", "models", "decodes", "failures")}}

    async def stop(self) -> None:
        if self.alive and self.proc is not None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
