"""The call events' topics, and the will that reports a worker gone.

Workers publish every call event on `ivr/events/<worker>`; whoever keeps the CDRs (the
supervisor of one box, the ACD node of a site) subscribes to all of them. A worker's bus session
carries a will: a worker killed with its calls (SIGKILL, its whole node lost) leaves a
`worker.lost` event, so its open CDRs end as `worker died` and the ACD lets go of its callers
(waiting or talking) even when no supervisor of its own survives to say so. A worker that
drains says goodbye and leaves none.

A broker that restarts publishes the wills of workers that are alive and about to reconnect, so
each worker says `worker.alive` on every (re)connect: its callers are let go only when no such
word follows the will within a grace period.
"""

from __future__ import annotations

import json

import aiomqtt

EVENTS = "ivr/events/#"
LOST = "worker.lost"
ALIVE = "worker.alive"


def events_topic(worker: str) -> str:
    return f"ivr/events/{worker}"


def _word(kind: str, worker: str, node: str, pid: int, bus_id: str) -> str:
    return json.dumps({"kind": kind, "worker": worker, "node": node, "pid": pid, "bus_id": bus_id})


def lost_will(worker: str, node: str, pid: int, bus_id: str) -> aiomqtt.Will:
    """What the broker publishes for `worker` when its process vanishes without a goodbye
    (`bus_id`: its ACD client's id, which names the reply topic of its queued callers)."""
    return aiomqtt.Will(events_topic(worker), _word(LOST, worker, node, pid, bus_id), qos=1)


def alive_hello(worker: str, node: str, pid: int, bus_id: str) -> tuple[str, str]:
    """(topic, payload) a worker publishes on each (re)connect: the will a restarting broker
    sent for it was not the end of it."""
    return events_topic(worker), _word(ALIVE, worker, node, pid, bus_id)
