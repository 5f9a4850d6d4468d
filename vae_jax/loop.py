"""The one training loop: K >= 1 members trained epoch by epoch, for a run and for a sweep.

A single run is one member (`vae_jax.run`); a sweep group is K members that differ only in
values that change no shape (seed, beta, c, free bits, KL warm-up, learning rate;
`vae_jax.sweep`). Every member gets everything a run has, in its own workdir (a complete run
that ``experiments.evaluate`` reads like any other):

- restore: each member's latest intact checkpoint (`vae_jax.checkpoints`); the members
  continue from a common step, and ``metrics.jsonl`` is cut back to it;
- non-finite handling: skipped updates are counted and logged; ``nonfinite='stop'`` stops
  before the next checkpoint;
- logging (``metrics.jsonl``, TensorBoard), one progress line per epoch with rate and ETA,
  checkpoints every ``checkpoint_every_epochs``;
- model selection on the validation split and early stopping (`vae_jax.selection`), per
  member: a member that stops keeps its selected state while the others go on;
- the final evaluation on the test split (once, on the selected state), figures and
  ``final_metrics.json``.

How the members' epochs run (`EXECUTIONS`, chosen by `choose_execution`):
- ``in_turn``: one after another, each with a run's own un-vmapped program (its
  hyperparameters compiled in). One member is exactly a single run's program, so a single
  run's results are those of the programs it always had; sweep members equal their
  separate runs bit for bit.
- ``vmap``: all members in one compiled program (`train.make_members_epoch`), their
  hyperparameters traced from their states. Equal to separate runs up to float rounding;
  pays where one member does not fill the device (GPUs, small models).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.sharding import Mesh

from vae_jax import checkpoints, faults, model_figures, objectives, parallel, preemption, selection, train
from vae_jax import workdir as workdir_lib
from vae_jax.errors import Interrupted, NonFiniteError, WriteError

EXECUTIONS = ("auto", "vmap", "in_turn")
# On a CPU, members with more parameters than this run in turn: a vmapped program of
# reference-sized models (784-400-20, 0.65M parameters) is slower than separate runs there
# (compute-bound), while small ones (64-32-2) gain from sharing a program.
CPU_VMAP_MAX_PARAMETERS = 100_000


@dataclasses.dataclass
class Member:
    """One training: a name (for logs), its resolved config and its workdir."""

    name: str
    config: Any
    workdir: str


@dataclasses.dataclass
class Result:
    """A member's final test metrics and the epoch whose state they are of."""

    metrics: dict[str, float]
    kept_epoch: int
    trained_epochs: int


def choose_execution(requested: str, num_members: int, num_parameters: int) -> str:
    """``in_turn`` or ``vmap`` for ``requested`` (`EXECUTIONS`): ``auto`` vmaps on an
    accelerator, and on a CPU only models of at most `CPU_VMAP_MAX_PARAMETERS` parameters."""
    if requested != "auto":
        return requested
    if num_members == 1:
        return "in_turn"
    if jax.default_backend() != "cpu" or num_parameters <= CPU_VMAP_MAX_PARAMETERS:
        return "vmap"
    return "in_turn"


def format_duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s"


@jax.jit
def _stack(trees: list) -> Any:
    """The trees stacked along a new leading (member) axis, in one compiled call."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


@functools.partial(jax.jit, static_argnums=1)
def _unstack(tree: Any, count: int) -> list:
    """The ``count`` trees of a stacked tree, in one compiled call."""
    return [jax.tree.map(lambda leaf: leaf[i], tree) for i in range(count)]


@dataclasses.dataclass
class _Training:
    """The loop's record of one member."""

    member: Member
    keys: dict
    hyper: objectives.Hyper  # Python numbers: compiled into the member's own programs
    warmup_steps: int
    state: Any
    log: workdir_lib.MetricsLog
    manager: Any
    best_manager: Any
    best: selection.BestEpoch
    stopped: bool = False
    skipped_before: int = 0

    @property
    def step(self) -> int:
        return int(self.state.step)


def _restore(trainings: list[_Training], steps_per_epoch: int, select: bool) -> int:
    """Restores every member's latest checkpoint and brings the members that still train to
    one step (a member ahead of the others, e.g. killed between two members' saves, goes back
    to its checkpoint at that step). Returns that step."""
    initial = {id(t): t.state for t in trainings}
    for t in trainings:
        restored = checkpoints.restore_latest(t.manager, t.state)
        if restored is not None:
            t.state = restored
        t.best = selection.BestEpoch.from_log(t.log.path, t.step, t.member.config.early_stopping_patience)
        t.stopped = select and t.best.should_stop(t.step // steps_per_epoch)
    while True:
        going = [t for t in trainings if not t.stopped]
        common = min((t.step for t in going), default=0)
        ahead = [t for t in going if t.step > common]
        if not ahead:
            return common
        for t in ahead:
            restored = checkpoints.restore_latest(t.manager, initial[id(t)], max_step=common)
            t.state = initial[id(t)] if restored is None else restored
            t.best = selection.BestEpoch.from_log(t.log.path, t.step, t.member.config.early_stopping_patience)


def _check_finite(t: _Training, several: bool) -> dict:
    """Counts the member's skipped (non-finite) steps of the epoch; raises with
    ``nonfinite='stop'``. Returns the extra fields of its log line."""
    skipped = int(t.state.opt_state.total_notfinite) - t.skipped_before
    if not skipped:
        return {}
    who = f"Sweep member {t.member.name}: " if several else ""
    message = (
        f"{who}{skipped} step(s) up to step {t.step} had a non-finite loss or gradient; their "
        "updates were skipped (the parameters stay finite)."
    )
    if t.member.config.nonfinite == "stop":
        raise NonFiniteError(
            message + " Stopping before the next checkpoint (config.nonfinite='stop'); "
            "lower the learning rate or check the data for NaNs."
        )
    logging.warning(message)
    t.skipped_before += skipped
    return {"nonfinite_steps": skipped}


def _progress(
    epoch: int, config, step: int, total_steps: int, eval_split: str, rows: list, rate: float, eta: float, active: int
) -> str:
    """The epoch's progress line; ``rows`` are ``(train metrics, eval metrics)`` per member."""
    if len(rows) == 1:
        ((train_metrics, eval_metrics),) = rows
        details = "  ".join(f"{k} {v:.3f}" for k, v in eval_metrics.items() if k != "loss")
        return (
            f"epoch {epoch}/{config.num_epochs}  step {step}/{total_steps}  train loss "
            f"{train_metrics['loss']:.3f}  {eval_split} loss {eval_metrics['loss']:.3f}  {details}  "
            f"{rate:.0f} examples/s  ETA {format_duration(eta)}"
        )
    train_losses = [r[0]["loss"] for r in rows]
    eval_losses = [r[1]["loss"] for r in rows]
    return (
        f"epoch {epoch}/{config.num_epochs}  step {step}/{total_steps}  {active} member(s) training  train "
        f"loss {min(train_losses):.3f}..{max(train_losses):.3f}  {eval_split} loss {min(eval_losses):.3f}.."
        f"{max(eval_losses):.3f}  {rate:.0f} examples/s  ETA {format_duration(eta)}"
    )


def initial_states(configs: Sequence, image_shape, total_steps: int, steps_per_epoch: int) -> list:
    """Each member's initial `train.TrainState`, as its single run initialises it, all with one
    optimiser and one ``apply_fn`` (each state holds its own learning rate), so they stack."""
    _, model = train.model_fns(configs[0], image_shape)
    tx = train.make_optimizer(configs[0].optimizer, total_steps)
    states = []
    for config in configs:
        _, member_model = train.model_fns(config, image_shape)  # c may set a learned variance's start
        warmup = train.kl_warmup_steps(config, steps_per_epoch)
        state = train.create_train_state(
            member_model, image_shape, config, total_steps, train.run_keys(config.seed)["init"], warmup, tx=tx
        )
        learning_rate = train.with_learning_rate(state.opt_state, config.optimizer.learning_rate)
        states.append(state.replace(apply_fn=model.apply, opt_state=learning_rate))
    return states


def _check_space(trainings: list[_Training]) -> None:
    """Refuses to start when the workdir's filesystem clearly cannot hold one checkpoint of
    each member (its parameters and optimiser state, uncompressed)."""
    needed = sum(leaf.nbytes for t in trainings for leaf in jax.tree.leaves(t.state))
    free = shutil.disk_usage(trainings[0].member.workdir).free
    if free < needed:
        raise WriteError(
            f"{trainings[0].member.workdir} has {free / 1e6:.1f} MB free, less than the {needed / 1e6:.1f} MB that "
            f"one checkpoint{' of each member' if len(trainings) > 1 else ''} needs: free space on that filesystem "
            "or use another --workdir."
        )


def finish(
    config, fns, evaluate, params, splits, workdir: str, eval_key: jax.Array, mesh: Mesh, log
) -> dict[str, float]:
    """The final test metrics of ``params`` by ``evaluate`` (`train.make_evaluate`), written to
    ``final_metrics.json``, and the figures, by process 0. Returns the metrics."""
    test_metrics = evaluate(params, splits["test"].images, parallel.replicate(eval_key, mesh), objectives.hyper(config))
    if log.active:  # process 0 alone: on host copies of the parameters
        with workdir_lib.writing(os.path.join(workdir, "*.png")):
            model_figures.save_figures(config, fns, parallel.to_host(params), splits, workdir, eval_key)
        workdir_lib.write_json(os.path.join(workdir, workdir_lib.FINAL_METRICS), test_metrics)
    return test_metrics


def train_members(
    members: Sequence[Member], splits: dict, *, mesh: Mesh | None = None, execution: str = "auto"
) -> list[Result]:
    """Trains ``members`` (configs equal but for `vae_jax.sweep.VMAPPED_KEYS`) on ``splits``,
    data parallel over ``mesh`` (default: every device), resuming from their workdirs.
    Returns each member's final test metrics; writes their outputs (see the module docstring).
    Members whose runs are complete (trained, or stopped early, and evaluated) are not
    trained or evaluated again."""
    mesh = parallel.data_mesh() if mesh is None else mesh
    config = members[0].config
    several = len(members) > 1
    image_shape = splits["train"].images.shape[1:]
    num_train = len(splits["train"].images)  # the real rows: `epoch_order` never picks a padding row
    steps_per_epoch = num_train // config.batch_size
    total_steps = steps_per_epoch * config.num_epochs
    select = selection.selects_on_validation(config)
    eval_split = "valid" if select else "test"  # the test split is evaluated once, at the end
    fns, model = train.model_fns(config, image_shape)
    evaluate = train.make_evaluate(fns, config.eval_batch_size, mesh)  # every epoch's, and the final one
    train_images = parallel.shard_rows(splits["train"].images, mesh)  # padded to a multiple of the devices

    states = initial_states([m.config for m in members], image_shape, total_steps, steps_per_epoch)
    trainings = []
    for member, state in zip(members, states):
        keys = train.run_keys(member.config.seed)
        warmup = train.kl_warmup_steps(member.config, steps_per_epoch)
        state, keys = parallel.replicate((state, keys), mesh)  # the restore target is then replicated too
        log = workdir_lib.MetricsLog(member.workdir)
        manager = checkpoints.open_manager(member.workdir)
        best_manager = checkpoints.open_manager(member.workdir, name=selection.CHECKPOINT_DIR) if select else None
        trainings.append(
            _Training(
                member,
                keys,
                objectives.hyper(member.config),
                warmup,
                state,
                log,
                manager,
                best_manager,
                selection.BestEpoch(),
            )
        )
    num_parameters = sum(leaf.size for leaf in jax.tree.leaves(trainings[0].state.params))
    execution = choose_execution(execution, len(members), num_parameters)
    logging.info(
        "Model %s with %d parameters; %d steps of %d examples per epoch, %d per device on %d device(s) "
        "of %d process(es).",
        type(model).__name__,
        num_parameters,
        steps_per_epoch,
        config.batch_size,
        config.batch_size // mesh.size,
        mesh.size,
        jax.process_count(),
    )
    start, stop = parallel.local_rows(train_images)
    logging.info(
        "Training images split by rows over the devices: rows %d-%d of %d (padded to %d) on this "
        "process, %d per device.",
        start,
        min(stop, num_train),
        num_train,
        len(train_images),
        len(train_images) // mesh.size,
    )
    if several:
        logging.info(
            "%d members trained %s (%s).",
            len(members),
            "in one vmapped program" if execution == "vmap" else "in turn, each with its own program",
            ", ".join(m.name for m in members),
        )

    try:
        _check_space(trainings)
        step = _restore(trainings, steps_per_epoch, select)
        for t in trainings:
            if t.step:
                logging.info(
                    "%sResuming from the checkpoint at step %d in %s.",
                    f"{t.member.name}: " if several else "",
                    t.step,
                    t.manager.directory,
                )
            t.log.truncate(t.step)
            # Steps after the resumed one (a member that was ahead of the others) belong to epochs that
            # will be trained again, identically.
            for manager in (t.manager, t.best_manager) if select else (t.manager,):
                for stale in [s for s in manager.all_steps() if s > t.step]:
                    manager.delete(stale)
            t.skipped_before = int(t.state.opt_state.total_notfinite)
        finals = [workdir_lib.read_final_metrics(t.member.workdir) for t in trainings]
        complete = all(t.stopped or t.step >= total_steps for t in trainings) and None not in finals
        if complete:
            logging.info(
                "%s complete and evaluated; nothing to do.", "Every member's run is" if several else "The run is"
            )
        else:
            with preemption.handled():
                _train_epochs(
                    trainings,
                    fns,
                    evaluate,
                    config,
                    train_images,
                    num_train,
                    splits[eval_split].images,
                    eval_split,
                    step,
                    total_steps,
                    mesh,
                    execution,
                    select,
                )

        results = []
        for t, final in zip(trainings, finals):
            t.manager.close()
            params = t.state.params
            if select:
                selected = checkpoints.restore_latest(t.best_manager, t.state)
                t.best_manager.close()
                if selected is None:
                    logging.warning("No validation epoch had a finite criterion; using the last epoch's parameters.")
                else:
                    logging.info(
                        "%sSelected the state of epoch %d (validation criterion %.4f).",
                        f"{t.member.name}: " if several else "",
                        t.best.epoch,
                        t.best.value,
                    )
                    params = selected.params
            if not complete:
                final = finish(
                    t.member.config, fns, evaluate, params, splits, t.member.workdir, t.keys["eval"], mesh, t.log
                )
            t.log.close()
            trained = t.step // steps_per_epoch
            results.append(Result(final, t.best.epoch if select and t.best.epoch else trained, trained))
        return results
    except BaseException:  # a failed write or a stop: what was logged reaches the disk
        for t in trainings:
            with contextlib.suppress(Exception):
                t.log.close()
        raise


class MembersEpoch:
    """One epoch of several members, ``(states, going, images, orders) -> (states, metrics)``,
    in turn (each member with its own program; members with equal hyperparameters share
    one) or in one vmapped program. ``states`` and ``orders`` are per member; a member that
    is not ``going`` keeps its state and gets None metrics."""

    def __init__(
        self,
        fns,
        config,
        hypers: Sequence[tuple[objectives.Hyper, int]],
        train_keys: Sequence,
        execution: str,
        mesh: Mesh | None,
    ):
        self.execution, self.hypers, self.train_keys = execution, list(hypers), list(train_keys)
        dynamic = config.data.binarize == "dynamic"
        if execution == "vmap":
            self.program = train.make_members_epoch(train.make_train_step(fns, dynamic_binarization=dynamic), mesh=mesh)
            self.stacked_keys = _stack(list(self.train_keys))
        else:
            self.programs = {}
            for hyper, warmup in self.hypers:
                if (hyper, warmup) not in self.programs:
                    step_fn = train.make_train_step(
                        fns, dynamic_binarization=dynamic, hyper=hyper, kl_warmup_steps=warmup
                    )
                    self.programs[(hyper, warmup)] = train.make_train_epoch(
                        step_fn, fused=config.fused_epoch, mesh=mesh
                    )

    def __call__(self, states: list, going: Sequence[bool], images, orders: Sequence) -> tuple[list, list]:
        if self.execution == "vmap":
            stacked, metrics = self.program(
                _stack(list(states)), images, jnp.stack(orders), self.stacked_keys, np.asarray(going)
            )
            metrics = jax.device_get(metrics)
            states = _unstack(stacked, len(states))
            return states, [{n: float(v[i]) for n, v in metrics.items()} if g else None for i, g in enumerate(going)]
        states, all_metrics = list(states), []
        for i, (key, g) in enumerate(zip(self.hypers, going)):
            metrics = None
            if g:
                states[i], metrics = self.programs[key](states[i], images, orders[i], self.train_keys[i])
                metrics = {n: float(v) for n, v in jax.device_get(metrics).items()}
            all_metrics.append(metrics)
        return states, all_metrics


def _train_epochs(
    trainings: list[_Training],
    fns,
    evaluate,
    config,
    train_images,
    num_train: int,
    eval_images,
    eval_split: str,
    step: int,
    total_steps: int,
    mesh: Mesh,
    execution: str,
    select: bool,
) -> None:
    """The epochs from ``step`` on (see the module docstring)."""
    several = len(trainings) > 1
    steps_per_epoch = num_train // config.batch_size
    members_epoch = MembersEpoch(
        fns,
        config,
        [(t.hyper, t.warmup_steps) for t in trainings],
        [t.keys["train"] for t in trainings],
        execution,
        mesh,
    )
    start_epoch = step // steps_per_epoch
    run_start = time.perf_counter()
    for epoch in range(start_epoch, config.num_epochs):
        for t in trainings:
            if select and not t.stopped and t.best.should_stop(epoch):
                logging.info(
                    "%sEarly stopping after epoch %d: the validation criterion has not improved for %d "
                    "epochs (best %.4f at epoch %d).",
                    f"{t.member.name}: " if several else "",
                    epoch,
                    epoch - t.best.epoch,
                    t.best.value,
                    t.best.epoch,
                )
                t.stopped = True
        active = [t for t in trainings if not t.stopped]
        if not active:
            break
        epoch_start = time.perf_counter()
        going = [not t.stopped for t in trainings]
        orders = [
            train.epoch_order(t.keys["data"], epoch, num_train, config.batch_size) if g or execution == "vmap" else None
            for t, g in zip(trainings, going)
        ]
        states, all_metrics = members_epoch([t.state for t in trainings], going, train_images, orders)
        for t, state in zip(trainings, states):
            t.state = state
        train_metrics = [m for m in all_metrics if m is not None]
        seconds = time.perf_counter() - epoch_start
        member_rate = steps_per_epoch * config.batch_size / seconds
        interrupted = parallel.any_process(preemption.requested() is not None)  # every process stops together
        rows = []
        for t, member_train in zip(active, train_metrics):
            step = t.step
            extra = _check_finite(t, several)
            t.log.write(step, "train", member_train, epoch=epoch + 1, examples_per_second=member_rate, **extra)
            eval_metrics = evaluate(t.state.params, eval_images, t.keys["eval"], t.hyper)
            t.log.write(step, eval_split, eval_metrics, epoch=epoch + 1)
            faults.point("epoch_logged")
            if select and t.best.update(epoch + 1, eval_metrics):
                checkpoints.save(t.best_manager, step, t.state)
            stopping = select and t.best.should_stop(epoch + 1)
            last = epoch + 1 == config.num_epochs
            if (epoch + 1) % config.checkpoint_every_epochs == 0 or last or stopping or interrupted:
                checkpoints.save(t.manager, step, t.state)
            rows.append((member_train, eval_metrics))
        done = epoch + 1 - start_epoch
        eta = (time.perf_counter() - run_start) / done * (config.num_epochs - epoch - 1)
        logging.info(
            "%s",
            _progress(
                epoch + 1,
                config,
                active[0].step,
                total_steps,
                eval_split,
                rows,
                member_rate * len(active),
                eta,
                len(active),
            ),
        )
        if interrupted:
            where = trainings[0].member.workdir if not several else os.path.dirname(trainings[0].member.workdir)
            raise Interrupted(
                f"stopped by {preemption.requested() or 'a signal to another process'} after epoch {epoch + 1} of "
                f"{config.num_epochs}, with a checkpoint at step {active[0].step} in {where}: run the same command "
                "to resume."
            )
