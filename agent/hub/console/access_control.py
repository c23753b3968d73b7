"""Who may call a console route: every endpoint is wrapped with ``allow(roles)``.

``allow`` finds the session from its cookie (a browser without one is sent to the
login page; a script gets 401), refuses a role not listed (403), and for a POST
refuses a form whose ``csrf`` field is not the session's token (403). The cookie is
Secure, HttpOnly and SameSite=Strict. The wrapped endpoint finds the session in
``request.state.session``. ``ROLES_OF`` records each endpoint's roles so a test can
check that no route was left open.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, cast

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from agent.hub.accounts.console_accounts import Session, csrf_matches
from agent.hub.console.console_context import ConsoleContext

COOKIE = "lfr_session"
MAX_FORM_BYTES = 64 * 1024
ROLES_OF: dict[Callable[..., Any], frozenset[str]] = {}

Endpoint = Callable[[Request], Response]
AsyncEndpoint = Callable[[Request], Awaitable[Response]]


def context(request: Request) -> ConsoleContext:
    return cast(ConsoleContext, request.app.state.context)


def set_session_cookie(response: Response, token: str, max_age_s: int) -> None:
    response.set_cookie(
        COOKIE, token, max_age=max_age_s, secure=True, httponly=True, samesite="strict", path="/"
    )


def _refusal(request: Request, session: Session | None, roles: frozenset[str]) -> Response | None:
    if session is None:
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/login", status_code=303)
        return PlainTextResponse("not logged in", status_code=401)
    if session.role not in roles:
        return PlainTextResponse(f"refused: the {session.role} role may not do this", 403)
    return None


async def _csrf_refusal(request: Request, session: Session) -> Response | None:
    if request.method != "POST":
        return None
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        return PlainTextResponse("request too large", status_code=413)
    form = await request.form(max_files=0, max_fields=20)
    given = form.get("csrf")
    if not isinstance(given, str) or not csrf_matches(session, given):
        return PlainTextResponse("refused: missing or wrong CSRF token", status_code=403)
    return None


def allow(*roles: str) -> Callable[[Callable[[Request], Any]], AsyncEndpoint]:
    """Wrap an endpoint (sync, run in a thread, or async) so only ``roles`` reach it."""
    allowed = frozenset(roles)

    def wrap(endpoint: Callable[[Request], Any]) -> AsyncEndpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            token = request.cookies.get(COOKIE, "")
            session = await anyio.to_thread.run_sync(context(request).accounts.session, token)
            refusal = _refusal(request, session, allowed)
            if refusal is None and session is not None:
                refusal = await _csrf_refusal(request, session)
            if refusal is not None:
                return refusal
            request.state.session = session
            if inspect.iscoroutinefunction(endpoint):
                return cast(Response, await endpoint(request))
            return cast(Response, await anyio.to_thread.run_sync(endpoint, request))

        ROLES_OF[guarded] = allowed
        return guarded

    return wrap
