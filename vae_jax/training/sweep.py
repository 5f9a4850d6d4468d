"""Sweeps: many trainings of one base config, each member a complete run in its own workdir.

A sweep is code in a config file (see ``configs/sweeps/beta.py``): ``get_config()`` gives
the base config and ``get_sweep()`` a list of override dicts with flat dotted keys, built
with `vae_jax.training.sweep_spec` (``values``, ``product``, ``chain``, ``zipped``, ``fixed``).

`run_sweep(config, overrides, workdir)` trains every member and writes one table of their
final test metrics and kept epochs (``sweep_results.json`` and ``.md``); each member's
``workdir/<member-name>/`` holds a complete run (config.json, checkpoints, metrics.jsonl,
final_metrics.json, figures) that ``experiments.evaluate`` reads like any other.

Members that differ only in `VMAPPED_KEYS` (values that change no shape) form a *group*,
trained by `vae_jax.training.loop` as K members of one loop (in one vmapped program or in turn, see
`loop.choose_execution`); other differences (latents, widths, dataset, epochs, ...) make
separate groups, trained one after another. PCA members are fitted one by one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
from typing import Any, Sequence

import jax
import ml_collections
from absl import logging

from vae_jax import config as config_lib
from vae_jax import parallel
from vae_jax.data import datasets
from vae_jax.errors import ConfigError
from vae_jax.models import registry
from vae_jax.training import loop, run, sweep_spec, validation
from vae_jax.training import workdir as workdir_lib

# Values trained together in one group (they change no array shape).
VMAPPED_KEYS = ("seed", "beta", "c", "free_bits", "optimizer.learning_rate", "kl_warmup_steps", "kl_warmup_epochs")
RESULTS_NAME = "sweep_results"
# Columns of the Markdown table, in this order when present.
METRIC_ORDER = ("loss", "neg_elbo", "bits_per_dim", "reconstruction", "kl", "squared_error", "mse")


@dataclasses.dataclass
class Group:
    """Members that differ only in `VMAPPED_KEYS`: one loop (or PCA fits)."""

    name: str
    members: list[loop.Member]
    overrides: list[dict]

    @property
    def config(self) -> ml_collections.ConfigDict:
        return self.members[0].config


def expand(config, sweep: Sequence[dict], workdir: str) -> list[tuple[loop.Member, dict]]:
    """The members of ``sweep`` (override dicts) on top of ``config``, validated, each with
    its overrides."""
    if not sweep:
        raise ConfigError("The sweep has no members: get_sweep() returned an empty list.")
    members, seen = [], {}
    for overrides in sweep:
        overrides = dict(overrides)
        name = sweep_spec.member_name(overrides)
        if name in seen:
            raise ConfigError(f"The sweep lists the member {name!r} twice ({seen[name]} and {overrides}).")
        seen[name] = overrides
        member_config = sweep_spec.apply_overrides(config, overrides)
        try:
            validation.validate_config(member_config)
        except ConfigError as error:
            raise ConfigError(f"Sweep member {name}: {error}") from None
        members.append((loop.Member(name, member_config, os.path.join(workdir, name)), overrides))
    return members


def group_members(members: Sequence[tuple[loop.Member, dict]]) -> list[Group]:
    """Groups of members whose configs agree except in `VMAPPED_KEYS` (in first-seen order),
    named after their shape-changing overrides (``group`` when there are none), e.g.
    ``group-model.latents=2``."""
    groups: dict[str, Group] = {}
    for member, overrides in members:
        values = member.config.to_dict()
        for key in VMAPPED_KEYS:
            *parents, leaf = key.split(".")
            node = values
            for part in parents:
                node = node[part]
            node.pop(leaf)
        key = json.dumps(values, sort_keys=True, default=str)
        if key not in groups:
            shape_overrides = {k: v for k, v in overrides.items() if k not in VMAPPED_KEYS}
            name = "group" + (f"-{sweep_spec.member_name(shape_overrides)}" if shape_overrides else "")
            while any(g.name == name for g in groups.values()):
                name += "+"
            groups[key] = Group(name, [], [])
        groups[key].members.append(member)
        groups[key].overrides.append(overrides)
    return list(groups.values())


def write_results(workdir: str, groups: Sequence[Group], results: dict[str, loop.Result]) -> dict:
    """``sweep_results.json`` and ``sweep_results.md``: one row per member (final test
    metrics and the epoch they are of, or pending)."""
    rows = []
    for group in groups:
        for member, overrides in zip(group.members, group.overrides):
            result = results.get(member.name)
            rows.append(
                {
                    "name": member.name,
                    "group": group.name,
                    "overrides": overrides,
                    "workdir": os.path.relpath(member.workdir, workdir),
                    "metrics": result.metrics if result else None,
                    "kept_epoch": result.kept_epoch if result else None,
                    "trained_epochs": result.trained_epochs if result else None,
                }
            )
    table = {"members": rows}
    workdir_lib.write_json(os.path.join(workdir, f"{RESULTS_NAME}.json"), json.loads(json.dumps(table, default=str)))
    keys = list(dict.fromkeys(k for row in rows for k in row["overrides"]))
    names = list(dict.fromkeys(n for row in rows if row["metrics"] for n in row["metrics"]))
    names = [n for n in METRIC_ORDER if n in names] + [n for n in names if n not in METRIC_ORDER]
    header = ["member", "group", *keys, "epoch kept", "epochs trained", *names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        metrics = row["metrics"]
        cells = [row["name"], row["group"], *(sweep_spec.format_value(row["overrides"].get(k, "")) for k in keys)]
        cells += [str(row["kept_epoch"] or "pending"), str(row["trained_epochs"] or "pending")]
        cells += [f"{metrics[n]:.4g}" if metrics and n in metrics else "pending" for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    text = (
        "Final test metrics per member (per example: nats, squared error per image), of the state of the "
        "epoch kept (the last, or the best on validation with model_selection=valid).\n\n" + "\n".join(lines) + "\n"
    )
    path = os.path.join(workdir, f"{RESULTS_NAME}.md")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    return table


def run_sweep(config, sweep: Sequence[dict], workdir: str, *, execution: str = "auto") -> dict[str, loop.Result]:
    """Trains every member of ``sweep`` (override dicts on ``config``) in ``workdir``;
    returns ``{member name: loop.Result}`` and writes the results table. ``execution``
    (`loop.EXECUTIONS`) sets how a group's members run together.

    Everything is checked (configs, data shapes, member workdirs) before anything in the
    workdir changes or compiles. Every process of a multi-process run calls it."""
    if execution not in loop.EXECUTIONS:
        raise ConfigError(f"--execution={execution!r} is invalid: expected one of {', '.join(loop.EXECUTIONS)}.")
    config = config_lib.resolve(config)
    groups = group_members(expand(config, sweep, workdir))
    members = [m for g in groups for m in g.members]
    splits_cache: dict = {}
    splits = {}
    for m in members:
        source = (  # what the loaded splits depend on
            m.config.data.name,
            m.config.data.binarize,
            m.config.seed if m.config.data.binarize == "static" else 0,
            *sorted(datasets.load_kwargs(m.config.data).items()),
        )
        if source not in splits_cache:
            splits_cache[source] = run.load_splits(m.config)
        splits[m.name] = splits_cache[source]
        try:
            validation.validate_device_split(m.config, jax.device_count())
            validation.validate_against_data(m.config, splits[m.name]["train"].images.shape, tuple(splits[m.name]))
        except ConfigError as error:
            raise ConfigError(f"Sweep member {m.name}: {error}") from None
    for g in groups:  # a static binarisation differs by seed: such members cannot share their data
        if len({id(splits[m.name]) for m in g.members}) > 1:
            raise ConfigError(
                f"Sweep group {g.name}: members with data.binarize=static and different seeds draw "
                "different data; sweep the seed in separate sweeps, or use data.binarize=dynamic."
            )
    with contextlib.ExitStack() as locks:  # the sweep's workdir and every member's, for the sweep's life
        for directory in [workdir] + [m.workdir for m in members]:
            locks.enter_context(workdir_lib.locked(directory))
        return _run_groups(groups, splits, workdir, execution)


def _run_groups(groups: Sequence[Group], splits: dict, workdir: str, execution: str) -> dict[str, loop.Result]:
    members = [m for g in groups for m in g.members]
    set_aside = {m.name: workdir_lib.check(m.workdir, m.config) for m in members}
    parallel.barrier("vae_jax.sweep_checked")
    if parallel.is_primary():
        for m in members:
            workdir_lib.commit(m.workdir, m.config, set_aside[m.name])
    parallel.barrier("vae_jax.sweep_committed")
    logging.info(
        "Sweep of %d members in %d group(s): %s",
        len(members),
        len(groups),
        "; ".join(f"{g.name} ({len(g.members)})" for g in groups),
    )

    results: dict[str, loop.Result] = {}
    if parallel.is_primary():
        write_results(workdir, groups, results)
    for g in groups:
        if registry.is_fitted(g.config.model):  # fitted, not trained: one member at a time
            for m in g.members:
                metrics = run.train_and_evaluate(m.config, m.workdir)
                results[m.name] = loop.Result(metrics, 0, 0)
        else:
            group_results = loop.train_members(g.members, splits[g.members[0].name], execution=execution)
            results.update({m.name: r for m, r in zip(g.members, group_results)})
        if parallel.is_primary():
            write_results(workdir, groups, results)
    return {m.name: results[m.name] for m in members}


def load_sweep_file(path: str) -> list[dict]:
    """``get_sweep()`` of the config file at ``path`` (the module ``get_config`` comes from)."""
    spec = importlib.util.spec_from_file_location("_sweep_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_sweep"):
        raise ConfigError(
            f"{path} defines no get_sweep(): a sweep config returns its members from get_sweep(), "
            "e.g. sweep_spec.product(sweep_spec.values('beta', [1, 2]), ...)."
        )
    return list(module.get_sweep())


def member_params(config, sweep: Sequence[dict], workdir: str) -> dict[str, Any]:
    """``{member name: parameters}`` of a sweep's trained members (each restored from its own
    workdir as `run.restore` restores a run; members without a checkpoint are left out)."""
    params = {}
    for member, _ in expand(config_lib.resolve(config), sweep, workdir):
        try:
            params[member.name] = run.restore(member.workdir)[3]
        except ConfigError:
            continue
    return params
