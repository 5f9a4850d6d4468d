"""Sweep specifications: lists of override dicts, built without JAX.

A sweep config file's ``get_sweep()`` returns the members as dicts of flat dotted keys::

    from vae_jax.training import sweep_spec
    sweep_spec.product(sweep_spec.values("beta", [0.5, 1, 2, 4]), sweep_spec.values("seed", [0, 1, 2]))
    # -> [{'beta': 0.5, 'seed': 0}, {'beta': 0.5, 'seed': 1}, ..., {'beta': 4, 'seed': 2}]
"""

from __future__ import annotations

import functools
import re
from typing import Any, Iterable, Sequence

import ml_collections

from vae_jax import config as config_lib
from vae_jax.errors import ConfigError

Overrides = dict[str, Any]


def values(key: str, options: Iterable) -> list[Overrides]:
    """One member per value: ``values('beta', [1, 2]) == [{'beta': 1}, {'beta': 2}]``."""
    return [{key: value} for value in options]


def product(*sweeps: Sequence[Overrides]) -> list[Overrides]:
    """Every combination, the last sweep varying fastest:
    ``product(values('a', [1, 2]), values('b', [3, 4]))`` gives a=1,b=3; a=1,b=4; a=2,b=3; a=2,b=4."""
    members: list[Overrides] = [{}]
    for sweep in sweeps:
        members = [{**left, **right} for left in members for right in sweep]
    return members


def chain(*sweeps: Sequence[Overrides]) -> list[Overrides]:
    """The members of each sweep, one sweep after another."""
    return [dict(member) for sweep in sweeps for member in sweep]


def zipped(*sweeps: Sequence[Overrides]) -> list[Overrides]:
    """Members merged position by position (the sweeps must have equal lengths)."""
    lengths = {len(sweep) for sweep in sweeps}
    if len(lengths) > 1:
        raise ConfigError(f"sweep_spec.zipped needs sweeps of equal lengths, got {sorted(lengths)}.")
    return [functools.reduce(lambda a, b: {**a, **b}, members, {}) for members in zip(*sweeps)]


def fixed(**overrides) -> list[Overrides]:
    """One member with these (undotted) overrides, e.g. to chain a baseline into a sweep."""
    return [dict(overrides)]


def format_value(value) -> str:
    """A value as it appears in a member's name and in the results table (``64,32`` for a tuple)."""
    if isinstance(value, (tuple, list)):
        return ",".join(format_value(v) for v in value)
    return str(value)


def member_name(overrides: Overrides) -> str:
    """A directory name for a member, e.g. ``beta=0.5_seed=0`` (``base`` without overrides)."""
    if not overrides:
        return "base"
    text = "_".join(f"{key}={format_value(value)}" for key, value in overrides.items())
    return re.sub(r"[^A-Za-z0-9._,=+-]", "", text)


def apply_overrides(config: ml_collections.ConfigDict, overrides: Overrides) -> ml_collections.ConfigDict:
    """A resolved copy of ``config`` with the dotted ``overrides`` set; an unknown key or a
    wrong type raises `ConfigError` naming the override."""
    nested: dict = {}
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    merged = config.to_dict()

    def merge(target, updates, prefix):
        for key, value in updates.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                merge(target[key], value, f"{prefix}{key}.")
            else:
                target[key] = value

    merge(merged, nested, "")
    try:
        return config_lib.resolve(merged, where="the base config")
    except ConfigError as error:
        raise ConfigError(f"Sweep override {overrides}: {error}") from None
