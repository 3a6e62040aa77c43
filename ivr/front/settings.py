"""The front's settings: what Kamailio is told, validated before any of it is rendered.

Every value that reaches kamailio.cfg passes through here first (addresses parsed, names and user
agents from a safe set), so the template can substitute them as they are. The runtime dir's file
names live here too, because the rendering, the process and the RPC all find their files by them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ivr.config import SipTarget, parse_registrar
from ivr.transfers import TransferPolicy, bare_uri, union_regex

if TYPE_CHECKING:
    from ivr.config import EngineConfig

DISPATCHER_SET = 1
CTL_SOCKET_NAME = "kamailio_ctl"
TLS_CFG_NAME = "tls.cfg"
UACREG_DIR_NAME = "uacreg"
AGENTAUTH_DIR_NAME = "agentauth"
# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL
_MAX_UNIX_PATH = 107

DEFAULT_SCANNER_AGENTS: tuple[str, ...] = (
    "friendly-scanner",
    "sipvicious",
    "SIPVicious",
    "sipcli",
    "VaxSIPUserAgent",
    "sundayddr",
    "pplsip",
    "sip-scan",
    "iWar",
    "sipsak",
    "SIVuS",
    "Gulp",
    "smap",
)

_SAFE_AGENT = re.compile(r"^[A-Za-z0-9 ._/-]+$")
_AGENT_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_HA1 = re.compile(r"^[0-9a-f]{32}$")
_SAFE_URI = re.compile(r"^[A-Za-z0-9:@.+_~=%/\[\]-]+$")


class FrontError(RuntimeError):
    """The front could not be configured, started or controlled; the message says why."""


def split_listen(item: str) -> tuple[str, str, int]:
    """(proto, host, port) of a `sip.listen` entry; refused unless Kamailio can bind it as is."""
    proto, _, rest = item.partition(":")
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if proto not in ("udp", "tcp", "tls") or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen socket {item!r} is not udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT")
    ipaddress.ip_address(host)  # a literal address: the front never resolves names
    return proto, host, int(port)


def split_worker(item: str) -> tuple[str, int]:
    """(host, port) of a worker's address, as it goes into the dispatcher list."""
    text = item.removeprefix("sip:")
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"worker {item!r} is not HOST:PORT")
    ipaddress.ip_address(host)
    return host, int(port)


def _network(item: str, what: str) -> str:
    try:
        return str(ipaddress.ip_network(item.strip(), strict=False))
    except ValueError:
        raise ValueError(f"{what} entry {item!r} is not an IP address or CIDR") from None


def host_port(host: str, port: int) -> str:
    """`host:port` as a SIP URI writes it: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_REG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
WILDCARDS = ("0.0.0.0", "::")


@dataclass(frozen=True)
class Registration:
    """One registration of the front at a trunk's registrar (Kamailio uac_reg).

    `name` is the trunk's name: the user part of the registered contact and the only thing that
    names the account in kamailio.cfg and in logs. The password is kept out of repr and is
    written only to the 0600 uacreg table.
    """

    name: str
    registrar: str  # sip:host[:port][;transport=...] or sips:host[:port]
    username: str
    password: str = field(repr=False)
    realm: str = ""
    expires: int = 600
    contact: str = ""  # host:port the carrier sends calls to; empty = from the listen sockets

    def __post_init__(self) -> None:
        if not _REG_NAME.match(self.name):
            raise ValueError(f"registration name {self.name!r} may only use letters, digits, '._-'")
        parse_registrar(self.registrar)
        if not self.username or not self.password:
            raise ValueError(f"registration {self.name!r} needs a username and a password")
        if not 10 <= self.expires <= 86400:
            raise ValueError(f"registration {self.name!r}: expires must be 10..86400 seconds")

    @property
    def target(self) -> SipTarget:
        return parse_registrar(self.registrar)

    @property
    def transport(self) -> str:
        return self.target.transport

    @property
    def proxy_uri(self) -> str:
        """Where REGISTERs go (uac_reg's auth_proxy): the registrar with its port and transport."""
        return self.target.uri

    @property
    def domain(self) -> str:
        return self.target.hostport


@dataclass
class FrontSettings:
    """What the front needs to know; validated on construction so a bad value never reaches Kamailio.

    `trusted` sources (trunks) skip pike and the ACL; so do the workers themselves (matched by
    address and port against the dispatcher set), whose requests must never be throttled.
    """

    runtime_dir: Path
    listen: list[str] = field(default_factory=lambda: ["udp:127.0.0.1:5060"])
    workers: list[str] = field(default_factory=list)
    # workers on other nodes (an edge): listed inactive until their first probe answer, so a
    # media node still starting (or gone while the edge was down) never gets a call; the
    # workers a node starts itself are listed once listening, active at once
    probe_first: bool = False
    allow_from: list[str] = field(default_factory=list)
    trusted: list[str] = field(default_factory=list)
    registrar: bool = True
    scanner_agents: list[str] = field(default_factory=lambda: list(DEFAULT_SCANNER_AGENTS))
    # pike: a source sending more than `pike_density` requests (any method: a call is at least
    # INVITE+ACK+BYE) within `pike_sampling_s` is dropped until quiet for `pike_remove_latency_s`.
    # Declare busy carriers in `trusted` instead of raising the density for everyone.
    pike_sampling_s: int = 2
    pike_density: int = 150
    pike_remove_latency_s: int = 4
    # local processes (SIPp benchmarks, `ivr call`) cannot be a network flood: no pike for them
    pike_exempt_loopback: bool = True
    probe_interval_s: int = 2
    # every 503 (no worker could take the call: above max_calls, or none alive) asks the caller's
    # proxy to retry after this long instead of hammering the front
    retry_after_s: int = 5
    fr_timer_ms: int = 1500  # no reply at all from a worker within this: fail over
    fr_inv_timer_ms: int = 10000  # a worker sent 1xx but no final reply within this: fail over
    # a worker's own outbound INVITE (an agent's phone, a transfer target) rings as long as the
    # worker wants (the ACD's ring_timeout; it CANCELs): this bounds only a worker that vanished
    outbound_ring_ms: int = 180000
    children: int = 4
    log_level: int = 2  # kamailio `debug`: 2 = info (our xlog lines), 3 = debug
    # TLS listen sockets: PEM certificate (chain may follow) and private key
    tls_certificate: Path | None = None
    tls_private_key: Path | None = None
    # trunk registrations (uac_reg): checked every reg_timer_interval_s, refreshed when less than
    # that is left before expiry; a failed registration is retried after reg_retry_interval_s
    registrations: list[Registration] = field(default_factory=list)
    reg_timer_interval_s: int = 20
    reg_retry_interval_s: int = 30
    # registrar digest auth: {agent: HA1} (kept out of repr; written only to a 0600 table while
    # Kamailio loads it); an agent missing here cannot register. A source with auth_max_failures
    # failed auths, each within auth_window_s of the last, is ignored for auth_ban_s.
    agent_ha1: dict[str, str] = field(default_factory=dict, repr=False)
    auth_realm: str = "ivr"
    auth_max_failures: int = 10
    auth_window_s: int = 60
    auth_ban_s: int = 300
    # a request larger than this is answered 513 before anything else looks at it
    max_message_bytes: int = 16384
    # REFERs from outside (a caller, an agent's phone) may only point at these targets
    refer_allow: list[str] = field(default_factory=list)
    refer_exact: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.runtime_dir = Path(self.runtime_dir)
        if not self.runtime_dir.is_absolute():
            raise ValueError(f"runtime_dir must be absolute (kamailio -w chdirs): {self.runtime_dir}")
        if len(str(self.ctl_socket)) > _MAX_UNIX_PATH:
            raise ValueError(f"runtime_dir too long for a unix socket path: {self.ctl_socket}")
        if not self.listen:
            raise ValueError("the front needs at least one listen socket")
        for item in self.listen:
            split_listen(item)
        for item in self.workers:
            split_worker(item)
        self.allow_from = [_network(x, "allow_from") for x in self.allow_from]
        self.trusted = [_network(x, "trusted") for x in self.trusted]
        for agent in self.scanner_agents:
            if not _SAFE_AGENT.match(agent):
                raise ValueError(f"scanner user agent {agent!r} may only use letters, digits, ' ._/-'")
        for name in ("pike_sampling_s", "pike_density", "pike_remove_latency_s", "probe_interval_s",
                     "fr_timer_ms", "fr_inv_timer_ms", "outbound_ring_ms", "children",
                     "reg_timer_interval_s", "retry_after_s",
                     "reg_retry_interval_s", "auth_max_failures", "auth_window_s", "auth_ban_s",
                     "max_message_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        self._check_tls()
        self._check_auth()
        names = [r.name for r in self.registrations]
        if len(set(names)) != len(names):
            raise ValueError(f"registration names must be unique: {names}")
        for reg in self.registrations:
            self.contact_for(reg)  # every registration has an address to give the carrier

    def _check_tls(self) -> None:
        if not self.tls:
            return
        if self.tls_certificate is None or self.tls_private_key is None:
            raise ValueError("a tls: listen socket needs tls_certificate and tls_private_key")
        for what, path in (("certificate", self.tls_certificate), ("private key", self.tls_private_key)):
            path = Path(path)
            if not path.is_absolute():
                raise ValueError(f"TLS {what} path must be absolute (kamailio -w chdirs): {path}")
            if not path.is_file():
                raise ValueError(f"TLS {what} {path} does not exist")
        self.tls_certificate = Path(self.tls_certificate)
        self.tls_private_key = Path(self.tls_private_key)

    def _check_auth(self) -> None:
        if not _REG_NAME.match(self.auth_realm):
            raise ValueError(f"auth realm {self.auth_realm!r} may only use letters, digits, '._-'")
        for name, value in self.agent_ha1.items():
            if not _AGENT_USER.match(name) or not _HA1.match(value):
                raise ValueError(f"agent {name!r}: not a SIP user name with a 32-hex-digit HA1")
        TransferPolicy(tuple(self.refer_allow))  # the patterns are checked globs
        # agents' phones: exact URIs (parameters are allowed after them anyway)
        self.refer_exact = [u for u in (bare_uri(x).split(";", 1)[0] for x in self.refer_exact)
                            if _SAFE_URI.match(u) and "*" not in u and "?" not in u]

    @property
    def refer_regex(self) -> str:
        """One ERE for Kamailio's `=~` over a REFER's Refer-To URI; "" when nothing is allowed."""
        return union_regex([*self.refer_allow, *self.refer_exact])

    @property
    def tls(self) -> bool:
        return any(proto == "tls" for proto, _, _ in self.sockets)

    def contact_for(self, reg: Registration) -> tuple[str, str]:
        """(contact_addr, socket) for uac_reg: the trunk's own `contact`, else the first listen
        socket of the registrar's transport with a concrete address."""
        transport = reg.transport
        suffix = "" if transport == "udp" else f";transport={transport}"
        same = [(h, p) for proto, h, p in self.sockets if proto == transport]
        if not same:
            raise ValueError(f"trunk {reg.name!r} registers over {transport}, but sip.listen has no "
                             f"{transport}: socket")
        host, port = same[0]
        # send REGISTERs from that socket; on a wildcard one tm picks the source address
        socket_text = "" if host in WILDCARDS else f"{transport}:{host_port(host, port)}"
        if reg.contact:
            return reg.contact + suffix, socket_text
        if host in WILDCARDS:
            raise ValueError(f"trunk {reg.name!r}: the front listens on {host}, so set the trunk's "
                             "contact: IP:PORT (the address the carrier should send calls to)")
        return host_port(host, port) + suffix, socket_text

    @property
    def ctl_socket(self) -> Path:
        return self.runtime_dir / CTL_SOCKET_NAME

    @property
    def sockets(self) -> list[tuple[str, str, int]]:
        return [split_listen(item) for item in self.listen]

    @classmethod
    def from_config(
        cls, config: EngineConfig, runtime_dir: Path, workers: Sequence[str] = (), **overrides: object
    ) -> FrontSettings:
        """Map the engine config: `sip.listen`, `sip.tls`, `allow_from`, every trunk's `addresses`
        (and a registrar given as an IP address) as trusted, and the trunk registrations.

        Reads registration passwords from the environment: a missing one is a ConfigError that
        names the trunk and the variable. Reads the agents' HA1s (environment or the 0600 secrets
        file: ivr.front.agent_secrets); a file others can read is a ConfigError.
        """
        from ivr.front.agent_secrets import agent_ha1s

        trusted = [addr for trunk in config.trunks for addr in trunk.addresses]
        registrations: list[Registration] = []
        for trunk in config.trunks:
            if not trunk.registers:
                continue
            assert trunk.registrar is not None and trunk.username is not None
            target = parse_registrar(trunk.registrar)
            with contextlib.suppress(ValueError):
                trusted.append(str(ipaddress.ip_address(target.host)))
            registrations.append(Registration(
                name=trunk.name, registrar=trunk.registrar, username=trunk.username,
                password=trunk.password(), realm=trunk.realm or "", expires=trunk.expires,
                contact=trunk.contact or "",
            ))
        tls = config.sip.tls
        front = config.front
        tuning: dict[str, object] = {
            "agent_ha1": agent_ha1s(config), "auth_realm": front.auth_realm,
            "auth_max_failures": front.auth_max_failures,
            "auth_window_s": max(1, round(front.auth_window)), "auth_ban_s": max(1, round(front.auth_ban)),
            "max_message_bytes": front.max_message_bytes,
            "refer_allow": list(config.transfers.allow),
            "refer_exact": [a.uri for a in config.agents.values() if a.uri],
            "pike_density": config.front.pike_density,
            "pike_sampling_s": config.front.pike_sampling_s,
            "pike_exempt_loopback": config.front.pike_exempt_loopback,
            **overrides,
        }
        return cls(
            runtime_dir=Path(runtime_dir).absolute(), listen=list(config.sip.listen), workers=list(workers),
            allow_from=list(config.allow_from), trusted=trusted, registrations=registrations,
            tls_certificate=tls.certificate if tls else None,
            tls_private_key=tls.private_key if tls else None,
            **tuning,  # type: ignore[arg-type]
        )
