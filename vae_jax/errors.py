"""The user-facing errors: each message says what is wrong and how to fix it.

The command-line scripts catch `USER_ERRORS` and print the message after ``error:`` (exit
status 2) instead of a traceback: one line, except a `DataError` for a dataset that is not
found, whose message goes on to list the places tried and the ways to get the data. Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno


class ConfigError(ValueError):
    """A config value, an override or the workdir cannot be used."""


class DataError(ValueError):
    """A dataset could not be found or is invalid; the message says where and what to do."""


class CheckpointError(RuntimeError):
    """No checkpoint in the workdir can be restored."""


class NonFiniteError(FloatingPointError):
    """Training produced a non-finite loss or gradient and ``config.nonfinite='stop'``."""


class Interrupted(RuntimeError):
    """A signal (SIGTERM, SIGINT) stopped training after a checkpoint; the same command resumes."""


class WriteError(OSError):
    """A file of the run could not be written (no space left, quota, read-only filesystem,
    permission); what was written before is intact and the same command resumes."""


# errno values of a write the user can fix (disk full, quota, read-only, permission).
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def write_error(path: str, error: BaseException) -> WriteError:
    """The `WriteError` of a failed write of ``path``: names the path, the cause and the fix."""
    text = str(error)
    known = [
        ("RESOURCE_EXHAUSTED", "no space left on the device"),
        ("No space left", "no space left on the device"),
        ("Disk quota", "disk quota exceeded"),
        ("Read-only file system", "read-only file system"),
        ("PERMISSION_DENIED", "permission denied"),
        ("Permission denied", "permission denied"),
    ]
    if isinstance(error, OSError) and error.strerror:
        cause = f"{error.strerror} (errno {error.errno})"
    else:
        cause = next((short for marker, short in known if marker in text), text.splitlines()[0][:200] if text else "")
    cause = cause or type(error).__name__
    return WriteError(
        f"could not write {path}: {cause}. Free space on that filesystem (or fix its permissions), "
        "then run the same command again: it resumes from the last checkpoint, which is intact."
    )


def is_write_failure(error: BaseException) -> bool:
    """Whether ``error`` is a failed write the user can fix (`WRITE_ERRNOS`, or tensorstore's
    RESOURCE_EXHAUSTED / PERMISSION_DENIED that orbax passes on for a full or read-only disk)."""
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        return True
    text = str(error)
    return any(
        s in text
        for s in (
            "RESOURCE_EXHAUSTED",
            "No space left",
            "Disk quota",
            "Read-only file system",
            "PERMISSION_DENIED",
            "Permission denied",
        )
    )


USER_ERRORS = (ConfigError, DataError, CheckpointError, NonFiniteError, WriteError, Interrupted)
