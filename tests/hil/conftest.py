"""Fixtures of the rig tests: a LazyFS mount (the power-cut filesystem).

LazyFS needs root, /dev/fuse and its binary (``make lazyfs``): without them these tests
skip on a developer's machine and fail in CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ci_required import unavailable

from hil.power_cut.lazyfs_mount import LazyFsError, LazyFsMount, find_binary, fuse_usable


@pytest.fixture
def lazyfs(tmp_path: Path) -> Iterator[LazyFsMount]:
    """A mounted LazyFS over ``tmp_path/fs/lower``; unmounted (and its link removed) after."""
    why = fuse_usable()
    if why is not None:
        unavailable(why)
    try:
        find_binary()
    except LazyFsError as exc:
        unavailable(str(exc))
    mount = LazyFsMount(tmp_path, "fs")
    try:
        mount.mount()
        yield mount
    finally:
        mount.power_cut()
        mount.remove_link()
