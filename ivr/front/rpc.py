"""Steering the running front over its ctl socket with `kamcmd`: reload the dispatcher list, read
the workers' probe state and the trunks' registration state.

kamcmd exits 0 even when the RPC failed, so its output is read too; every call is time-bounded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ivr.front.settings import FrontError
from ivr.front.tools import find_tool, run_tool

# uac_reg record flags (uac module docs, uac.reg_info)
_REG_DISABLED, _REG_ONGOING, _REG_STATE, _REG_AUTHSENT, _REG_INIT = 1, 2, 4, 8, 16


REJECT_REASONS = ("acl", "pike", "scanner", "banned", "max_calls", "no_worker", "oversized",
                  "malformed", "refer")
"""Why the front refused a request: one Kamailio statistic `ivr_reject_<reason>` each."""
_REJECT_LINE = re.compile(r"^\s*script:ivr_reject_([a-z_]+)\s*=\s*(\d+)\s*$", re.MULTILINE)


def parse_rejects(text: str) -> dict[str, int]:
    """`kamcmd stats.get_statistics script:` output -> {reason: count} of our reasons."""
    got = {m.group(1): int(m.group(2)) for m in _REJECT_LINE.finditer(text)}
    return {r: got.get(r, 0) for r in REJECT_REASONS}


def registration_word(flags: int) -> str:
    """uac_reg's record flags as the one word the health document shows for a trunk."""
    if flags & _REG_DISABLED:
        return "disabled"
    if flags & _REG_STATE:
        return "registered"  # also while a refresh is under way: the binding is still valid
    if flags & (_REG_ONGOING | _REG_AUTHSENT):
        return "registering"
    if flags & _REG_INIT:
        return "failed"
    return "pending"


def parse_dispatcher_list(text: str) -> dict[str, str]:
    """`kamcmd dispatcher.list` output -> {"host:port": flags} (flags like "AP", "IP", "AX")."""
    state: dict[str, str] = {}
    uri: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("URI:"):
            uri = line.split(":", 1)[1].strip().removeprefix("sip:")
        elif line.startswith("FLAGS:") and uri is not None:
            state[uri] = line.split(":", 1)[1].strip()
            uri = None
    return state


class Kamcmd:
    """kamcmd against one front's ctl socket; the binary is looked up at the first call."""

    def __init__(self, ctl_socket: Path, kamcmd: str | None = None) -> None:
        self.ctl_socket = ctl_socket
        self._kamcmd = kamcmd

    async def run(self, *command: str, timeout: float = 5.0) -> str:
        """The RPC's output; a FrontError when kamcmd or the RPC failed."""
        exe = self._kamcmd or find_tool("kamcmd")
        code, out = await run_tool([exe, "-s", f"unix:{self.ctl_socket}", *command], timeout)
        # kamcmd exits 0 even when the RPC failed ("error: 500 - ..."), so read the output too
        if code != 0 or out.lstrip().startswith("error:"):
            raise FrontError(f"kamcmd {' '.join(command)} failed (rc={code}): {out.strip()}")
        return out

    async def reload_dispatcher(self) -> None:
        """Make the proxy read the dispatcher list file again."""
        await self.run("dispatcher.reload")

    async def dispatcher_state(self) -> dict[str, str]:
        """{"host:port": flags} of every destination the proxy knows."""
        return parse_dispatcher_list(await self.run("dispatcher.list"))

    async def rejects(self) -> dict[str, int]:
        """{reason: requests refused} since the front started (ivr_front_rejects_total)."""
        return parse_rejects(await self.run("stats.get_statistics", "script:"))

    async def registration_state(self, names: Sequence[str]) -> dict[str, str]:
        """{trunk name: word} for `names`. Only the flags are read: the RPC record also carries
        the password."""
        state: dict[str, str] = {}
        for name in names:
            out = await self.run("uac.reg_info", "l_uuid", name)
            m = re.search(r"^\s*flags:\s*(\d+)\s*$", out, re.MULTILINE)
            state[name] = registration_word(int(m.group(1))) if m else "unknown"
        return state
