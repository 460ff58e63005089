"""``run_info.json``: where, when and with what a run ran.

``metrics.json`` holds only what the config and the seed determine, so two runs of the same
config compare byte for byte; everything run-dependent (absolute paths, times, the command
line, library versions, resumes) goes here instead.
"""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sing_lit.runtime.atomic import write_json_atomic


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_run_info(out_dir: str | Path, **fields: Any) -> Path:
    """Write ``<out_dir>/run_info.json`` with the run dir, the time, the command and ``fields``."""
    import lightning
    import torch

    out_dir = Path(out_dir)
    info = {
        "run_dir": str(out_dir.resolve()),
        "finished": now_iso(),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "lightning": lightning.__version__},
        # the float results of a CPU run depend on the kernels torch picks (SIMD level) and on the thread count
        "cpu": {"capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
                "machine": platform.machine()},
        **fields,
    }
    path = out_dir / "run_info.json"
    write_json_atomic(path, info)
    return path
