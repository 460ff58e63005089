"""Running entry points in tests: in this process through their ``@hydra.main``, and the shared assertion
for one run in a subprocess (a bad input gives one `error:` line)."""

from __future__ import annotations

import importlib
import subprocess
import sys


def assert_one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Non-zero exit, no traceback, exactly one ``error:`` line on stderr containing every needle."""
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def call_main(module: str, args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """``python -m sing_lit.<module> *args`` in this process: (exit status, stderr)."""
    main = importlib.import_module(f"sing_lit.{module}").main
    monkeypatch.setattr(sys, "argv", [f"sing_lit.{module}", *args])
    capsys.readouterr()
    code = 0
    try:
        main()
    except SystemExit as exit_info:
        code = exit_info.code if isinstance(exit_info.code, int) else 1
    return code, capsys.readouterr().err
