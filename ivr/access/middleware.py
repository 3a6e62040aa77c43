"""The aiohttp middleware that puts the policy in front of every route.

401 (with `WWW-Authenticate: Bearer`) when a token is missing or not one we know, 403 when the
token is valid but its role or scope does not cover the route. Handlers that show more to some
principals (e.g. /health) read `principal(request)`.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ivr.access.policy import Policy
from ivr.access.tokens import Principal, TokenSet

log = logging.getLogger("ivr.access")

PRINCIPAL = web.RequestKey("principal", Principal)
REALM = 'Bearer realm="ivr"'


def principal(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)


def _unauthorized(message: str, error: str | None) -> web.HTTPUnauthorized:
    challenge = REALM + (f', error="{error}"' if error else "")
    return web.HTTPUnauthorized(text=json.dumps({"error": message}), content_type="application/json",
                                headers={"WWW-Authenticate": challenge})


def _bearer(request: web.Request) -> str | None:
    """The presented token; None when there is no Authorization header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("use Authorization: Bearer <token>", "invalid_request")
    return token.strip()


def authenticate(tokens: TokenSet, policy: Policy) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        rule = policy.rule_for(request)
        token = _bearer(request)
        who: Principal | None = None
        if token is not None:
            who = tokens.verify(token)
            if who is None:
                log.warning("API: invalid token for %s %s from %s", request.method, request.path,
                            request.remote)
                raise _unauthorized("invalid token", "invalid_token")
        elif not rule.open:
            raise _unauthorized("this API needs a bearer token (README: Privacy and access)", None)
        if not rule.allows(who, request):
            raise web.HTTPForbidden(text=json.dumps({"error": f"a {who} token may not "
                                                     f"{request.method} {request.path}"}),
                                    content_type="application/json")
        if who is not None:
            request[PRINCIPAL] = who
        return await handler(request)

    return middleware
