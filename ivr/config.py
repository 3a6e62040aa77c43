"""The engine config (`ivr.yaml`): typed settings with file:line:col errors.

Flows refer to calendars and queues by name; the config is where those names are defined, so a flow
and the config are validated together. With no file at all the built-in defaults
(`ivr/defaults.yaml`) serve the shipped flows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ivr.calendar import Calendar
from ivr.durations import Duration
from ivr.errors import ProblemsError
from ivr.flow.loader import Document, load_file
from ivr.flow.problems import validation_problems

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SipSettings(_Strict):
    listen: list[str] = Field(default_factory=lambda: ["udp:127.0.0.1:5060"])
    max_calls: int = Field(200, ge=1)
    calls_per_worker: int = Field(4, ge=1)
    prestart_workers: int = Field(2, ge=1, description="workers started before the first call")
    answer_delay: Duration = Field(0.0, description="ring (180) this long before answering")
    workers_host: str = "127.0.0.1"
    rtp_ports: str = Field("10000-20000", description="UDP ports for the workers' RTP and RTCP "
                           "(lo-hi); each worker takes its own slice")

    @field_validator("rtp_ports")
    @classmethod
    def _rtp_range(cls, value: str) -> str:
        lo, sep, hi = value.partition("-")
        if not (sep and lo.isdigit() and hi.isdigit() and 1024 <= int(lo) < int(hi) <= 65535):
            raise ValueError(f"{value!r} is not lo-hi with 1024 <= lo < hi <= 65535")
        return value

    def rtp_slice(self, worker: int) -> tuple[int, int]:
        """(first port, count) of worker number `worker` (1-based): disjoint slices, so workers
        never race each other for a port and never bind one outside the range. A slice holds
        four times the ports its calls need (RTP + RTCP each)."""
        lo, _, hi = self.rtp_ports.partition("-")
        first, span = int(lo) + int(lo) % 2, int(hi) - int(lo)
        size = self.calls_per_worker * 2 * 4
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


class Trunk(_Strict):
    name: str
    registrar: str | None = None
    username: str | None = None
    password_env: str | None = None
    addresses: list[str] = Field(default_factory=list, description="source addresses of the trunk")


class AsrSettings(_Strict):
    engine: Literal["pocketsphinx", "vosk", "none"] = "pocketsphinx"
    model: str | None = None


class TtsSettings(_Strict):
    engine: Literal["espeak-ng", "pyttsx3"] = Field(
        "espeak-ng", description="pyttsx3 is accepted and renders with espeak-ng (same voice)"
    )
    voice: str = "en-us"
    rate: int = Field(165, ge=50, le=500)


class SpeechSettings(_Strict):
    asr: AsrSettings = Field(default_factory=AsrSettings)
    tts: TtsSettings = Field(default_factory=TtsSettings)


class BusSettings(_Strict):
    mqtt: str | None = None


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


class FrontTuning(_Strict):
    """Flood control of the front (Kamailio pike): requests per source per sampling window."""

    pike_density: int = Field(150, ge=1)
    pike_sampling_s: int = Field(2, ge=1)
    pike_exempt_loopback: bool = Field(
        True, description="local test calls and benchmarks from 127.0.0.0/8 are never throttled"
    )


class StoreSettings(_Strict):
    path: str = "var/ivr.sqlite"


class HttpSettings(_Strict):
    listen: str = "127.0.0.1:8080"


class EngineConfig(_Strict):
    """Everything `ivr.yaml` may say; every field has a working default."""

    sip: SipSettings = Field(default_factory=SipSettings)
    trunks: list[Trunk] = Field(default_factory=list)
    allow_from: list[str] = Field(default_factory=list)
    flows: str = "flows/"
    audio: str = "audio/"
    routes: dict[str, str] = Field(default_factory=dict)
    speech: SpeechSettings = Field(default_factory=SpeechSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    calendars: dict[str, Calendar] = Field(default_factory=dict)
    queues: dict[str, QueueSettings] = Field(default_factory=dict)
    agents: dict[str, AgentSettings] = Field(default_factory=dict)
    front: FrontTuning = Field(default_factory=FrontTuning)
    store: StoreSettings = Field(default_factory=StoreSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)

    source: str | None = Field(None, exclude=True, description="file the config came from")


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
