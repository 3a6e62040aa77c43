"""The desktop's HTTP routes: pages and their assets, the event stream, the agent's actions.

GET  /agent, /wallboard, /calls (a browser asking for HTML)   the pages: shells with no data;
                                                              every figure comes over the API
                                                              with the token the user signs in with
GET  /ui/<file>                                 their scripts and styles (package files)
GET  /events                                    server-sent events (`ivr.web.stream`)
POST /calls/<id>/offer/<accept|reject>          the agent the call rings now, from the page
POST /calls/<id>/disposition                    {"code", "notes"}: the agent who had the call
GET  /calls/<id>/recording                      the call's recording (WAV), read role

Who may call what: `ivr.access.policy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ivr.access.middleware import principal
from ivr.acd.engine import StateError
from ivr.store.db import Store
from ivr.web.desktop import Desktop
from ivr.web.stream import events_handler

PAGES = {"/agent": "agent.html", "/wallboard": "wallboard.html", "/calls": "calls.html"}
ASSET = re.compile(r"^[a-z][a-z0-9-]*\.(js|css|svg)$")
TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
NOTES_MAX = 2000
HEADERS = {
    # no inline script, nothing from elsewhere: a value that slipped into the DOM as markup
    # still could not run
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; media-src 'self' blob:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _error(cls: type[web.HTTPError], message: str) -> web.HTTPError:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


def _static(name: str) -> web.Response:
    try:
        body = resources.files("ivr.web").joinpath("static", name).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise web.HTTPNotFound() from None
    return web.Response(body=body, content_type=TYPES[name.rpartition(".")[2]],
                        charset="utf-8", headers=HEADERS)


def _wants_page(request: web.Request) -> str | None:
    if request.method not in ("GET", "HEAD"):
        return None
    page = PAGES.get(request.path)
    if page is None:
        return None
    if request.path == "/calls":  # also the CDR API: the page only for a browser without a token
        accept = request.headers.get("Accept", "")
        if "text/html" not in accept or "Authorization" in request.headers:
            return None
    return page


def pages() -> Middleware:
    """Serves the pages and assets before the token check: they hold no data."""
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        page = _wants_page(request)
        if page is not None:
            return _static(page)
        if request.method in ("GET", "HEAD") and request.path.startswith("/ui/"):
            name = request.path[4:]
            if not ASSET.match(name):
                raise web.HTTPNotFound()
            return _static(name)
        return await handler(request)

    return middleware


def install(app: web.Application, desktop: Desktop, store: Store) -> None:
    """The routes, the wallboard's refresher (lives as long as the app) and, at shutdown, the
    end of every page's stream (they show disconnected, then reconnect to the next server)."""
    app.add_routes(routes(desktop, store))

    async def refresher(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(desktop.run())
        yield
        desktop.hub.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def close_streams(_: web.Application) -> None:
        desktop.hub.close()

    app.cleanup_ctx.append(refresher)
    app.on_shutdown.append(close_streams)


def routes(desktop: Desktop, store: Store) -> list[web.RouteDef]:
    def acd() -> Any:
        svc = desktop.acd()
        if svc is None:
            raise _error(web.HTTPServiceUnavailable, "the ACD is not running")
        return svc

    async def offer(request: web.Request) -> web.Response:
        who = principal(request)
        assert who is not None and who.agent is not None  # the policy: the ringing agent
        call_id, action = request.match_info["call_id"], request.match_info["action"]
        svc = acd()
        try:
            if action == "accept":
                svc.accept(call_id, who.agent)
            elif action == "reject":
                svc.reject(call_id, who.agent)
            else:
                raise _error(web.HTTPNotFound, "unknown action; accept or reject")
        except StateError as exc:
            raise _error(web.HTTPConflict, str(exc)) from None
        desktop.hub.publish(action + "ed", {"call_id": call_id}, who.agent)
        return web.json_response({"call_id": call_id, "agent": who.agent, "action": action})

    async def disposition(request: web.Request) -> web.Response:
        who = principal(request)
        assert who is not None and who.agent is not None  # the policy: the agent who had it
        try:
            body: Any = await request.json()
        except ValueError:
            raise _error(web.HTTPBadRequest, "expected JSON: {\"code\": ..., \"notes\": ...}") \
                from None
        if not isinstance(body, dict):
            raise _error(web.HTTPBadRequest, "expected a JSON object")
        code, notes = body.get("code"), body.get("notes") or ""
        codes = desktop.settings.dispositions
        if code not in codes:
            raise _error(web.HTTPBadRequest, f"code must be one of {', '.join(codes)}")
        if not isinstance(notes, str) or len(notes) > NOTES_MAX:
            raise _error(web.HTTPBadRequest, f"notes: text of at most {NOTES_MAX} characters")
        call_id = request.match_info["call_id"]
        saved = {"code": code, "notes": notes, "agent": who.agent, "at": time.time()}
        store.set_disposition(call_id, saved)
        return web.json_response({"call_id": call_id, **saved})

    async def recording(request: web.Request) -> web.StreamResponse:
        cdr = store.call(request.match_info["call_id"])
        path = Path(str(cdr.get("recording"))) if cdr and cdr.get("recording") else None
        if path is None or not path.is_file():
            raise _error(web.HTTPNotFound, "no recording for this call")
        return web.FileResponse(path, headers={"Content-Type": "audio/wav",
                                               "Cache-Control": "no-store"})

    return [web.get("/events", events_handler(desktop)),
            web.post("/calls/{call_id}/offer/{action}", offer),
            web.post("/calls/{call_id}/disposition", disposition),
            web.get("/calls/{call_id}/recording", recording)]
