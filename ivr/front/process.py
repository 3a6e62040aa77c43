"""The front's Kamailio process: write its files, check the config, start it, wait until it
answers, hand its RPC to the caller, and stop it (and every child) within a bound.

Kamailio runs as our child in the foreground (`-DD -E`) in its own session, so a SIGKILLed
supervisor's proxy can be found and stopped by the next start; every path given to it is
absolute because `-w` changes its working directory before it opens them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from ivr.front.render import (
    render_config,
    tls_config_text,
    write_agent_auth,
    write_dispatcher,
    write_registrations,
    write_usrloc_tables,
)
from ivr.front.rpc import Kamcmd
from ivr.front.settings import (
    AGENTAUTH_DIR_NAME,
    TLS_CFG_NAME,
    UACREG_DIR_NAME,
    FrontError,
    FrontSettings,
    host_port,
    split_worker,
)
from ivr.front.tools import check_config, find_tool

log = logging.getLogger("ivr.front")


def _options_request(host: str, port: int, local: tuple[str, int], tag: str) -> bytes:
    """The readiness probe: an OPTIONS the front answers itself (no user part, to itself)."""
    lhost = host_port(local[0], local[1])
    return (
        f"OPTIONS sip:{host_port(host, port)} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {lhost};branch=z9hG4bK{tag}\r\n"
        f"From: <sip:ivr-probe@{lhost}>;tag={tag}\r\n"
        f"To: <sip:{host_port(host, port)}>\r\n"
        f"Call-ID: {tag}@ivr-probe\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\n"
        "User-Agent: ivr-front-probe\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _udp_options_once(host: str, port: int, wait: float) -> str | None:
    """One OPTIONS over UDP; the status line of the reply, or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        sock.settimeout(wait)
        tag = secrets.token_hex(6)
        sock.sendto(_options_request(host, port, sock.getsockname()[:2], tag), (host, port))
        try:
            data = sock.recv(65535)
        except OSError:  # timeout or ICMP port unreachable
            return None
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    return line if line.startswith("SIP/2.0 ") else None


def _gone(pid: int, timeout: float) -> bool:
    """Wait (bounded) until `pid` has exited; a zombie counts as gone (it holds no ports)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except (OSError, IndexError):
            return True
        time.sleep(0.05)
    return False


class Front:
    """One Kamailio child process for the engine: write config, check it, start, steer, stop."""

    def __init__(self, settings: FrontSettings, kamailio: str | None = None,
                 kamcmd: str | None = None) -> None:
        self.settings = settings
        self._kamailio = kamailio
        self.rpc = Kamcmd(settings.ctl_socket, kamcmd)
        self._proc: asyncio.subprocess.Process | None = None
        self._workers = list(settings.workers)

    # files, all absolute and inside runtime_dir
    @property
    def runtime_dir(self) -> Path:
        return self.settings.runtime_dir

    @property
    def cfg_path(self) -> Path:
        return self.runtime_dir / "kamailio.cfg"

    @property
    def dispatcher_path(self) -> Path:
        return self.runtime_dir / "dispatcher.list"

    @property
    def pid_path(self) -> Path:
        return self.runtime_dir / "kamailio.pid"

    @property
    def log_path(self) -> Path:
        return self.runtime_dir / "kamailio.log"

    @property
    def workers(self) -> list[str]:
        return list(self._workers)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _probe_target(self) -> tuple[str, int]:
        udp = [(h, p) for proto, h, p in self.settings.sockets if proto == "udp"]
        if not udp:
            raise FrontError("the front needs a udp listen socket for its readiness probe")
        host, port = udp[0]
        if host == "0.0.0.0":
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return host, port

    async def start(self, timeout: float = 10.0) -> None:
        """Write config and dispatcher list, check the config, start Kamailio, wait until it answers."""
        if self.alive:
            raise FrontError("the front is already running")
        target = self._probe_target()
        exe = self._kamailio or find_tool("kamailio")
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        self.cfg_path.write_text(render_config(self.settings), encoding="utf-8")
        write_dispatcher(self.dispatcher_path, self._workers, self.settings.probe_first)
        if self.settings.tls:
            (self.runtime_dir / TLS_CFG_NAME).write_text(tls_config_text(self.settings), encoding="utf-8")
        if self.settings.registrations:
            write_registrations(self.settings)
        if self.settings.registrar:
            write_agent_auth(self.settings)
        write_usrloc_tables(self.runtime_dir / "usrloc")
        self._reap_stale()
        with contextlib.suppress(FileNotFoundError):
            self.settings.ctl_socket.unlink()  # a stale socket from a killed run blocks ctl's bind
        try:
            await check_config(self.cfg_path, self.runtime_dir, exe, timeout=timeout)
        except BaseException:
            self._forget_secrets()
            raise
        argv = [
            exe, "-DD", "-E", "-f", str(self.cfg_path), "-Y", str(self.runtime_dir),
            "-P", str(self.pid_path), "-w", str(self.runtime_dir), "-m", "64", "-M", "8",
        ]
        with self.log_path.open("ab") as log:
            # own session: if the main process must be SIGKILLed, its children go with the group
            self._proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )
        try:
            await self._wait_ready(target, timeout)
        except BaseException:
            await self.stop()
            raise
        # htable loaded the HA1s at startup: they need not stay on disk
        shutil.rmtree(self.runtime_dir / AGENTAUTH_DIR_NAME, ignore_errors=True)

    async def set_agent_secrets(self, agent_ha1: dict[str, str]) -> None:
        """Replace the agents' HA1s in the running proxy (after `ivr agents secret`, on SIGHUP):
        the table is written, reloaded over the ctl socket, and removed again."""
        self.settings.agent_ha1 = dict(agent_ha1)
        self.settings._check_auth()
        if not (self.alive and self.settings.registrar):
            return
        write_agent_auth(self.settings)
        try:
            await self.rpc.run("htable.reload", "agentha1")
        finally:
            shutil.rmtree(self.runtime_dir / AGENTAUTH_DIR_NAME, ignore_errors=True)

    def _reap_stale(self) -> None:
        """A Kamailio left by a SIGKILLed supervisor (own session, so it outlived it) still holds
        the SIP ports: stop its process group before starting ours. Only a process that is a
        kamailio running this runtime dir's config is touched."""
        try:
            pid = int(self.pid_path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return
        if not cmdline or b"kamailio" not in cmdline[0] or str(self.cfg_path).encode() not in cmdline:
            return
        log.warning("stopping a stale front (pid %d) left by a previous run", pid)
        # SIGTERM first: db_text writes the registrations to disk when Kamailio shuts down
        try:
            group = os.getpgid(pid)
            os.killpg(group, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return
        if not _gone(pid, 3.0):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
            _gone(pid, 3.0)
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()

    async def _wait_ready(self, target: tuple[str, int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise FrontError(f"kamailio exited rc={self.returncode}:\n{self.log_tail()}")
            reply = await asyncio.to_thread(_udp_options_once, target[0], target[1], 0.2)
            if reply is not None:
                return
            await asyncio.sleep(0.05)
        raise FrontError(f"kamailio did not answer OPTIONS on {target} within {timeout:g}s:\n"
                         f"{self.log_tail()}")

    async def set_workers(self, workers: Sequence[str]) -> None:
        """Replace the worker set: rewrite the dispatcher list and reload it in the running proxy."""
        for worker in workers:
            split_worker(worker)
        self._workers = list(workers)
        write_dispatcher(self.dispatcher_path, self._workers, self.settings.probe_first)
        if self.alive:
            await self.rpc.reload_dispatcher()

    async def dispatcher_state(self) -> dict[str, str]:
        """{"host:port": flags} from the running proxy.

        Flags: A/I/D/T (active, inactive, disabled, trying) then P (probing) or X (not probed yet).
        """
        if not self.alive:
            raise FrontError("the front is not running")
        if not self._workers:
            return {}
        return await self.rpc.dispatcher_state()

    async def rejects(self) -> dict[str, int]:
        """{reason: count} of requests the front refused (ivr.front.rpc.REJECT_REASONS)."""
        if not self.alive:
            raise FrontError("the front is not running")
        return await self.rpc.rejects()

    async def registration_state(self) -> dict[str, str]:
        """{trunk name: "registered" | "registering" | "failed" | "disabled" | "pending"} from
        uac_reg's flags. Only the flags are read: the RPC record also carries the password."""
        if not self.alive:
            raise FrontError("the front is not running")
        return await self.rpc.registration_state([reg.name for reg in self.settings.registrations])

    async def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait at most `timeout`, then SIGKILL the whole process group; returns the rc."""
        proc = self._proc
        if proc is None:
            self._forget_secrets()
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.wait_for(proc.wait(), timeout)
        # children normally exit with the main process; make sure none of our group is left
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._forget_secrets()
        return proc.returncode

    def _forget_secrets(self) -> None:
        """The passwords stay on disk only while the front runs (uac_reg read them at startup)."""
        shutil.rmtree(self.runtime_dir / UACREG_DIR_NAME, ignore_errors=True)
        shutil.rmtree(self.runtime_dir / AGENTAUTH_DIR_NAME, ignore_errors=True)

    async def __aenter__(self) -> Front:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
