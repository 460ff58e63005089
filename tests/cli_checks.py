"""Shared assertion for entry points run in a subprocess: a bad input gives one `error:` line."""

from __future__ import annotations

import subprocess


def assert_one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Non-zero exit, no traceback, exactly one ``error:`` line on stderr containing every needle."""
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
