"""The chunk framing and the hub's media acknowledgements (agent/protocol/media_transfer.py)."""

from __future__ import annotations

import json

import pytest

from agent.protocol.media_transfer import (
    CHUNK_BYTES,
    MediaAck,
    MediaTransferError,
    chunk_count,
    chunk_slice,
    decode_chunk,
    decode_media_ack,
    encode_chunk,
    encode_media_ack,
)

MID = "ab" * 16


def test_a_chunk_round_trips_and_its_slices_cover_the_box_exactly() -> None:
    box = bytes(range(256)) * 4000  # 1,024,000 bytes: 4 chunks, the last one short
    n = chunk_count(len(box))
    assert n == 4
    parts = [box[slice(*chunk_slice(len(box), i))] for i in range(n)]
    assert b"".join(parts) == box and all(len(p) == CHUNK_BYTES for p in parts[:-1])
    msg = encode_chunk(b"manifest", 3, n, parts[3])
    c = decode_chunk(msg)
    assert (c.manifest, c.index, c.count, c.data) == (b"manifest", 3, 4, parts[3])


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda m: b"XXXXXXXX" + m[8:], "bad magic"),
        (lambda m: m[:10], "truncated"),
        (lambda m: m[:-8] + (9).to_bytes(4, "big") + (4).to_bytes(4, "big"), "not below count"),
        (lambda m: m + b"x" * (CHUNK_BYTES + 1), "longer than"),
    ],
)
def test_bad_chunks_are_refused_with_the_reason(mutate: object, problem: str) -> None:
    msg = encode_chunk(b"m", 0, 4, b"")
    with pytest.raises(MediaTransferError, match=problem):
        decode_chunk(mutate(msg))  # type: ignore[operator]


def test_a_notice_has_no_chunks_and_no_data() -> None:
    c = decode_chunk(encode_chunk(b"m", 0, 0, b""))
    assert (c.index, c.count, c.data) == (0, 0, b"")
    with pytest.raises(MediaTransferError, match="no data"):
        decode_chunk(encode_chunk(b"m", 0, 0, b"") + b"x")


def test_acks_round_trip_and_are_strict() -> None:
    acks = [
        MediaAck(MID, "clip", "complete", secret=b"\x01" * 16),
        MediaAck("cd" * 16, "segment", "partial", missing=(3, 1)),
        MediaAck("ef" * 16, "clip", "noted"),
        MediaAck("01" * 16, "segment", "refused", reason="no such\x07 device"),
    ]
    back = decode_media_ack(encode_media_ack(acks))
    assert back[0].secret == b"\x01" * 16 and back[1].missing == (1, 3)
    assert back[3].reason == "no such device"  # control characters never travel
    good = json.loads(encode_media_ack(acks[:1]))
    for bad in (
        {**good, "v": 2},
        {**good, "extra": 1},
        {"v": 1, "media": [{**good["media"][0], "secret": "zz"}]},
        {"v": 1, "media": [{**good["media"][0], "kind": "alert"}]},
        {"v": 1, "media": [{"id": MID, "kind": "clip", "state": "partial", "missing": [True]}]},
    ):
        with pytest.raises(MediaTransferError):
            decode_media_ack(json.dumps(bad).encode())
    with pytest.raises(MediaTransferError, match="not JSON"):
        decode_media_ack(b"\xff")
