"""The ACD's part of the supervisor's HTTP API.

GET  /queues                              live queues (waiting calls, agents by state, estimates)
PUT  /queues/<name>                       create or retune a queue at run time (JSON policy)
GET  /agents                              live agents
POST /agents/<name>/<login|logout|ready|away>   (a new agent: JSON body with queues, skills, uri)
GET  /calls/<id>/context                  the handoff context (CLI.md)

Who may call what is decided in front of these handlers (`ivr.access.policy`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ivr.access.middleware import principal
from ivr.access.tokens import Role
from ivr.acd.engine import StateError
from ivr.acd.model import QueuePolicy
from ivr.acd.service import AcdService

ACTIONS = ("login", "logout", "ready", "away")


def _error(cls: type[web.HTTPError], message: str) -> web.HTTPError:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


def routes(get: Callable[[], AcdService | None]) -> list[web.RouteDef]:
    def service() -> AcdService:
        svc = get()
        if svc is None:
            raise _error(web.HTTPServiceUnavailable, "the ACD is not running")
        return svc

    async def queues(_: web.Request) -> web.Response:
        return web.json_response({"queues": service().engine.queues_view()})

    async def put_queue(request: web.Request) -> web.Response:
        svc = service()
        try:
            body: Any = await request.json() if request.can_read_body else {}
            policy = QueuePolicy.from_json(dict(body or {}))
        except (ValueError, TypeError) as exc:
            raise _error(web.HTTPBadRequest, str(exc)) from None
        svc.engine.add_queue(request.match_info["name"], policy)
        return web.json_response({"name": request.match_info["name"], **policy.as_json()})

    async def agents(_: web.Request) -> web.Response:
        return web.json_response({"agents": service().engine.agents_view()})

    async def agent_action(request: web.Request) -> web.Response:
        svc = service()
        name, action = request.match_info["name"], request.match_info["action"]
        if action not in ACTIONS:
            raise _error(web.HTTPNotFound, f"unknown action {action}; one of {', '.join(ACTIONS)}")
        try:
            if name not in svc.engine.agents:
                who = principal(request)
                if who is not None and who.role is not Role.admin:
                    raise _error(web.HTTPForbidden, "a new agent is added with an admin token")
                body: Any = await request.json() if request.can_read_body else {}
                if action not in ("login", "ready") or not isinstance(body, dict):
                    raise KeyError(name)
                svc.add_agent(name, body)
            svc.agent_action(name, action)
        except KeyError:
            raise _error(web.HTTPNotFound, f"unknown agent {name}") from None
        except StateError as exc:
            raise _error(web.HTTPConflict, str(exc)) from None
        except ValueError as exc:
            raise _error(web.HTTPBadRequest, str(exc)) from None
        agent = svc.engine.agents[name]
        return web.json_response(agent.as_json(svc.engine.clock()))

    async def context(request: web.Request) -> web.Response:
        ctx = service().context(request.match_info["call_id"])
        if ctx is None:
            raise _error(web.HTTPNotFound, "no queue context for this call")
        return web.json_response(ctx)

    return [web.get("/queues", queues), web.put("/queues/{name}", put_queue),
            web.get("/agents", agents), web.post("/agents/{name}/{action}", agent_action),
            web.get("/calls/{call_id}/context", context)]
