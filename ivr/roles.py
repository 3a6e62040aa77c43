"""Which parts of `ivr serve` a node runs (`--role`): the one place that decides it.

A single box runs everything (`all`). A site splits it: the edge is the Kamailio front for the
whole site (ACL, pike, registrar, dispatching over every media node's workers); a media node runs
workers, the speech service and the prompt cache; the ACD node runs queues, agents, callbacks,
the CDR consumer and the HTTP API. The nodes of a site meet on one site broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ivr.config import EngineConfig
from ivr.errors import ConfigError

Role = Literal["all", "edge", "media", "acd"]
ROLES: tuple[str, ...] = get_args(Role)


@dataclass(frozen=True)
class Parts:
    """What a node starts. `site` is true for every role of a split site: its workers are named
    `NODE/ID` in events and CDRs, and the broker is the site's (`bus.mqtt`)."""

    role: Role
    front: bool
    workers: bool
    acd: bool
    """The ACD, the CDR consumer (events into the store) and retention."""
    broker: bool
    """Whether this node talks to the bus at all (the edge does not)."""

    @property
    def site(self) -> bool:
        return self.role != "all"


PARTS: dict[str, Parts] = {
    "all": Parts("all", front=True, workers=True, acd=True, broker=True),
    "edge": Parts("edge", front=True, workers=False, acd=False, broker=False),
    "media": Parts("media", front=False, workers=True, acd=False, broker=True),
    "acd": Parts("acd", front=False, workers=False, acd=True, broker=True),
}


def parts_for(role: str, config: EngineConfig) -> Parts:
    """The parts of `role`, after checking the config can run them: a site's nodes need the
    site broker, an edge needs media nodes to dispatch to, a media node fixed worker ports."""
    if role not in PARTS:
        raise ConfigError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    parts = PARTS[role]
    if parts.site and parts.broker and not config.bus.mqtt:
        raise ConfigError(f"role {role} needs the site broker: set bus.mqtt (a private broker "
                          "is for a single box, --role all)")
    if role == "edge" and not config.edge.media:
        raise ConfigError("role edge needs edge.media: the media nodes' workers (IP:LO-HI)")
    if role == "media" and config.sip.worker_ports is None:
        raise ConfigError("role media needs sip.worker_ports (lo-hi): the edge lists the "
                          "workers by these ports in edge.media")
    return parts
