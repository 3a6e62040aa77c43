"""Agents' registrar secrets, kept only as digest HA1 = md5(user:realm:password).

The front challenges every REGISTER and checks the answer against the agent's HA1, so the
password itself is never stored. HA1s come from an environment variable the agent's config names
(`agents: {bob: {secret_env: BOB_HA1}}`) or from the secrets file (`front.agent_secrets`), which
`ivr agents secret NAME` writes. That file is Apache's htdigest format (`user:realm:ha1` per
line, so `htdigest` can write it too) and must be readable by its owner only: a file group or
others could read is refused, never silently used. Writing it is a handful of lines over hashlib,
so no password-hashing library is pulled in for one md5.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ivr.errors import ConfigError
from ivr.front.render import write_private

if TYPE_CHECKING:
    from ivr.config import EngineConfig

_HA1 = re.compile(r"^[0-9a-f]{32}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


def ha1(user: str, realm: str, password: str) -> str:
    """Digest HA1 (RFC 2617, algorithm MD5): what the front compares a REGISTER's answer with."""
    return hashlib.md5(f"{user}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()


def check_agent_name(name: str) -> str:
    """An agent name that can be a SIP user and an htdigest field; ConfigError otherwise."""
    if not _NAME.match(name):
        raise ConfigError(f"agent name {name!r} cannot register at the front: use letters, digits "
                          "and '._+-' (it is the SIP user name)")
    return name


def _check_private(path: Path) -> os.stat_result:
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"agent secrets file {path} is not a regular file")
    if st.st_mode & 0o077:
        raise ConfigError(f"agent secrets file {path} is readable by group or others (mode "
                          f"{stat.S_IMODE(st.st_mode):04o}); refusing to use it: chmod 600 {path}")
    return st


@dataclass
class SecretsFile:
    """The htdigest file: {(user, realm): ha1}, in file order."""

    path: Path
    entries: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> SecretsFile:
        """Read `path` (a missing file is empty); ConfigError for a readable-by-others file or a
        line that is not `user:realm:ha1`, naming the line."""
        path = Path(path)
        if not path.exists():
            return cls(path)
        _check_private(path)
        entries: dict[tuple[str, str], str] = {}
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep1, rest = line.partition(":")
            realm, sep2, value = rest.rpartition(":")
            if not (sep1 and sep2 and user and _HA1.match(value.lower())):
                raise ConfigError(f"{path}:{number}: not 'user:realm:ha1' (ha1 = 32 hex digits)")
            entries[(user, realm)] = value.lower()
        return cls(path, entries)

    def ha1s(self, realm: str) -> dict[str, str]:
        """{user: ha1} for `realm` (entries of another realm cannot answer its challenges)."""
        return {user: value for (user, r), value in self.entries.items() if r == realm}

    def set(self, user: str, realm: str, password: str) -> None:
        check_agent_name(user)
        if not password:
            raise ConfigError("an empty secret cannot protect a registration")
        self.entries[(user, realm)] = ha1(user, realm, password)

    def remove(self, user: str) -> bool:
        """Drop every realm's entry of `user`; whether there was one."""
        keys = [k for k in self.entries if k[0] == user]
        for key in keys:
            del self.entries[key]
        return bool(keys)

    def save(self) -> None:
        """Write atomically with mode 0600 (the directory is created 0700 when missing)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lines = [f"{user}:{realm}:{value}" for (user, realm), value in self.entries.items()]
        write_private(self.path, "".join(line + "\n" for line in lines))


def secrets_path(config: EngineConfig) -> Path:
    """The secrets file the config names, absolute (relative paths are from the working dir, as
    for the store)."""
    path = Path(config.front.agent_secrets).expanduser()
    return path if path.is_absolute() else Path.cwd() / path


def agent_ha1s(config: EngineConfig, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """{agent: ha1} for every configured agent that has a secret: its `secret_env` variable
    first (an HA1 for `front.auth_realm`), else the secrets file. Agents without one are left
    out, so the front answers their REGISTERs 403."""
    env = os.environ if environ is None else environ
    realm = config.front.auth_realm
    from_file = SecretsFile.load(secrets_path(config)).ha1s(realm)
    out: dict[str, str] = {}
    for name, agent in config.agents.items():
        if agent.secret_env:
            value = env.get(agent.secret_env, "").strip().lower()
            if value:
                if not _HA1.match(value):
                    raise ConfigError(f"agent {name!r}: ${agent.secret_env} is not an HA1 (32 hex "
                                      f"digits, md5 of '{name}:{realm}:password')")
                out[check_agent_name(name)] = value
                continue
        if name in from_file:
            out[check_agent_name(name)] = from_file[name]
    return out
