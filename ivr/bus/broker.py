"""A private Mosquitto for `ivr serve` when the config names no broker.

With `BrokerUsers` (what `ivr serve` passes) it refuses anonymous clients and applies the
generated ACL (`ivr.bus.users`, `ivr.acd.acl`); `users=None` is an open broker, for tests of the
protocol alone.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
from pathlib import Path

from ivr.bus.users import BrokerUsers


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def write_config(state_dir: Path, port: int, users: BrokerUsers | None) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    conf = state_dir / "mosquitto.conf"
    access = ("allow_anonymous true\n" if users is None else
              f"allow_anonymous false\npassword_file {users.password_file}\nacl_file {users.acl_file}\n")
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        # run as whoever started us: started as root, mosquitto would switch to its own user and
        # could not read the 0600 password and ACL files
        f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
        + access +
        "persistence true\n"
        f"persistence_location {state_dir}/\n"
        "autosave_interval 5\n"
        "max_queued_messages 100000\n"
        # bus ids are per process: the sessions of processes that are gone expire
        "persistent_client_expiration 1d\n"
        "log_dest stderr\n"
        "log_type error\nlog_type warning\n"
    )
    return conf


async def start_broker(state_dir: Path, port: int,
                       users: BrokerUsers | None) -> asyncio.subprocess.Process:
    """Start mosquitto and wait until it accepts connections (its users written beforehand)."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf = write_config(state_dir, port, users)
    proc = await asyncio.create_subprocess_exec(
        exe, "-c", str(conf), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    for _ in range(100):
        if proc.returncode is not None:
            err = (await proc.stderr.read()).decode() if proc.stderr else ""
            raise RuntimeError(f"mosquitto exited: {err.strip()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return proc
        except OSError:
            await asyncio.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start listening within 5s")


def find_ours(state_dir: Path) -> int | None:
    """The pid of a mosquitto running this state dir's config (left by a killed supervisor)."""
    conf = str(state_dir / "mosquitto.conf").encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"mosquitto" in argv[0] and conf in argv:
            return int(proc.name)
    return None


async def listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True
