"""Login (password + TOTP code) and logout.

The login form is protected from cross-site posting by a double-submit token: a random
value in a SameSite=Strict cookie that the form must repeat. Every attempt goes in the
hub audit log; the page gives one message for every kind of failure.
"""

from __future__ import annotations

import hmac
import secrets

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from agent.hub.accounts.console_accounts import session_key
from agent.hub.console.access_control import (
    COOKIE,
    MAX_FORM_BYTES,
    allow,
    context,
    set_session_cookie,
)

LOGIN_COOKIE = "lfr_login"
FAILED = "Login failed: check the username, password and code."


def _form_page(request: Request, error: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = context(request).templates.TemplateResponse(
        request,
        "login.html",
        {"login_token": token, "error": error, "session": None},
        status_code=status,
    )
    response.set_cookie(
        LOGIN_COOKIE, token, secure=True, httponly=True, samesite="strict", path="/login"
    )
    return response


async def login_form(request: Request) -> Response:
    return _form_page(request)


async def login(request: Request) -> Response:
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        return PlainTextResponse("request too large", status_code=413)
    form = await request.form(max_files=0, max_fields=10)
    fields = {k: form.get(k) for k in ("username", "password", "code", "login_token")}
    if not all(isinstance(v, str) for v in fields.values()):
        return _form_page(request, FAILED, 400)
    username, password, code, token = (str(fields[k]) for k in fields)
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), token.encode()):
        return PlainTextResponse("refused: the login form expired; reload it", status_code=403)
    ctx = context(request)
    username = username.strip()[:64]
    address = request.client.host if request.client else "unknown"
    if not ctx.login_limit.allow(address):
        ctx.audit.record("console.login_refused", username=username, reason="rate limited")
        return PlainTextResponse("too many login attempts: wait a minute", status_code=429)
    result = await anyio.to_thread.run_sync(ctx.accounts.login, username, password, code.strip())
    if result.session is None:
        ctx.audit.record("console.login_refused", username=username, reason=result.reason)
        return _form_page(request, FAILED, 401)
    ctx.audit.record("console.login", username=username, role=result.session.role)
    response = RedirectResponse("/alerts", status_code=303)
    set_session_cookie(response, result.session.token, int(ctx.accounts.max_s))
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@allow("operator", "supervisor", "auditor")
def logout(request: Request) -> Response:
    ctx = context(request)
    session = request.state.session
    ctx.accounts.logout(session.token)
    ctx.audit.record("console.logout", username=session.username)
    if ctx.signing.drop(session_key(session.token)) is not None:
        ctx.audit.record("signing.locked", username=session.username, reason="logged out")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


routes = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
