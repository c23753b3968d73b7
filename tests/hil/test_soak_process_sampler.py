"""Figures of a process read from the real /proc of this machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hil.soak.process_sampler import (
    CpuMeter,
    ProcessSample,
    _cpu_seconds,
    sample_memory,
    sample_process,
)
from hil.soak.soak_sampler import find_program


def test_this_process_is_sampled() -> None:
    s = sample_process(os.getpid())
    assert s is not None
    assert s.rss_bytes > 10 * 1024 * 1024  # a Python with numpy loaded
    assert s.threads >= 1
    assert s.fds >= 3
    assert s.uss_bytes is not None and 0 < s.uss_bytes <= s.rss_bytes
    assert s.anon_bytes is not None and 0 < s.anon_bytes <= s.rss_bytes
    assert s.pss_bytes is not None and s.uss_bytes <= s.pss_bytes <= s.rss_bytes


def test_memory_alone_matches_the_full_sample() -> None:
    full, memory = sample_process(os.getpid()), sample_memory(os.getpid())
    assert full is not None and memory is not None
    rss, anon = memory
    # Read a moment apart: the same process, within a few megabytes.
    assert abs(rss - full.rss_bytes) < 8 * 1024 * 1024
    assert anon is not None and full.anon_bytes is not None
    assert abs(anon - full.anon_bytes) < 8 * 1024 * 1024


def test_open_files_are_counted(tmp_path: Path) -> None:
    before = sample_process(os.getpid())
    files = [(tmp_path / f"f{k}").open("w") for k in range(5)]
    try:
        during = sample_process(os.getpid())
    finally:
        for f in files:
            f.close()
    assert before is not None and during is not None
    assert during.fds - before.fds == 5


def test_a_process_that_is_gone_gives_none() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert sample_process(proc.pid) is None
    assert sample_memory(proc.pid) is None


def test_cpu_time_survives_a_command_name_with_parentheses() -> None:
    fields = ["S"] + ["0"] * 10 + ["250", "150"] + ["0"] * 30
    text = "1234 (odd) name) (x) " + " ".join(fields)
    assert _cpu_seconds(text) == pytest.approx(400 / os.sysconf("SC_CLK_TCK"))


def _sample(pid: int, cpu_s: float) -> ProcessSample:
    return ProcessSample(pid, 1, None, None, None, cpu_s, 3, 1)


def test_cpu_meter_is_percent_of_a_core_and_restarts_with_a_new_pid() -> None:
    m = CpuMeter()
    assert m.percent(_sample(10, 1.0), 100.0) is None
    assert m.percent(_sample(10, 6.0), 110.0) == pytest.approx(50.0)
    assert m.percent(_sample(11, 0.2), 120.0) is None  # restarted: no interval yet
    assert m.percent(_sample(11, 2.2), 130.0) == pytest.approx(20.0)


@pytest.mark.system
def test_the_program_is_found_under_a_forking_wrapper() -> None:
    marker = "soak_find_program_marker"
    # The wrapper forks (it does not exec): the marker is only in the child's command line.
    code = f"import time  # {marker}\ntime.sleep(30)"
    env = dict(os.environ, SOAK_TEST_CODE=code)
    wrapper = subprocess.Popen(
        ["sh", "-c", f'{sys.executable} -c "$SOAK_TEST_CODE"; true'], env=env
    )
    try:
        for _ in range(100):
            found = find_program(wrapper.pid, marker)
            if found is not None:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert found is not None and found != wrapper.pid
        assert marker.encode() in Path(f"/proc/{found}/cmdline").read_bytes()
    finally:
        for child in {found} - {None}:
            os.kill(child, 15)  # type: ignore[arg-type]
        wrapper.wait(10)


def test_anonymous_rss_holds_while_another_process_maps_the_same_file(tmp_path: Path) -> None:
    # Why the verdict judges anonymous RSS and not USS: a file page this process alone maps
    # is "private" (USS); once another process maps the same file it is shared, and USS
    # falls though this process changed nothing. A leak lands in anonymous memory, which
    # another process's mappings do not move.
    import mmap

    size = 32 * 1024 * 1024
    path = tmp_path / "library.bin"
    path.write_bytes(os.urandom(size))
    with path.open("rb") as f, mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) as m:
        for off in range(0, size, mmap.PAGESIZE):
            m[off]  # touch every page so it is resident
        alone = sample_process(os.getpid())
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import mmap,sys\n"
                f"f=open({str(path)!r},'rb'); m=mmap.mmap(f.fileno(),{size},prot=mmap.PROT_READ)\n"
                f"s=sum(m[o] for o in range(0,{size},mmap.PAGESIZE))\n"
                "print('mapped', flush=True); sys.stdin.read()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "mapped"
            shared = sample_process(os.getpid())
        finally:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(timeout=30)
    assert alone is not None and shared is not None
    assert alone.uss_bytes is not None and shared.uss_bytes is not None
    assert alone.anon_bytes is not None and shared.anon_bytes is not None
    mib = 1024 * 1024
    assert alone.uss_bytes - shared.uss_bytes > 24 * mib  # the file's pages left USS
    assert abs(alone.anon_bytes - shared.anon_bytes) < 4 * mib  # anonymous memory did not
