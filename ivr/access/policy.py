"""Which principal may call which API route: one table, deny by default.

A route not in the table needs an admin token, so a route added later is closed until someone
decides who else may use it. Rules see the matched route's parameters (the agent's name, the
call id) for the agent role's scope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from ivr.access.tokens import Principal, Role

Offered = Callable[[str, str], bool]
"""(call id, agent) -> whether the call was offered to that agent."""


class Rule(Protocol):
    @property
    def open(self) -> bool:
        """Anyone may call it without a token (a token given must still be valid)."""


    def allows(self, who: Principal | None, request: web.Request) -> bool: ...


@dataclass(frozen=True)
class Open:
    open: bool = True

    def allows(self, who: Principal | None, request: web.Request) -> bool:
        return True


@dataclass(frozen=True)
class Roles:
    roles: frozenset[Role]
    open: bool = False

    def allows(self, who: Principal | None, request: web.Request) -> bool:
        return who is not None and who.role in self.roles


@dataclass(frozen=True)
class OwnAgent:
    """Admins, and an agent acting on its own name (`{name}` in the route)."""

    open: bool = False

    def allows(self, who: Principal | None, request: web.Request) -> bool:
        if who is None:
            return False
        return who.role is Role.admin or (
            who.role is Role.agent and who.agent == request.match_info.get("name"))


@dataclass(frozen=True)
class OfferedCall:
    """Admins, and an agent the call (`{call_id}`) was offered to."""

    offered: Offered
    open: bool = False

    def allows(self, who: Principal | None, request: web.Request) -> bool:
        if who is None:
            return False
        if who.role is Role.admin:
            return True
        return who.role is Role.agent and who.agent is not None and \
            self.offered(request.match_info.get("call_id", ""), who.agent)


@dataclass(frozen=True)
class AgentOfCall:
    """Only the agent `check(call id, agent)` says (no admin: it acts as that agent), e.g. the
    agent the call rings now (accept/reject) or the agent who had it (its disposition)."""

    check: Offered
    open: bool = False

    def allows(self, who: Principal | None, request: web.Request) -> bool:
        return who is not None and who.role is Role.agent and who.agent is not None and \
            self.check(request.match_info.get("call_id", ""), who.agent)


def _nobody(call_id: str, agent: str) -> bool:
    return False


ADMIN = Roles(frozenset({Role.admin}))
READ = Roles(frozenset({Role.admin, Role.read}))


class Policy:
    def __init__(self, rules: dict[tuple[str, str], Rule]) -> None:
        self.rules = rules

    def rule_for(self, request: web.Request) -> Rule:
        resource = request.match_info.route.resource
        path = resource.canonical if resource is not None else ""
        method = "GET" if request.method == "HEAD" else request.method
        return self.rules.get((method, path), ADMIN)


def api_policy(offered: Offered, ringing: Offered = _nobody, had: Offered = _nobody) -> Policy:
    """The supervisor's API (ivr/serve.py, ivr/acd/http.py, ivr/web/routes.py); README "Privacy
    and access". `ringing`: the call rings that agent now; `had`: that agent answered it."""
    return Policy({
        ("GET", "/health"): Open(),  # details only for admin/read tokens (serve.py)
        ("GET", "/metrics"): READ,
        ("GET", "/calls"): READ,
        ("GET", "/calls/{call_id}"): READ,
        ("GET", "/calls/{call_id}/context"): OfferedCall(offered),
        ("GET", "/queues"): READ,
        ("PUT", "/queues/{name}"): ADMIN,
        ("GET", "/agents"): READ,
        ("POST", "/agents/{name}/{action}"): OwnAgent(),
        # the desktop (README "Agent desktop and wallboard"): every token gets its own events
        ("GET", "/events"): Roles(frozenset({Role.admin, Role.read, Role.agent})),
        ("POST", "/calls/{call_id}/offer/{action}"): AgentOfCall(ringing),
        ("POST", "/calls/{call_id}/disposition"): AgentOfCall(had),
        ("GET", "/calls/{call_id}/recording"): READ,
    })
