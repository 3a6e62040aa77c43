"""A worker process: one pjsua2 UA with at most `calls_per_worker` calls, running flows.

Started by `ivr serve` (by default one per core, each with its share of `max_calls`; one per 4
calls with the PyPI wheel), behind the Kamailio front. The worker
owns its calls and nothing else: queues, agents and CDRs live in the supervisor, reached over the
bus. Flows are re-read on SIGHUP; a call keeps the flow version it started with. SIGTERM drains:
new INVITEs get 503 (the front moves them to another worker), live calls finish, then exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import gc
import logging
import os
import shutil
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pjsua2 as pj

from ivr import log as logs
from ivr import metrics, tracing
from ivr.acd.client import AcdClient, AcdEvent
from ivr.bus import ids
from ivr.bus.auth import ANONYMOUS, BusAuth
from ivr.bus.events import alive_hello, events_topic, lost_will
from ivr.bus.outbox import Outbox, send_forever
from ivr.config import EngineConfig, load_config
from ivr.flow.context import CallContext
from ivr.flow.interpreter import Interpreter
from ivr.flow.loader import iter_yaml_files
from ivr.flow.model import Flow
from ivr.flow.validate import load_flows
from ivr.log_levels import LevelsFile, root_level, stepped
from ivr.sip import srtp, test_hooks
from ivr.sip.build import probe
from ivr.sip.callback import CallbackJob
from ivr.sip.channel import SipChannel
from ivr.sip.media import MediaRegistry, first_of
from ivr.sip.media_watch import REASON as MEDIA_TIMEOUT
from ivr.sip.media_watch import MediaWatch
from ivr.sip.pj import Endpoint, EndpointConfig, guard, raise_fd_limit
from ivr.sip.recording import recording_path
from ivr.sip.session import CallSession, IvrCall, parse_invite
from ivr.sip.speech import CallSpeech, RxPortPool, SpeechHub
from ivr.sip.stubbed import StubbedSipChannel
from ivr.sip.test_hooks import TestHook
from ivr.speech.asr.procs import ProcessEngine
from ivr.speech.asr.service import load_engine
from ivr.speech.audio import write_wav
from ivr.speech.voices import prompt_cache
from ivr.status_line import rss_kb, write_status

log = logging.getLogger("ivr.worker")

TEARDOWN_BOUND = 5.0
CALL_POLL = 0.04
IDLE_POLL = 0.25
"""pjsip polls with calls up and with none (a SIP packet wakes either at once): see
Endpoint.start_pump. With calls, DTMF waits for a poll: 40 ms against 20 took the engine from
0.61 to 0.39 cores at 80 calls, DTMF->next prompt p99 from 58 to 79 ms (bench quick mode).
Idle, only pjsip's timers wait for a poll; 50 ms cost 6 mc per worker."""
STATUS_HEARTBEAT = 5.0
"""The status line goes out when it changes (checked twice a second), else this often."""


def flow_for(config: EngineConfig, flows: dict[str, Flow], dialed: str) -> Flow | None:
    """Routing: the dialled number's flow, else `default`, else the only flow there is."""
    fid = config.routes.get(dialed) or config.routes.get("default")
    if fid in flows:
        return flows[fid]
    return next(iter(flows.values())) if len(flows) == 1 else None


def private_dir(state_dir: Path) -> Path:
    """Where this worker renders prompts that carry a sensitive value (each deleted after it
    plays); what a killed worker left there is removed now."""
    root = state_dir / "private"
    if root.is_dir():
        for d in root.iterdir():
            pid = d.name.removeprefix("pid-")
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(d, ignore_errors=True)
    return root / f"pid-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_beep(path: Path, rate: int) -> Path:
    if not path.is_file():
        t = np.arange(int(rate * 0.25)) / rate
        write_wav(path, (np.sin(2 * np.pi * 1000 * t) * 8000).astype(np.int16), rate)
    return path


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker

    @guard
    def onIncomingCall(self, prm: Any) -> None:
        self.worker.incoming(self, prm)


@dataclass
class Worker:
    worker_id: str
    sip_port: int
    config: EngineConfig
    state_dir: Path
    broker: str | None = None
    bus_auth: BusAuth = ANONYMOUS
    """The broker user: the private broker's worker user, or a site broker's configured one."""
    asr_service: Path | None = None
    """The recognition service's socket: shared models are decoded there."""
    limit: int = 4
    """Calls this worker carries (its share of max_calls, within the loaded pjsua2's limit)."""
    site: bool = False
    """A media node of a site: named `NODE/ID` in events and CDRs (ids repeat across nodes)."""
    registry: MediaRegistry = field(default_factory=MediaRegistry)
    sessions: dict[str, CallSession] = field(default_factory=dict)
    contexts: dict[str, CallContext] = field(default_factory=dict)
    """The running flows of live calls: where each call is now (the wallboard's self-service)."""
    rejected: dict[str, CallSession] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    flows: dict[str, Flow] = field(default_factory=dict)
    draining: bool = False
    acd: AcdClient | None = None
    account: Any = None
    callbacks: int = 0
    """Callback jobs running here (each holds up to two pjsua2 calls)."""
    orphaned: bool = False
    _stop: asyncio.Event | None = None
    _parent: int = 0
    _seq: dict[str, int] = field(default_factory=dict)
    _last_status: dict[str, Any] = field(default_factory=dict)
    _last_status_at: float = 0.0

    def __post_init__(self) -> None:
        node = self.config.node.name
        self.name = f"{node}/{self.worker_id}" if self.site else self.worker_id
        """How events, CDRs and traces name this worker."""
        self.levels = LevelsFile(self.state_dir / "log-levels.json")
        self.levels.poll()
        self.cache = prompt_cache(self.state_dir / "prompts", self.config, 8000,
                                  private_dir=private_dir(self.state_dir))
        self.outbox = Outbox(self.state_dir / "outbox" / f"worker-{self.worker_id}.sqlite")
        self.beep = make_beep(self.state_dir / "prompts" / "beep-8000.wav", 8000)
        self.asr = load_engine(self.config.speech.asr, self.asr_service, processes=True)
        self.rx_ports = RxPortPool()
        # a decode thread per decoder process (each waits on its child, GIL free), so the
        # hub's queue, not a thread waiting for a child, decides which decode runs next
        engine = self.asr.engine
        self.speech_hub = SpeechHub(engine.size if isinstance(engine, ProcessEngine) else 2,
                                    timing=self.config.speech.turn)
        if not self.asr.ready:
            log.warning("speech not ready: %s", self.asr.message)

    # -- flows ----------------------------------------------------------------------------
    def load(self) -> None:
        """Load flows; on problems keep serving the last good version of each broken file."""
        files = list(iter_yaml_files([Path(self.config.flows)], tests=False))
        result = load_flows(files, self.config)
        for p in result.errors:
            # the supervisor validated the same files and logged each problem once (not once
            # per worker: ten identical lines for one typo)
            log.debug("flow problem, keeping the last good version: %s", p)
        broken = {p.file for p in result.errors}
        fresh = {fid: f for fid, f in result.flows.items() if f.file not in broken}
        for fid, old in self.flows.items():
            if fid not in fresh and old.file in broken:
                fresh[fid] = old
        self.flows = fresh
        log.info("flows loaded: %s", {k: v.version for k, v in fresh.items()})
        self._emit_status()

    # -- events ---------------------------------------------------------------------------
    def emit(self, call_id: str, kind: str, **data: Any) -> None:
        seq = self._seq.get(call_id, 0) + 1
        self._seq[call_id] = seq
        event = {"call_id": call_id, "seq": seq, "kind": kind, "at": time.time(),
                 "worker": self.name, "node": self.config.node.name, **tracing.carrier(), **data}
        self.outbox.put(events_topic(self.name), event, key=f"{call_id}:{seq}")

    def _emit_status(self, *, changed_only: bool = False) -> None:
        """The status line the supervisor reads (calls for pool growth, media and tasks for
        /health). With `changed_only`, a line like the last one waits for the heartbeat: a
        hundred idle workers each writing twice a second kept the supervisor busy parsing."""
        if self.orphaned:
            return
        status = {"worker": self.worker_id, "calls": len(self.sessions),
                  "callbacks": self.callbacks, "draining": self.draining,
                  "media": self.registry.snapshot(), "tasks": len(self.tasks),
                  "flows": {k: v.version for k, v in self.flows.items()}, "pid": os.getpid(),
                  "created": dict(self.registry.created),
                  "speech": {"ready": self.asr.ready, "message": self.asr.message},
                  "log_levels": self.levels.seq, "nodes": self._nodes(),
                  "outbox": self.outbox.count(), "bus": self.outbox.connected}
        now = time.monotonic()
        if changed_only and status == self._last_status and \
                now - self._last_status_at < STATUS_HEARTBEAT:
            return
        self._last_status, self._last_status_at = status, now
        if not write_status({**status, "rss_kb": rss_kb()}):
            self._orphan("the status pipe is closed")

    def _nodes(self) -> dict[str, int]:
        """Live calls by `flow:node` (the node a call is in now)."""
        counts: dict[str, int] = {}
        for ctx in self.contexts.values():
            if ctx.node_id:
                key = f"{ctx.top_flow_id or ctx.flow.id}:{ctx.node_id}"
                counts[key] = counts.get(key, 0) + 1
        return counts

    def _orphan(self, why: str) -> None:
        """The supervisor is gone (SIGKILL, crash): keep the live calls, take no new ones.

        Callers waiting in a queue stay: the ACD's state is in SQLite and this worker's bus
        session is its own, so a restarted supervisor serves them through this process. Once its
        last call ends the worker exits; the new supervisor runs its own workers meanwhile.
        """
        if self.orphaned:
            return
        self.orphaned = True
        log.warning("supervisor gone (%s): draining %d live calls, then exiting", why,
                    len(self.sessions))
        if self._stop is not None:
            self._drain(self._stop)

    # -- calls ----------------------------------------------------------------------------
    def incoming(self, account: Any, prm: Any) -> None:
        info = parse_invite(str(prm.rdata.wholeMsg))
        hook, refused_hook = self._test_hook(info)
        call_id = hook.call_id if hook is not None else uuid.uuid4().hex
        session = CallSession(loop=asyncio.get_running_loop(), registry=self.registry,
                              call_id=call_id, info=info)
        call = IvrCall(account, prm.callId, session)
        session.call = call
        if self.asr.engine is not None and (hook is None or hook.stubs.speech):
            session.speech = CallSpeech(self.asr.engine, session.loop, session.on_speech,
                                        self.rx_ports, self.speech_hub)
        op = pj.CallOpParam()
        flow = flow_for(self.config, self.flows, info["dialed"]) if hook is None \
            else self.flows[hook.flow]
        refused = srtp.refusal(self.config.sip.srtp_for(info["dialed"]), str(prm.rdata.wholeMsg),
                               available=probe().srtp)
        if refused_hook is not None or (hook is not None and call_id in self.sessions):
            op.statusCode = refused_hook or 400  # a bad or refused X-IVR-Test; a reused call id
        elif self.draining or flow is None or self._busy() >= self.limit:
            op.statusCode = 503 if self.draining or flow is None else 486
        elif refused is not None:
            op.statusCode = refused  # 488: the route's SRTP policy does not take this offer
        else:
            op.statusCode = 200
        # 503 takes a draining worker out of the front's rotation; 486 only skips a full one
        session.on_gone = self._gone
        if op.statusCode != 200 or flow is None or self.config.sip.answer_delay <= 0:
            session.sent_final(op.statusCode)
        if op.statusCode != 200 or flow is None:
            # a final error reply; the session (and so the Call) is kept until DISCONNECTED
            self.rejected[call_id] = session
            call.answer(op)
            return
        self.registry.add("call")
        self.sessions[call_id] = session
        if self.config.sip.answer_delay > 0:
            op.statusCode = 180  # ring first; the call task answers after the delay
        call.answer(op)
        task = asyncio.get_running_loop().create_task(self._run_call(session, flow, account, hook))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _test_hook(self, info: dict[str, Any]) -> tuple[TestHook | None, int | None]:
        """The INVITE's test hook (README: Testing over SIP), or the status refusing it."""
        try:
            return test_hooks.from_invite(info["sip_headers"], enabled=self.config.test_hooks,
                                          flows=self.flows), None
        except test_hooks.HookRefused as exc:
            log.warning("refused an INVITE from %s with %s: %s", info.get("number") or "?",
                        exc.status, exc.reason)
            return None, exc.status

    def _busy(self) -> int:
        """pjsua2 call slots in use or promised: inbound calls and callback jobs (two legs)."""
        return len(self.sessions) + 2 * self.callbacks

    def callback_offer(self, offer: AcdEvent) -> None:
        """The ACD offers a queued callback to any worker: take it when two slots are free."""
        assert self.acd is not None
        if offer.kind != "offer" or not offer.agent:
            return
        if self.draining or self.account is None or \
                self._busy() + 2 > self.limit:
            # hand it back: the agent is ready again and the ACD offers it anew
            self.acd.agent_failed(offer.call_id, offer.agent, offer.attempt, "busy")
            return
        self.callbacks += 1
        task = asyncio.get_running_loop().create_task(self._run_callback(offer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run_callback(self, offer: AcdEvent) -> None:
        assert self.acd is not None
        job = CallbackJob(asyncio.get_running_loop(), self.registry, self.account, self.acd,
                          self.cache, offer, self._front_hostport())
        try:
            with tracing.call_span(offer.call_id, callback=True, agent=offer.agent,
                                   worker=self.name):
                await job.run_recorded(self.emit)
        finally:
            self.callbacks -= 1
            self._seq.pop(job.cdr_id, None)

    def _front_hostport(self) -> str:
        """Where registered agent phones are reached: the front's first listen address."""
        _, _, hostport = self.config.sip.listen[0].partition(":")
        host, _, port = hostport.rpartition(":")
        return f"{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"

    def _gone(self, session: CallSession) -> None:
        self.rejected.pop(session.call_id, None)
        if self.sessions.pop(session.call_id, None) is not None:
            self.registry.remove("call")

    async def _run_call(self, session: CallSession, flow: Flow, account: Any,
                        hook: TestHook | None = None) -> None:
        logs.call_id.set(session.call_id)
        logs.flow.set(flow.id)
        with tracing.call_span(session.call_id, flow=flow.id, worker=self.name,
                               dialed=session.info.get("dialed")):
            await self._call(session, flow, account, hook)

    async def _call(self, session: CallSession, flow: Flow, account: Any,
                    hook: TestHook | None) -> None:
        info = session.info if hook is None else hook.caller(session.info)
        self.emit(session.call_id, "call.start", flow=flow.id, flow_version=flow.version,
                  caller=info["number"], dialed=info["dialed"])
        metrics.CALLS_STARTED.labels(flow.id).inc()
        result = None
        reason = "completed"
        try:
            if self.config.sip.answer_delay > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(session.gone.wait(), self.config.sip.answer_delay)
                if session.gone.is_set():
                    reason = "caller cancelled"
                    return
                session.answer(200)
                session.sent_final(200)
            await first_of(session.media_ready, session.gone, timeout=10)
            if not session.media_ready.is_set():
                reason = "no media" if not session.gone.is_set() else "caller hung up before media"
                session.hangup()
                return
            self._record(session, flow)
            self.emit(session.call_id, "call.answer")
            channel = self._channel(session, account, hook)
            stubbed: dict[str, Any] = {} if hook is None else {
                "clock": hook.stubs.clock_fn(), "variables": dict(hook.stubs.variables)}
            async with contextlib.AsyncExitStack() as owned:
                if hook is not None:  # the case's http answers; nothing reaches the network
                    stubbed["http_client"] = await owned.enter_async_context(
                        hook.stubs.http_client())
                ctx = CallContext(channel=channel, config=self.config, flows=dict(self.flows),
                                  flow=flow, caller=info, call_id=session.call_id,
                                  audio_dir=Path(self.config.audio),
                                  on_input_event=metrics.input_event, **stubbed)
                channel.handoff = lambda: {
                    "flow": ctx.top_flow_id or flow.id, "path": list(ctx.path),
                    "variables": ctx.masked_variables(), "transcript": list(ctx.transcript),
                    "sensitive": sorted(ctx.sensitive | set(ctx.flow.sensitive))}
                self.contexts[session.call_id] = ctx
                result = await Interpreter(ctx).run()
            end = result.end
            reason = session.ended_for or \
                {"caller": "caller hangup", "ivr": "ivr hangup"}.get(end.by or "", end.kind)
            if end.kind == "error" and end.message and not end.by:
                reason = f"error: {end.message}"  # the CDR says why (a refused transfer, ...)
        except Exception as exc:
            if isinstance(exc, pj.Error):  # its str() is empty: info() says what failed
                log.error("call failed: pjsua2 %s", exc.info())
            else:
                log.exception("call failed")
            reason = "internal error"
            session.hangup()
        finally:
            self.contexts.pop(session.call_id, None)
            if not session.gone.is_set():
                session.hangup()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(session.gone.wait(), TEARDOWN_BOUND)
            await session.settle()
            if session.recording is not None:  # no-op when DISCONNECTED already released it
                session.recording.stop(None if session.gone.is_set() else session.aud)
            payload: dict[str, Any] = {"reason": reason, "code": session.end_code,
                                       "hung_up_by": session.hung_up_by}
            if result is not None:
                doc = result.as_json()
                if session.ended_for:  # the flow saw a hangup, but it was ours
                    doc["end"].update(by="ivr", message=session.ended_for)
                payload.update(end=doc["end"], path=doc["path"], variables=doc["variables"],
                               transcript=doc["transcript"])
            if session.recording is not None:
                payload.update(session.recording.cdr())
            self.emit(session.call_id, "call.end", **payload)
            metrics.CALLS_ENDED.labels(metrics.end_reason(reason)).inc()
            self._seq.pop(session.call_id, None)

    def _channel(self, session: CallSession, account: Any, hook: TestHook | None) -> SipChannel:
        """The call's channel; under a test hook its queues and transfers are the case's."""
        kind = SipChannel if hook is None else partial(StubbedSipChannel, stubs=hook.stubs)
        return kind(session=session, cache=self.cache, account=account,
                    recordings=self.state_dir / "recordings", beep=self.beep, acd=self.acd,
                    front=self._front_hostport(), audio_dir=self.config.audio,
                    recognises=self.config.speech.asr.recognises)

    def _record(self, session: CallSession, flow: Flow) -> None:
        """Start the whole-call recording when the route or the flow asks for one."""
        if self.config.recording.wanted(session.info["dialed"], flow.id, flow.header.record_calls):
            path = recording_path(self.state_dir / "recordings", session.call_id)
            if session.start_recording(path, self.config.recording.resume_after):
                log.info("recording the call to %s", path)

    def _media_timeout(self, session: CallSession, idle: float) -> None:
        """The caller sent no RTP for `sip.media_timeout`: BYE, and say why in the events."""
        token = logs.call_id.set(session.call_id)
        try:
            log.warning("no RTP from the caller for %.1f s: hanging up", idle)
            self.emit(session.call_id, "call.media_timeout", idle_s=round(idle, 2))
            session.end_for(MEDIA_TIMEOUT)
        finally:
            logs.call_id.reset(token)

    # -- process --------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = self._stop = asyncio.Event()
        self._parent = os.getppid()
        loop.add_signal_handler(signal.SIGHUP, self.load)
        loop.add_signal_handler(signal.SIGTERM, self._drain, stop)
        loop.add_signal_handler(signal.SIGINT, self._drain, stop)
        loop.add_signal_handler(signal.SIGUSR1, self._verbosity, -1)
        loop.add_signal_handler(signal.SIGUSR2, self._verbosity, 1)
        self.load()
        lib_limit = probe().max_calls
        self.limit = min(self.limit, lib_limit)
        raise_fd_limit(self.limit)
        endpoint = Endpoint(EndpointConfig(port=self.sip_port, host=self.config.sip.workers_host,
                                           max_calls=lib_limit,
                                           user_agent=f"ivr-worker/{self.worker_id}"))
        endpoint.start()
        account = _Account(self)
        slot = int(self.worker_id) if self.worker_id.isdigit() else 1
        account.create(endpoint.account_config("ivr", self.config.sip.rtp_slice(slot, self.limit),
                                               srtp=probe().srtp))
        self.account = account
        endpoint.start_pump(CALL_POLL, idle=IDLE_POLL,
                            busy=lambda: bool(self.sessions or self.tasks))
        media_watch = MediaWatch(self.config.sip.media_timeout, self.sessions, self._media_timeout)
        media_watch.start()
        sender = None
        acd_ctx: AcdClient | None = None
        if self.broker:
            # bus identities are per process: a worker left running by a killed supervisor and
            # the new supervisor's worker with the same id must not take over each other's
            # session; nor may the workers of two nodes on one site broker
            node = ids.worker(self.config.node.name, self.worker_id, os.getpid())
            word = (self.name, self.config.node.name, os.getpid(), node)
            sender = loop.create_task(send_forever(self.outbox, self.broker, node, self.bus_auth,
                                                   will=lost_will(*word), hello=alive_hello(*word)))
            acd_ctx = AcdClient(self.broker, self.outbox, node=node, auth=self.bus_auth)
            acd_ctx.on_callback = self.callback_offer
            self.acd = await acd_ctx.__aenter__()
        log.info("worker %s listening on udp %s:%d", self.worker_id, self.config.sip.workers_host,
                 self.sip_port)
        self._emit_status()
        try:
            while not (stop.is_set() and not self.sessions and not self.tasks):
                await asyncio.sleep(0.5)
                if os.getppid() != self._parent:
                    self._orphan("the parent process changed")
                if self.levels.poll():
                    log.info("log levels now %s", self.levels.levels)
                self._emit_status(changed_only=True)
        finally:
            await media_watch.stop()
            if acd_ctx is not None:
                await acd_ctx.__aexit__(None, None, None)
            await self._shutdown(endpoint, account, sender)

    def _verbosity(self, step: int) -> None:
        """SIGUSR1/SIGUSR2 sent to this worker alone (the supervisor's reach every worker
        through log-levels.json): the root logger one level more or less verbose."""
        level = stepped(root_level(), step)
        logging.getLogger().setLevel(level)
        log.warning("log level now %s", level)

    def _drain(self, stop: asyncio.Event) -> None:
        log.info("draining: %d live calls", len(self.sessions))
        self.draining = True
        stop.set()

    async def _shutdown(self, endpoint: Endpoint, account: Any, sender: asyncio.Task[None] | None) -> None:
        for session in list(self.sessions.values()):
            session.hangup()
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=TEARDOWN_BOUND)
            for task in pending:
                log.warning("cancelling a call task that did not end in %ss", TEARDOWN_BOUND)
                task.cancel()
        if sender is not None:
            # what is not delivered now stays in the outbox for the next start
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.outbox.drained(), 2.0)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        await endpoint.stop_pump()
        self.sessions.clear()
        with contextlib.suppress(pj.Error):
            endpoint.ep.audDevManager().setNoDev()  # no clock thread: ports can go safely
        self.rx_ports.free.clear()
        self.rx_ports.all.clear()
        self.speech_hub.stop()
        if self.asr.engine is not None:
            self.asr.engine.close()  # its decoder processes
        self.account = None
        account.shutdown()
        del account
        gc.collect()
        endpoint.destroy()
        self.outbox.close()
        if self.cache.private_dir is not None:
            shutil.rmtree(self.cache.private_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    faulthandler.enable()  # a crash in pjsua2 leaves every thread's stack in the serve log
    ap = argparse.ArgumentParser(prog="ivr-worker")
    ap.add_argument("--id", required=True)
    ap.add_argument("--sip-port", type=int, required=True)
    ap.add_argument("--calls", type=int, default=4, help="calls this worker carries")
    ap.add_argument("--config", type=Path)
    ap.add_argument("--state-dir", type=Path, default=Path("var"))
    ap.add_argument("--broker")
    ap.add_argument("--bus-user", help="the private broker's user (default: bus: of the config)")
    ap.add_argument("--bus-password-file", type=Path, help="its password (a 0600 file)")
    ap.add_argument("--asr-service", type=Path, help="the recognition service's socket")
    ap.add_argument("--log-level", default="INFO")
    ap.add_argument("--site", action="store_true",
                    help="a media node of a site: events name this worker NODE/ID")
    args = ap.parse_args(argv)
    logs.setup(args.log_level, json_lines=True)
    logs.worker = args.id
    config = load_config(args.config)
    tracing.setup(config.tracing, f"worker-{args.id}")
    if args.bus_user and args.bus_password_file:
        auth = BusAuth.from_file(args.bus_user, args.bus_password_file)
    else:
        auth = BusAuth.from_settings(config.bus) if config.bus.mqtt else ANONYMOUS
    worker = Worker(args.id, args.sip_port, config, args.state_dir.resolve(), args.broker,
                    bus_auth=auth, asr_service=args.asr_service, limit=args.calls,
                    site=args.site)
    asyncio.run(worker.run())
    tracing.shutdown()
    with contextlib.suppress(OSError, ValueError):  # stdout is a dead pipe when orphaned
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)  # pjsua2 objects freed during interpreter teardown would abort the process


if __name__ == "__main__":
    main()
