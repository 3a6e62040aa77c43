"""The supervisor's worker pool: how many worker processes, how many calls each, their lives.

Sized once, before the first call: by default one worker per core, each carrying its share of
`sip.max_calls` up to what the loaded pjsua2 carries (hundreds from the source build, 4 from the
PyPI wheel, which then needs more workers). Growing on demand answered bursts with 503s while
new workers started, so the whole pool starts with the server. A dead worker is restarted on a
new SIP port; its calls are written off by the caller of `restart_dead`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.bus.broker import free_port
from ivr.config import EngineConfig
from ivr.errors import ConfigError
from ivr.sip.build import probe
from ivr.status_line import read_statuses

log = logging.getLogger("ivr.serve")

RESTART_BACKOFF = (0.5, 1.0, 2.0, 5.0)
START_BOUND = 15.0


@dataclass
class WorkerProc:
    """One worker process as the supervisor sees it."""

    worker_id: str
    port: int
    limit: int
    """Calls this worker may carry (its share of max_calls)."""
    proc: asyncio.subprocess.Process | None = None
    status: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None
    stopping: bool = False
    host: str = "127.0.0.1"
    """Where the front reaches it: `sip.workers_host` (loopback for a wildcard)."""
    fixed_port: bool = False
    """The port is the worker's own (`sip.worker_ports`): a restart keeps it."""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def calls(self) -> int:
        """Call slots in use: inbound calls, and callbacks (two legs each) that this worker
        dials."""
        if not self.alive:
            return 0
        return int(self.status.get("calls", 0)) + 2 * int(self.status.get("callbacks", 0))

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def as_json(self) -> dict[str, Any]:
        return {"id": self.worker_id, "port": self.port, "pid": self.proc.pid if self.proc else None,
                "alive": self.alive, "calls": self.calls, "limit": self.limit, "restarts": self.restarts,
                "draining": bool(self.status.get("draining")), "media": self.status.get("media", {}),
                "tasks": self.status.get("tasks", 0), "flows": self.status.get("flows", {}),
                "rss_kb": self.status.get("rss_kb", 0), "created": self.status.get("created", {}),
                "speech": self.status.get("speech", {}), "nodes": self.status.get("nodes", {}),
                "outbox": self.status.get("outbox", 0), "bus": bool(self.status.get("bus"))}


class WorkerPool:
    """Worker processes of one `ivr serve`; `extra_args` gives the options known only once the
    broker and the recognition service run (they change when those restart)."""

    def __init__(self, config: EngineConfig, config_path: Path | None, state: Path,
                 extra_args: Callable[[], list[str]],
                 spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[Any]]) -> None:
        self.config = config
        self.config_path = config_path
        self.state = state
        self.extra_args = extra_args
        self.spawn = spawn
        self.workers: dict[str, WorkerProc] = {}
        self.status_seen = asyncio.Event()
        """Set on every status line from any worker (whoever waits for one clears it first)."""
        self.pjsua2 = probe()
        self.limits = config.sip.worker_limits(self.pjsua2.max_calls, os.cpu_count() or 1)
        """Calls per worker, one entry per worker of the pool."""
        self.ports = config.sip.worker_port_list()
        """Fixed SIP ports, worker 1 the first (`sip.worker_ports`); None: free ports."""
        if self.ports is not None and len(self.ports) < len(self.limits):
            raise ConfigError(
                f"sip.worker_ports {config.sip.worker_ports} holds {len(self.ports)} ports but the "
                f"pool has {len(self.limits)} workers (sip.max_calls / calls per worker)")
        host = config.sip.workers_host
        self.host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host

    def __iter__(self) -> Any:
        return iter(list(self.workers.values()))

    def addresses(self) -> list[str]:
        return [w.address for w in self.workers.values()]

    def live_calls(self) -> int:
        return sum(w.calls for w in self.workers.values())

    def _command(self, w: WorkerProc) -> list[str]:
        cmd = [sys.executable, "-m", "ivr.worker", "--id", w.worker_id, "--sip-port", str(w.port),
               "--calls", str(w.limit), "--state-dir", str(self.state)]
        if self.config_path:
            cmd += ["--config", str(self.config_path)]
        return cmd + self.extra_args()

    async def _start(self, w: WorkerProc) -> None:
        w.ready.clear()
        w.status = {}
        w.proc = await asyncio.create_subprocess_exec(
            *self._command(w), stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
        )
        w.reader = self.spawn(self._read_status(w, w.proc))

    async def _read_status(self, w: WorkerProc, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for status in read_statuses(proc.stdout):
            w.status = status
            w.ready.set()
            self.status_seen.set()

    async def _add(self, limit: int) -> WorkerProc:
        index = len(self.workers)
        fixed = self.ports is not None
        port = self.ports[index] if self.ports is not None else free_port(kind=socket.SOCK_DGRAM)
        w = WorkerProc(str(index + 1), port, limit, host=self.host, fixed_port=fixed)
        self.workers[w.worker_id] = w
        await self._start(w)
        try:
            await asyncio.wait_for(w.ready.wait(), START_BOUND)
        except asyncio.TimeoutError:
            log.error("worker %s did not start within %.0fs", w.worker_id, START_BOUND)
        return w

    async def start(self) -> None:
        """The whole pool, in parallel, each ready (flows loaded) or START_BOUND passed."""
        await asyncio.gather(*(self._add(limit) for limit in self.limits))

    async def restart_dead(self, written_off: Callable[[WorkerProc], None]) -> bool:
        """Restart each worker that died (not stopped by us); True when any was (the front's
        list of addresses changed)."""
        restarted = False
        for w in self:
            if w.proc is None or w.proc.returncode is None or w.stopping:
                continue
            delay = RESTART_BACKOFF[min(w.restarts, len(RESTART_BACKOFF) - 1)]
            log.error("worker %s exited with %s; restarting in %.1fs", w.worker_id,
                      w.proc.returncode, delay)
            w.restarts += 1
            written_off(w)
            await asyncio.sleep(delay)
            # a new SIP port each time: the old one may have been taken meanwhile (seen in the
            # bench: a worker whose port another process had bound between free_port() and its
            # bind failed at startup every 8 s for minutes)
            if not w.fixed_port:
                w.port = free_port(kind=socket.SOCK_DGRAM)
            await self._start(w)
            restarted = True
        return restarted

    def signal_all(self, sig: int) -> None:
        for w in self:
            if w.alive and w.proc is not None:
                w.proc.send_signal(sig)

    async def drain(self, bound: float) -> None:
        """SIGTERM: workers refuse new calls (503) and exit after their last call, within `bound`."""
        for w in self:
            w.stopping = True
        self.signal_all(signal.SIGTERM)
        waits = [asyncio.ensure_future(w.proc.wait()) for w in self if w.proc is not None and w.alive]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=bound)
            for p in pending:
                p.cancel()

    async def kill(self) -> None:
        for w in self:
            w.stopping = True
            if w.alive and w.proc is not None:
                w.proc.kill()
                with contextlib.suppress(ProcessLookupError):
                    await w.proc.wait()
