"""The private broker's users and passwords, and the ACL file that goes with them.

One password per user, generated once and kept in `<home>/users/<user>` (mode 0600, reused
across restarts so a broker and workers left by a killed supervisor keep working), hashed into
Mosquitto's `password_file` with `mosquitto_passwd -U`; the ACL's text comes from whoever knows
the topics (`ivr.acd.acl`).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from ivr.bus.auth import BusAuth
from ivr.errors import ConfigError
from ivr.secret_file import read_private, write_private


class BrokerUsers:
    """The private broker's credentials under `home` (its state directory)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.users_dir = home / "users"
        self.password_file = home / "passwd"
        self.acl_file = home / "acl"

    def secret_file(self, user: str) -> Path:
        return self.users_dir / user

    def auth(self, user: str) -> BusAuth:
        return BusAuth.from_file(user, self.secret_file(user))

    def _password(self, user: str) -> str:
        path = self.secret_file(user)
        if path.exists():
            return read_private(path, "broker password file").strip()
        password = secrets.token_urlsafe(32)
        write_private(path, password + "\n")
        return password

    def write(self, users: Iterable[str], acl: str) -> None:
        """Passwords (new ones generated), the hashed password file and the ACL."""
        plain = "".join(f"{u}:{self._password(u)}\n" for u in users)
        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        staging = self.home / ".passwd.new"
        write_private(staging, plain)
        try:
            subprocess.run([tool, "-U", str(staging)], check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            staging.unlink(missing_ok=True)
            raise ConfigError(f"cannot hash the broker's passwords with {tool}: {exc}") from None
        staging.replace(self.password_file)
        write_private(self.acl_file, acl)
