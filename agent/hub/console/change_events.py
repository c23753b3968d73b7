"""Server-sent events from the hub's change feed (``agent/hub/store/change_feed.py``):
a page subscribes to the kinds of change that alter what it shows and re-reads its
rows on each. Only the kind is sent, never a row's content; the feed reaches every
console whichever worker or process changed the database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import StreamingResponse

from agent.hub.console.access_control import context

KEEPALIVE_S = 15.0
#: Kinds every page takes: "re-read what is on screen" / "re-read everything".
ALWAYS = ("changed", "resync")


def change_stream(request: Request, kinds: tuple[str, ...]) -> StreamingResponse:
    ctx = context(request)
    feed = ctx.alerts.database.changes
    wanted = set(kinds) | set(ALWAYS)
    token = request.state.session.token

    async def session_ended() -> bool:
        # An open page does not keep its session alive: idle expiry, logout and a
        # disabled account end the stream too (the page then goes to the login).
        live = await anyio.to_thread.run_sync(lambda: ctx.accounts.session(token, touch=False))
        return live is None

    async def events() -> AsyncIterator[str]:
        with feed.subscribe() as sub:
            yield "retry: 2000\n\n"
            while True:
                change = await sub.next(timeout=KEEPALIVE_S)
                if await session_ended():
                    yield "event: logged-out\ndata: \n\n"
                    return
                if change is None:
                    yield ": keepalive\n\n"
                elif change.kind in wanted:
                    yield f"event: {change.kind}\ndata: \n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
