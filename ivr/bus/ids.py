"""MQTT client ids, one place: every id names its node, so two nodes on one site broker never
take over each other's session (a broker drops the older of two connections with one id).

Derived ids (the ACD's outbox sender `<acd>-out`, a worker's `acd-client-<worker>`) inherit the
node from these.
"""

from __future__ import annotations


def supervisor(node: str) -> str:
    """The CDR consumer (persistent session: events wait for it while it restarts)."""
    return f"ivr-supervisor-{node}"


def acd(node: str) -> str:
    """The ACD service (persistent session: requests wait for it while it restarts)."""
    return f"ivr-acd-{node}"


def acd_site() -> str:
    """The active ACD of a site with failover (store.url): one session for whichever ACD holds
    the lease, so requests sent while none is active wait in it for the next one. Only the
    active connects with it; its outbox sender keeps the node's id (`acd(node)` + `-out`)."""
    return "ivr-acd-site"


def worker(node: str, worker_id: str, pid: int) -> str:
    """One worker process: per pid as well, so a worker a killed supervisor left running and
    its replacement with the same id keep sessions of their own."""
    return f"{node}-worker-{worker_id}-{pid}"
