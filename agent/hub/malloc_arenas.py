"""One C-heap arena for the whole hub process, so freed clip buffers go back to the kernel.

The hub's intake runs on the MQTT client's thread, and glibc gives each new thread its
own heap arena. Each stored alert's clip passes through megabytes of short-lived C
buffers there (decryption, the FFmpeg decode that checks the clip plays, SQLite). A
thread arena hands freed pages back to the kernel far less readily than the main heap.
Measured in soaks (hil/README.md), the hub's anonymous memory grew 7.2 MB/h between
minutes 10 and 20 with two arenas (an hour's run, which stopped rising only after about
45 minutes) and 0.44 MB/h with one (a 20-minute run). The C heap's in-use bytes
stayed flat all along: it was freed memory kept, never a leak. The hub's threads spend
their time in Python under one interpreter lock, so they lose nothing by sharing one
arena. The camera daemon keeps glibc's default: its inference threads allocate in
parallel.
"""

from __future__ import annotations

import ctypes

#: glibc's mallopt parameter for the number of arenas (malloc.h).
M_ARENA_MAX = -8


def use_one_malloc_arena() -> bool:
    """Limit the process to glibc's main arena; call before other threads start.

    Returns False where the C library is not glibc (musl, for example, has no arenas to
    limit), and the process goes on as it was."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    if getattr(libc, "gnu_get_libc_version", None) is None:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return bool(libc.mallopt(M_ARENA_MAX, 1))
