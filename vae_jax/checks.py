"""Checks of single config values: each raises `ConfigError` with one line naming the
``--config.<key>`` override, the value and what is expected."""

from __future__ import annotations

import math

from vae_jax.errors import ConfigError


def require(ok: bool, message: str) -> None:
    """Raises `ConfigError` with ``message`` unless ``ok``."""
    if not ok:
        raise ConfigError(message)


def positive_int(value, name: str) -> None:
    """``--config.<name>`` must be an integer >= 1."""
    require(
        isinstance(value, int) and not isinstance(value, bool) and value >= 1,
        f"--config.{name}={value!r} is invalid: expected an integer >= 1.",
    )


def nonnegative_int(value, name: str) -> None:
    """``--config.<name>`` must be an integer >= 0."""
    require(
        isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        f"--config.{name}={value!r} is invalid: expected an integer >= 0.",
    )


def finite(value) -> bool:
    """Whether ``value`` is a finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def choice(value, name: str, allowed) -> None:
    """``--config.<name>`` must be one of ``allowed``."""
    require(value in allowed, f"--config.{name}={value!r} is invalid: expected one of {', '.join(allowed)}.")
