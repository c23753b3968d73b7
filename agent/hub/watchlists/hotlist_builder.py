"""Building a plates deployment's hotlist at the hub: read the CSV, check, hash, sign, seal.

The CSV has a header row and the columns ``plate,reason,category,expiry``: the plate as
written (spaces and case do not matter), why it is listed, a category (e.g. ``stolen``,
``wanted``), and when the listing lapses (ISO 8601 date or date and time, UTC unless it
says otherwise; empty: the bundle's own expiry). Each row is checked on its own and a bad
row is listed with its reason, never half-read: a plate that is not a UK format, one whose
listing has already lapsed, a second row for the same plate (normal form), an empty reason
or category. With ``--strict`` any bad row means nothing is written.

Two files are written, as for a watchlist:

- ``OUT``: the sealed hotlist (``agent.matching.hotlist_bundle``): keyed hashes, opaque
  references and expiries only, no plate, reason or category.
- ``OUT.hub-map.json`` (mode 0600, stays at the hub): reference → plate, reason, category
  and expiry, and the rejected rows. It turns a plate alert's entry reference back into
  the listing for the operator who reviews it.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.errors import CheckFailed, UsageError
from agent.hub.watchlists.watchlist_builder import map_path_for
from agent.matching.hotlist_bundle import (
    MAX_ENTRIES,
    HotlistContent,
    build_hotlist_bundle,
    new_entry_ref,
    new_hotlist_key,
    plate_digest,
)
from agent.matching.watchlist_bundle import SealedBundle
from agent.plates.uk_plate_format import display, normalise, plate_format
from agent.trust.key_files import write_atomic

COLUMNS = ("plate", "reason", "category", "expiry")
MAX_CSV_BYTES = 64 * 1024 * 1024
MAX_TEXT = 200


class HotlistBuildError(CheckFailed):
    """The build ran but produced no usable hotlist (no good row, or --strict)."""


@dataclass(frozen=True)
class HotlistRow:
    line: int
    plate: str
    reason: str
    category: str
    expires_at: float | None


@dataclass(frozen=True)
class RejectedRow:
    line: int
    problem: str


@dataclass(frozen=True)
class HotlistBuildResult:
    bundle: SealedBundle
    out: Path
    map_path: Path
    entries: int
    rejected: list[RejectedRow]
    created_at: float
    expires_at: float


def _expiry(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expiry {text[:40]!r} is not an ISO 8601 date or time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _text(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"{what} is empty")
    if len(value) > MAX_TEXT or not value.isprintable():
        raise ValueError(f"{what} must be printable and at most {MAX_TEXT} characters")
    return value


def read_hotlist_csv(path: Path, now: float) -> tuple[list[HotlistRow], list[RejectedRow]]:
    """Good rows and rejected rows (line number and reason) of a hotlist CSV."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"hotlist: cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_CSV_BYTES:
        raise UsageError(f"hotlist: {path} is larger than {MAX_CSV_BYTES // 2**20} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"hotlist: {path} is not UTF-8 (byte {exc.start})") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise UsageError(f"hotlist: {path} is empty") from None
    except csv.Error as exc:
        raise UsageError(f"hotlist: {path} line 1: {exc}") from exc
    if tuple(header) != COLUMNS:
        raise UsageError(f"hotlist: {path} must start with the header {','.join(COLUMNS)}")
    good: list[HotlistRow] = []
    bad: list[RejectedRow] = []
    seen: dict[str, int] = {}
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise UsageError(f"hotlist: {path} line {reader.line_num}: {exc}") from exc
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        try:
            if len(fields) != len(COLUMNS):
                raise ValueError(f"{len(fields)} columns, expected {len(COLUMNS)}")
            plate = normalise(fields[0])
            if plate_format(plate) is None:
                raise ValueError(f"plate {fields[0].strip()[:20]!r} is not a UK plate format")
            if plate in seen:
                raise ValueError(f"plate {display(plate)} is already listed on line {seen[plate]}")
            reason = _text(fields[1], "reason")
            category = _text(fields[2], "category")
            expires = _expiry(fields[3])
            if expires is not None and expires <= now:
                raise ValueError(f"the listing of {display(plate)} has already lapsed")
        except ValueError as exc:
            bad.append(RejectedRow(line, str(exc)))
            continue
        seen[plate] = line
        good.append(HotlistRow(line, plate, reason, category, expires))
    return good, bad


def build_hotlist(
    rows: Sequence[HotlistRow],
    rejected: Sequence[RejectedRow],
    *,
    deployment_id: str,
    devices: Sequence[str],
    recipients: Mapping[str, X25519PublicKey],
    signing_key: Ed25519PrivateKey,
    expires_in_s: float,
    out: Path,
    strict: bool = False,
    clock: Callable[[], float] = time.time,
) -> HotlistBuildResult:
    """Seal the good rows for ``devices`` at ``out`` and write the hub-side map."""
    if strict and rejected:
        raise HotlistBuildError(
            f"hotlist: {len(rejected)} rows rejected; nothing written (--strict)"
        )
    if not rows:
        raise HotlistBuildError("hotlist: no usable row; nothing written")
    if len(rows) > MAX_ENTRIES:
        raise HotlistBuildError(f"hotlist: {len(rows)} rows, at most {MAX_ENTRIES}")
    created = clock()
    expires_at = created + expires_in_s
    key = new_hotlist_key()
    refs = [new_entry_ref() for _ in rows]
    content = HotlistContent(
        deployment_id=deployment_id,
        devices=tuple(devices),
        created_at=created,
        expires_at=expires_at,
        key=key,
        refs=refs,
        digests=[plate_digest(key, r.plate) for r in rows],
        # An entry never outlives the bundle that carries it.
        entry_expires=[
            expires_at if r.expires_at is None else min(r.expires_at, expires_at) for r in rows
        ],
    )
    bundle = build_hotlist_bundle(content, signing_key, recipients)
    mapping = {
        "hotlist_hash": bundle.watchlist_hash,
        "deployment_id": deployment_id,
        "devices": list(devices),
        "created_at": created,
        "expires_at": expires_at,
        "entries": len(rows),
        "refs": {
            ref: {
                "plate": display(r.plate),
                "reason": r.reason,
                "category": r.category,
                "expires_at": exp,
                "line": r.line,
            }
            for ref, r, exp in zip(refs, rows, content.entry_expires, strict=True)
        },
        "rejected": [{"line": r.line, "problem": r.problem} for r in rejected],
    }
    map_path = map_path_for(out)
    write_atomic(map_path, (json.dumps(mapping, indent=1, sort_keys=True) + "\n").encode(), 0o600)
    write_atomic(out, bundle.data, 0o600)
    return HotlistBuildResult(bundle, out, map_path, len(rows), list(rejected), created, expires_at)
