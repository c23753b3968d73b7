"""Retrying a database step that failed because the connection did (a PostgreSQL restart
or fail-over), so a hub worker rides out a short outage instead of dropping its work.

Only connection-level failures are retried (``OperationalError``, or any driver error
SQLAlchemy marks as having invalidated the connection); the step is a whole transaction,
so a retry never sees half of an earlier attempt. Anything else is raised at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from agent.errors import LfrError
from agent.hub.store.database_engine import describe_error

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How long a step keeps trying before it gives up (a PostgreSQL restart takes seconds).
RETRY_BUDGET_S = 30.0
_FIRST_PAUSE_S = 0.1
_LONGEST_PAUSE_S = 2.0


class StoreUnavailable(LfrError):
    """The database stayed unreachable for the whole retry budget."""


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def retry_transient(
    step: Callable[[], T],
    *,
    what: str,
    budget_s: float = RETRY_BUDGET_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``step()``, again after a connection failure until ``budget_s`` has passed."""
    deadline = clock() + budget_s
    pause = _FIRST_PAUSE_S
    attempt = 1
    while True:
        try:
            return step()
        except DBAPIError as exc:
            if not is_transient(exc):
                raise
            if clock() + pause > deadline:
                raise StoreUnavailable(
                    f"{what}: database unreachable for {budget_s:g} s ({describe_error(exc)})"
                ) from exc
            log.warning(
                "%s: database connection failed (attempt %d: %s); retrying",
                what,
                attempt,
                describe_error(exc),
            )
        sleep(pause)
        pause = min(pause * 2, _LONGEST_PAUSE_S)
        attempt += 1
