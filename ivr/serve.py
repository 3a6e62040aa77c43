"""`ivr serve`: the supervisor. Starts and watches the broker, the workers and the front.

It owns what must outlive any one call or worker: the worker pool (all of it started before the
first call: by default one worker per core, each carrying its share of max_calls up to what the
loaded pjsua2 carries; restarted when one dies), the CDR store (fed by worker events
over MQTT), flow reloads (SIGHUP or a changed file: validated here, then each worker re-reads), and
the HTTP API. SIGTERM drains: workers refuse new calls with 503 and finish live ones, then the
front and broker stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
from aiohttp import web
from prometheus_client import multiprocess

from ivr import metrics_dir, tracing
from ivr.access.bootstrap import server_tokens
from ivr.access.middleware import authenticate, principal
from ivr.access.policy import api_policy
from ivr.access.tokens import TokenSet
from ivr.acd.acl import SUPERVISOR, WORKER, broker_users
from ivr.acd.failover import LEASE, Failover
from ivr.acd.http import routes as acd_routes
from ivr.acd.service import AcdService
from ivr.bus import ids
from ivr.bus.auth import BusAuth
from ivr.bus.broker import find_ours, free_port, listening, start_broker
from ivr.bus.drain import every_message
from ivr.bus.events import ALIVE, EVENTS, LOST
from ivr.bus.users import BrokerUsers
from ivr.config import EngineConfig
from ivr.errors import ConfigError
from ivr.flow.catalog import prompt_pairs
from ivr.flow.languages import flow_languages
from ivr.flow.loader import iter_yaml_files
from ivr.flow.templates import is_template
from ivr.flow.validate import load_flows
from ivr.front.agent_secrets import agent_ha1s
from ivr.front.process import Front
from ivr.front.settings import FrontError, FrontSettings
from ivr.log_levels import ROOT, LevelsFile, check_level, check_logger, root_level
from ivr.metrics_state import CONTENT_TYPE, Snapshot, exposition, shared
from ivr.pool import WorkerPool, WorkerProc
from ivr.retention import purge
from ivr.roles import PARTS, Parts, parts_for
from ivr.sip.build import warn_if_wheel
from ivr.speech.asr.process import RecognitionProcess
from ivr.speech.asr.service import shared_models
from ivr.speech.tts import TtsError
from ivr.speech.voices import prompt_cache
from ivr.store.backend import StoreError
from ivr.store.lease import Lease
from ivr.store.open import open_backend, open_store
from ivr.web.desktop import Desktop
from ivr.web.routes import install as install_desktop
from ivr.web.routes import pages

log = logging.getLogger("ivr.serve")
LOST_GRACE_S = 10.0
"""How long after a worker's bus will its callers are let go, unless it says it is alive: a
broker restart plus the workers' reconnect backoff (at most 5 s)."""

MAX_UNIX_PATH = 107
"""sockaddr_un.sun_path holds 108 bytes with the NUL."""
DRAIN_BOUND = 60.0
LEVELS_BOUND = 3.0
"""How long `ivr log-level` waits for the workers to apply a new level (they poll twice a second)."""


class Supervisor:
    def __init__(self, config: EngineConfig, config_path: Path | None, state_dir: Path,
                 tokens: TokenSet | None = None, parts: Parts = PARTS["all"]) -> None:
        self.config = config
        self.parts = parts
        """What this node runs (ivr/roles.py): `run` starts only these."""
        self.node = config.node.name
        self.tokens = tokens if tokens is not None else server_tokens(config.http, state_dir)
        self.config_path = config_path.resolve() if config_path else None
        self.state = state_dir.resolve()
        self.pool = WorkerPool(config, self.config_path, self.state, self._worker_args, self._spawn)
        self.broker_url = config.bus.mqtt
        # a site broker: the configured user for all; the private one: a user per role (acd/acl.py)
        self.bus_auth = BusAuth.from_settings(config.bus) if config.bus.mqtt else BusAuth()
        self.broker_users = BrokerUsers(self.state / "mosquitto")
        self._broker: asyncio.subprocess.Process | None = None
        self._adopted_broker: int | None = None
        self.front: Front | None = None
        self.store = open_store(config)
        self.cache = prompt_cache(self.state / "prompts", config, 8000)
        if self.cache.forget_unkeyed():
            log.info("prompt cache: removed renderings named before the cache key")
        self.stop = asyncio.Event()
        self.reload_requested = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.flow_versions: dict[str, str] = {}
        self.flow_languages: list[str] = []
        """Every language the loaded flows' calls can be in (/health's speech.languages)."""
        self._flow_stamp: tuple[tuple[str, float, int], ...] = ()
        self.draining = False
        self.started = time.time()
        self.acd: AcdService | None = None  # the ACD (ivr/acd): queues, agents, callbacks
        self.failover: Failover | None = None
        """With store.url: whether this node's ACD is the active one (ivr/acd/failover.py)."""
        self.recognition: RecognitionProcess | None = None  # shared models (ivr.speech.asr.server)
        self.levels = LevelsFile(self.state / "log-levels.json")
        """Run-time log levels, published to the workers (ivr.log_levels)."""
        self.desktop = Desktop(config.desktop, lambda: self.acd, self.store.db,
                               lambda: [w.as_json() for w in self.pool])  # ivr/web
        self.events_connected = False  # the CDR feed's bus session
        self._lost_workers: dict[str, asyncio.TimerHandle] = {}
        """Workers whose bus will came, by bus id: their callers go when the grace runs out."""

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- flows ----------------------------------------------------------------------------
    def _flow_files(self) -> list[Path]:
        return list(iter_yaml_files([Path(self.config.flows)], tests=False))

    def _stamp(self) -> tuple[tuple[str, float, int], ...]:
        out = []
        for f in self._flow_files():
            with contextlib.suppress(OSError):
                st = f.stat()
                out.append((str(f), st.st_mtime, st.st_size))
        return tuple(out)

    async def check_flows(self) -> bool:
        """Validate and pre-render static prompts; problems are logged, the last good stays."""
        result = await asyncio.to_thread(load_flows, self._flow_files(), self.config)
        for problem in result.errors:
            log.error("flow problem (the last good version keeps serving): %s", problem)
        texts = [(t, lang) for f in result.flows.values()
                 for t, lang in prompt_pairs(f) if not is_template(t)]
        rendered = 0
        for text, language in texts:
            if self.cache.cached(text, language) is None:
                try:
                    await self.cache.render(text, language)
                    rendered += 1
                except TtsError as exc:
                    log.error("cannot pre-render prompt %r: %s", text[:60], exc)
        self.flow_versions = {k: v.version for k, v in result.flows.items()}
        self.flow_languages = sorted({lang for f in result.flows.values()
                                      for lang in flow_languages(f)})
        log.info("flows ready: %s (%d prompts rendered)", self.flow_versions, rendered)
        return not result.errors

    async def reload(self) -> None:
        if self.parts.workers:
            await self.check_flows()
            self.pool.signal_all(signal.SIGHUP)
        await self._reload_agent_secrets()

    async def _reload_agent_secrets(self) -> None:
        """SIGHUP after `ivr agents secret NAME`: the front takes the new HA1s without a restart.
        A broken secrets file keeps the HA1s the front has (and says why)."""
        if self.front is None or not self.front.alive:
            return
        try:
            await self.front.set_agent_secrets(agent_ha1s(self.config))
        except (ConfigError, FrontError) as exc:
            log.error("agent secrets not reloaded: %s", exc)

    # -- workers --------------------------------------------------------------------------
    def _worker_args(self) -> list[str]:
        args = ["--broker", self.broker_url] if self.broker_url else []
        if self.parts.site:
            args.append("--site")
        if self.broker_url and self.config.bus.mqtt is None:  # the private broker's worker user
            args += ["--bus-user", WORKER, "--bus-password-file",
                     str(self.broker_users.secret_file(WORKER))]
        if self.recognition is not None:
            args += ["--asr-service", str(self.recognition.socket)]
        return args

    def _write_off(self, w: WorkerProc) -> None:
        path = metrics_dir.current()
        if path is not None and w.proc is not None:
            # its counters and histograms stay in the sums; live-mode gauges of a dead pid go
            multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
                w.proc.pid, str(path))
        lost = self.store.close_calls_of(w.worker_id, "worker died")
        if lost:
            log.error("worker %s took %d calls with it", w.worker_id, lost)

    async def _sync_front(self) -> None:
        if self.front is not None and self.front.alive and self.parts.workers:
            await self.front.set_workers(self.pool.addresses())

    async def watch(self) -> None:
        """Restart dead workers, notice changed flow files."""
        while not self.stop.is_set():
            if await self.pool.restart_dead(self._write_off):
                await self._sync_front()
            if self.recognition is not None:
                await self.recognition.check()
            stamp = self._stamp() if self.parts.workers else ()
            if stamp != self._flow_stamp:
                if self._flow_stamp:
                    log.info("flow files changed; reloading")
                    await self.reload()
                self._flow_stamp = stamp
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                await self.reload()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 1.0)

    # -- events ---------------------------------------------------------------------------
    async def consume_events(self) -> None:
        assert self.broker_url is not None
        while not self.stop.is_set():
            try:
                async with self.bus_auth.client(self.broker_url, identifier=ids.supervisor(self.node),
                                                clean_session=False) as client:
                    await client.subscribe(EVENTS, qos=1)
                    self.events_connected = True
                    async for message in every_message(client):
                        try:
                            event = json.loads(bytes(message.payload))
                            if event.get("kind") == LOST:
                                self._lost(event)
                                continue
                            if event.get("kind") == ALIVE:
                                self._alive(event)
                                continue
                            self._record(event)
                        except (ValueError, KeyError, TypeError) as exc:
                            log.error("bad event on %s: %s", message.topic, exc)
                        except StoreError as exc:  # the database stayed away past store.retry
                            log.error("event on %s not stored: %s", message.topic, exc)
            except aiomqtt.MqttError as exc:
                self.events_connected = False
                log.warning("bus unavailable for events (%s); retrying", exc)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), 1.0)

    def _lost(self, event: dict[str, Any]) -> None:
        """A worker's bus will: the process died (on any node), its open calls end with it.
        Here already when this supervisor restarted it; a media node's reach only us."""
        lost = self.store.close_calls_of(str(event["worker"]), "worker died")
        if lost:
            log.error("worker %s (pid %s) died with %d calls", event["worker"], event.get("pid"),
                      lost)
        bus_id = str(event.get("bus_id") or "")
        if bus_id and bus_id not in self._lost_workers:
            # a restarting broker sends the wills of workers that are about to reconnect: their
            # callers go only if the worker does not say it is alive within the grace period
            self._lost_workers[bus_id] = asyncio.get_running_loop().call_later(
                LOST_GRACE_S, self._callers_lost, event)

    def _alive(self, event: dict[str, Any]) -> None:
        """A worker (re)connected: a will of its own process before it was not its end."""
        handle = self._lost_workers.pop(str(event.get("bus_id") or ""), None)
        if handle is not None:
            handle.cancel()
            log.warning("worker %s is alive after its bus will (a broker restart); its callers "
                        "stay", event.get("worker"))

    def _callers_lost(self, event: dict[str, Any]) -> None:
        self._lost_workers.pop(str(event["bus_id"]), None)
        if self.acd is not None:
            gone = self.acd.worker_lost(str(event["bus_id"]))
            if gone:
                log.error("worker %s took %d queued or connected callers with it",
                          event["worker"], gone)

    def _record(self, event: dict[str, Any]) -> None:
        """One call event into the CDR store, as a span of the call's trace."""
        with tracing.remote(event), tracing.span(f"cdr {event.get('kind')}",
                                                 call_id=str(event.get("call_id"))):
            self.store.record_event(event)

    # -- log levels -----------------------------------------------------------------------
    def _verbosity(self, step: int) -> None:
        """SIGUSR1 (-1, more verbose) / SIGUSR2 (+1): here and in every worker."""
        self.levels.step(step)
        log.warning("log level now %s (workers follow)", self.levels.levels.get(ROOT))

    async def set_log_level(self, level: str, logger: str = ROOT) -> dict[str, Any]:
        """`ivr log-level`: set it here and wait (bounded) until every live worker applied it."""
        seq = self.levels.set(check_level(level), check_logger(logger))
        log.warning("log level of %s now %s (workers follow)", logger or "root", level.upper())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._workers_at(seq), LEVELS_BOUND)
        return self.log_levels()

    async def _workers_at(self, seq: int) -> None:
        while any(w.alive and int(w.status.get("log_levels", 0)) < seq for w in self.pool):
            self.pool.status_seen.clear()
            await self.pool.status_seen.wait()

    def log_levels(self) -> dict[str, Any]:
        seq = self.levels.seq
        return {"levels": {k or "root": v for k, v in self.levels.levels.items()},
                "workers": {w.worker_id: int(w.status.get("log_levels", 0)) >= seq
                            for w in self.pool if w.alive}}

    # -- retention ------------------------------------------------------------------------
    async def purge_forever(self) -> None:
        """Retention: purge at start, then every `retention.purge_every`, until stop."""
        settings = self.config.retention
        if not settings.active:
            return
        while not self.stop.is_set():
            try:
                await asyncio.to_thread(self._purge_once)
            except (OSError, sqlite3.Error, StoreError) as exc:
                log.error("retention purge failed (the next run tries again): %s", exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), settings.purge_every)

    def _purge_once(self) -> None:
        """One purge on its own connection (a long purge never holds the loop's)."""
        db = open_backend(self.config.store)
        try:
            purge(self.config.retention, db, self.state / "recordings")
        finally:
            db.close()

    # -- HTTP API -------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        workers = [w.as_json() for w in self.pool]
        alive = [w for w in workers if w["alive"]]
        front = self.front is not None and self.front.alive
        ok = ((front or not self.parts.front) and (bool(alive) or not self.parts.workers)
              and (self.acd is not None or self.failover is not None or not self.parts.acd)
              and not self.draining)
        speech = [w["speech"] for w in workers if w["alive"] and w["speech"]]
        speech_doc = {"ready": bool(speech) and all(s.get("ready") for s in speech),
                      "message": next((s.get("message") for s in speech), "no worker")}
        speech_doc["languages"] = self.speech_languages(bool(speech_doc["ready"]))
        if self.recognition is not None:
            speech_doc["service"] = self.recognition.as_json()
        return {"status": "ok" if ok else ("draining" if self.draining else "degraded"),
                "speech": speech_doc,
                "calls": sum(w["calls"] for w in workers), "workers": workers,
                "capacity": sum(w["limit"] for w in alive), "max_calls": self.config.sip.max_calls,
                "pjsua2": {**self.pool.pjsua2.as_json(), "calls_per_worker": max(self.pool.limits)},
                "front": front, "bus": self.broker_url,
                "node": {"name": self.node, "role": self.parts.role},
                **({"acd": self.acd_state()} if self.parts.acd else {}),
                "flows": self.flow_versions, "uptime_s": round(time.time() - self.started, 1)}

    def acd_state(self) -> str:
        """active (acts: one box always), standby (waits for the lease), or down."""
        if self.failover is not None:
            return self.failover.state
        return "active" if self.acd is not None else "down"

    async def _edge_health(self, doc: dict[str, Any]) -> None:
        """An edge's media workers as its probes see them ("up"/"down"): with none up it cannot
        take a call, so it is degraded (a load balancer in front of edges moves on)."""
        state: dict[str, str] = {}
        if self.front is not None and self.front.alive:
            with contextlib.suppress(FrontError):
                state = await self.front.dispatcher_state()
        doc["media"] = {w: "up" if state.get(w, "I").startswith("A") else "down"
                        for w in self.config.edge.workers()}
        if doc["status"] == "ok" and "up" not in doc["media"].values():
            doc["status"] = "degraded"

    def speech_languages(self, ready: bool) -> dict[str, dict[str, Any]]:
        """Per language of the loaded flows: whether its calls get speech recognition, or run
        their input nodes DTMF-only (no engine for it in speech.asr, or speech not ready)."""
        asr = self.config.speech.asr
        out = {}
        for lang in self.flow_languages:
            covered = asr.recognises(lang)
            speech = ready and covered
            why = ("" if speech else "speech not ready" if covered else
                   f"no recogniser for {lang} in speech.asr (default_languages or languages)")
            out[lang] = {"ready": speech, "input": "speech+dtmf" if speech else "dtmf",
                         **({"reason": why} if why else {})}
        return out

    def snapshot(self) -> Snapshot:
        """The live state /metrics reads at each scrape (ivr/metrics_state.py)."""
        workers = [w.as_json() for w in self.pool]
        alive = [w for w in workers if w["alive"]]
        speech = [w["speech"] for w in alive if w["speech"]]
        snap = Snapshot(workers=workers,
                        speech_ready=bool(speech) and all(s.get("ready") for s in speech),
                        front_up=self.front is not None and self.front.alive,
                        bus={"supervisor": self.events_connected})
        for w in alive:
            snap.outboxes[f"worker-{w['id']}"] = int(w["outbox"])
            snap.bus[f"worker-{w['id']}"] = bool(w["bus"])
        if self.acd is not None:
            snap.queues = self.acd.engine.queues_view()
            snap.agents = self.acd.engine.agents_view()
            snap.outboxes["acd"] = self.acd.outbox.count()
            snap.bus["acd"] = self.acd.connected.is_set() and self.acd.outbox.connected
        return snap

    def app(self) -> web.Application:
        async def health(request: web.Request) -> web.Response:
            doc = self.health()
            if self.parts.role == "edge":
                await self._edge_health(doc)
            who = principal(request)
            if who is None or not who.can_read:
                # open to load balancers and probes: whether we serve, nothing about what or whom
                brief = {"status": doc["status"], "speech": {"ready": doc["speech"]["ready"]}}
                return web.json_response(brief, status=200 if doc["status"] == "ok" else 503)
            if self.front is not None and self.front.settings.registrations:
                # per trunk: registered / registering / failed / disabled / pending (ops want to
                # know their carrier can reach them); not part of "status": inbound calls from
                # trusted trunk addresses work without it
                try:
                    doc["trunks"] = await self.front.registration_state()
                except FrontError:
                    doc["trunks"] = {r.name: "unknown" for r in self.front.settings.registrations}
            return web.json_response(doc, status=200 if doc["status"] == "ok" else 503)

        async def metrics(_: web.Request) -> web.Response:
            snap = self.snapshot()
            if self.front is not None and self.front.alive:
                with contextlib.suppress(FrontError):  # the rest is still worth a scrape
                    snap.front_rejects = await self.front.rejects()
            body = await asyncio.to_thread(exposition, snap)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

        async def get_levels(_: web.Request) -> web.Response:
            return web.json_response(self.log_levels())

        async def put_levels(request: web.Request) -> web.Response:
            try:
                body = await request.json()
                if not isinstance(body, dict):
                    raise ValueError("the body must be an object")
                doc = await self.set_log_level(str(body["level"]), str(body.get("logger") or ""))
            except (ValueError, KeyError) as exc:
                text = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
                raise web.HTTPBadRequest(text=json.dumps({"error": text}),
                                         content_type="application/json") from None
            return web.json_response(doc)

        async def call(request: web.Request) -> web.Response:
            cdr = self.store.call(request.match_info["call_id"])
            if cdr is None:
                raise web.HTTPNotFound(text=json.dumps({"error": "unknown call"}),
                                       content_type="application/json")
            if self.acd is not None:  # its time in a queue (no context: that is the agent's)
                cdr["acd"] = self.acd.store.queue_record(request.match_info["call_id"])
            return web.json_response(cdr)

        async def calls(request: web.Request) -> web.Response:
            since = float(request.query.get("since", "0") or 0)
            return web.json_response({"calls": self.store.calls(since)})

        def offered(call_id: str, agent: str) -> bool:
            return self.acd is not None and self.acd.offered_to(call_id, agent)

        policy = api_policy(offered, self.desktop.ringing, self.desktop.had)
        app = web.Application(middlewares=[pages(), authenticate(self.tokens, policy)])
        app.add_routes(acd_routes(lambda: self.acd))  # /queues, /agents, /calls/<id>/context
        install_desktop(app, self.desktop, self.store)  # pages, /events, the agent's actions
        app.add_routes([web.get("/health", health), web.get("/metrics", metrics),
                        web.get("/calls", calls), web.get("/calls/{call_id}", call),
                        web.get("/log-level", get_levels), web.put("/log-level", put_levels)])
        return app

    # -- lifecycle ------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        loop.add_signal_handler(signal.SIGINT, self.stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_requested.set)
        loop.add_signal_handler(signal.SIGUSR1, self._verbosity, -1)
        loop.add_signal_handler(signal.SIGUSR2, self._verbosity, 1)
        self.state.mkdir(parents=True, exist_ok=True)
        self.levels.write({ROOT: root_level()})  # a new run starts at its configured level
        runner: web.AppRunner | None = None
        try:
            if self.broker_url is None and self.parts.broker:
                self.broker_url = await self._private_broker()
                log.info("private broker on %s", self.broker_url)
            if self.parts.acd:
                self._start_acd()
            if self.parts.workers:
                await self._start_workers()
            if self.parts.front:
                await self._start_front()
            host, _, http_port = self.config.http.listen.rpartition(":")
            runner = web.AppRunner(self.app(), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, host, int(http_port)).start()
            self._banner()
            watcher = self._spawn(self.watch())
            await self.stop.wait()
            watcher.cancel()
            await self.drain()
            return 0
        finally:
            await self._teardown(runner)

    def _start_acd(self) -> None:
        """The ACD, the CDR consumer and retention (roles all and acd)."""
        assert self.broker_url is not None
        self._spawn(self.consume_events())
        self._spawn(self.purge_forever())
        if self.config.store.url is None:  # one box: always active
            self.acd = self._make_acd()
            self._spawn(self.acd.run())
            return
        settings = self.config.store
        lease = Lease(open_backend(settings), LEASE, self.node, settings.lease_ttl)
        self.failover = Failover(lease, self._make_acd, renew_every=settings.lease_renew,
                                 on_change=self._acd_changed)
        self._spawn(self.failover.run())

    def _make_acd(self) -> AcdService:
        """The ACD service, its engine restored from the store. With failover its request
        session is the site's (whichever ACD is active), its sender the node's."""
        assert self.broker_url is not None
        site = self.config.store.url is not None
        acd = AcdService.create(self.config, open_backend(self.config.store),
                                self.state / "outbox" / "acd.sqlite", self.broker_url,
                                auth=self.bus_auth,
                                client_id=ids.acd_site() if site else ids.acd(self.node),
                                sender_id=ids.acd(self.node) + "-out")
        acd.observers.append(self.desktop.on_actions)
        if self.failover is not None:
            acd.may_act = self.failover.acting
        return acd

    def _acd_changed(self, acd: AcdService | None) -> None:
        """The failover took the lease (the service) or lost it (None): the API, desktop and
        worker wills follow."""
        self.acd = acd

    async def _start_workers(self) -> None:
        """Flows checked and prompts rendered, the recognition service, the worker pool (roles
        all and media)."""
        await self.check_flows()
        self._flow_stamp = self._stamp()
        await self._start_recognition()
        warn_if_wheel(self.pool.pjsua2)
        await self.pool.start()

    async def _start_front(self) -> None:
        """Kamailio over this node's workers, or an edge's over every media node's (edge.media)."""
        remote = not self.parts.workers
        workers = self.config.edge.workers() if remote else self.pool.addresses()
        self.front = Front(FrontSettings.from_config(self.config, self.state / "front", workers,
                                                     probe_first=remote))
        await self.front.start()
        self._warn_unregistrable()

    def _warn_unregistrable(self) -> None:
        """Agents meant to register at the front (no uri) but with no secret get 403: say so."""
        assert self.front is not None
        missing = sorted(n for n, a in self.config.agents.items()
                         if not a.uri and n not in self.front.settings.agent_ha1)
        if missing:
            log.warning("agents without a registrar secret cannot register (403): %s; set one "
                        "with `ivr agents secret NAME`, then SIGHUP", ", ".join(missing))

    async def _start_recognition(self) -> None:
        """The shared-model recognition service, when a configured model is shared."""
        if not shared_models(self.config.speech.asr):
            return
        path = self.state / "asr.sock"
        if len(str(path)) > MAX_UNIX_PATH:
            raise ValueError(f"state directory too long for a unix socket path: {path}")
        self.recognition = RecognitionProcess(path, self.config_path)
        await self.recognition.start()
        log.info("recognition service: %s", self.recognition.as_json())

    async def _private_broker(self) -> str:
        """A private Mosquitto on the previous run's port (kept in the state dir).

        After a SIGKILL the old broker (and the workers still holding calls on it) keep running:
        the restarted supervisor adopts that broker so its ACD meets those workers again, and
        stops it at exit like its own.
        """
        home = self.state / "mosquitto"
        port_file = home / "port"
        users = self.broker_users
        await asyncio.to_thread(users.write, *broker_users(self.config.agents))
        self.bus_auth = users.auth(SUPERVISOR)
        port: int | None = None
        with contextlib.suppress(OSError, ValueError):
            port = int(port_file.read_text())
        if port is not None and await listening(port):
            pid = find_ours(home)
            if pid is not None:
                log.warning("adopting the private broker (pid %d) a previous run left on %d",
                            pid, port)
                self._adopted_broker = pid
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGHUP)  # re-read users and ACL (agents may have changed)
                return f"mqtt://127.0.0.1:{port}"
            port = None  # someone else's now
        port = port or free_port()
        try:
            self._broker = await start_broker(home, port, users)
        except RuntimeError:
            port = free_port()
            self._broker = await start_broker(home, port, users)
        port_file.write_text(str(port))
        return f"mqtt://127.0.0.1:{port}"

    def _banner(self) -> None:
        if self.parts.site:
            what = {"edge": f"edge on {', '.join(self.config.sip.listen)} over "
                            f"{len(self.config.edge.workers())} media workers",
                    "media": f"media workers {[w.address for w in self.pool]}",
                    "acd": f"ACD on {self.broker_url}"}[self.parts.role]
            sys.stderr.write(f"ivr node {self.node} ({self.parts.role}): {what}; health on "
                             f"http://{self.config.http.listen}/health\n")
            sys.stderr.flush()
            return
        sip = self.config.sip.listen[0]
        _, _, hostport = sip.partition(":")
        dialed = next((k for k in self.config.routes if k != "default"), "ivr")
        sys.stderr.write(
            f"ivr serving flows {sorted(self.flow_versions)} on {sip} "
            f"({len(self.pool.workers)} workers, up to {max(self.pool.limits)} calls each, pjsua2 "
            f"{self.pool.pjsua2.version} {self.pool.pjsua2.build}); health on "
            f"http://{self.config.http.listen}/health\n"
            f"  place a test call:  ivr call sip:{dialed}@{hostport} --dtmf 1\n"
            f"  or dial sip:{dialed}@{hostport} from a softphone; SIGHUP or editing flows/ reloads.\n"
        )
        sys.stderr.flush()

    async def drain(self) -> None:
        """No new calls (workers answer 503), live calls finish, bounded by DRAIN_BOUND."""
        self.draining = True
        log.info("draining %d live calls", self.pool.live_calls())
        await self.pool.drain(DRAIN_BOUND)

    async def _teardown(self, runner: web.AppRunner | None) -> None:
        self.stop.set()
        for handle in self._lost_workers.values():
            handle.cancel()
        await self.pool.kill()
        if self.front is not None:
            await self.front.stop()
        if self.recognition is not None:
            await self.recognition.stop()
        if runner is not None:
            await runner.cleanup()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2)
        if self._adopted_broker is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self._adopted_broker, signal.SIGTERM)
        if self._broker is not None and self._broker.returncode is None:
            self._broker.terminate()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._broker.wait(), 5)
        if self.acd is not None and self.failover is None:  # else the failover closed it
            self.acd.close()
        self.store.close()


def serve(config: EngineConfig, config_path: Path | None, state_dir: Path, role: str = "all") -> int:
    # a trunk password missing from the environment, unreadable API tokens or an API beyond
    # loopback without tokens stop us here, before anything is started
    parts = parts_for(role, config)  # a role the config cannot run stops here
    config.check_secrets()
    tokens = server_tokens(config.http, state_dir)
    if config.bus.mqtt:
        BusAuth.from_settings(config.bus)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    if metrics_dir.current() is None:
        metrics_dir.prepare(state_dir)  # the workers' samples still reach /metrics
    if not shared():
        log.warning("metrics: prometheus_client was imported before %s was set, so the "
                    "supervisor's own samples (queues, store) are missing from /metrics; start "
                    "the server with `ivr serve`", metrics_dir.ENV)
    tracing.setup(config.tracing, "supervisor")  # without the SDK: a ConfigError, nothing started
    try:
        return asyncio.run(Supervisor(config, config_path, state_dir, tokens, parts).run())
    finally:
        tracing.shutdown()
