"""Where the running call is in its flow, for what counts per flow and node from outside it
(a leaf module: the flow sets it, the metrics read it, neither imports the other).

The interpreter's `CallContext.step` sets it; the call's task (and so the SIP layer under the
flow) reads it, e.g. to count a barge-in against the node whose prompt was cut.
"""

from __future__ import annotations

import contextvars

current: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "flow_position", default=("", ""))
"""(flow id, node id); ("", "") outside a flow."""
