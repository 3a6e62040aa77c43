"""A real PostgreSQL for the tests: initdb into a temporary directory, a free port on 127.0.0.1
and a unix socket in that directory, one database per test. Started once per session
(`pg_server` in tests/conftest.py); the server refuses to run as root, so as root it runs as
`postgres`. Missing binaries fail the run with what to install, never skip it.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
from server import free_port

USER = "ivr"


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian "
                "`postgresql` (make deps); the store tests start their own server", pytrace=False)


class PgServer:
    """One throwaway cluster; `url(db)` for the stores, `admin()` for the test's own checks."""

    def __init__(self, host: str = "127.0.0.1", prefix: tuple[str, ...] = ()) -> None:
        """`host`: the address it listens on; `prefix` runs its tools inside something, e.g.
        `ip netns exec NS` (a site's database node, tests/integration/netns.py)."""
        self.host, self.prefix = host, prefix
        self.bindir = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="ivr-pg-"))
        self.data, self.socket_dir = self.root / "data", self.root / "run"
        self.port = free_port() if not prefix else 5432  # a namespace of its own has every port
        self.password = secrets.token_hex(12)
        self._names = itertools.count(1)
        self.socket_dir.mkdir()
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        self._as_server: list[str] = []
        if os.geteuid() == 0:  # the server refuses root
            owner = pwd.getpwnam("postgres")
            for path in (self.root, self.socket_dir, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            self._as_server = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
        pwfile.unlink()
        if host != "127.0.0.1":  # the other nodes of its subnet connect with the password
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write("host all all samenet scram-sha-256\n")
        self.start()

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        done = subprocess.run([*self.prefix, *self._as_server, str(self.bindir / tool), *args],
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def _ctl(self, action: str, *extra: str) -> None:
        options = (f"-p {self.port} -k {self.socket_dir} -c listen_addresses={self.host} "
                   "-c fsync=off -c full_page_writes=off")
        self._run("pg_ctl", action, "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-w", "-t", "30", "-o", options, *extra)

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        """A real server restart: every connection is cut, the data stays."""
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def url(self, dbname: str = "postgres") -> str:
        """A URL without the password (the stores get it separately, as in production)."""
        return f"postgresql://{USER}@{self.host}:{self.port}/{dbname}"

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection over the unix socket (trust): the test's own look."""
        return psycopg.connect(host=str(self.socket_dir), port=self.port, user=USER,
                               dbname=dbname, autocommit=True)

    def new_database(self) -> str:
        """A fresh empty database for one test: its name."""
        name = f"t{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return name

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
