"""How a process proves itself to the broker: user, password and TLS, in one place.

Every MQTT client in the engine (the ACD, the CDR consumer, outbox senders, the workers' ACD
client) is made by `BusAuth.client`, so a site broker's credentials and TLS reach all of them and
none connects anonymously by accident. The password comes from the environment or a 0600 file,
never from `ivr.yaml`; it stays out of reprs and logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from ivr.config import BusSettings
from ivr.errors import ConfigError
from ivr.secret_file import read_private


def broker_address(url: str) -> tuple[str, int]:
    """`mqtt://host:port` (default 1883) or `mqtts://host:port` (default 8883) into (host, port)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "mqtt", url
    host, _, port = rest.partition(":")
    return host or "127.0.0.1", int(port or (8883 if scheme == "mqtts" else 1883))


@dataclass(frozen=True)
class BusAuth:
    """Credentials and TLS for one broker; the default is anonymous plain TCP."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @classmethod
    def from_settings(cls, bus: BusSettings) -> BusAuth:
        """A site broker's auth from `bus:`; a ConfigError when its password cannot be read."""
        password: str | None = None
        if bus.password_env:
            password = os.environ.get(bus.password_env)
            if not password:
                raise ConfigError(f"bus.password_env: environment variable {bus.password_env} "
                                  "(the MQTT password) is not set")
        elif bus.password_file:
            password = read_private(bus.password_file, "bus.password_file").strip()
        tls = bus.tls
        enabled = (tls.enabled if tls is not None else False) or (bus.mqtt or "").startswith("mqtts:")
        return cls(bus.username, password, enabled,
                   *(str(p) if p else None for p in
                     ((tls.ca_file, tls.cert_file, tls.key_file) if tls else (None, None, None))))

    @classmethod
    def from_file(cls, username: str, password_file: Path) -> BusAuth:
        """A private broker's user, its password in a 0600 file (passed to workers by path)."""
        return cls(username, read_private(password_file, "bus password file").strip())

    def client(self, url: str, **kw: Any) -> aiomqtt.Client:
        host, port = broker_address(url)
        params = aiomqtt.TLSParameters(ca_certs=self.ca_file, certfile=self.cert_file,
                                       keyfile=self.key_file) if self.tls else None
        return aiomqtt.Client(host, port, username=self.username, password=self.password,
                              tls_params=params, **kw)


ANONYMOUS = BusAuth()
