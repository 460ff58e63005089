"""What every Hydra entry point shares: the config dir, resolvers, and one-line errors for user errors."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sing_lit.runtime.errors import ConfigError, UserError

__all__ = ["CONFIG_DIR", "PACKAGE_DIR", "ConfigError", "UserError", "config_dir", "is_user_error", "require_plugins",
           "root_cause", "run_guarded"]

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def config_dir(package_dir: Path = PACKAGE_DIR) -> Path:
    """The configs: ``sing_lit/conf`` in an installed wheel, else the repo's top-level ``conf/``
    (a checkout, or an editable install, where ``src/sing_lit`` sits two levels below it)."""
    for candidate in (package_dir / "conf", package_dir.parents[1] / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"sing_lit's configs are missing: neither {package_dir / 'conf'} (a wheel install) "
                            f"nor {package_dir.parents[1] / 'conf'} (a checkout) holds train.yaml; reinstall sing_lit")


CONFIG_DIR = str(config_dir())

log = logging.getLogger("sing_lit")

if not OmegaConf.has_resolver("pkg_dir"):
    OmegaConf.register_new_resolver("pkg_dir", lambda: str(PACKAGE_DIR))


def root_cause(err: BaseException) -> BaseException:
    """Hydra wraps errors raised inside ``_target_`` constructors; report the original one."""
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err


def _raised_in_sing_lit(err: BaseException) -> bool:
    tb = err.__traceback__
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE_DIR):
            return True
        tb = tb.tb_next
    return False


def is_user_error(err: BaseException) -> bool:
    """Whether ``err`` is the user's to fix: one of the user error types (sing_lit's, OmegaConf's for a bad
    or missing config value, Lightning's misconfiguration), or a config's ``_target_`` that Hydra could not
    build for a reason outside sing_lit's code (a target that does not exist, an argument the target does
    not take, a value the library refuses)."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    cause = root_cause(err)
    if isinstance(cause, (UserError, OmegaConfBaseException, MisconfigurationException)):
        return True
    return isinstance(err, InstantiationException) and (cause is err or not _raised_in_sing_lit(cause))


def run_guarded(fn: Callable[[], Any]) -> Any:
    """Run an entry point: a user error becomes one ``error:`` line and exit code 2; anything else is a
    bug, shown with its traceback and a line saying so, exit code 1."""
    try:
        return fn()
    except Exception as err:
        if not is_user_error(err):
            traceback.print_exc()
            print(f"error: internal error ({type(err).__name__}): this is a bug in sing_lit, not a problem with "
                  "your input; please report it with the traceback above and the command you ran", file=sys.stderr)
            sys.exit(1)
        cause = root_cause(err)
        message = str(cause).strip().splitlines()
        text = " ".join(line.strip() for line in message if line.strip()) or type(cause).__name__
        if isinstance(cause, OmegaConfBaseException) and "Missing mandatory value" in text:
            text = f"{text} (set it on the command line, e.g. key=value)"
        print(f"error: {text}", file=sys.stderr)
        sys.exit(2)


# Hydra plugins that our config options need: (override key, its values, plugin module, what to install).
PLUGINS = (
    ("hydra/launcher", {"submitit_local", "submitit_slurm", "local", "slurm"}, "hydra_plugins.hydra_submitit_launcher",
     "hydra-submitit-launcher: pip install 'sing_lit[cluster]'"),
    ("hydra/sweeper", {"optuna"}, "hydra_plugins.hydra_optuna_sweeper",
     "hydra-optuna-sweeper: pip install 'sing_lit[optuna]'"),
    ("hparams_search", {"sing_optuna"}, "hydra_plugins.hydra_optuna_sweeper",
     "hydra-optuna-sweeper: pip install 'sing_lit[optuna]'"),
)


def require_plugins(argv: list[str], find_spec: Callable[[str], Any] | None = None) -> None:
    """Before Hydra composes: one ``error:`` line naming the package when an override needs a plugin
    that is not installed (Hydra itself would only list the options it has)."""
    import importlib.util

    def installed(module: str) -> bool:
        try:
            return (find_spec or importlib.util.find_spec)(module) is not None
        except ModuleNotFoundError:  # not even the hydra_plugins namespace
            return False

    for arg in argv:
        key, _, value = arg.lstrip("+~").partition("=")
        for group, names, module, install in PLUGINS:
            if key == group and value in names and not installed(module):
                print(f"error: {arg} needs the Hydra plugin {install}", file=sys.stderr)
                sys.exit(2)


def alias_args(argv: list[str], aliases: dict[str, str]) -> list[str]:
    """Rename command-line keys that clash with a config group of the training (``model=<dir>`` of
    ``sing_lit.search`` would otherwise be read as a choice of ``conf/model/``)."""
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        out.append(f"{aliases[key]}={value}" if sep and key in aliases else arg)
    return out
