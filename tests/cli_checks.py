"""Running entry points in tests: in this process through their ``@hydra.main``, and the shared assertion
that a run (in a subprocess or in this process) refused a bad input with one `error:` line.

A fresh interpreter costs ~6 s of imports per run; the bad-input tests, which stop before any training, run
the entry point in this process instead (``run_in_process``). Each entry point keeps end-to-end tests in
a subprocess (its exit status and output streams as a shell sees them)."""

from __future__ import annotations

import importlib
import logging
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


def run_in_process(args: list[str], cwd, env: dict[str, str], monkeypatch, capsys,
                   module: str = "sing_lit.train") -> subprocess.CompletedProcess:
    """``python -m <module> *args`` run in this process from ``cwd`` with ``env`` set (``HYDRA_FULL_ERROR``
    unset), as a ``CompletedProcess`` (exit status, stdout, stderr) like the subprocess runs'."""
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, out = _call(module.removeprefix("sing_lit."), list(args), monkeypatch, capsys)
    return subprocess.CompletedProcess([module, *args], code, out.out, out.err)


def call_main(module: str, args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """``python -m sing_lit.<module> *args`` in this process: (exit status, stderr)."""
    code, out = _call(module, args, monkeypatch, capsys)
    return code, out.err


def _loggers() -> list[logging.Logger]:
    return [logging.root, *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger))]


def _call(module: str, args: list[str], monkeypatch, capsys):
    entry = importlib.import_module(f"sing_lit.{module}")
    main = getattr(entry, "cli", entry.main)  # what `python -m` runs: cli() where main() has a step before it
    monkeypatch.setattr(sys, "argv", [f"sing_lit.{module}", *args])
    # Hydra configures logging for the run, onto this test's captured streams: put the handlers back
    # afterwards, so that later tests never log to a closed capture.
    saved = {lg: (lg.handlers[:], lg.level, lg.propagate) for lg in _loggers()}
    capsys.readouterr()
    code = 0
    try:
        main()
    except SystemExit as exit_info:
        code = exit_info.code if isinstance(exit_info.code, int) else 1
    finally:
        for lg in _loggers():
            handlers, level, propagate = saved.get(lg, ([], lg.level, lg.propagate))
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate
    return code, capsys.readouterr()
