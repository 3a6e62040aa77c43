"""The Prometheus metrics of the engine: one place for every metric object and its name.

Names follow Prometheus conventions (base units in the name, `_total` counters, `_seconds`
histograms). Labels are bounded: flow ids, node ids and queue names come from the config, reasons
and outcomes from the short lists below, SIP codes from the status codes we send; never a caller's
number, a call id or anything a caller said. Counters and histograms are written where the event
happens (worker or supervisor; multiprocess mode sums them, see ivr/metrics_dir.py); state that a
process already keeps (live calls, queues, pool) is read at scrape time by ivr/metrics_state.py.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from ivr import call_position as position

FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Latencies a caller notices (answer, the next prompt after a key): milliseconds to seconds."""
SPEECH = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
RENDER = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
STORE = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
QUEUE_WAIT = (5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)

END_REASONS = frozenset({
    "completed", "caller_hangup", "ivr_hangup", "caller_cancelled", "no_media",
    "caller_hung_up_before_media", "media_timeout", "internal_error", "error", "hangup", "queue",
    "transfer", "inputs_exhausted", "worker_died",
})
"""What `ivr_calls_ended_total{reason}` may say; anything else is `other`."""

# -- calls and SIP (workers) ---------------------------------------------------------------------
CALLS_STARTED = Counter("ivr_calls_started_total", "Calls answered and handed to a flow.",
                        ["flow"])
CALLS_ENDED = Counter("ivr_calls_ended_total", "Calls that ended, by why.", ["reason"])
SIP_RESPONSES = Counter("ivr_sip_responses_total",
                        "Final responses the workers sent to INVITEs, by status code.", ["code"])
INVITE_TO_200 = Histogram("ivr_invite_to_200_seconds",
                          "From an INVITE reaching a worker to its 200 OK.", buckets=FAST)
ACK_TO_PROMPT = Histogram("ivr_ack_to_first_prompt_seconds",
                          "From the call being confirmed (ACK) to the first prompt playing.",
                          buckets=FAST)
DTMF_TO_PROMPT = Histogram("ivr_dtmf_to_prompt_seconds",
                           "From a DTMF digit arriving to the next prompt playing.", buckets=FAST)

# -- speech (workers) ----------------------------------------------------------------------------
SPEECH_TO_RESULT = Histogram("ivr_speech_end_to_result_seconds",
                             "From the end of the caller's utterance to its recognition result.",
                             buckets=SPEECH)
ASR_DECODE = Histogram("ivr_asr_decode_seconds", "One recognizer decode.", buckets=SPEECH)
TTS_RENDER = Histogram("ivr_tts_render_seconds", "One prompt synthesised (cache misses only).",
                       buckets=RENDER)
INPUT_EVENTS = Counter("ivr_input_events_total",
                       "Input events of collect and menu nodes: noinput, nomatch, barge_in.",
                       ["flow", "node", "event"])

# -- supervisor ----------------------------------------------------------------------------------
STORE_WRITE = Histogram("ivr_store_write_seconds", "One call event written to the CDR store.",
                        buckets=STORE)
QUEUE_ENTERED = Counter("ivr_queue_entered_total", "Calls that entered a queue.", ["queue"])
QUEUE_OUTCOMES = Counter("ivr_queue_outcomes_total",
                         "Queued calls that left the queue, by outcome (answered, abandoned, "
                         "timeout, overflow, ...).", ["queue", "outcome"])
QUEUE_ANSWERED = Counter("ivr_queue_answered_total", "Queued calls an agent answered.", ["queue"])
QUEUE_ANSWERED_IN_TARGET = Counter(
    "ivr_queue_answered_within_target_total",
    "Queued calls an agent answered within the queue's service_level seconds.", ["queue"])
QUEUE_ANSWER_WAIT = Histogram("ivr_queue_answer_wait_seconds",
                              "How long answered callers waited in the queue.", ["queue"],
                              buckets=QUEUE_WAIT)
QUEUE_CALLBACKS = Counter("ivr_queue_callbacks_scheduled_total",
                          "Waiting callers who chose a callback.", ["queue"])

def end_reason(reason: str) -> str:
    """A call's end reason as a bounded label ("error: <text>" is `error`)."""
    word = reason.split(":", 1)[0].strip().lower().replace(" ", "_")
    return word if word in END_REASONS else "other"


def input_event(event: str, flow: str | None = None, node: str | None = None) -> None:
    """Count a noinput, nomatch or barge_in at (flow, node), by default where the call is."""
    here = position.current.get()
    INPUT_EVENTS.labels(flow or here[0] or "-", node or here[1] or "-", event).inc()

