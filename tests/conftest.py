"""Shared fixtures: Hydra composition outside a run, tiny SING nets, and the training CLI in a subprocess
or in this process."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

# Each pytest-xdist worker gets its share of the cores, and the entry points the tests start inherit it:
# `make test`'s 2 workers with 2 threads each oversubscribe a 2-core machine (the suite took 810 s that way and
# 732 s with 1 thread per worker, side by side on one machine). An OMP_NUM_THREADS set by the caller wins.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
if _WORKERS > 1 and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))

import pytest  # noqa: E402  (after the thread count: torch, imported below, reads it)
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from cli_checks import run_in_process  # noqa: E402
from python_runs import run_python  # noqa: E402
from sing_lit.runtime.cli import CONFIG_DIR  # noqa: E402  # also registers the ${pkg_dir:} resolver

if "OMP_NUM_THREADS" in os.environ:
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# The tiny benchmark every fast test shares (16 identities of debug=tiny).
TINY = ("debug=tiny",)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic-benchmark cache per test session, shared by compose-based and CLI tests."""
    return tmp_path_factory.mktemp("sing_lit_cache")


def compose_config(overrides: Sequence[str] = (), config_name: str = "train",
                   return_hydra_config: bool = False) -> DictConfig:
    """Compose a config from conf/ as ``python -m sing_lit.<config_name>`` would, without running."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


@pytest.fixture
def compose_cfg(tmp_path: Path, cache_dir: Path) -> Callable[..., DictConfig]:
    """``compose_cfg(overrides, config_name="train")``.

    ``${hydra:runtime...}`` only resolves inside a Hydra run, so the paths that derive from it
    are pinned to the test's tmp dir; the data cache is the session one.
    """

    def _compose(overrides: Sequence[str] = (), config_name: str = "train", **kw) -> DictConfig:
        paths = [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'out'}",
                 f"paths.cache_dir={cache_dir}"]
        return compose_config([*paths, *overrides], config_name, **kw)

    return _compose


@pytest.fixture
def tiny_cfg(compose_cfg) -> Callable[..., DictConfig]:
    """``tiny_cfg(*overrides)``: the train config with ``debug=tiny`` plus the given overrides."""
    return lambda *overrides: compose_cfg([*TINY, *overrides])


@pytest.fixture(scope="session")
def run_cli(cache_dir: Path) -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli(args, cwd, module="sing_lit.train")``: run an entry point in its own process
    (:func:`python_runs.run_python`)."""

    def _run(args: Sequence[str], cwd: Path, module: str = "sing_lit.train",
             timeout: float = 300, fresh: bool = False) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "WANDB_MODE")}
        env.update(SING_LIT_CACHE=str(cache_dir), WANDB_MODE="offline", PYTHONUNBUFFERED="1")
        return run_python(["-m", module, *args], cwd, env, timeout, fresh)

    return _run


@pytest.fixture
def cli_in_process(cache_dir: Path, monkeypatch, capsys) -> Callable[..., subprocess.CompletedProcess]:
    """``cli_in_process(args, cwd, module="sing_lit.train")``: ``run_cli``'s run in this process, for the
    bad-input tests that stop before training (no interpreter start-up: ~6 s each)."""

    def _run(args: Sequence[str], cwd: Path, module: str = "sing_lit.train") -> subprocess.CompletedProcess:
        env = {"SING_LIT_CACHE": str(cache_dir), "WANDB_MODE": "offline"}
        return run_in_process(list(args), cwd, env, monkeypatch, capsys, module)

    return _run


SHARED_DATA = Path(os.environ.get("SING_LIT_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real PRID2011 and GRID), or skip: tests never fail because it is absent."""
    if not (SHARED_DATA / "prid_2011").is_dir() or not (SHARED_DATA / "grid").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set SING_LIT_SHARED_DATA)")
    return SHARED_DATA
