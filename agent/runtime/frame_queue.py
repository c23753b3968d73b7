"""A bounded hand-off between the capture thread and the vision workers.

When the vision stage falls behind, the *oldest* waiting frame is dropped
(and counted): a live camera cannot be paused, and the freshest frame is
the one worth looking at. Alerts never pass through here, so back-pressure
can only ever cost frames, never alerts. Dropped frames are released at
once, which is also what the privacy promise asks of unexamined frames.
"""

from __future__ import annotations

import collections
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._items: collections.deque[T] = collections.deque()
        self._capacity = capacity
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0
        self.accepted = 0

    def put(self, item: T) -> bool:
        """Queue ``item``; returns False when an older item was dropped to make room."""
        with self._cond:
            if self._closed:
                self.dropped += 1
                return False
            dropped = False
            if len(self._items) >= self._capacity:
                self._items.popleft()
                self.dropped += 1
                dropped = True
            self._items.append(item)
            self.accepted += 1
            self._cond.notify()
            return not dropped

    def get(self, timeout: float | None = None) -> T | None:
        """Next item, or None on timeout or once the queue is closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if self._items:
                return self._items.popleft()
            return None

    def clear(self) -> int:
        """Drop everything waiting (the camera closed); returns how many were dropped."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self.dropped += n
            return n

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
