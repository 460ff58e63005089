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

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_DIR = str(PACKAGE_DIR.parents[1] / "conf")

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
    from sing_lit.data.records import DatasetError
    from sing_lit.models.resnet import PretrainedWeightsError

    try:
        return fn()
    except (UserError, DatasetError, PretrainedWeightsError, OmegaConfBaseException, InstantiationException,
            ValueError) as err:
        cause = root_cause(err)
        message = str(cause).strip().splitlines()
        text = " ".join(line.strip() for line in message if line.strip()) or type(cause).__name__
        if isinstance(cause, OmegaConfBaseException) and "Missing mandatory value" in text:
            text = f"{text} (set it on the command line, e.g. key=value)"
        print(f"error: {text}", file=sys.stderr)
        sys.exit(2)
