"""Signing keys unlocked for one console session, held in this process's memory only.

A console user unlocks the operator key of their own name (``operators/NAME-key.pem``
in the hub key folder) with its passphrase. The resulting ``ActivationIssuer`` is kept
here under the session's key (the SHA-256 of its token, as the database stores it) and
is never written to the database or to disk. It is dropped when the session logs out,
when the session ends (idle or shift limit), when the user is locked out or disabled
(``prune``, called by the renewal keeper on every tick and before any signing), and
when the service stops: the process's memory goes with it, so after a restart every
user unlocks again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from agent.errors import LfrError
from agent.hub.accounts.console_accounts import Session, session_key
from agent.hub.keys.activation_issuer import ActivationIssuer
from agent.hub.keys.operator_keys import HubKeyStore
from agent.trust.key_certificates import CertificateError

MAX_PASSPHRASE = 1024


class UnlockRefused(LfrError):
    """The key could not be unlocked; the message is shown to the user as is."""

    exit_code = 2


@dataclass(frozen=True)
class UnlockedKey:
    session_key: str
    username: str
    issuer: ActivationIssuer
    unlocked_at: float

    @property
    def role(self) -> str:
        """The role the key's certificate gives (what it may sign), not the console role."""
        return self.issuer.role


class SigningSessions:
    def __init__(self, keys: HubKeyStore | None, clock: Callable[[], float] = time.time) -> None:
        #: None: the hub config names no key folder, so the console signs nothing.
        self.keys = keys
        self.clock = clock
        self._lock = threading.Lock()
        self._unlocked: dict[str, UnlockedKey] = {}

    def unlock(self, session: Session, passphrase: str) -> UnlockedKey:
        """Unlock the operator key named like the session's user; raise UnlockRefused."""
        if self.keys is None:
            raise UnlockRefused(
                "signing from the console is off: the hub configuration names no [keys] dir"
            )
        name = session.username
        if self.keys.operator_key_state(name) == "missing":
            raise UnlockRefused(
                f"there is no operator signing key for {name}: ask a key custodian to add "
                f"one (lfr-hub operator add --name {name})"
            )
        if len(passphrase) > MAX_PASSPHRASE:
            raise UnlockRefused("the passphrase is too long")
        try:
            issuer = ActivationIssuer(self.keys, name, passphrase)
        except (LfrError, CertificateError, ValueError, OSError) as exc:
            raise UnlockRefused(f"the key of {name} could not be unlocked: {exc}") from exc
        unlocked = UnlockedKey(session_key(session.token), name, issuer, self.clock())
        with self._lock:
            self._unlocked[unlocked.session_key] = unlocked
        return unlocked

    def of_session(self, key: str) -> UnlockedKey | None:
        with self._lock:
            return self._unlocked.get(key)

    def drop(self, key: str) -> UnlockedKey | None:
        """Forget the session's key (logout, or the user locked it); the dropped one."""
        with self._lock:
            return self._unlocked.pop(key, None)

    def prune(self, live: Collection[str]) -> list[UnlockedKey]:
        """Drop the key of every session not in ``live`` (``ConsoleAccounts.live_session_keys``)."""
        with self._lock:
            gone = [u for k, u in self._unlocked.items() if k not in live]
            for u in gone:
                del self._unlocked[u.session_key]
        return gone

    def unlocked_keys(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._unlocked)

    def clear(self) -> None:
        with self._lock:
            self._unlocked.clear()
