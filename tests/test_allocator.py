"""The glibc allocator settings applied on import (issue #13): freed activations are reused, not re-faulted."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from sing_lit.runtime import allocator

# Like a training step: three 64 MiB tensors alive together, then freed. 6 warm-up rounds (the heap
# settles after 3-4: torch's 64-byte posix_memalign does not always fit a freed block at first), then
# the minor page faults of 4 more rounds together.
PROBE = """
import resource
import sing_lit, torch
from sing_lit.runtime.allocator import malloc_state

def step():
    x, y = torch.ones(16 * 2**20), torch.ones(16 * 2**20)
    z = x + y
    del x, y, z

for _ in range(6):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, malloc_state()["applied"])
"""

PAGES_64MIB = 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")


def _faults(env_extra: dict[str, str]) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "SING_LIT_MALLOC"}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**env, **env_extra}, capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), out[1]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's")
@pytest.mark.skipif(bool(os.environ.get("LD_PRELOAD") or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")),
                    reason="another allocator or the user's malloc tunables are in charge")
def test_import_makes_freed_blocks_reused_instead_of_faulted_in_again():
    tuned, applied = _faults({})
    default, not_applied = _faults({"SING_LIT_MALLOC": "default"})
    assert (applied, not_applied) == ("True", "False")
    # glibc's default: each 64 MiB block is a fresh mmap, every page faulted in again (4 rounds x 3 blocks).
    assert default >= 4 * 3 * PAGES_64MIB * 0.9
    # Tuned: the freed blocks stay in the heap; the next rounds reuse their pages.
    assert tuned < PAGES_64MIB * 0.1


def test_user_settings_and_other_libcs_are_left_alone(monkeypatch):
    assert allocator._tune({"MALLOC_TRIM_THRESHOLD_": "1"}) == {
        "applied": False, "reason": "set by the user: MALLOC_TRIM_THRESHOLD_"}
    assert "GLIBC_TUNABLES" in allocator._tune({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1"})["reason"]
    assert "LD_PRELOAD" in allocator._tune({"LD_PRELOAD": "libjemalloc.so.2"})["reason"]

    def no_libc(*args):
        raise AssertionError("mallopt must not be looked up on a non-glibc system")

    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    monkeypatch.setattr(allocator.ctypes, "CDLL", no_libc)
    state = allocator._tune({})
    assert state["applied"] is False and state["reason"].startswith("not glibc")


def test_tune_malloc_runs_once_and_reports_its_state():
    first = allocator.malloc_state()
    assert first and allocator.tune_malloc() is allocator.tune_malloc()
    assert allocator.malloc_state() == first
