"""The tests' forked ``python`` runs give what a fresh interpreter (``subprocess.run``) gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from python_runs import run_python, start_python

SCRIPT = """
import atexit, json, os, sys, warnings
atexit.register(lambda: print("atexit ran"))
warnings.warn("shown once", UserWarning)
print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": os.environ.get("PROBE"),
                  "has_other": "OTHER" in os.environ, "path0": sys.path[0], "main": __name__,
                  "stdin": sys.stdin.read()}))
print("to stderr\\r", file=sys.stderr)
sys.exit(int(sys.argv[1]))
"""

MODULE = """
import sys
print(__name__, __spec__.name, sys.argv[0].endswith("probe_mod.py"), sys.argv[1:], "probe_mod" in sys.modules)
raise ValueError("uncaught")
"""


def both(args, cwd, env):
    """(forked, fresh interpreter) for the same command."""
    return run_python(args, cwd, env, timeout=60), subprocess.run([sys.executable, *map(str, args)], cwd=cwd,
                                                                   env=env, capture_output=True, text=True, timeout=60)


def test_script_run_matches_a_fresh_interpreter(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "PROBE": "value"}
    os.environ["OTHER"] = "only in the test process"
    try:
        forked, fresh = both([script, "3", "a b"], work, env)
    finally:
        del os.environ["OTHER"]
    assert fresh.returncode == 3 and '"env": "value"' in fresh.stdout and "atexit ran" in fresh.stdout
    assert (forked.returncode, forked.stdout) == (fresh.returncode, fresh.stdout)
    assert "UserWarning: shown once" in fresh.stderr and fresh.stderr.endswith("to stderr\n")  # "\r\n" as text
    assert forked.stderr == fresh.stderr


def test_module_run_uncaught_exception_and_pythonpath(tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "probe_mod.py").write_text(MODULE)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(mods)}
    forked, fresh = both(["-m", "probe_mod", "x"], tmp_path, env)
    assert fresh.returncode == 1 and "ValueError: uncaught" in fresh.stderr
    assert (forked.returncode, forked.stdout) == (fresh.returncode, fresh.stdout)
    assert forked.stdout == "__main__ probe_mod True ['x'] False\n"
    assert "Traceback" in forked.stderr and forked.stderr.rstrip().endswith("ValueError: uncaught")


def test_timeout_kills_and_background_run_is_killable(tmp_path):
    env = {"PATH": os.environ.get("PATH", "")}
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_python(["-c", "import time; time.sleep(60)"], tmp_path, env, timeout=1)
    assert time.monotonic() - start < 10
    script = tmp_path / "sleep.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    proc = start_python([script], tmp_path, env, log=tmp_path / "log")
    deadline = time.monotonic() + 20
    while "started" not in (tmp_path / "log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
