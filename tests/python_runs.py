"""``python <args>`` for the tests, as ``subprocess.run(..., capture_output=True, text=True)`` gives it, without
the interpreter's start-up.

A fresh interpreter spends ~10 s importing torch, lightning (which imports torchmetrics, torchvision and
torch._dynamo) and hydra on the suite's 2-core machines: about two thirds of a tiny training run. The
suite starts ~100 such runs. :func:`run_python` forks the test process instead, which has imported all of
that already, and runs the command in the child the way ``python`` would: its own process, working directory,
environment, ``sys.argv``, ``sys.path``, ``__main__`` module, stdin, stdout and stderr pipes, exit status,
exit-time handlers, and a kill on timeout. What the child cannot get afresh is module state that the test
process set up when importing; the entry points keep none between runs. ``SING_LIT_TESTS_SPAWN=1`` (in the
environment of pytest) runs every command in a fresh interpreter instead, as before.
"""

from __future__ import annotations

import atexit
import functools
import io
import json
import logging
import os
import runpy
import selectors
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

SPAWN = os.environ.get("SING_LIT_TESTS_SPAWN") == "1" or not hasattr(os, "fork")


def run_python(args: Sequence[str], cwd: Path | str, env: Mapping[str, str], timeout: float | None = None,
               fresh: bool = False) -> subprocess.CompletedProcess:
    """``python *args`` (``["-m", module, ...]``, ``["-c", code, ...]`` or ``[script, ...]``) in ``cwd`` with
    exactly ``env``;
    ``fresh=True`` for a run that needs a new interpreter's start-up (a ``sitecustomize`` on ``PYTHONPATH``)."""
    args = [str(a) for a in args]
    if SPAWN or fresh:
        return subprocess.run([sys.executable, *args], cwd=cwd, env=dict(env), capture_output=True, text=True,
                              timeout=timeout)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    proc = Forked(args, cwd, env, out_w, err_w, close_in_child=(out_r, err_r))
    os.close(out_w)
    os.close(err_w)
    return _collect(proc, out_r, err_r, timeout)


class Forked:
    """``subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=stdout, stderr=stderr)`` for
    file descriptors ``stdout`` and ``stderr``, forked from this process; ``pid``, ``poll()``, ``wait()`` and
    ``returncode`` (``-N`` for a signal N) as Popen's."""

    def __init__(self, args: Sequence[str], cwd: Path | str, env: Mapping[str, str], stdout: int, stderr: int,
                 close_in_child: Sequence[int] = ()):
        self.args = [sys.executable, *map(str, args)]
        self.returncode: int | None = None
        _site_path()  # asked here, before the fork, so every child finds it cached
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            for fd in close_in_child:
                os.close(fd)
            _child([str(a) for a in args], Path(cwd), dict(env), stdout, stderr)
        self.pid = pid

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.01)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)


def start_python(args: Sequence[str], cwd: Path | str, env: Mapping[str, str], log: Path) -> Forked | subprocess.Popen:
    """``python *args`` started in the background, stdout and stderr into the file ``log``."""
    with open(log, "wb") as out:
        if SPAWN:
            return subprocess.Popen([sys.executable, *map(str, args)], cwd=cwd, env=dict(env), stdout=out,
                                    stderr=subprocess.STDOUT)
        return Forked(args, cwd, env, out.fileno(), out.fileno())


def _collect(proc: Forked, out_r: int, err_r: int, timeout: float | None) -> subprocess.CompletedProcess:
    """Read both pipes to their end (as ``subprocess.run`` does, so a grandchild that keeps them open keeps
    this waiting) and reap the child; on timeout kill it and raise ``TimeoutExpired``."""
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    deadline = None if timeout is None else time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    for fd in chunks:
        sel.register(fd, selectors.EVENT_READ)
    try:
        while sel.get_map():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                proc.kill()
                proc.wait()
                raise subprocess.TimeoutExpired(proc.args, timeout, b"".join(chunks[out_r]), b"".join(chunks[err_r]))
            for key, _ in sel.select(left):
                data = os.read(key.fd, 1 << 16)
                if data:
                    chunks[key.fd].append(data)
                else:
                    sel.unregister(key.fd)
        proc.wait()
    finally:
        sel.close()
        os.close(out_r)
        os.close(err_r)
    text = [b"".join(chunks[fd]).decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n") for fd in (out_r, err_r)]
    return subprocess.CompletedProcess(proc.args, proc.returncode, text[0], text[1])  # newlines as text=True


def _child(args: list[str], cwd: Path, env: dict[str, str], out_w: int, err_w: int) -> None:
    code = 1
    try:
        atexit._clear()  # the test process's exit handlers are not this run's
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in {null, out_w, err_w} - {0, 1, 2}:
            os.close(fd)
        unbuffered = bool(env.get("PYTHONUNBUFFERED"))
        sys.stdin = sys.__stdin__ = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = sys.__stdout__ = io.TextIOWrapper(open(1, "wb", buffering=0, closefd=False),  # noqa: SIM115
                                                       line_buffering=unbuffered, write_through=unbuffered)
        sys.stderr = sys.__stderr__ = io.TextIOWrapper(open(2, "wb", buffering=0, closefd=False),  # noqa: SIM115
                                                       errors="backslashreplace", line_buffering=True)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        _fresh_interpreter_state(env)
        if args[0] == "-m":
            sys.modules.pop(args[1], None)  # as in a fresh `python -m`: the module runs only as __main__
            sys.argv = [args[1], *args[2:]]
            sys.path[:] = [str(cwd), *_pythonpath(env), *_site_path()]
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        elif args[0] == "-c":
            sys.argv = ["-c", *args[2:]]
            sys.path[:] = ["", *_pythonpath(env), *_site_path()]
            main = type(sys)("__main__")
            sys.modules["__main__"] = main
            exec(compile(args[1], "<string>", "exec"), main.__dict__)  # noqa: S102
        else:
            script = str(Path(args[0]).resolve())
            sys.argv = [args[0], *args[1:]]
            sys.path[:] = [str(Path(script).parent), *_pythonpath(env), *_site_path()]
            runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exit_info:
        code = _exit_status(exit_info.code)
    except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
        traceback.print_exc()
        code = 1
    finally:
        try:
            for thread in threading.enumerate():  # the interpreter joins non-daemon threads at exit
                if thread is not threading.main_thread() and not thread.daemon:
                    thread.join()
            atexit._run_exitfuncs()
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _exit_status(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _pythonpath(env: Mapping[str, str]) -> list[str]:
    return [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]


@functools.cache
def _site_path() -> tuple[str, ...]:
    """``sys.path`` after its first entry in a fresh interpreter without ``PYTHONPATH`` (the stdlib, site
    packages and the editable install's entries): asked of one, once per test process."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", "import json, sys; print(json.dumps(sys.path[1:]))"], env=env,
                         capture_output=True, text=True, check=True)
    return tuple(json.loads(out.stdout))


def _show_warning(msg: warnings.WarningMessage) -> None:
    """The interpreter's own way to show a warning (``warnings._showwarnmsg_impl``, which pytest replaces)."""
    file = msg.file if msg.file is not None else sys.stderr
    if file is not None:
        try:
            file.write(warnings._formatwarnmsg(msg))
        except OSError:
            pass


def _default_warning_filters(env: Mapping[str, str]) -> None:
    """The filters a fresh interpreter starts with (a release build's defaults, then ``PYTHONWARNINGS``)."""
    warnings.resetwarnings()
    for category in (ResourceWarning, ImportWarning, PendingDeprecationWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
    sys.warnoptions[:] = [o for o in env.get("PYTHONWARNINGS", "").split(",") if o]
    warnings._processoptions(sys.warnoptions)
    warnings.showwarning = warnings._showwarning_orig
    warnings._showwarnmsg_impl = _show_warning


def _fresh_interpreter_state(env: Mapping[str, str]) -> None:
    """Undo what pytest set in this process that a fresh interpreter would not have."""
    _default_warning_filters(env)
    root = logging.getLogger()
    for handler in root.handlers[:]:  # pytest's capture handlers
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    # Lightning gives its loggers a stderr handler when it is imported into a process whose root logger has
    # none (a fresh interpreter); in this process pytest's root handlers stopped that, or it holds a capture.
    for name in ("lightning.pytorch", "lightning.fabric"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [logging.StreamHandler()]  # onto this process's stderr
        lg.setLevel(logging.INFO)
        lg.propagate = False
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    if "OMP_NUM_THREADS" in env:
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
