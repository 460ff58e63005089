"""The errors a user can fix, by type: entry points print them as one ``error:`` line.

Anything else that escapes an entry point is a bug in sing_lit and keeps its traceback
(see :func:`sing_lit.runtime.cli.run_guarded`). This module imports nothing, so every layer
(data, models, the method) can raise these without pulling in the machinery.
"""

from __future__ import annotations


class UserError(RuntimeError):
    """A problem the user can fix (a value, a path, a file); printed as one line, no traceback."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work (out of range, unknown name); the message names the key and
    what is allowed. Also a ``ValueError``, which is what a library caller would expect."""
