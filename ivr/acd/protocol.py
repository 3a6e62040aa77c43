"""The ACD's bus protocol: topics and message kinds shared by the service and the worker client.

All messages are JSON, QoS 1, and leave their process through a SQLite outbox; each carries
`key` (an idempotency key, `<call id>:<sequence>`): a consumer that has seen a key drops the
message. Requests carry `reply_to` (the topic the worker listens on) and `call_id` (the
correlation id); replies name the `call_id` they belong to. With tracing on, a request also
carries the W3C `traceparent` (and `tracestate`) of the span it was sent from (ivr.tracing).

worker -> ACD, topic `ivr/acd/request`, `{"op": ..., "call_id", "reply_to", "key", ...}`:
  enqueue        queue, priority, skills, max_wait, since (first enqueue time: a resync keeps the
                 place), at (when this request was written; the ACD uses only at - since, the
                 time waited, so a worker's clock being off moves no one), announce_every,
                 caller, flow, path, variables (masked), transcript,
                 context, sensitive (names to mask again here)
  agent_answered agent, attempt           the agent picked up; the first answer wins
  agent_failed   agent, attempt, reason   no_answer | busy | reject | error: next agent
  caller_gone                             hung up while waiting or while an agent rang
  call_ended     outcome?                 the agent's call is over: wrap-up (outcome for reports,
                                          default answered; callback_unanswered)
  callback       number, uri?             convert to a callback, keeping the place; uri: where to
                                          call (the caller's Contact), kept with the call
  holding        calls (call_id "-")      every `resync_every`: the calls this worker still
                                          holds with the ACD. A call with an agent it does not
                                          name ended (its end report was lost); one no roll call
                                          names for LOST_AFTER s while the ACD's bus was up ended
                                          too (its worker died unseen, e.g. between two ACDs)

ACD -> worker, topic `<reply_to>` (clients use `ivr/acd/reply/<node>`), `{"kind": ..., "call_id",
"key", ...}`:
  queued     position, eta_s
  position   position, eta_s                      every `announce_every` seconds
  offer      agent {name, uri}, attempt, context  dial the agent (several at once for ring_all)
  cancel     agent, reason                        stop ringing that agent (or hang that leg up)
  connected  agent, wait_s                        this agent won; bridge
  timeout    reason (empty | full | max_wait), overflow
  callback   position                             the callback is scheduled; the caller may go
  error      message

ACD -> any worker, topic `ivr/acd/callbacks` (subscribe as `$share/ivr-workers/ivr/acd/callbacks`):
  offer      as above plus `callback` (the number) and `callback_uri`: a worker with two free
             slots dials the agent, then the caller, and reports with its own reply_to; a full
             one reports agent_failed busy. Subscribed on a clean session (a dead worker must not
             hold offers).

ACD -> agents' desktops:
  `ivr/agents/<name>/offer`   the handoff context (CLI.md): call_id, caller, flow, path,
                              variables (sensitive masked), transcript, wait_s, queue, priority,
                              context, attempt, key
  `ivr/agents/<name>/cancel`  call_id, reason, key
  `ivr/agents/<name>/status`  state, call_id, key
agents -> ACD: `ivr/agents/<name>/state` `{"state": "ready" | "away" | "login" | "logout"}`
"""

from __future__ import annotations

REQUEST_TOPIC = "ivr/acd/request"
CALLBACK_TOPIC = "ivr/acd/callbacks"
CALLBACK_SHARED = "$share/ivr-workers/ivr/acd/callbacks"
AGENT_STATE_SUB = "ivr/agents/+/state"
TERMINAL = ("connected", "timeout", "callback", "error")
LOST_AFTER = 120.0
"""Seconds without a roll call naming a call with an agent before the ACD ends it (four of
the workers' default 30 s rounds)."""


def reply_topic(node: str) -> str:
    return f"ivr/acd/reply/{node}"


def agent_topic(name: str, what: str) -> str:
    return f"ivr/agents/{name}/{what}"


def is_reply_topic(topic: str) -> bool:
    """A worker's reply topic: one plain level under ivr/acd/reply/ (no wildcards)."""
    node = topic.removeprefix("ivr/acd/reply/")
    return node != topic and bool(node) and not any(c in node for c in "/+#")
