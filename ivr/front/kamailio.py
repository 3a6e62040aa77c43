"""The front: a Kamailio proxy generated, started and steered by the engine.

Why Kamailio and which of its features (all from the Debian `kamailio` package, no database):

- `tm`/`sl`/`rr`: stateful relaying with Record-Route, so BYE/re-INVITE from either side and
  CANCEL/ACK follow the dialog through the front (`loose_route` for in-dialog requests).
- `dispatcher`: the IVR workers are destination set 1, picked round robin (alg 4) among active ones.
  OPTIONS probing marks dead workers inactive and brings them back; `t_on_failure` fails over on
  408/500/503/timeout (marking the worker down) and overflows on 486/600 (worker full, not down).
  When no worker is left the caller gets 503. The list lives in a file and is reloaded over the
  ctl socket (`kamcmd dispatcher.reload`) when the supervisor starts or stops workers.
- `sanity`: malformed requests are answered with a 4xx by the module itself (its reply mode), so a
  broken client learns why; garbage that cannot even be parsed (no usable Via) is dropped by the
  core because there is nowhere to send a reply.
- `pike`: per-source-IP flood detection; flooding sources are dropped silently. Trusted sources
  (trunk addresses, the workers themselves) are exempt, so a busy carrier is never throttled;
  so is loopback by default (local benchmarks and test calls are not a network flood).
- `ipops` `is_in_subnet`: the `allow_from` ACL (403 before any worker is touched) and the trusted
  list, rendered as one explicit test per CIDR (no address table, no database).
- A User-Agent regex drops SIP scanners (friendly-scanner, sipvicious, ...) without any reply.
- `usrloc`+`registrar` (written through to db_text in the runtime dir, so a restarted front keeps
  them): agent softphones REGISTER by name; a request for a registered
  user goes to its contact, any other goes to the IVR workers.
- `ctl` on a unix socket inside our runtime dir so nothing touches /run/kamailio.
- `uac` remote registration (uac_reg) for trunks with a registrar: the front, and only the front,
  registers (digest auth, refreshed before expiry). The accounts are a `db_text` table written
  into the runtime dir with mode 0600, because it holds the passwords (taken from environment
  variables at startup); kamailio.cfg and every log only name the trunk. Calls the carrier sends
  to the registered contact (`sip:<trunk name>@front`) get the dialled number (To) as request user.
- `tls` for `tls:` listen sockets, with the certificate and key from `sip.tls` in a generated
  tls.cfg.

Kamailio runs as our child in the foreground (`-DD -E`); every path given to it is absolute
because `-w` changes its working directory before it opens them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from ivr.config import SipTarget, parse_registrar

if TYPE_CHECKING:
    from ivr.config import EngineConfig

log = logging.getLogger("ivr.front")

DISPATCHER_SET = 1
CTL_SOCKET_NAME = "kamailio_ctl"
TLS_CFG_NAME = "tls.cfg"
UACREG_DIR_NAME = "uacreg"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
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


class FrontError(RuntimeError):
    """The front could not be configured, started or controlled; the message says why."""


def _split_listen(item: str) -> tuple[str, str, int]:
    proto, _, rest = item.partition(":")
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if proto not in ("udp", "tcp", "tls") or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen socket {item!r} is not udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT")
    ipaddress.ip_address(host)  # a literal address: the front never resolves names
    return proto, host, int(port)


def _split_worker(item: str) -> tuple[str, int]:
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


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_REG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_WILDCARDS = ("0.0.0.0", "::")


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
    fr_timer_ms: int = 1500  # no reply at all from a worker within this: fail over
    fr_inv_timer_ms: int = 10000  # a worker sent 1xx but no final reply within this: fail over
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

    def __post_init__(self) -> None:
        self.runtime_dir = Path(self.runtime_dir)
        if not self.runtime_dir.is_absolute():
            raise ValueError(f"runtime_dir must be absolute (kamailio -w chdirs): {self.runtime_dir}")
        if len(str(self.ctl_socket)) > _MAX_UNIX_PATH:
            raise ValueError(f"runtime_dir too long for a unix socket path: {self.ctl_socket}")
        if not self.listen:
            raise ValueError("the front needs at least one listen socket")
        for item in self.listen:
            _split_listen(item)
        for item in self.workers:
            _split_worker(item)
        self.allow_from = [_network(x, "allow_from") for x in self.allow_from]
        self.trusted = [_network(x, "trusted") for x in self.trusted]
        for agent in self.scanner_agents:
            if not _SAFE_AGENT.match(agent):
                raise ValueError(f"scanner user agent {agent!r} may only use letters, digits, ' ._/-'")
        for name in ("pike_sampling_s", "pike_density", "pike_remove_latency_s", "probe_interval_s",
                     "fr_timer_ms", "fr_inv_timer_ms", "children", "reg_timer_interval_s",
                     "reg_retry_interval_s"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        self._check_tls()
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
        socket_text = "" if host in _WILDCARDS else f"{transport}:{_host_port(host, port)}"
        if reg.contact:
            return reg.contact + suffix, socket_text
        if host in _WILDCARDS:
            raise ValueError(f"trunk {reg.name!r}: the front listens on {host}, so set the trunk's "
                             "contact: IP:PORT (the address the carrier should send calls to)")
        return _host_port(host, port) + suffix, socket_text

    @property
    def ctl_socket(self) -> Path:
        return self.runtime_dir / CTL_SOCKET_NAME

    @property
    def sockets(self) -> list[tuple[str, str, int]]:
        return [_split_listen(item) for item in self.listen]

    @classmethod
    def from_config(
        cls, config: EngineConfig, runtime_dir: Path, workers: Sequence[str] = (), **overrides: object
    ) -> FrontSettings:
        """Map the engine config: `sip.listen`, `sip.tls`, `allow_from`, every trunk's `addresses`
        (and a registrar given as an IP address) as trusted, and the trunk registrations.

        Reads registration passwords from the environment: a missing one is a ConfigError that
        names the trunk and the variable.
        """
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
        tuning: dict[str, object] = {
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


# --- the config template ---------------------------------------------------------------------
# Substitutions are marked {{ ... }} / {% ... %}; everything else is literal kamailio.cfg.
# Every value substituted was validated by FrontSettings (addresses parsed, agents from a safe set).
_TEMPLATE = r"""#!KAMAILIO
# Generated by ivr.front.kamailio.render_config: do not edit, it is rewritten at every start.

#!define FLT_TRUSTED 1
#!define FLT_FROM_WORKER 2
#!define FLT_NO_PIKE 3

debug={{ s.log_level }}
log_stderror=yes
log_prefix="{$mt $hdr(CSeq) $ci} "
memdbg=5
memlog=5
children={{ s.children }}
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=no
enable_sctp=no
{% if not tcp %}disable_tcp=yes
{% endif %}
{% if s.tls %}enable_tls=yes
{% endif %}
server_header="Server: ivr-front"
user_agent_header="User-Agent: ivr-front"

# --- listen sockets (sip.listen) ---
{% for sock in s.listen %}listen={{ sock }}
{% endfor %}
{% for alias in aliases %}alias="{{ alias }}"
{% endfor %}

loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "ctl.so"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "db_text.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "pike.so"
loadmodule "ipops.so"
loadmodule "dispatcher.so"
loadmodule "htable.so"
{% if s.tls %}
loadmodule "tls.so"
{% endif %}
{% if s.registrations %}
loadmodule "uac.so"
{% endif %}

# binrpc for kamcmd inside our runtime dir (default would be /run/kamailio)
modparam("ctl", "binrpc", "unix:{{ ctl_socket }}")

# tm: short failover timers (no reply within fr_timer => the worker is gone => next worker)
modparam("tm", "fr_timer", {{ s.fr_timer_ms }})
modparam("tm", "fr_inv_timer", {{ s.fr_inv_timer_ms }})
modparam("tm", "restart_fr_on_each_reply", 0)

modparam("rr", "enable_full_lr", 0)
modparam("rr", "append_fromtag", 1)

# registrations are written through to a db_text table in the runtime dir (no cache), so a front
# restarted after a supervisor crash still reaches the agents' phones without a new REGISTER
modparam("db_text", "db_mode", 1)
modparam("usrloc", "db_url", "text://{{ usrloc_dir }}")
modparam("usrloc", "db_mode", 1)
modparam("registrar", "max_expires", 3600)
modparam("registrar", "default_expires", 600)

# sanity: reply mode (the module answers a failed check with a 4xx itself); autodrop off so the
# script logs the source before it exits
modparam("sanity", "noreply", 0)
modparam("sanity", "autodrop", 0)

# pike: per source IP
# INVITEs already dispatched (Call-ID, From tag, CSeq), kept for 64*T1: a retransmission that
# arrives after the transaction ended must not start a second call on another worker (RFC 6026)
modparam("htable", "htable", "invites=>size=12;autoexpire=32;")
modparam("pike", "sampling_time_unit", {{ s.pike_sampling_s }})
modparam("pike", "reqs_density_per_unit", {{ s.pike_density }})
modparam("pike", "remove_latency", {{ s.pike_remove_latency_s }})

modparam("dispatcher", "list_file", "{{ dispatcher_list }}")
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "xavp_dst", "_dsdst_")
modparam("dispatcher", "xavp_ctx", "_dsctx_")
modparam("dispatcher", "ds_ping_method", "OPTIONS")
modparam("dispatcher", "ds_ping_from", "sip:ivr-front@{{ ping_host }}")
modparam("dispatcher", "ds_ping_interval", {{ s.probe_interval_s }})
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_ping_reply_codes", "class=2;code=403;code=404;code=405")
modparam("dispatcher", "reload_delta", 0)
{% if s.tls %}

# tls: certificate and key from sip.tls, written into {{ tls_cfg }}
modparam("tls", "config", "{{ tls_cfg }}")
{% endif %}
{% if s.registrations %}

# trunk registrations ({{ s.registrations | map(attribute="name") | join(", ") }}): uac_reg reads
# its accounts from the db_text table {{ uacreg_dir }}/uacreg (mode 0600, it holds the passwords;
# nothing secret is in this file)
modparam("db_text", "emptystring", 1)
modparam("uac", "reg_db_url", "text://{{ uacreg_dir }}")
modparam("uac", "reg_contact_addr", "{{ reg_contact }}")
modparam("uac", "reg_timer_interval", {{ s.reg_timer_interval_s }})
modparam("uac", "reg_retry_interval", {{ s.reg_retry_interval_s }})
modparam("uac", "reg_keep_callid", 1)
{% endif %}

request_route {
	# scanners learn nothing: no reply at all
{% if scanner_regex %}
	if (is_present_hf("User-Agent") && $ua =~ "{{ scanner_regex }}") {
		xlog("L_NOTICE", "scanner dropped from $si:$sp ua=[$ua]\n");
		exit;
	}
{% endif %}

	route(CLASSIFY);

	# flood protection, except for trusted sources (trunks, workers, loopback unless disabled)
	if (!isflagset(FLT_NO_PIKE) && !pike_check_req()) {
		xlog("L_ALERT", "pike blocking $rm from $si\n");
		exit;
	}

	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	# malformed requests: sanity answers 4xx itself
	if (!sanity_check("17895", "7")) {
		xlog("L_WARN", "malformed request from $si:$sp\n");
		exit;
	}

	# source ACL for new requests only: in-dialog requests of admitted calls keep working
	if (!has_totag() && !isflagset(FLT_TRUSTED)) {
		route(ACL);
	}

	if (is_method("CANCEL")) {
		if (t_check_trans()) {
			route(RELAY);
		}
		exit;
	}
	if (has_totag()) {
		route(WITHINDLG);
		exit;
	}
	t_check_trans();

	if (is_method("INVITE")) {
		if ($sht(invites=>$ci::$ft::$cs) != $null) {
			xlog("L_INFO", "absorbed a late retransmission of INVITE $ci\n");
			exit;
		}
		$sht(invites=>$ci::$ft::$cs) = 1;
	}

	if (is_method("REGISTER")) {
{% if s.registrar %}
		if (!save("location")) {
			sl_reply_error();
		}
{% else %}
		sl_send_reply("405", "Registrar Disabled");
{% endif %}
		exit;
	}
	if (is_method("OPTIONS") && uri == myself && $rU == $null) {
		sl_send_reply("200", "Keepalive");
		exit;
	}

	remove_hf("Route");
	if (is_method("INVITE|SUBSCRIBE")) {
		record_route();
	}
{% for reg in s.registrations %}
	# a call from trunk {{ reg.name }} to the contact we registered there: dialled number from To
	if ($rU == "{{ reg.name }}" && $tU != $null && !isflagset(FLT_FROM_WORKER)) {
		xlog("L_INFO", "trunk {{ reg.name }}: $rm for registered contact, dialled $tU\n");
		$rU = $tU;
	}
{% endfor %}

{% if s.registrar %}
	# agent softphones registered by name
	if ($rU != $null && lookup("location")) {
		xlog("L_INFO", "registered user $rU -> $ru\n");
		route(RELAY);
		exit;
	}
{% endif %}

	if (isflagset(FLT_FROM_WORKER)) {
		# a worker calling out (agent, transfer target): never loop it back into the workers
		if (uri != myself) {
			route(RELAY);
			exit;
		}
		sl_send_reply("404", "Not Found");
		exit;
	}

	if (!is_method("INVITE|OPTIONS|MESSAGE")) {
		sl_send_reply("405", "Method Not Allowed");
		exit;
	}

	route(DISPATCH);
	exit;
}

# trusted (skip pike and the ACL): configured trunk addresses, and the workers themselves
# (matched on address+port+proto against the dispatcher set)
route[CLASSIFY] {
{% for net in s.trusted %}
	if (is_in_subnet("$si", "{{ net }}")) {
		setflag(FLT_TRUSTED);
	}
{% endfor %}
	if (ds_is_from_list("{{ ds_set }}")) {
		setflag(FLT_TRUSTED);
		setflag(FLT_FROM_WORKER);
	}
	if (isflagset(FLT_TRUSTED)) {
		setflag(FLT_NO_PIKE);
	}
{% if s.pike_exempt_loopback %}
	if (is_in_subnet("$si", "127.0.0.0/8") || is_in_subnet("$si", "::1/128")) {
		setflag(FLT_NO_PIKE);
	}
{% endif %}
}

# allow_from: 403 before any worker is touched (empty list = allow all)
route[ACL] {
{% if s.allow_from %}
{% for net in s.allow_from %}
	if (is_in_subnet("$si", "{{ net }}")) {
		return 1;
	}
{% endfor %}
	xlog("L_WARN", "ACL reject $rm from $si\n");
	sl_send_reply("403", "Forbidden");
	exit;
{% else %}
	return 1;
{% endif %}
}

route[DISPATCH] {
	if (!ds_select_dst("{{ ds_set }}", "4")) {
		xlog("L_ERR", "no IVR worker available for $rm $ru\n");
		send_reply("503", "No IVR Worker Available");
		exit;
	}
	xlog("L_INFO", "dispatch $rm $ru -> $du\n");
	t_on_failure("WORKER_FAILOVER");
	route(RELAY);
}

route[RELAY] {
	if (!t_relay()) {
		sl_reply_error();
	}
	exit;
}

route[WITHINDLG] {
	if (loose_route()) {
		route(RELAY);
		exit;
	}
	if (is_method("ACK")) {
		# ACK of a negative reply: tm absorbs or forwards it hop by hop
		if (t_check_trans()) {
			route(RELAY);
		}
		exit;
	}
	sl_send_reply("404", "Not here");
	exit;
}

failure_route[WORKER_FAILOVER] {
	if (t_is_canceled()) {
		exit;
	}
	# the worker is broken or gone: mark it down (probing brings it back) and try the next one
	if (t_check_status("408|500|503") || (t_branch_timeout() && !t_branch_replied())) {
		xlog("L_WARN", "worker $du failed ($T_reply_code), marking inactive\n");
		ds_mark_dst("ip");
		if (ds_next_dst()) {
			xlog("L_WARN", "failover to $du\n");
			t_on_failure("WORKER_FAILOVER");
			if (!t_relay()) {
				t_reply("503", "No IVR Worker Available");
			}
			exit;
		}
		t_reply("503", "No IVR Worker Available");
		exit;
	}
	# the worker is full (486/600), not down: try the next one without marking it
	if (t_check_status("486|600")) {
		if (ds_next_dst()) {
			xlog("L_INFO", "worker busy, overflow to $du\n");
			t_on_failure("WORKER_FAILOVER");
			if (!t_relay()) {
				t_reply("503", "No IVR Worker Available");
			}
			exit;
		}
		xlog("L_WARN", "all IVR workers busy\n");
		t_reply("503", "All IVR Workers Busy");
		exit;
	}
}

# probing sets $ru to the destination; a failure-route mark runs with the failed INVITE ($du)
event_route[dispatcher:dst-down] {
	xlog("L_WARN", "DS: destination DOWN ru=$ru du=$du\n");
}
event_route[dispatcher:dst-up] {
	xlog("L_WARN", "DS: destination UP ru=$ru du=$du\n");
}
"""

_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
    trim_blocks=True, lstrip_blocks=True,
)


def _scanner_regex(agents: Sequence[str]) -> str:
    # POSIX ERE inside a kamailio string: '.' as a bracket so no backslash escaping is needed;
    # kamailio's =~ compiles with REG_ICASE, so case variants need no extra entries
    seen: list[str] = []
    for agent in agents:
        piece = agent.replace(".", "[.]")
        if piece.lower() not in (p.lower() for p in seen):
            seen.append(piece)
    return "|".join(seen)


def render_config(settings: FrontSettings) -> str:
    """The kamailio.cfg text for `settings` (pure: no files, no processes)."""
    sockets = settings.sockets
    udp = [(h, p) for proto, h, p in sockets if proto == "udp"]
    first_host, first_port = (udp[0] if udp else (sockets[0][1], sockets[0][2]))
    ping_host = _host_port(first_host if first_host not in ("0.0.0.0", "::") else "127.0.0.1", first_port)
    aliases = sorted({_host_port(h, p) for _, h, p in sockets if h not in ("0.0.0.0", "::")})
    return _ENV.from_string(_TEMPLATE).render(
        s=settings,
        tcp=any(proto in ("tcp", "tls") for proto, _, _ in sockets),  # tls runs over tcp
        aliases=aliases,
        ctl_socket=str(settings.ctl_socket),
        dispatcher_list=str(settings.runtime_dir / "dispatcher.list"),
        ping_host=ping_host,
        ds_set=DISPATCHER_SET,
        scanner_regex=_scanner_regex(settings.scanner_agents),
        tls_cfg=str(settings.runtime_dir / TLS_CFG_NAME),
        uacreg_dir=str(settings.runtime_dir / UACREG_DIR_NAME),
        reg_contact=(settings.contact_for(settings.registrations[0])[0] if settings.registrations
                     else ""),
        usrloc_dir=str(settings.runtime_dir / "usrloc"),
    )


def tls_config_text(settings: FrontSettings) -> str:
    """tls.cfg for the tls module: our certificate as the server.

    The only TLS the front starts itself is a registration to a sips: registrar; then it verifies
    the registrar against the system CA bundle. Otherwise the bundle is not loaded: Kamailio loads
    it into every process's context, which costs about 10 s of startup on two busy cores.
    """
    lines = [
        "# Generated by ivr.front.kamailio: the front's TLS profile (sip.tls); rewritten at every start.",
        "[server:default]",
        "method = TLSv1.2+",
        "verify_certificate = no",
        "require_certificate = no",
        f"certificate = {settings.tls_certificate}",
        f"private_key = {settings.tls_private_key}",
        "",
        "[client:default]",
        "method = TLSv1.2+",
    ]
    outgoing = any(reg.transport == "tls" for reg in settings.registrations)
    if outgoing and Path(SYSTEM_CA_BUNDLE).is_file():
        lines += ["verify_certificate = yes", "require_certificate = yes", f"ca_list = {SYSTEM_CA_BUNDLE}"]
    elif outgoing:
        lines += ["# no system CA bundle: the registrar's certificate cannot be verified",
                  "verify_certificate = no", "require_certificate = no"]
    else:
        lines += ["# the front opens no TLS connections of its own (no sips: registrar)",
                  "verify_certificate = no", "require_certificate = no"]
    return "\n".join(lines) + "\n"


def _dbtext_escape(value: str) -> str:
    # db_text separates fields with ':'; these must be escaped inside a value
    for raw, esc in (("\\", "\\\\"), (":", "\\:"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"),
                     ("\0", "\\0")):
        value = value.replace(raw, esc)
    return value


_UACREG_COLUMNS = (
    "id(int,auto) l_uuid(string) l_username(string) l_domain(string) r_username(string) "
    "r_domain(string) realm(string) auth_username(string) auth_password(string) auth_ha1(string) "
    "auth_proxy(string) expires(int) flags(int) reg_delay(int) contact_addr(string) socket(string)"
)
UACREG_TABLE_VERSION = 5  # Kamailio 5.6 uacreg schema (with contact_addr)


def uacreg_table_text(settings: FrontSettings) -> str:
    """The db_text `uacreg` table: one row per registration. Holds passwords: write it 0600."""
    rows = [_UACREG_COLUMNS]
    for i, reg in enumerate(settings.registrations, 1):
        contact, sock = settings.contact_for(reg)
        local_domain = contact.split(";", 1)[0]
        fields = [
            str(i), reg.name, reg.username, local_domain, reg.username, reg.domain, reg.realm,
            reg.username, reg.password, "", reg.proxy_uri, str(reg.expires), "0", "0", contact, sock,
        ]
        rows.append(":".join(_dbtext_escape(f) for f in fields))
    return "\n".join(rows) + "\n"


def _write_private(path: Path, text: str) -> None:
    """Create or replace `path` readable by its owner only (it may hold secrets): never a moment
    where the content sits in a file others can read."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)
    os.replace(tmp, path)


def write_registrations(settings: FrontSettings) -> Path:
    """The uacreg db_text directory (0700) with its table (0600) and the version table."""
    directory = settings.runtime_dir / UACREG_DIR_NAME
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    _write_private(directory / "uacreg", uacreg_table_text(settings))
    _write_private(directory / "version",
                   f"table_name(string) table_version(int)\nuacreg:{UACREG_TABLE_VERSION}\n")
    return directory


LOCATION_COLUMNS = (
    "id(int,auto) ruid(string) username(string) domain(string,null) contact(string) "
    "received(string,null) path(string,null) expires(int) q(double) callid(string) cseq(int) "
    "last_modified(int) flags(int) cflags(int) user_agent(string) socket(string,null) "
    "methods(int,null) instance(string,null) reg_id(int) server_id(int) connection_id(int) "
    "keepalive(int) partition(int) "
)
"""db_text's `location` table, schema version 9 (Kamailio 5.x)."""


def write_usrloc_tables(directory: Path) -> None:
    """The db_text tables usrloc needs; an existing `location` (registrations) is kept."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "version").write_text(
        "id(int,auto) table_name(string) table_version(int) \n0:location:9\n", encoding="utf-8")
    location = directory / "location"
    if not location.exists():
        location.write_text(LOCATION_COLUMNS + "\n", encoding="utf-8")


def dispatcher_text(workers: Sequence[str]) -> str:
    lines = ["# setid destination flags priority attrs (generated by ivr.front)"]
    for i, worker in enumerate(workers, 1):
        host, port = _split_worker(worker)
        lines.append(f"{DISPATCHER_SET} sip:{_host_port(host, port)} 0 0 name=w{i}")
    return "\n".join(lines) + "\n"


def write_dispatcher(path: Path, workers: Sequence[str]) -> None:
    """Write the dispatcher list atomically, so a reload never reads half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dispatcher_text(workers), encoding="utf-8")
    os.replace(tmp, path)


async def _run(argv: Sequence[str], timeout: float) -> tuple[int, str]:
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


def _find(name: str) -> str:
    exe = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if exe is None:
        raise FrontError(f"{name} not found (Debian package `kamailio`)")
    return exe


async def check_config(cfg: Path, runtime_dir: Path, kamailio: str | None = None,
                       timeout: float = 10.0) -> None:
    """`kamailio -c`: refuse to start on a config Kamailio itself rejects (output in the error)."""
    exe = kamailio or _find("kamailio")
    code, out = await _run([exe, "-c", "-f", str(cfg), "-Y", str(runtime_dir)], timeout)
    if code != 0:
        raise FrontError(f"kamailio -c rejected {cfg} (rc={code}):\n{out.strip()}")


def _options_request(host: str, port: int, local: tuple[str, int], tag: str) -> bytes:
    lhost = _host_port(local[0], local[1])
    return (
        f"OPTIONS sip:{_host_port(host, port)} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {lhost};branch=z9hG4bK{tag}\r\n"
        f"From: <sip:ivr-probe@{lhost}>;tag={tag}\r\n"
        f"To: <sip:{_host_port(host, port)}>\r\n"
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


# uac_reg record flags (uac module docs, uac.reg_info)
_REG_DISABLED, _REG_ONGOING, _REG_STATE, _REG_AUTHSENT, _REG_INIT = 1, 2, 4, 8, 16


def _registration_word(flags: int) -> str:
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
        self._kamcmd = kamcmd
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
        exe = self._kamailio or _find("kamailio")
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        self.cfg_path.write_text(render_config(self.settings), encoding="utf-8")
        write_dispatcher(self.dispatcher_path, self._workers)
        if self.settings.tls:
            (self.runtime_dir / TLS_CFG_NAME).write_text(tls_config_text(self.settings), encoding="utf-8")
        if self.settings.registrations:
            write_registrations(self.settings)
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

    async def _kamcmd_run(self, *command: str, timeout: float = 5.0) -> str:
        exe = self._kamcmd or _find("kamcmd")
        code, out = await _run([exe, "-s", f"unix:{self.settings.ctl_socket}", *command], timeout)
        # kamcmd exits 0 even when the RPC failed ("error: 500 - ..."), so read the output too
        if code != 0 or out.lstrip().startswith("error:"):
            raise FrontError(f"kamcmd {' '.join(command)} failed (rc={code}): {out.strip()}")
        return out

    async def set_workers(self, workers: Sequence[str]) -> None:
        """Replace the worker set: rewrite the dispatcher list and reload it in the running proxy."""
        for worker in workers:
            _split_worker(worker)
        self._workers = list(workers)
        write_dispatcher(self.dispatcher_path, self._workers)
        if self.alive:
            await self._kamcmd_run("dispatcher.reload")

    async def dispatcher_state(self) -> dict[str, str]:
        """{"host:port": flags} from the running proxy.

        Flags: A/I/D/T (active, inactive, disabled, trying) then P (probing) or X (not probed yet).
        """
        if not self.alive:
            raise FrontError("the front is not running")
        if not self._workers:
            return {}
        return parse_dispatcher_list(await self._kamcmd_run("dispatcher.list"))

    async def registration_state(self) -> dict[str, str]:
        """{trunk name: "registered" | "registering" | "failed" | "disabled" | "pending"} from
        uac_reg's flags. Only the flags are read: the RPC record also carries the password."""
        if not self.alive:
            raise FrontError("the front is not running")
        state: dict[str, str] = {}
        for reg in self.settings.registrations:
            out = await self._kamcmd_run("uac.reg_info", "l_uuid", reg.name)
            m = re.search(r"^\s*flags:\s*(\d+)\s*$", out, re.MULTILINE)
            state[reg.name] = _registration_word(int(m.group(1))) if m else "unknown"
        return state

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

    async def __aenter__(self) -> Front:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
