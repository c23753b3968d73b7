from __future__ import annotations

import threading

from agent.runtime.frame_queue import DropOldestQueue


def test_drops_oldest_when_full_and_counts() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(2)
    assert q.put(1) and q.put(2)
    assert not q.put(3)
    assert q.dropped == 1
    assert [q.get(0), q.get(0), q.get(0)] == [2, 3, None]


def test_clear_counts_dropped_and_close_wakes_consumers() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(4)
    q.put(1)
    q.put(2)
    assert q.clear() == 2 and q.dropped == 2 and len(q) == 0
    got: list[int | None] = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=30)))
    t.start()
    q.close()
    t.join(10)
    assert not t.is_alive() and got == [None]
    assert not q.put(5) and q.dropped == 3
