"""'Unlock my signing key': an operator or supervisor unlocks the operator key of their
own user name with its passphrase, for this console session only
(``agent/hub/console/signing_sessions.py``), and can lock it again. Unlocking, a refusal
and locking are recorded in the hub audit log (``signing.unlocked``,
``signing.unlock_refused``, ``signing.locked``); the passphrase never is."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from agent.hub.accounts.console_accounts import session_key
from agent.hub.console.access_control import allow, context
from agent.hub.console.signing_sessions import UnlockRefused

SIGNERS = ("operator", "supervisor")


def _page(request: Request, error: str = "", status: int = 200) -> Response:
    ctx = context(request)
    session = request.state.session
    return ctx.templates.TemplateResponse(
        request,
        "signing.html",
        {
            "session": session,
            "unlocked": ctx.signing.of_session(session_key(session.token)),
            "enabled": ctx.signing.keys is not None,
            "error": error,
        },
        status_code=status,
    )


@allow(*SIGNERS)
def signing(request: Request) -> Response:
    return _page(request)


@allow(*SIGNERS)
async def unlock(request: Request) -> Response:
    form = await request.form()  # already read (and bounded) by the CSRF check
    passphrase = form.get("passphrase", "")
    ctx = context(request)
    session = request.state.session
    try:
        unlocked = ctx.signing.unlock(session, passphrase if isinstance(passphrase, str) else "")
    except UnlockRefused as exc:
        ctx.audit.record("signing.unlock_refused", username=session.username, reason=str(exc)[:200])
        return _page(request, str(exc), 400)
    ctx.audit.record("signing.unlocked", username=session.username, key_role=unlocked.role)
    return RedirectResponse("/signing", status_code=303)


@allow(*SIGNERS)
def lock(request: Request) -> Response:
    ctx = context(request)
    session = request.state.session
    if ctx.signing.drop(session_key(session.token)) is not None:
        ctx.audit.record("signing.locked", username=session.username, reason="locked by user")
    return RedirectResponse("/signing", status_code=303)


routes = [
    Route("/signing", signing, methods=["GET"]),
    Route("/signing/unlock", unlock, methods=["POST"]),
    Route("/signing/lock", lock, methods=["POST"]),
]
