"""The user-facing errors: each message says what is wrong and how to fix it.

The command-line scripts catch `USER_ERRORS` and print the message as one ``error: ...``
line (exit status 2) instead of a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value, an override or the workdir cannot be used."""


class DataError(ValueError):
    """A dataset could not be found or is invalid; the message says where and what to do."""


class CheckpointError(RuntimeError):
    """No checkpoint in the workdir can be restored."""


class NonFiniteError(FloatingPointError):
    """Training produced a non-finite loss or gradient and ``config.nonfinite='stop'``."""


USER_ERRORS = (ConfigError, DataError, CheckpointError, NonFiniteError)
