"""Kamailio's command-line tools (`kamailio -c`, `kamcmd`): found, and run with a hard time bound.

Both the process (config check before start) and the RPC (kamcmd) run them, so a hung tool can
never stall the supervisor's loop and a missing package is named in the error.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path

from ivr.front.settings import FrontError


async def run_tool(argv: Sequence[str], timeout: float) -> tuple[int, str]:
    """Run a short helper command (kamailio -c, kamcmd) with a hard time bound."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise FrontError(f"{Path(argv[0]).name} did not finish within {timeout:g}s") from None
    return proc.returncode if proc.returncode is not None else -1, out.decode(errors="replace")


def find_tool(name: str) -> str:
    """The executable `name` on PATH or in the sbin directories Debian installs Kamailio into."""
    exe = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if exe is None:
        raise FrontError(f"{name} not found (Debian package `kamailio`)")
    return exe


async def check_config(cfg: Path, runtime_dir: Path, kamailio: str | None = None,
                       timeout: float = 10.0) -> None:
    """`kamailio -c`: refuse to start on a config Kamailio itself rejects (output in the error)."""
    exe = kamailio or find_tool("kamailio")
    code, out = await run_tool([exe, "-c", "-f", str(cfg), "-Y", str(runtime_dir)], timeout)
    if code != 0:
        raise FrontError(f"kamailio -c rejected {cfg} (rc={code}):\n{out.strip()}")
