"""Runs a flow over a Channel. Small on purpose: behaviour lives in the node classes.

The interpreter walks from node to node, gives each node the call's context, and turns the ways a
call can stop (a node ends it, the caller hangs up, the flow breaks, scripted input runs out) into
one `End`. It never looks at what kind a node is.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from ivr import log as log_context
from ivr import tracing
from ivr.errors import CallerHangup, FlowRuntimeError, InputsExhausted
from ivr.flow.context import CallContext, End
from ivr.flow.model import Flow
from ivr.lang.secret import call_secrets

log = logging.getLogger(__name__)

MAX_SUBFLOW_DEPTH = 8


@dataclass
class Result:
    """Everything `ivr simulate --json` reports about one run."""

    flow: str
    ctx: CallContext

    @property
    def end(self) -> End:
        assert self.ctx.ending is not None
        return self.ctx.ending

    def as_json(self) -> dict[str, Any]:
        c = self.ctx
        return {
            "flow": self.flow,
            "call_id": c.call_id,
            "path": list(c.path),
            "prompts": list(c.prompts),
            "inputs": list(c.inputs),
            "variables": c.masked_variables(),
            "transcript": list(c.transcript),
            "end": self.end.as_json(),
        }


class Interpreter:
    """Runs one call's flow; create one per call."""

    def __init__(self, ctx: CallContext) -> None:
        self.ctx = ctx
        self._depth = 0
        ctx.run_subflow = self._subflow
        ctx.top_flow_id = ctx.flow.id

    async def run(self) -> Result:
        ctx = self.ctx
        log_context.call_id.set(ctx.call_id)
        call_secrets.set(ctx.secrets)  # every log line of this call's task is scrubbed of them
        try:
            await self._walk(ctx.flow)
            ctx.end("hangup", by="ivr")
        except CallerHangup:
            ctx.end("hangup", by="caller")
        except InputsExhausted:
            ctx.end("inputs_exhausted", message="the flow waited for input and none was left")
        except FlowRuntimeError as exc:
            log.error("flow %s stopped at %s: %s", ctx.flow.id, ctx.node_id, exc)
            ctx.end("error", message=str(exc))
        if ctx.ending is not None and ctx.ending.kind in ("hangup", "error") \
                and ctx.ending.by != "caller":
            with contextlib.suppress(CallerHangup):
                await ctx.channel.hangup()
        return Result(ctx.top_flow_id, ctx)

    async def _walk(self, flow: Flow) -> bool:
        """Run `flow` from its start; True when the call ended inside it."""
        ctx = self.ctx
        node_id: str | None = flow.header.start
        while node_id is not None:
            node = flow.nodes.get(node_id)
            if node is None:
                raise FlowRuntimeError(f"flow {flow.id} has no node {node_id!r}", node_id)
            ctx.step(flow, node_id)
            with tracing.node(flow.id, node_id, str(getattr(node, "kind", type(node).__name__))):
                node_id = await node.run(ctx)
            if ctx.ending is not None:
                return True
            if node.hangup:
                ctx.end("hangup", by="ivr")
                return True
        return False

    async def _subflow(self, flow_id: str) -> bool:
        ctx = self.ctx
        flow = ctx.flows.get(flow_id)
        if flow is None:
            raise FlowRuntimeError(f"unknown subflow {flow_id!r}", ctx.node_id)
        if self._depth >= MAX_SUBFLOW_DEPTH:
            raise FlowRuntimeError(f"subflows nested deeper than {MAX_SUBFLOW_DEPTH}", ctx.node_id)
        parent, return_to = ctx.flow, ctx.node_id
        self._depth += 1
        ctx.flow = flow
        try:
            return await self._walk(flow)
        finally:
            self._depth -= 1
            ctx.flow = parent
            ctx.node_id = return_to
