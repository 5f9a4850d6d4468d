"""The one training loop: K >= 1 members trained epoch by epoch, for a run and for a sweep.

A single run is one member (`vae_jax.training.run`); a sweep group is K members that differ only in
values that change no shape (seed, beta, c, free bits, KL warm-up, learning rate;
`vae_jax.training.sweep`). Every member gets everything a run has, in its own workdir (a complete run
that ``experiments.evaluate`` reads like any other):

- restore: each member's latest intact checkpoint (`vae_jax.training.checkpoints`); the members
  continue from a common step, and ``metrics.jsonl`` is cut back to it;
- non-finite handling: skipped updates are counted and logged; ``nonfinite='stop'`` stops
  before the next checkpoint;
- logging (``metrics.jsonl``, TensorBoard), one progress line per epoch with rate and ETA,
  checkpoints every ``checkpoint_every_epochs``;
- stop signals (`vae_jax.training.preemption`): the epoch runs in segments of about
  ``segment_seconds`` (`vae_jax.training.segments`); after the segment in progress every member's
  checkpoint is written (mid-epoch: with the epoch's metric sums so far in its metadata) and
  `errors.Interrupted` is raised; the same command resumes there bit-identically;
- model selection on the validation split and early stopping (`vae_jax.training.selection`), per
  member: a member that stops keeps its selected state while the others go on;
- the final evaluation on the test split (once, on the selected state), figures and
  ``final_metrics.json``.

How the members' epochs run (`EXECUTIONS`, chosen by `choose_execution`):
- ``in_turn``: one after another, each with a run's own un-vmapped program (its
  hyperparameters compiled in). One member is exactly a single run's program, so a single
  run's results are those of the programs it always had; sweep members equal their
  separate runs bit for bit.
- ``vmap``: all members in one compiled program (`programs.make_members_segment`), their
  hyperparameters traced from their states. Equal to separate runs up to float rounding;
  pays where one member does not fill the device (GPUs, small models).

`train_members` reads top to bottom in sections: the run's data and sizes (`_open_run`, a `_Run`),
the members (`_open_members`: states, keys, logs, checkpoint managers), their programs
(`programs.build_run_programs`), restore (`_resume`), the epochs (`_train_epochs`) and the final
evaluation (`_final_results`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from typing import Any, Sequence

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh

from vae_jax import faults, parallel
from vae_jax.data import streaming
from vae_jax.errors import CheckpointError, Interrupted, NonFiniteError, WriteError
from vae_jax.evaluation import model_figures
from vae_jax.models import interface
from vae_jax.training import checkpoints, curve, preemption, programs, segments, selection
from vae_jax.training import workdir as workdir_lib

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


@dataclasses.dataclass
class _Training:
    """The loop's record of one member."""

    member: Member
    keys: dict
    hyper: interface.Hyper  # Python numbers: compiled into the member's own programs
    warmup_steps: int
    state: Any
    log: workdir_lib.MetricsLog
    manager: Any
    best_manager: Any
    best: selection.BestEpoch
    stopped: bool = False
    skipped_before: int = 0
    minutes: float = 0.0  # training minutes so far (`curve.training_minutes`)

    @property
    def step(self) -> int:
        return int(self.state.step)

    def out_of_time(self) -> bool:
        """Whether the member has used its ``config.max_training_minutes`` (0: no budget)."""
        budget = self.member.config.max_training_minutes
        return budget > 0 and self.minutes >= budget

    def read_log(self, steps_per_epoch: int, select: bool) -> None:
        """The selection record, the training minutes and whether the member has stopped (early
        stopping, or its time budget), from ``metrics.jsonl`` up to the restored step."""
        config = self.member.config
        records = workdir_lib.read_records(self.log.path)  # read once for both
        self.best = selection.BestEpoch.from_records(records, self.step, config.early_stopping_patience)
        self.minutes = curve.training_minutes(records, config.batch_size, self.step)
        self.stopped = (select and self.best.should_stop(self.step // steps_per_epoch)) or self.out_of_time()


def _restore(trainings: list[_Training], steps_per_epoch: int, select: bool) -> int:
    """Restores every member's latest checkpoint and brings the members that still train to
    one step (a member ahead of the others, e.g. killed between two members' saves, goes back
    to its checkpoint at that step). Returns that step."""
    initial = {id(t): t.state for t in trainings}
    for t in trainings:
        restored = checkpoints.restore_latest(t.manager, t.state)
        if restored is not None:
            t.state = restored
        t.read_log(steps_per_epoch, select)
    while True:
        going = [t for t in trainings if not t.stopped]
        common = min((t.step for t in going), default=0)
        ahead = [t for t in going if t.step > common]
        if not ahead:
            return common
        for t in ahead:
            restored = checkpoints.restore_latest(t.manager, initial[id(t)], max_step=common)
            t.state = initial[id(t)] if restored is None else restored
            t.read_log(steps_per_epoch, select)


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
    """The final test metrics of ``params`` by ``evaluate`` (`programs.make_evaluate`), written to
    ``final_metrics.json``, and the figures, by process 0. Returns the metrics."""
    test_metrics = evaluate(params, splits["test"].images, parallel.replicate(eval_key, mesh), interface.hyper(config))
    if log.active:  # process 0 alone: on host copies of the parameters
        with workdir_lib.writing(os.path.join(workdir, "*.png")):
            model_figures.save_figures(config, fns, parallel.to_host(params), splits, workdir, eval_key)
        workdir_lib.write_json(os.path.join(workdir, workdir_lib.FINAL_METRICS), test_metrics)
    return test_metrics


@dataclasses.dataclass
class _Run:
    """What every section of `train_members` shares: the config common to the members, the data
    and how the training images reach the devices, the epoch's sizes, the mesh and the
    evaluation split."""

    config: Any
    splits: dict
    mesh: Mesh
    train_images: Any  # resident (split by rows over the devices) or `streaming.StreamedImages`
    reader: streaming.SegmentReader | None  # reads each streamed segment's rows; None when resident
    pipeline_reason: str
    num_train: int  # the real rows: `epoch_order` never picks a padding row
    select: bool  # selection on the validation split (then early stopping may end a member)
    several: bool

    @property
    def steps_per_epoch(self) -> int:
        return self.num_train // self.config.batch_size

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.num_epochs

    @property
    def eval_split(self) -> str:
        return "valid" if self.select else "test"  # the test split is evaluated once, at the end

    @property
    def image_shape(self) -> tuple:
        return tuple(self.splits["train"].images.shape[1:])

    def who(self, t: _Training) -> str:
        """The prefix naming a member in log lines (none for a single run)."""
        return f"{t.member.name}: " if self.several else ""


def _open_run(members: Sequence[Member], splits: dict, mesh: Mesh) -> _Run:
    """The `_Run` of ``members``: the training images resident or streamed (`streaming.choose_pipeline`)."""
    config = members[0].config
    images = splits["train"].images
    pipeline, why = streaming.choose_pipeline(config.data.pipeline, images.nbytes, mesh)
    if pipeline == "streaming":
        train_images = (
            images if isinstance(images, streaming.StreamedImages) else streaming.StreamedImages(images, name="train")
        )
        reader = streaming.SegmentReader(train_images, mesh)
    else:
        train_images, reader = parallel.shard_rows(images, mesh), None  # padded to a multiple of the devices
    select = selection.selects_on_validation(config)
    return _Run(config, splits, mesh, train_images, reader, why, len(images), select, len(members) > 1)


def _open_members(run: _Run, members: Sequence[Member]) -> list[_Training]:
    """Each member's `_Training`: its initial state (replicated on the mesh), keys, metrics log and
    checkpoint managers."""
    states = programs.initial_states([m.config for m in members], run.image_shape, run.total_steps, run.steps_per_epoch)
    trainings = []
    for member, state in zip(members, states):
        keys = programs.run_keys(member.config.seed)
        warmup = programs.kl_warmup_steps(member.config, run.steps_per_epoch)
        state, keys = parallel.replicate((state, keys), run.mesh)  # the restore target is then replicated too
        best_manager = checkpoints.open_manager(member.workdir, name=selection.CHECKPOINT_DIR) if run.select else None
        trainings.append(
            _Training(
                member,
                keys,
                interface.hyper(member.config),
                warmup,
                state,
                workdir_lib.MetricsLog(member.workdir),
                checkpoints.open_manager(member.workdir),
                best_manager,
                selection.BestEpoch(),
            )
        )
    return trainings


def _log_setup(run: _Run, trainings: list[_Training], fns, num_parameters: int, execution: str) -> None:
    """One line on the model and the steps, one on where the training images live, one on the members."""
    config, mesh = run.config, run.mesh
    logging.info(
        "Model %s with %d parameters; %d steps of %d examples per epoch, %d per device on %d device(s) "
        "of %d process(es).",
        fns.label,
        num_parameters,
        run.steps_per_epoch,
        config.batch_size,
        config.batch_size // mesh.size,
        mesh.size,
        jax.process_count(),
    )
    if run.reader is None:
        start, stop = parallel.local_rows(run.train_images)
        logging.info(
            "Training images resident on the devices (%s), split by rows: rows %d-%d of %d (padded to %d) on "
            "this process, %d per device.",
            run.pipeline_reason,
            start,
            min(stop, run.num_train),
            run.num_train,
            len(run.train_images),
            len(run.train_images) // mesh.size,
        )
    else:
        logging.info(
            "Training images streamed (%s): each segment's rows read from the host, each process reading the "
            "rows of its own devices, the next segment while the devices train.",
            run.pipeline_reason,
        )
    if run.several:
        logging.info(
            "%d members trained %s (%s).",
            len(trainings),
            "in one vmapped program" if execution == "vmap" else "in turn, each with its own program",
            ", ".join(t.member.name for t in trainings),
        )


def _resume(run: _Run, trainings: list[_Training]) -> int:
    """Restores the members (`_restore`), cuts their logs and later checkpoints back to the
    resumed step, and returns it."""
    step = _restore(trainings, run.steps_per_epoch, run.select)
    for t in trainings:
        if t.step:
            logging.info("%sResuming from the checkpoint at step %d in %s.", run.who(t), t.step, t.manager.directory)
        t.log.truncate(t.step)
        # Steps after the resumed one (a member that was ahead of the others) belong to epochs that
        # will be trained again, identically.
        for manager in (t.manager, t.best_manager) if run.select else (t.manager,):
            for stale in [s for s in manager.all_steps() if s > t.step]:
                manager.delete(stale)
        t.skipped_before = int(t.state.opt_state.total_notfinite)
    return step


def _final_results(run: _Run, trainings: list[_Training], compiled, finals: list, complete: bool) -> list[Result]:
    """Each member's final test metrics on its kept state (the validation-selected one, or the
    last), evaluated once (`finish`) unless the run was complete already."""
    results = []
    for t, final in zip(trainings, finals):
        t.manager.close()
        params = programs.evaluated_params(t.state)
        if run.select:
            selected = checkpoints.restore_latest(t.best_manager, t.state)
            t.best_manager.close()
            if selected is None:
                logging.warning("No validation epoch had a finite criterion; using the last epoch's parameters.")
            else:
                logging.info(
                    "%sSelected the state of epoch %d (validation criterion %.4f).",
                    run.who(t),
                    t.best.epoch,
                    t.best.value,
                )
                params = programs.evaluated_params(selected)
        if not complete:
            final = finish(
                t.member.config,
                compiled.fns,
                compiled.evaluate,
                params,
                run.splits,
                t.member.workdir,
                t.keys["eval"],
                run.mesh,
                t.log,
            )
        t.log.close()
        trained = t.step // run.steps_per_epoch
        results.append(Result(final, t.best.epoch if run.select and t.best.epoch else trained, trained))
    return results


def train_members(
    members: Sequence[Member], splits: dict, *, mesh: Mesh | None = None, execution: str = "auto"
) -> list[Result]:
    """Trains ``members`` (configs equal but for `vae_jax.training.sweep.VMAPPED_KEYS`) on ``splits``,
    data parallel over ``mesh`` (default: every device), resuming from their workdirs.
    Returns each member's final test metrics; writes their outputs (see the module docstring).
    Members whose runs are complete (trained, or stopped early, and evaluated) are not
    trained or evaluated again."""
    mesh = parallel.data_mesh() if mesh is None else mesh
    run = _open_run(members, splits, mesh)
    try:
        # Members: initial states, keys, logs and checkpoint managers.
        trainings = _open_members(run, members)
        num_parameters = sum(leaf.size for leaf in jax.tree.leaves(trainings[0].state.params))
        execution = choose_execution(execution, len(members), num_parameters)
        # Programs: the model's functions, the evaluation and the training segment, in one call.
        compiled = programs.build_run_programs(
            run.config,
            run.image_shape,
            [(t.hyper, t.warmup_steps) for t in trainings],
            [t.keys["train"] for t in trainings],
            execution,
            mesh,
        )
        _log_setup(run, trainings, compiled.fns, num_parameters, execution)
        try:
            # Restore, then the epochs (unless every member is complete and evaluated).
            _check_space(trainings)
            step = _resume(run, trainings)
            finals = [workdir_lib.read_final_metrics(t.member.workdir) for t in trainings]
            complete = all(t.stopped or t.step >= run.total_steps for t in trainings) and None not in finals
            if complete:
                logging.info(
                    "%s complete and evaluated; nothing to do.",
                    "Every member's run is" if run.several else "The run is",
                )
            else:
                with preemption.handled():
                    _train_epochs(run, trainings, compiled, step)
            # The final evaluation on the test split, once, on each member's kept state.
            return _final_results(run, trainings, compiled, finals, complete)
        except BaseException:  # a failed write or a stop: what was logged reaches the disk
            for t in trainings:
                with contextlib.suppress(Exception):
                    t.log.close()
            raise
    finally:
        if run.reader is not None:
            run.reader.close()


def _train_epochs(run: _Run, trainings: list[_Training], compiled, step: int) -> None:
    """The epochs from ``step`` on (see the module docstring); with a ``run.reader`` each segment's
    training images are streamed (`vae_jax.data.streaming`), else ``run.train_images`` are resident."""
    config, mesh, reader, train_images = run.config, run.mesh, run.reader, run.train_images
    steps_per_epoch, num_train, execution = run.steps_per_epoch, run.num_train, compiled.segment.execution
    eval_images = run.splits[run.eval_split].images
    members_segment = compiled.segment
    image_bytes = int(np.prod(train_images.shape[1:])) * 4
    max_steps = None if reader is None else streaming.max_segment_steps(len(trainings), config.batch_size, image_bytes)
    lengths = segments.SegmentLengths(steps_per_epoch, config.segment_seconds, max_steps)
    start_epoch, position = divmod(step, steps_per_epoch)
    sums = None
    run_start = time.perf_counter()
    for epoch in range(start_epoch, config.num_epochs):
        for t in trainings:
            if run.select and not t.stopped and t.best.should_stop(epoch):
                logging.info(
                    "%sEarly stopping after epoch %d: the validation criterion has not improved for %d "
                    "epochs (best %.4f at epoch %d).",
                    run.who(t),
                    epoch,
                    epoch - t.best.epoch,
                    t.best.value,
                    t.best.epoch,
                )
                t.stopped = True
            if not t.stopped and t.out_of_time():
                logging.info(
                    "%sStopping after epoch %d: %.1f training minutes used of the budget of %g "
                    "(config.max_training_minutes).",
                    run.who(t),
                    epoch,
                    t.minutes,
                    t.member.config.max_training_minutes,
                )
                t.stopped = True
        active = [t for t in trainings if not t.stopped]
        if not active:
            break
        epoch_start, first_step = time.perf_counter(), position
        going = [not t.stopped for t in trainings]
        orders = [
            programs.epoch_order(t.keys["data"], epoch, num_train, config.batch_size)
            if g or execution == "vmap"
            else None
            for t, g in zip(trainings, going)
        ]
        states = [t.state for t in trainings]
        if sums is None:
            sums = members_segment.zeros(states, train_images)
            if position:  # resumed mid-epoch
                sums = _resumed_sums(trainings, sums, mesh)
        host_orders = None if reader is None else [None if o is None else np.asarray(o) for o in orders]
        prefetched = None  # (position, length, future) of the next streamed segment
        while position < steps_per_epoch:
            length = lengths.next(position)
            segment_start = time.perf_counter()
            if reader is None:
                images = train_images
                part = _rows(orders, position, length)
            elif prefetched is not None and prefetched[:2] == (position, length):
                images, part = prefetched[2].result()
            else:
                images, part = reader.read(_rows(host_orders, position, length))
            states, sums = members_segment(states, sums, going, images, part)
            following = position + length
            if reader is not None and following < steps_per_epoch:  # read while the devices train
                guess = lengths.next(following)
                prefetched = (following, guess, reader.prefetch(_rows(host_orders, following, guess)))
            jax.block_until_ready(sums)
            faults.point("segment_done")
            # Every process takes the same decisions: the longest time, and a stop asked of any of them.
            seconds, stop = parallel.max_over_processes(
                [time.perf_counter() - segment_start, preemption.requested() is not None]
            )
            lengths.observe(length, float(seconds))
            position += length
            if position < steps_per_epoch and stop:
                for t, state, member_sums in zip(trainings, states, sums):
                    t.state = state
                    if not t.stopped:
                        checkpoints.save(t.manager, t.step, t.state, {EPOCH_SUMS: _host_sums(member_sums)})
                _stop(trainings, f"at step {position} of epoch {epoch + 1}'s {steps_per_epoch}", config, active)
        for t, state in zip(trainings, states):
            t.state = state
        train_metrics = [
            {name: float(total) / steps_per_epoch for name, total in _host_sums(s).items()}
            for s, g in zip(sums, going)
            if g
        ]
        sums, position = None, 0
        seconds = time.perf_counter() - epoch_start
        member_rate = (steps_per_epoch - first_step) * config.batch_size / seconds
        interrupted = parallel.any_process(preemption.requested() is not None)  # every process stops together
        rows = []
        for t, member_train in zip(active, train_metrics):
            step = t.step
            extra = _check_finite(t, run.several)
            t.log.write(step, "train", member_train, epoch=epoch + 1, examples_per_second=member_rate, **extra)
            t.minutes += steps_per_epoch * config.batch_size / member_rate / 60  # as `curve.cumulative_minutes`
            eval_metrics = compiled.evaluate(programs.evaluated_params(t.state), eval_images, t.keys["eval"], t.hyper)
            t.log.write(step, run.eval_split, eval_metrics, epoch=epoch + 1)
            faults.point("epoch_logged")
            if run.select and t.best.update(epoch + 1, eval_metrics):
                checkpoints.save(t.best_manager, step, t.state)
            stopping = run.select and t.best.should_stop(epoch + 1)
            last = epoch + 1 == config.num_epochs
            if (epoch + 1) % config.checkpoint_every_epochs == 0 or last or stopping or interrupted:
                checkpoints.save(t.manager, step, t.state)
            rows.append((member_train, eval_metrics))
        elapsed_epochs = epoch + 1 - start_epoch
        eta = (time.perf_counter() - run_start) / elapsed_epochs * (config.num_epochs - epoch - 1)
        logging.info(
            "%s",
            _progress(
                epoch + 1,
                config,
                active[0].step,
                run.total_steps,
                run.eval_split,
                rows,
                member_rate * len(active),
                eta,
                len(active),
            ),
        )
        if interrupted:
            _stop(trainings, f"after epoch {epoch + 1}", config, active)


def _rows(orders: list, position: int, length: int) -> list:
    """Each member's order rows ``position .. position + length`` (None stays None)."""
    return [None if o is None else o[position : position + length] for o in orders]


# Key of a mid-epoch checkpoint's metadata that holds the epoch's metric sums so far.
EPOCH_SUMS = "vae_jax_epoch_sums"


def _host_sums(sums: dict) -> dict[str, float]:
    """Metric sums as Python floats (a float32's float64 value: exact, JSON-safe)."""
    return {name: float(value) for name, value in jax.device_get(sums).items()}


def _resumed_sums(trainings: list[_Training], zeros: list, mesh: Mesh) -> list:
    """The metric sums of the epoch in progress saved with the members' mid-epoch checkpoints
    (written after a stop signal), like ``zeros`` (members not training keep those)."""
    sums = []
    for t, member_zeros in zip(trainings, zeros):
        if t.stopped:
            sums.append(member_zeros)
            continue
        saved = checkpoints.saved_metadata(t.manager, t.step).get(EPOCH_SUMS)
        if not isinstance(saved, dict) or set(saved) != set(member_zeros):
            raise CheckpointError(
                f"The checkpoint at step {t.step} in {t.manager.directory} is mid-epoch but holds no metric sums of "
                "its epoch: move that step's directory away to resume from the one before."
            )
        host = {name: np.asarray(saved[name], dtype=np.asarray(zero).dtype) for name, zero in member_zeros.items()}
        sums.append(parallel.replicate(host, mesh))
    return sums


def _stop(trainings: list[_Training], where: str, config, active: list[_Training]) -> None:
    """Raises `Interrupted` after a stop signal, the members' checkpoints written."""
    several = len(trainings) > 1
    workdir = trainings[0].member.workdir if not several else os.path.dirname(trainings[0].member.workdir)
    raise Interrupted(
        f"stopped by {preemption.requested() or 'a signal to another process'} {where} ({config.num_epochs} "
        f"epochs in all), with a checkpoint at step {active[0].step} in {workdir}: run the same command to resume."
    )
