"""glibc malloc settings that stop every training step from faulting its activations in afresh.

PyTorch's CPU allocator hands each tensor to ``malloc``. glibc serves blocks above its mmap
threshold (dynamic, at most 32 MiB) with a fresh ``mmap`` and gives them back with ``munmap`` on
free; it also trims the heap top back to the OS beyond its trim threshold. SING's activations are
far larger (one SRCNN feature map of a 3-stream batch of 32 at 160x72 is 96 x 64 x 160 x 72 floats,
283 MB), so every step mapped, faulted in, zeroed and unmapped hundreds of MB: about a third of
the CPU time went to the kernel (issue #13). Raising both thresholds keeps freed blocks in the
heap for the next step to reuse; the cost is that the process keeps its peak heap (RSS) instead
of returning it between steps.

:func:`tune_malloc` is called when ``sing_lit`` is imported (``sing_lit/__init__.py``), so every
entry point, DataLoader worker, DDP rank, test and CI job gets it without the user setting
anything. It does nothing on other C libraries (musl, macOS, Windows), nothing when the user
chose malloc settings themselves (``MALLOC_*`` variables or ``glibc.malloc`` tunables in the
environment), and nothing with ``SING_LIT_MALLOC=default``.
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4

# mallopt takes an int: the largest threshold it can express (2 GiB - 1).
THRESHOLD = 2**31 - 1

USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_TOP_PAD_",
                 "LD_PRELOAD")

_state: dict[str, object] = {}


def tune_malloc(environ: dict[str, str] | None = None) -> dict[str, object]:
    """Raise glibc's mmap and trim thresholds for this process, once; return what was done.

    The result (also kept for :func:`malloc_state`) has ``applied`` and, when not applied, a
    ``reason``. Never raises: a process that cannot be tuned runs with the C library's defaults.
    """
    if _state:
        return _state
    env = os.environ if environ is None else environ
    _state.update(_tune(env))
    return _state


def malloc_state() -> dict[str, object]:
    """What :func:`tune_malloc` did in this process (empty before it ran)."""
    return dict(_state)


def _tune(env: dict[str, str]) -> dict[str, object]:
    if env.get("SING_LIT_MALLOC", "") == "default":
        return {"applied": False, "reason": "SING_LIT_MALLOC=default"}
    chosen = [k for k in USER_SETTINGS if env.get(k)]
    if "glibc.malloc" in env.get("GLIBC_TUNABLES", ""):
        chosen.append("GLIBC_TUNABLES")
    if chosen:  # LD_PRELOAD: likely jemalloc/tcmalloc, whose own settings then apply
        return {"applied": False, "reason": f"set by the user: {', '.join(chosen)}"}
    libc_name, _ = platform.libc_ver()
    if libc_name != "glibc":
        return {"applied": False, "reason": f"not glibc ({libc_name or platform.system()})"}
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError) as err:
        return {"applied": False, "reason": f"no mallopt: {err}"}
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim = mallopt(M_TRIM_THRESHOLD, THRESHOLD) == 1
    mmap = mallopt(M_MMAP_THRESHOLD, THRESHOLD) == 1
    if not mmap:  # older glibc caps the threshold at 32 MiB: serve every block from the heap instead
        mmap = mallopt(M_MMAP_MAX, 0) == 1
    if not (trim and mmap):
        return {"applied": False, "reason": f"mallopt refused (trim={trim}, mmap={mmap})"}
    return {"applied": True, "trim_threshold": THRESHOLD, "mmap_threshold": THRESHOLD}
