"""The call events' topics, and the will that reports a worker gone.

Workers publish every call event on `ivr/events/<worker>`; whoever keeps the CDRs (the
supervisor of one box, the ACD node of a site) subscribes to all of them. A worker's bus session
carries a will: a worker killed with its calls (SIGKILL, its whole node lost) leaves a
`worker.lost` event, so its open CDRs end as `worker died` and the ACD lets go of its callers
(waiting or talking) even when no supervisor of its own survives to say so. A worker that
drains says goodbye and leaves none.
"""

from __future__ import annotations

import json

import aiomqtt

EVENTS = "ivr/events/#"
LOST = "worker.lost"


def events_topic(worker: str) -> str:
    return f"ivr/events/{worker}"


def lost_will(worker: str, node: str, pid: int, bus_id: str) -> aiomqtt.Will:
    """What the broker publishes for `worker` when its process vanishes without a goodbye
    (`bus_id`: its ACD client's id, which names the reply topic of its queued callers)."""
    payload = {"kind": LOST, "worker": worker, "node": node, "pid": pid, "bus_id": bus_id}
    return aiomqtt.Will(events_topic(worker), json.dumps(payload), qos=1)
