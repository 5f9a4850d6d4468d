"""Sweeps: many trainings of one base config, the shape-compatible ones in one program.

A sweep is code in a config file (see ``configs/sweeps/beta.py``): ``get_config()`` gives
the base config and ``get_sweep()`` a list of override dicts with flat dotted keys, built
with `values`, `product`, `chain` and `zipped`::

    sweep.product(sweep.values("beta", [0.5, 1, 2, 4]), sweep.values("seed", [0, 1, 2]))
    # -> [{'beta': 0.5, 'seed': 0}, {'beta': 0.5, 'seed': 1}, ..., {'beta': 4, 'seed': 2}]

`run_sweep(config, overrides, workdir)` trains every member and writes one table of their
final test metrics (``sweep_results.json`` and ``.md``) plus each member's usual outputs in
``workdir/<member-name>/`` (config.json, metrics.jsonl, final_metrics.json, figures).

Design:
- Members that differ only in `VMAPPED_KEYS` (seed, beta, c, learning rate, KL warm-up;
  values that change no shape) form a *group* trained as K models in one compiled program:
  `jax.vmap` of the single run's fused epoch (`train.make_train_epoch` of
  `train.make_train_step`) over stacked parameters, optimiser states, data orders and keys.
  Each member draws the keys of `train.run_keys(seed)` and the data orders of
  `train.epoch_order`, so it sees exactly the data and randomness of its separate run.
- Per-member hyperparameters are traced values: beta, c and the KL warm-up length live in
  the state (`SweepState.hyper`) and reach `objectives.vae_fns` through a `ConfigOverlay`;
  the learning rate lives in the optimiser state (`optax.inject_hyperparams`, inside the same
  `optax.apply_if_finite` as `train.make_optimizer`). Results equal separate runs up to
  float rounding (the tests check 1e-5 relative).
- Other differences (latents, widths, dataset, architecture, epochs, ...) make separate
  groups, trained one after another; PCA members are fitted one by one.
- A group's stacked state is checkpointed (orbax, `vae_jax.checkpoints`) in
  ``workdir/group-<name>/checkpoints`` every ``checkpoint_every_epochs``; a re-run resumes
  it, and a finished group with all its final metrics is not trained or evaluated again.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import time
from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax.training import train_state

from vae_jax import checkpoints, data, objectives, selection, train, validation

# Values trained together in one program (they change no array shape).
VMAPPED_KEYS = ("seed", "beta", "c", "optimizer.learning_rate", "kl_warmup_steps")
RESULTS_NAME = "sweep_results"
# Columns of the Markdown table, in this order when present.
METRIC_ORDER = ("loss", "neg_elbo", "reconstruction", "kl", "squared_error", "mse")

Overrides = dict[str, Any]


# ----------------------------------------------------------------------------- sweep helpers


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
        raise validation.ConfigError(f"sweep.zipped needs sweeps of equal lengths, got {sorted(lengths)}.")
    return [functools.reduce(lambda a, b: {**a, **b}, members, {}) for members in zip(*sweeps)]


def fixed(**overrides) -> list[Overrides]:
    """One member with these (undotted) overrides, e.g. to chain a baseline into a sweep."""
    return [dict(overrides)]


# ----------------------------------------------------------------------------- members and groups


def _format_value(value) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(_format_value(v) for v in value)
    return str(value)


def member_name(overrides: Overrides) -> str:
    """A directory name for a member, e.g. ``beta=0.5_seed=0`` (``base`` without overrides)."""
    if not overrides:
        return "base"
    text = "_".join(f"{key}={_format_value(value)}" for key, value in overrides.items())
    return re.sub(r"[^A-Za-z0-9._,=+-]", "", text)


def apply_overrides(config: ml_collections.ConfigDict, overrides: Overrides) -> ml_collections.ConfigDict:
    """A copy of ``config`` with the dotted ``overrides`` set; unknown keys or wrong types
    raise `validation.ConfigError`."""
    config = ml_collections.ConfigDict(config.to_dict())  # a deep copy
    config.lock()
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = config
        try:
            for part in parents:
                node = node[part]
            if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
                raise KeyError(key)
            node[leaf] = value
        except (KeyError, AttributeError, TypeError) as error:
            detail = "no such config value" if isinstance(error, (KeyError, AttributeError)) else str(error)
            raise validation.ConfigError(f"Sweep override {key}={value!r} is invalid ({detail}): use the dotted "
                                         "name of a value in the base config, e.g. 'optimizer.learning_rate'.") from None
    return config


@dataclasses.dataclass
class Member:
    """One training of the sweep."""

    name: str
    overrides: Overrides
    config: ml_collections.ConfigDict
    workdir: str
    group: str = ""


@dataclasses.dataclass
class Group:
    """Members that differ only in `VMAPPED_KEYS`: one compiled program (or PCA fits)."""

    name: str
    members: list[Member]

    @property
    def config(self) -> ml_collections.ConfigDict:
        return self.members[0].config


def expand(config: ml_collections.ConfigDict, sweep: Sequence[Overrides], workdir: str) -> list[Member]:
    """The members of ``sweep`` (override dicts) on top of ``config``, validated."""
    if not sweep:
        raise validation.ConfigError("The sweep has no members: get_sweep() returned an empty list.")
    members, seen = [], {}
    for overrides in sweep:
        overrides = dict(overrides)
        name = member_name(overrides)
        if name in seen:
            raise validation.ConfigError(f"The sweep lists the member {name!r} twice ({seen[name]} and {overrides}).")
        seen[name] = overrides
        member_config = apply_overrides(config, overrides)
        try:
            validation.validate_config(member_config)
            if selection.selects_on_validation(member_config):
                raise validation.ConfigError("sweeps train every member to the end: use --config.model_selection=last.")
        except validation.ConfigError as error:
            raise validation.ConfigError(f"Sweep member {name}: {error}") from None
        members.append(Member(name, overrides, member_config, os.path.join(workdir, name)))
    return members


def group_members(members: Sequence[Member]) -> list[Group]:
    """Groups of members whose configs agree except in `VMAPPED_KEYS` (in first-seen order).

    A group is named after its members' shape-changing overrides (``group`` when there are
    none): e.g. ``group-model.latents=2``."""
    groups: dict[str, Group] = {}
    for member in members:
        config = member.config.to_dict()
        for key in VMAPPED_KEYS:
            *parents, leaf = key.split(".")
            functools.reduce(lambda node, part: node[part], parents, config).pop(leaf, None)
        key = json.dumps(config, sort_keys=True, default=str)
        if key not in groups:
            shape_overrides = {k: v for k, v in member.overrides.items() if k not in VMAPPED_KEYS}
            name = "group" + (f"-{member_name(shape_overrides)}" if shape_overrides else "")
            while any(g.name == name for g in groups.values()):
                name += "+"
            groups[key] = Group(name, [])
        groups[key].members.append(member)
        member.group = groups[key].name
    return list(groups.values())


# ----------------------------------------------------------------------------- traced hyperparameters


class ConfigOverlay:
    """A read-only view of a config in which some top-level values are replaced (e.g. by
    tracers): ``overlay.beta``, ``overlay['beta']`` and ``overlay.get('beta')`` see the
    replacement, everything else is the base config's."""

    def __init__(self, base, **replacements):
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_replacements", replacements)

    def __getattr__(self, name):
        replacements = object.__getattribute__(self, "_replacements")
        if name in replacements:
            return replacements[name]
        return getattr(object.__getattribute__(self, "_base"), name)

    def __getitem__(self, name):
        return self.__getattr__(name)

    def __contains__(self, name) -> bool:
        return name in self._replacements or name in self._base

    def get(self, name, default=None):
        return self._replacements[name] if name in self._replacements else self._base.get(name, default)

    def __setattr__(self, name, value):
        raise AttributeError("ConfigOverlay is read-only.")


class SweepState(train_state.TrainState):
    """A member's `TrainState` plus its traced hyperparameters ``hyper`` (beta, c,
    kl_warmup_steps); the learning rate is in ``opt_state`` (`optax.inject_hyperparams`)."""

    hyper: Any = None


def member_hyper(config) -> dict[str, jax.Array]:
    return {"beta": jnp.asarray(config.beta, jnp.float32), "c": jnp.asarray(config.c, jnp.float32),
            "kl_warmup_steps": jnp.asarray(config.kl_warmup_steps, jnp.int32)}


def make_optimizer(optimizer_config, total_steps: int) -> optax.GradientTransformation:
    """`train.make_optimizer`'s chain (Adam with its schedule, inside `optax.apply_if_finite`)
    with the (peak) learning rate a value of the optimiser state, so members may differ in it."""

    def adam(learning_rate):
        return optax.adam(train.learning_rate_schedule(optimizer_config, total_steps, learning_rate))

    injected = optax.inject_hyperparams(adam)(learning_rate=optimizer_config.learning_rate)
    return optax.apply_if_finite(injected, max_consecutive_errors=train.MAX_SKIPPED_STEPS)


def _with_learning_rate(opt_state, learning_rate: float):
    """``opt_state`` of `make_optimizer` with its learning rate set to ``learning_rate``."""
    injected = opt_state.inner_state
    hyperparams = {**injected.hyperparams, "learning_rate": jnp.asarray(learning_rate, jnp.float32)}
    return opt_state._replace(inner_state=injected._replace(hyperparams=hyperparams))


def member_fns(model, config, hyper) -> objectives.ModelFns:
    """The `ModelFns` of ``config``'s kind with beta and c taken from ``hyper`` (tracers)."""
    if config.model.kind == "vae":
        return objectives.vae_fns(model, ConfigOverlay(config, beta=hyper["beta"], c=hyper["c"]))
    return objectives.autoencoder_fns(model, config)


def make_member_step(model, config):
    """`train.make_train_step` of one member, its hyperparameters read from ``state.hyper``."""

    def step(state, batch, rng):
        fns = member_fns(model, config, state.hyper)
        warmup = state.hyper["kl_warmup_steps"]
        # train.make_train_step's warm-up weight, with the number of steps traced.
        weight = jnp.where(warmup > 0, jnp.minimum(1.0, (state.step + 1) / jnp.maximum(warmup, 1)), 1.0)
        metrics_fn = fns.per_example_metrics
        fns = fns._replace(per_example_metrics=lambda p, x, r, kl_weight=1.0: metrics_fn(p, x, r, kl_weight=weight))
        inner = train.make_train_step(fns, dynamic_binarization=config.data.binarize == "dynamic", kl_warmup_steps=0)
        return inner(state, batch, rng)

    return step


def make_group_epoch(model, config, *, shared_images: bool = True):
    """``(states, images, orders, train_keys) -> (states, metrics)``: one epoch of every
    member (leading axis K) in one compiled program; ``images`` is shared or ``[K, ...]``."""
    member_epoch = train.make_train_epoch(make_member_step(model, config), fused=True)
    batched = jax.vmap(member_epoch, in_axes=(0, None if shared_images else 0, 0, 0))
    return jax.jit(batched, donate_argnums=0)


def make_group_evaluate(model, config, batch_size: int, *, shared_images: bool = True):
    """``(params, hyper, images, eval_keys) -> [{metric: mean}] per member``, like
    `train.make_evaluate` (same chunks, padding and keys) for K members at once."""

    @jax.jit
    def chunk_sums(params, hyper, chunk, mask, keys, start):
        def one(p, h, x, key):
            metrics = member_fns(model, config, h).per_example_metrics(p, x, jax.random.fold_in(key, start))
            return {name: jnp.sum(jnp.where(mask, value, 0.0)) for name, value in metrics.items()}

        return jax.vmap(one, in_axes=(0, 0, None if shared_images else 0, 0))(params, hyper, chunk, keys)

    def evaluate(params, hyper, images, keys) -> list[dict[str, float]]:
        axis = 0 if shared_images else 1
        num = images.shape[axis]
        size = min(batch_size, num)
        totals = None
        for start in range(0, num, size):
            chunk = images[start:start + size] if shared_images else images[:, start:start + size]
            filled = chunk.shape[axis]
            mask = np.arange(size) < filled
            if filled < size:
                pad_shape = list(chunk.shape)
                pad_shape[axis] = size - filled
                chunk = np.concatenate([chunk, np.zeros(pad_shape, chunk.dtype)], axis=axis)
            sums = chunk_sums(params, hyper, chunk, mask, keys, np.uint32(start))
            totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
        totals = jax.device_get(totals)
        count = len(keys)
        return [{name: float(total[i]) / num for name, total in totals.items()} for i in range(count)]

    return evaluate


def stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree: Any, index: int) -> Any:
    return jax.tree.map(lambda leaf: leaf[index], tree)


# ----------------------------------------------------------------------------- data and workdirs


def _load(config, cache: dict) -> dict:
    """The splits of ``config.data``, loaded as `train.train_and_evaluate` loads them (grey
    levels; a dynamic binarisation is drawn in the step), once per dataset."""
    key = (config.data.name, config.data.data_dir, config.data.download)
    if key not in cache:
        cache[key] = data.load_dataset(config.data.name, data_dir=config.data.data_dir or None,
                                       download=config.data.download, seed=config.seed)
    return cache[key]


MEMBERS_FILE = "members.json"


def _group_dir(workdir: str, group: Group) -> str:
    return os.path.join(workdir, group.name)


def _check_group_dir(directory: str, group: Group, members_set_aside: bool) -> bool:
    """Whether the group's checkpoints belong to other members (and ``overwrite`` allows
    setting them aside); raises `ConfigError` otherwise. Changes nothing."""
    names = [m.name for m in group.members]
    path = os.path.join(directory, MEMBERS_FILE)
    has_checkpoints = os.path.isdir(os.path.join(directory, "checkpoints")) and bool(
        os.listdir(os.path.join(directory, "checkpoints")))
    old = None
    if os.path.exists(path):
        try:
            with open(path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = "unreadable"
    stale = members_set_aside or (old is not None and old != names) or (old is None and has_checkpoints)
    if stale and has_checkpoints and not group.config.get("overwrite", False):
        raise validation.ConfigError(
            f"{directory!r} holds the checkpoints of another sweep group (members {old}, now {names}): use a new "
            "--workdir, or pass --config.overwrite=True to start the group over (its checkpoints are moved to "
            f"{directory}/previous-<time>/, not deleted).")
    return stale and has_checkpoints


def _commit_group_dir(directory: str, group: Group, set_aside: bool) -> None:
    os.makedirs(directory, exist_ok=True)
    if set_aside:
        previous = os.path.join(directory, "previous-" + time.strftime("%Y%m%d-%H%M%S"))
        os.makedirs(previous, exist_ok=True)
        for name in ("checkpoints", "damaged-checkpoints", MEMBERS_FILE):
            if os.path.exists(os.path.join(directory, name)):
                os.replace(os.path.join(directory, name), os.path.join(previous, name))
        logging.warning("--config.overwrite=True: moved the group's earlier checkpoints to %s.", previous)
    path = os.path.join(directory, MEMBERS_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump([m.name for m in group.members], f, indent=2)
    os.replace(path + ".tmp", path)


def _write_json(path: str, value) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)


def _format_duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s"


def _read_final(member: Member) -> dict[str, float] | None:
    try:
        with open(os.path.join(member.workdir, "final_metrics.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- training a group


def initial_group_state(group: Group, model, image_shape, total_steps: int) -> SweepState:
    """The stacked initial states: each member initialised as its separate run would be."""
    tx = make_optimizer(group.config.optimizer, total_steps)
    states = []
    for member in group.members:
        _, member_model = train.model_fns(member.config, image_shape)  # c may set the initial variance
        state = train.create_train_state(member_model, image_shape, tx, train.run_keys(member.config.seed)["init"])
        fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
        fields.update(apply_fn=model.apply, hyper=member_hyper(member.config),
                      opt_state=_with_learning_rate(state.opt_state, member.config.optimizer.learning_rate))
        states.append(SweepState(**fields))
    return stack(states)


def _finish_member(member: Member, params, splits, image_shape, metrics: dict[str, float]) -> None:
    """Figures and final_metrics.json of one member, as `train.train_and_evaluate` writes them."""
    if jax.process_index() != 0:
        return
    fns, _ = train.model_fns(member.config, image_shape)
    train.save_figures(member.config, fns, params, splits, member.workdir, train.run_keys(member.config.seed)["eval"])
    _write_json(os.path.join(member.workdir, "final_metrics.json"), metrics)


def train_group(group: Group, splits: dict, workdir: str) -> list[dict[str, float]]:
    """Trains the group's members together on ``splits`` (resuming its checkpoint); returns
    their final test metrics and writes their outputs."""
    config = group.config
    members = group.members
    train_images, test_images = jnp.asarray(splits["train"].images), splits["test"].images
    image_shape = train_images.shape[1:]
    num_train = len(train_images)
    steps_per_epoch = num_train // config.batch_size
    total_steps = steps_per_epoch * config.num_epochs
    _, model = train.model_fns(config, image_shape)
    keys = [train.run_keys(m.config.seed) for m in members]
    data_keys = [k["data"] for k in keys]
    train_keys = jnp.stack([k["train"] for k in keys])
    eval_keys = jnp.stack([k["eval"] for k in keys])

    state = initial_group_state(group, model, image_shape, total_steps)
    manager = checkpoints.open_manager(_group_dir(workdir, group))
    restored = checkpoints.restore_latest(manager, state)
    if restored is not None:
        member_values = lambda s: (s.hyper, s.opt_state.inner_state.hyperparams)  # beta, c, warm-up, lr
        if checkpoints.tree_digest(member_values(restored)) != checkpoints.tree_digest(member_values(state)):
            raise checkpoints.CheckpointError(
                    f"The checkpoint in {manager.directory} holds other hyperparameters than the group's members: "
                    "move that directory away, or use another --workdir.")
        state = restored
        logging.info("Group %s: resuming %d members from the checkpoint at step %d.", group.name, len(members),
                     int(state.step[0]))
    step = int(state.step[0])
    start_epoch = step // steps_per_epoch
    evaluate = make_group_evaluate(model, config, config.eval_batch_size)

    finals = [_read_final(m) for m in members]
    if start_epoch >= config.num_epochs and all(f is not None for f in finals):
        manager.close()
        logging.info("Group %s: finished (step %d) and evaluated; nothing to do.", group.name, step)
        return finals

    logs = [train.MetricsLog(m.workdir) for m in members]
    for log in logs:
        log.truncate(step)
    logging.info("Group %s: %d members (%s) in one program; %d steps of %d examples per epoch each.",
                 group.name, len(members), ", ".join(m.name for m in members), steps_per_epoch, config.batch_size)
    group_epoch = make_group_epoch(model, config)
    skipped_before = np.asarray(state.opt_state.total_notfinite)
    run_start = time.perf_counter()
    for epoch in range(start_epoch, config.num_epochs):
        epoch_start = time.perf_counter()
        orders = jnp.stack([train.epoch_order(k, epoch, num_train, config.batch_size) for k in data_keys])
        state, train_metrics = group_epoch(state, train_images, orders, train_keys)
        train_metrics = jax.device_get(train_metrics)
        seconds = time.perf_counter() - epoch_start
        step = int(state.step[0])
        skipped = np.asarray(state.opt_state.total_notfinite) - skipped_before
        for i, member in enumerate(members):
            if skipped[i]:
                message = (f"Sweep member {member.name}: {int(skipped[i])} step(s) up to step {step} had a "
                           "non-finite loss or gradient; their updates were skipped (the parameters stay finite).")
                if member.config.nonfinite == "stop":
                    raise train.NonFiniteError(message + " Stopping before the next checkpoint "
                                               "(config.nonfinite='stop'); lower the learning rate.")
                logging.warning(message)
        skipped_before = skipped_before + skipped
        test_metrics = evaluate(state.params, state.hyper, test_images, eval_keys)
        rate = steps_per_epoch * config.batch_size / seconds
        for i, log in enumerate(logs):
            extra = {"nonfinite_steps": int(skipped[i])} if skipped[i] else {}
            log.write(step, "train", {name: float(value[i]) for name, value in train_metrics.items()},
                      epoch=epoch + 1, examples_per_second=rate, **extra)
            log.write(step, "test", test_metrics[i], epoch=epoch + 1)
        if (epoch + 1) % config.checkpoint_every_epochs == 0 or epoch + 1 == config.num_epochs:
            checkpoints.save(manager, step, state)
        done = epoch + 1 - start_epoch
        eta = (time.perf_counter() - run_start) / done * (config.num_epochs - epoch - 1)
        losses = [m["loss"] for m in test_metrics]
        logging.info("group %s epoch %d/%d  step %d/%d  test loss min %.3f max %.3f  %.0f examples/s "
                     "(%d members x %.0f)  ETA %s", group.name, epoch + 1, config.num_epochs, step, total_steps,
                     min(losses), max(losses), rate * len(members), len(members), rate,
                     _format_duration(eta))
    manager.close()

    finals = evaluate(state.params, state.hyper, test_images, eval_keys)
    for i, member in enumerate(members):
        _finish_member(member, unstack(state.params, i), splits, image_shape, finals[i])
        logs[i].close()
    return finals


# ----------------------------------------------------------------------------- the sweep


def write_results(workdir: str, members: Sequence[Member], results: dict[str, dict | None]) -> dict:
    """``sweep_results.json`` and ``sweep_results.md``: one row per member (final test
    metrics, or pending)."""
    rows = []
    for m in members:
        rows.append({"name": m.name, "group": m.group, "overrides": m.overrides,
                     "workdir": os.path.relpath(m.workdir, workdir), "metrics": results.get(m.name)})
    table = {"members": rows}
    _write_json(os.path.join(workdir, f"{RESULTS_NAME}.json"), json.loads(json.dumps(table, default=str)))
    keys = list(dict.fromkeys(k for m in members for k in m.overrides))
    metric_names = list(dict.fromkeys(n for r in results.values() if r for n in r))
    metric_names = [n for n in METRIC_ORDER if n in metric_names] + [n for n in metric_names if n not in METRIC_ORDER]
    header = ["member", "group", *keys, *metric_names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in members:
        metrics = results.get(m.name)
        cells = [m.name, m.group, *(_format_value(m.overrides.get(k, "")) for k in keys)]
        cells += [f"{metrics[n]:.4g}" if metrics and n in metrics else "pending" for n in metric_names]
        lines.append("| " + " | ".join(cells) + " |")
    text = "Final test metrics per member (per example: nats, squared error per image).\n\n" + "\n".join(lines) + "\n"
    with open(os.path.join(workdir, f"{RESULTS_NAME}.md") + ".tmp", "w") as f:
        f.write(text)
    os.replace(os.path.join(workdir, f"{RESULTS_NAME}.md") + ".tmp", os.path.join(workdir, f"{RESULTS_NAME}.md"))
    return table


def run_sweep(config: ml_collections.ConfigDict, sweep: Sequence[Overrides], workdir: str) -> dict[str, dict[str, float]]:
    """Trains every member of ``sweep`` (override dicts on ``config``) in ``workdir``;
    returns ``{member name: final test metrics}`` and writes the results table.

    Everything is checked (configs, data shapes, member and group workdirs) before anything
    in the workdir changes or compiles."""
    if jax.process_count() > 1:
        raise validation.ConfigError("A sweep runs in one process (its groups use one device); start "
                                     "experiments.sweep without a multi-process launcher.")
    members = expand(config, sweep, workdir)
    groups = group_members(members)
    cache: dict = {}
    splits = {m.name: _load(m.config, cache) for m in members}
    for m in members:
        try:
            validation.validate_against_data(m.config, splits[m.name]["train"].images.shape)
        except validation.ConfigError as error:
            raise validation.ConfigError(f"Sweep member {m.name}: {error}") from None
    os.makedirs(workdir, exist_ok=True)
    set_aside = {m.name: validation.check_workdir(m.workdir, m.config) for m in members}
    group_set_aside = {g.name: _check_group_dir(_group_dir(workdir, g), g, any(set_aside[m.name] for m in g.members))
                       for g in groups if g.config.model.kind != "pca"}
    for m in members:
        if m.config.model.kind != "pca":
            validation.commit_workdir(m.workdir, m.config, set_aside[m.name])
    for g in groups:
        if g.config.model.kind != "pca":
            _commit_group_dir(_group_dir(workdir, g), g, group_set_aside[g.name])
    logging.info("Sweep of %d members in %d group(s): %s", len(members), len(groups),
                 "; ".join(f"{g.name} ({len(g.members)})" for g in groups))

    results: dict[str, dict | None] = {}
    write_results(workdir, members, results)
    for g in groups:
        if g.config.model.kind == "pca":  # fitted, not trained: one member at a time
            finals = [train.train_and_evaluate(m.config, m.workdir) for m in g.members]
        else:
            finals = train_group(g, splits[g.members[0].name], workdir)
        results.update({m.name: f for m, f in zip(g.members, finals)})
        write_results(workdir, members, results)
    return {m.name: results[m.name] for m in members}


def member_params(config: ml_collections.ConfigDict, sweep: Sequence[Overrides], workdir: str) -> dict[str, Any]:
    """``{member name: parameters}`` from the latest group checkpoints of a sweep in
    ``workdir`` (trained members of AE/VAE groups; a member without a checkpoint is left out)."""
    params = {}
    for group in group_members(expand(config, sweep, workdir)):
        if group.config.model.kind == "pca":
            continue
        image_shape = data.image_shape(group.config.data.name)
        _, model = train.model_fns(group.config, image_shape)
        template = initial_group_state(group, model, image_shape, total_steps=1)  # the schedule's length: no shape
        manager = checkpoints.open_manager(_group_dir(workdir, group))
        restored = checkpoints.restore_latest(manager, template)
        manager.close()
        if restored is not None:
            params.update({m.name: unstack(restored.params, i) for i, m in enumerate(group.members)})
    return params


def load_sweep_file(path: str):
    """``get_sweep()`` of the config file at ``path`` (the module ``get_config`` comes from)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_sweep_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_sweep"):
        raise validation.ConfigError(f"{path} defines no get_sweep(): a sweep config returns its members from "
                                     "get_sweep(), e.g. sweep.product(sweep.values('beta', [1, 2]), ...).")
    return list(module.get_sweep())
