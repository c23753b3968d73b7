"""picamera2's DMA-heap allocator, backed by memfd instead of /dev/dma_heap.

On a Raspberry Pi, picamera2's ``DmaAllocator`` allocates frame buffers from
the kernel's DMA heap (``/dev/dma_heap/*``) and brackets CPU access with the
``DMA_BUF_IOCTL_SYNC`` ioctl. Neither exists on an ordinary kernel. Anonymous
shared memory (memfd) maps the same way, so only those two touch points are
replaced: the rest of the real allocator (allocation per stream, mapping,
buffer hand-over, clean-up) runs unchanged.
"""

from __future__ import annotations

import os
from typing import Any

import pytest


class MemfdHeap:
    """The interface of ``picamera2.dma_heap.DmaHeap``, allocating memfds."""

    def __init__(self) -> None:
        from picamera2.dma_heap import UniqueFD

        self._unique_fd = UniqueFD

    @property
    def isValid(self) -> bool:
        return True

    def alloc(self, name: str, size: int) -> Any:
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        os.ftruncate(fd, size)
        return self._unique_fd(fd)

    def close(self) -> None:
        pass


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the imported picamera2 at memfd buffers; plain memory needs no cache sync."""
    from picamera2.allocators import dmaallocator

    class MemfdSync(dmaallocator.DmaAllocator.DmaSync):  # type: ignore[misc]
        def __enter__(self) -> Any:
            return self.get_buffer()

        def __exit__(self, *exc: object) -> None:
            pass

    monkeypatch.setattr(dmaallocator, "DmaHeap", MemfdHeap)
    monkeypatch.setattr(dmaallocator.DmaAllocator, "DmaSync", MemfdSync)
