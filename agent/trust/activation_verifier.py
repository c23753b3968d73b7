"""Device-side verification of activations, renewals and stops: ordered, named steps.

Each step either passes or raises its own ``ActivationRejected`` subclass whose
``step`` names it; nothing later runs after a failure, and nothing is persisted
unless every step passed, except that a newer root-signed revocation list is
adopted even when the document carrying it is refused because of it. The order (docs/protocol.md, "Verification order"):

 1 envelope      the bytes are one canonical signed-document envelope of a control type
 2 certificate   the embedded signer certificate verifies against the provisioned root
 3 signature     the envelope signature verifies under the certified key
 4 fields        the signed body has exactly the fields of its kind, well formed
 5 role          the certificate's role may sign this kind of document
 6 validity      the certificate is within its validity period
 7 revocation    the embedded revocation list verifies; the signer is not revoked (nor,
                 for a renewal, the live activation's signer)
 8 device        the document names this device
 9 clock         (activation) the wall clock is synchronised, unless allowed otherwise
10 time-window   (activation) within not-before/not-after, not longer than the cap;
                 (renewal/stop) freshly issued
11 live          (renewal) it names the live activation's deployment, still in time;
                 a stop needs nothing live (``Verified.names_live`` says if it names it)
12 sequence      greater than the last accepted sequence
13 watchlist     (activation) its watchlist hash (a plates activation: its hotlist hash)
                 equals the loaded list's
14 threshold     (activation) a cosine threshold not below matching.threshold_floor; an
                 S-norm one only where matching.score allows S-norm (plates: a read
                 confidence not below plates.confidence_floor)
 → commit        a newer revocation list, then the sequence, each persisted atomically
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from agent.config import AgentConfig
from agent.errors import CheckFailed
from agent.trust.activation_token import (
    ANALYTIC_PLATES,
    KIND_BY_TYPE,
    Activation,
    Renewal,
    Stop,
    TokenFieldError,
    parse_body,
)
from agent.trust.hub_trust_store import HubTrustStore
from agent.trust.key_certificates import (
    ROLE_OPERATOR,
    ROLE_SUPERVISOR,
    CertificateError,
    KeyCertificate,
    open_revocation_list,
)
from agent.trust.sequence_store import SequenceStore, SequenceStoreError
from agent.trust.signed_document import (
    DocumentError,
    UntrustedJsonError,
    canonical_json,
    loads_untrusted,
    open_document,
    parse_envelope,
)
from agent.trust.system_clock import Clock, ClockSync, SystemClock

# Which certificate roles may sign which control document.
ROLE_PERMISSIONS = {
    "activation": frozenset({ROLE_SUPERVISOR}),
    "renewal": frozenset({ROLE_SUPERVISOR, ROLE_OPERATOR}),
    "stop": frozenset({ROLE_SUPERVISOR, ROLE_OPERATOR}),
}


class ActivationRejected(CheckFailed):
    """A control document failed verification at ``step``."""

    step = "unknown"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"{self.step}: {detail}")


class EnvelopeInvalid(ActivationRejected):
    step = "envelope"


class CertificateInvalid(ActivationRejected):
    step = "certificate"


class SignatureInvalid(ActivationRejected):
    step = "signature"


class FieldsInvalid(ActivationRejected):
    step = "fields"


class RoleNotPermitted(ActivationRejected):
    step = "role"


class CertificateNotValidNow(ActivationRejected):
    step = "validity"


class SignerRevoked(ActivationRejected):
    step = "revocation"


class WrongDevice(ActivationRejected):
    step = "device"


class ClockNotSynchronised(ActivationRejected):
    step = "clock"


class OutsideTimeWindow(ActivationRejected):
    step = "time-window"


class NotLive(ActivationRejected):
    step = "live"


class SequenceNotNewer(ActivationRejected):
    step = "sequence"


class WatchlistMismatch(ActivationRejected):
    step = "watchlist"


class ThresholdBelowFloor(ActivationRejected):
    step = "threshold"


class ScoreKindRefused(ThresholdBelowFloor):
    """Also step 14: an S-norm threshold on a device set to match with cosine only."""


@dataclass(frozen=True)
class LiveActivation:
    """An accepted activation as the capture gate holds it.

    ``end_mono`` bounds the window on the monotonic clock (receipt time plus
    what was left of the window then) so a wall-clock jump back cannot extend
    it; ``not_after`` bounds it on the wall clock so a jump forward ends it.
    ``start_mono`` is where the window starts by this device's clock: an
    activation is accepted up to the clock tolerance before ``not_before``, but
    the camera waits until then. ``signer_key_id`` lets a later revocation of
    the signer end the activation (``ActivationVerifier.signer_revoked``).
    """

    activation: Activation
    signer: str
    signer_key_id: str
    received_mono: float
    start_mono: float
    end_mono: float
    lease_until_mono: float

    @property
    def deployment_id(self) -> str:
        return self.activation.deployment_id

    @property
    def not_after(self) -> int:
        return self.activation.not_after

    def renewed(self, lease_until_mono: float) -> LiveActivation:
        return replace(self, lease_until_mono=min(lease_until_mono, self.end_mono))


@dataclass(frozen=True)
class Verified:
    """The outcome of a successful verification.

    ``names_live`` is True only for a renewal or stop that names the live
    activation's deployment: a stop is honoured with nothing live (so the named
    deployment's watchlist can be wiped) and must then not close anything else.
    """

    document: Activation | Renewal | Stop
    signer: KeyCertificate
    steps: list[str] = field(default_factory=list)
    live: LiveActivation | None = None  # the new live state (activation, renewal)
    names_live: bool = False


def peek_deployment(data: bytes) -> str | None:
    """The deployment a control document names, read *before* verification, only to look
    up which watchlist to check it against (``verify`` then checks everything)."""
    try:
        _, body, _ = parse_envelope(data)
        value = loads_untrusted(body).get("deployment_id")
    except (DocumentError, UntrustedJsonError, AttributeError):
        return None  # whatever this is, verify refuses it and says why
    return value if isinstance(value, str) else None


def peek_analytic(data: bytes) -> str:
    """The analytic a control document names ("faces" unless it says "plates"), read
    *before* verification, only to look up which list to check it against."""
    try:
        _, body, _ = parse_envelope(data)
        value = loads_untrusted(body).get("analytic")
    except (DocumentError, UntrustedJsonError, AttributeError):
        return "faces"
    return value if value == ANALYTIC_PLATES else "faces"


def _require_canonical(data: bytes) -> None:
    """Refuse any envelope that is not byte-for-byte the canonical encoding of itself.

    Base64 has spare bits in its last character and JSON has many spellings of
    one value; without this, some flipped bytes would leave a valid document.
    """
    env = loads_untrusted(data)  # parse_envelope has already accepted it
    if canonical_json(env) != data:
        raise EnvelopeInvalid("envelope is not in canonical form")
    texts = [env["payload"]] + [s["sig"] for s in env["signatures"]]
    for text in texts:
        if base64.b64encode(base64.b64decode(text)).decode("ascii") != text:
            raise EnvelopeInvalid("base64 is not in canonical form")


class ActivationVerifier:
    def __init__(
        self,
        device_id: str,
        trust: HubTrustStore,
        sequences: SequenceStore,
        clock: Clock,
        *,
        max_duration_s: float,
        tolerance_s: float,
        require_clock_sync: bool,
        threshold_floor: float,
        plate_confidence_floor: float = 0.5,
        score: str = "snorm",
    ) -> None:
        self.device_id = device_id
        self.trust = trust
        self.sequences = sequences
        self.clock = clock
        self.max_duration_s = max_duration_s
        self.tolerance_s = tolerance_s
        self.require_clock_sync = require_clock_sync
        self.threshold_floor = threshold_floor
        self.plate_confidence_floor = plate_confidence_floor
        self.score = score  # matching.score: "cosine" refuses S-norm thresholds

    @classmethod
    def from_config(
        cls, cfg: AgentConfig, clock: Clock | None = None, read_only: bool = False
    ) -> ActivationVerifier:
        return cls(
            cfg.device.id,
            HubTrustStore.load(cfg.paths.keys_dir),
            SequenceStore.in_state_dir(cfg.paths.state_dir, read_only=read_only),
            clock or SystemClock(),
            max_duration_s=cfg.activation.max_duration_h * 3600.0,
            tolerance_s=cfg.activation.clock_tolerance_s,
            require_clock_sync=cfg.activation.require_clock_sync,
            threshold_floor=cfg.matching.threshold_floor,
            plate_confidence_floor=cfg.plates.confidence_floor,
            score=cfg.matching.score,
        )

    def verify(
        self,
        data: bytes,
        *,
        live: LiveActivation | None = None,
        loaded_watchlist_sha256: str | None = None,
        check_watchlist: bool = True,
        check_live: bool = True,
        commit: bool = True,
        before_commit: Callable[[Activation | Renewal | Stop], None] | None = None,
    ) -> Verified:
        """Run every step in order; raise the first failure; persist only on success.

        ``before_commit`` runs once every check passed and before anything is persisted:
        what must already be done when the document counts as accepted (a stop's wipe:
        a power cut between the two must not leave the sequence spent and the watchlist
        kept)."""
        # A list a technician installed since the last document counts from now on.
        self.trust.refresh_revocations()
        steps: list[str] = []
        now, mono = self.clock.wall(), self.clock.mono()
        tol = self.tolerance_s

        # 1 envelope
        try:
            ptype, body_bytes, _ = parse_envelope(data)
            _require_canonical(data)
        except DocumentError as exc:
            raise EnvelopeInvalid(str(exc)) from exc
        kind = KIND_BY_TYPE.get(ptype)
        if kind is None:
            raise EnvelopeInvalid(f"payload type {ptype[:80]!r} is not a control document")
        try:
            # Only the certificate is read before the signature check; it is
            # verified on its own against the root in the next step.
            peek = loads_untrusted(body_bytes)
            cert_b64 = peek["signer_certificate"]
            cert_bytes = base64.b64decode(cert_b64, validate=True)
        except (UntrustedJsonError, ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise EnvelopeInvalid("body has no readable signer_certificate") from exc
        steps.append("envelope")

        # 2 certificate
        try:
            cert = self.trust.open_certificate(cert_bytes)
        except CertificateError as exc:
            raise CertificateInvalid(str(exc)) from exc
        steps.append("certificate")

        # 3 signature
        if cert.key_type != "ed25519":
            raise SignatureInvalid(f"certified key of {cert.subject} cannot sign")
        signing_key = cert.signing_key()
        try:
            doc = open_document(
                data, ptype, lambda kid: signing_key if kid == cert.key_id else None
            )
        except DocumentError as exc:
            raise SignatureInvalid(str(exc)) from exc
        steps.append("signature")

        # 4 fields
        try:
            token = parse_body(kind, doc.body)
        except TokenFieldError as exc:
            raise FieldsInvalid(str(exc)) from exc
        steps.append("fields")

        # 5 role
        if cert.role not in ROLE_PERMISSIONS[kind]:
            raise RoleNotPermitted(f"a {cert.role} key ({cert.subject}) may not sign a {kind}")
        steps.append("role")

        # 6 validity
        if not cert.valid_at(now, tol):
            raise CertificateNotValidNow(
                f"certificate of {cert.subject} is valid {cert.not_before}–{cert.not_after},"
                f" now is {int(now)}"
            )
        steps.append("validity")

        # 7 revocation
        adopt: bytes | None = None
        try:
            rl = open_revocation_list(base64.b64decode(token.revocations), self.trust.root)
        except (CertificateError, binascii.Error) as exc:
            raise SignerRevoked(f"embedded revocation list invalid ({exc})") from exc
        revoked = set(rl.revoked_key_ids)
        if rl.version > self.trust.revocation_version:
            adopt = rl.document
        else:
            revoked = set()
        if self.trust.is_revoked(cert.key_id) or cert.key_id in revoked:
            self._adopt_before_refusing(adopt, commit)
            raise SignerRevoked(f"key of {cert.subject} ({cert.key_id[:16]}) is revoked")
        if (
            isinstance(token, Renewal)
            and live is not None
            and (self.trust.is_revoked(live.signer_key_id) or live.signer_key_id in revoked)
        ):
            self._adopt_before_refusing(adopt, commit)
            raise SignerRevoked(
                f"the live activation's signer {live.signer} ({live.signer_key_id[:16]})"
                " is revoked; it cannot be renewed"
            )
        steps.append("revocation")

        # 8 device
        if token.device_id != self.device_id:
            raise WrongDevice(f"document is for {token.device_id!r}, this is {self.device_id!r}")
        steps.append("device")

        if isinstance(token, Activation):
            self._check_activation_time(token, now)
            steps += ["clock", "time-window"]
        elif isinstance(token, Renewal):
            if token.issued_at > now + tol:
                raise OutsideTimeWindow(f"{kind} issued in the future ({token.issued_at})")
            if token.issued_at < now - tol:
                raise OutsideTimeWindow(f"{kind} is stale (issued at {token.issued_at})")
            steps.append("time-window")
            if check_live:
                self._check_live(token, live, now, mono)
                steps.append("live")
        # A stop has no time check and needs nothing live: it only ever closes the
        # camera, the sequence refuses a replayed one, and it must be obeyed by a camera
        # whose clock drifted while live, that was offline while the stop waited at the
        # broker, or whose deployment already lapsed (so its watchlist can be wiped).

        # 12 sequence
        try:
            last = self.sequences.last()
        except SequenceStoreError as exc:
            raise SequenceNotNewer(str(exc)) from exc
        if token.sequence <= last:
            raise SequenceNotNewer(
                f"sequence {token.sequence} is not greater than the last accepted {last}"
            )
        steps.append("sequence")

        new_live: LiveActivation | None = None
        if isinstance(token, Activation):
            # 13 watchlist
            if check_watchlist:
                what = token.list_kind
                if loaded_watchlist_sha256 is None:
                    raise WatchlistMismatch(f"no {what} is loaded")
                if loaded_watchlist_sha256 != token.list_sha256:
                    raise WatchlistMismatch(
                        f"activation names {what} {token.list_sha256[:16]}…, loaded is"
                        f" {loaded_watchlist_sha256[:16]}…"
                    )
                steps.append("watchlist")
            # 14 threshold
            if token.analytic == ANALYTIC_PLATES:
                if token.threshold < self.plate_confidence_floor:
                    raise ThresholdBelowFloor(
                        f"threshold {token.threshold} is below the floor "
                        f"{self.plate_confidence_floor} (plates.confidence_floor)"
                    )
            elif token.score == "snorm" and self.score == "cosine":
                raise ScoreKindRefused(
                    f"threshold {token.threshold} is an S-norm score and this device matches"
                    " with cosine only (matching.score); issue a cosine threshold"
                )
            elif token.score == "cosine" and token.threshold < self.threshold_floor:
                raise ThresholdBelowFloor(
                    f"threshold {token.threshold} is below the floor {self.threshold_floor}"
                )
            steps.append("threshold")
            start_mono = mono + max(0.0, token.not_before - now)
            end_mono = mono + max(0.0, token.not_after - now)
            new_live = LiveActivation(
                activation=token,
                signer=cert.subject,
                signer_key_id=cert.key_id,
                received_mono=mono,
                start_mono=start_mono,
                end_mono=end_mono,
                lease_until_mono=min(mono + token.lease_s, end_mono),
            )
        elif isinstance(token, Renewal) and live is not None:
            new_live = live.renewed(mono + token.lease_s)

        if before_commit is not None:
            before_commit(token)
        if commit:
            # The revocation list first: a power cut between the two writes then leaves a
            # newer list adopted and the document not accepted (it may come again), never
            # the document accepted with the list it carried forgotten.
            if adopt is not None:
                self.trust.offer_revocations(adopt, persist=True)
            try:
                self.sequences.advance(token.sequence)
            except SequenceStoreError as exc:
                raise SequenceNotNewer(str(exc)) from exc
            steps.append("commit")
        names_live = (
            not isinstance(token, Activation)
            and live is not None
            and token.deployment_id == live.deployment_id
        )
        return Verified(token, cert, steps, new_live, names_live)

    def signer_revoked(self, live: LiveActivation) -> bool:
        """Whether the adopted revocation list revokes the signer of ``live``.

        A document from another operator can carry a newer list; the caller asks
        this after every control document and stops the gate when it is True.
        """
        return self.trust.is_revoked(live.signer_key_id)

    def _adopt_before_refusing(self, adopt: bytes | None, commit: bool) -> None:
        # The list verified against the root; refusing the document that carried it
        # must not make the device forget the revocation.
        if adopt is not None and commit:
            self.trust.offer_revocations(adopt, persist=True)

    def _check_activation_time(self, token: Activation, now: float) -> None:
        tol = self.tolerance_s
        # 9 clock
        state = self.clock.sync_state()
        if self.require_clock_sync and state is not ClockSync.SYNCHRONISED:
            raise ClockNotSynchronised(
                f"system clock is {state.value}; set activation.require_clock_sync = false"
                " only where no time source exists"
            )
        # 10 time-window
        length = token.not_after - token.not_before
        if length > self.max_duration_s:
            raise OutsideTimeWindow(
                f"window of {length} s exceeds the cap of {int(self.max_duration_s)} s"
            )
        if token.lease_s > length:
            raise OutsideTimeWindow(f"lease of {token.lease_s} s is longer than the window")
        if token.issued_at > now + tol:
            raise OutsideTimeWindow(f"issued in the future ({token.issued_at})")
        if now < token.not_before - tol:
            raise OutsideTimeWindow(f"not yet valid (from {token.not_before}, now {int(now)})")
        if now >= token.not_after:
            raise OutsideTimeWindow(f"expired (at {token.not_after}, now {int(now)})")

    def _check_live(
        self, token: Renewal, live: LiveActivation | None, now: float, mono: float
    ) -> None:
        # 11 live
        if live is None:
            raise NotLive("no live activation to renew")
        if token.deployment_id != live.deployment_id:
            raise NotLive(
                f"names deployment {token.deployment_id!r}, live is {live.deployment_id!r}"
            )
        if now >= live.not_after or mono >= live.end_mono:
            raise NotLive("the live activation has ended")
        if mono >= live.lease_until_mono:
            raise NotLive("the lease has lapsed; a new activation is needed")
