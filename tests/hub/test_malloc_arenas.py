"""The hub process keeps one C-heap arena: threads allocating at once share glibc's
main arena instead of each getting its own (glibc's own statistics, read in a child
process)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent.hub.malloc_arenas import use_one_malloc_arena

# Two threads allocate C memory at the same moment (bytes over 512 are malloc'd), so
# glibc would give the second its own arena; then glibc prints its arenas to stderr.
RUN = """
import ctypes, sys, threading
from agent.hub.malloc_arenas import use_one_malloc_arena
if sys.argv[1] == "one":
    assert use_one_malloc_arena()
elif sys.argv[1] == "lfr-hub":
    from agent.cli.hub_main import main
    try:
        main(["--help"])
    except SystemExit:
        pass
barrier = threading.Barrier(2)
def churn():
    barrier.wait()
    for _ in range(20000):
        b = bytes(4096)
threads = [threading.Thread(target=churn) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()
"""


def arenas(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", RUN, mode], capture_output=True, text=True, check=True, timeout=60
    )
    return sum(1 for line in out.stderr.splitlines() if line.startswith("Arena "))


def test_with_the_setting_every_thread_shares_the_main_arena() -> None:
    if not use_one_malloc_arena():
        pytest.skip("not glibc: no malloc arenas to limit")
    assert arenas("default") >= 2, "the control: threads get arenas of their own"
    assert arenas("one") == 1


def test_lfr_hub_sets_it_before_running_a_command() -> None:
    if not use_one_malloc_arena():
        pytest.skip("not glibc: no malloc arenas to limit")
    assert arenas("lfr-hub") == 1
