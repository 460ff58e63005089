"""What every Hydra entry point shares: the config dir, resolvers and one-line errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

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


class UserError(RuntimeError):
    """A problem the user can fix (a value, a path, a file); printed as one line, no traceback."""


def root_cause(err: BaseException) -> BaseException:
    """Hydra wraps errors raised inside ``_target_`` constructors; report the original one."""
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err


def run_guarded(fn: Callable[[], Any]) -> Any:
    """Run an entry point; turn user-facing errors into one ``error:`` line and exit code 2."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from sing_lit.data.records import DatasetError
    from sing_lit.models.resnet import PretrainedWeightsError

    try:
        return fn()
    except (UserError, DatasetError, PretrainedWeightsError, OmegaConfBaseException, InstantiationException,
            ValueError, MisconfigurationException) as err:
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
