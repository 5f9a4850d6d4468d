"""A run's workdir: checked before any work, committed once, written atomically, logged.

- `check` only looks: the workdir is writable and holds no run of another config.
  `commit` then writes ``config.json`` and, for ``--config.overwrite=True`` on a workdir of
  another config, first moves the earlier run's outputs to ``workdir/previous-<time>/``:
  earlier results are never deleted or mixed with the new run's.
- `write_json` replaces a file atomically (a kill leaves the old file or the new one).
- `locked` holds the workdir's run lock: one run per workdir.
- `MetricsLog` writes ``metrics.jsonl`` and TensorBoard events (process 0 only), and drops
  the records after the step a resumed run restarts from. ``metrics.jsonl`` is the durable
  record: the events are rebuilt from it whenever they differ (a killed writer's lost buffer).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import struct
import tempfile
import time

from absl import logging
from google.protobuf.message import DecodeError
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from vae_jax import config as config_lib
from vae_jax import errors, parallel
from vae_jax.errors import ConfigError

# Values that may change between a run and its resumption (they change no result so far).
RESUMABLE_KEYS = (
    "num_epochs",
    "checkpoint_every_epochs",
    "eval_batch_size",
    "num_figure_examples",
    "figure_decoding",
    "fused_epoch",
    "segment_seconds",
    "data.pipeline",
    "overwrite",
    "data.download",
    "nonfinite",
    "early_stopping_patience",
    "max_training_minutes",
)
# What a run writes to its workdir (besides config.json); `--config.overwrite=True` moves
# these, and config.json, to ``workdir/previous-<time>/`` before a run of another config.
OUTPUT_NAMES = (
    "checkpoints",
    "best_checkpoints",
    "damaged-checkpoints",
    "metrics.jsonl",
    "final_metrics.json",
    "reconstructions.png",
    "samples.png",
    "latent_scatter.png",
    "manifold.png",
)
EVENTS_PREFIX = "events.out.tfevents"
# The fields of a metrics.jsonl record that are not metrics (`MetricsLog.write`'s ``extra``
# and its keys): TensorBoard shows the others, as ``<split>/<name>`` at the record's step.
RECORD_FIELDS = ("step", "split", "epoch", "examples_per_second", "nonfinite_steps")
# Where `MetricsLog` writes rebuilt events before they replace the run's events files.
EVENTS_REWRITE = ".events-rewrite"
# The directory of an exported run's parameters (`vae_jax.training.export`): such a workdir is not trained in.
EXPORTED_PARAMS = "params"
FINAL_METRICS = "final_metrics.json"


@contextlib.contextmanager
def writing(path: str):
    """Turns a failed write inside the block (no space, quota, read-only, permission) into
    one `errors.WriteError` that names ``path``, the cause and the fix."""
    try:
        yield
    except OSError as error:
        if error.errno not in errors.WRITE_ERRNOS or isinstance(error, errors.WriteError):
            raise
        raise errors.write_error(path, error) from error


def write_json(path: str, value) -> None:
    """Writes ``value`` as indented JSON to ``path``, atomically."""
    with writing(path):
        with open(path + ".tmp", "w") as f:
            json.dump(value, f, indent=2, sort_keys=True)
        os.replace(path + ".tmp", path)


def read_final_metrics(workdir: str) -> dict[str, float] | None:
    """The run's ``final_metrics.json``, or None when it is missing or unreadable."""
    try:
        with open(os.path.join(workdir, FINAL_METRICS)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _comparable(config) -> dict:
    """Flat ``{'model.latents': 20, ...}`` of the values a resumed run must share. With a
    cosine schedule ``num_epochs`` is one of them: it sets the schedule's length."""
    cosine = config.optimizer.schedule == "cosine"
    flat = {}
    for key in config_lib.dotted_keys(config):
        if key not in RESUMABLE_KEYS or (cosine and key == "num_epochs"):
            value = config
            for part in key.split("."):
                value = value[part]
            flat[key] = value
    return flat


def _outputs(workdir: str) -> list[str]:
    """Names of a run's outputs present in ``workdir`` (empty directories do not count)."""
    names = []
    for name in sorted(os.listdir(workdir)):
        path = os.path.join(workdir, name)
        if name in OUTPUT_NAMES or name.startswith(EVENTS_PREFIX):
            if not os.path.isdir(path) or os.listdir(path):
                names.append(name)
    return names


def check(workdir: str, config) -> bool:
    """Creates ``workdir`` if missing and checks it is writable and holds no run of another
    config; changes nothing in it. Returns whether it holds another run that
    ``--config.overwrite=True`` asks to set aside (see `commit`).

    A workdir whose ``config.json`` differs (other than in `RESUMABLE_KEYS`, after filling
    the defaults of keys newer than the run), or that holds outputs but no ``config.json``,
    is refused unless ``--config.overwrite=True``.
    """
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workdir):
            pass
    except OSError as error:
        raise ConfigError(
            f"--workdir={workdir!r} is not writable ({error.strerror}): choose a directory you can write to."
        ) from None
    if os.path.isdir(os.path.join(workdir, EXPORTED_PARAMS)):
        raise ConfigError(
            f"--workdir={workdir!r} holds exported parameters (experiments.export), not a run to train: evaluate "
            "it with `python -m experiments.evaluate --workdir=...`, or train in a new --workdir."
        )
    fix = (
        "use a new --workdir, or pass --config.overwrite=True to start over (the old outputs are moved "
        "to <workdir>/previous-<time>/, not deleted)."
    )
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        outputs = _outputs(workdir)
        if outputs and not config.overwrite:
            raise ConfigError(
                f"--workdir={workdir!r} holds outputs of a run ({', '.join(outputs)}) but no "
                f"config.json to check them against: {fix}"
            )
        return bool(outputs)
    try:
        old = _comparable(config_lib.read_run_config(workdir))
    except ConfigError as error:
        if not config.overwrite:
            raise ConfigError(f"{error}, so the run in {workdir!r} cannot be checked: {fix}") from None
        return True
    new = _comparable(config)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed and not config.overwrite:
        raise ConfigError(
            f"--workdir={workdir!r} holds a run with another config (differs in: {', '.join(changed)}): {fix}"
        )
    return bool(changed)


def commit(workdir: str, config, set_aside: bool) -> None:
    """Writes ``config.json`` (atomically, only if it changes). With ``set_aside`` (another
    run's outputs and ``--config.overwrite=True``), first moves that run's outputs and
    config.json to ``workdir/previous-<time>/``."""
    path = os.path.join(workdir, "config.json")
    if set_aside:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        previous = os.path.join(workdir, f"previous-{stamp}")
        suffix = 1
        while os.path.exists(previous):
            previous, suffix = os.path.join(workdir, f"previous-{stamp}-{suffix}"), suffix + 1
        os.makedirs(previous)
        # config.json last: a run killed half way still sees the old config and moves the rest.
        names = _outputs(workdir) + (["config.json"] if os.path.exists(path) else [])
        for name in names:
            os.replace(os.path.join(workdir, name), os.path.join(previous, name))
        logging.warning("--config.overwrite=True: moved the earlier run's %s to %s.", ", ".join(names), previous)
    text = config_lib.as_json(config)
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except OSError:
        pass
    with writing(path):
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


def prepare(workdir: str, config) -> None:
    """`check` then `commit`: a workdir ready for a run of ``config``."""
    commit(workdir, config, check(workdir, config))


def read_events(path: str) -> list:
    """The `Event` records of a TensorBoard events file (TFRecord framing: length, its CRC, the
    record, its CRC); a partial record at the end (a killed writer) is left out. Reads the
    file itself: tensorboard's own loader imports TensorFlow when it is installed (seconds)."""
    return _read_events(path)[0]


def _read_events(path: str) -> tuple[list, bool]:
    """`read_events`, and whether the file ends at a record's end (no partial record)."""
    with open(path, "rb") as f:
        data = f.read()
    events, position = [], 0
    while position + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[position : position + 8])
        start = position + 12
        if start + length + 4 > len(data):
            break
        events.append(Event.FromString(data[start : start + length]))
        position = start + length + 4
    return events, position == len(data)


def summary_event(record: dict, wall_time: float) -> Event:
    """The TensorBoard event of a metrics.jsonl record: ``<split>/<name>`` for each of its
    numbers but `RECORD_FIELDS`, at its step. The live writer and the rebuild both use it, so
    a rebuilt events file holds what the live one did."""
    values = [
        Summary.Value(tag=f"{record['split']}/{name}", simple_value=float(value))
        for name, value in record.items()
        if name not in RECORD_FIELDS and isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    return Event(wall_time=wall_time, step=int(record["step"]), summary=Summary(value=values))


def read_records(path: str) -> list[dict]:
    """The complete records of a metrics.jsonl file (a partial or unreadable line is left
    out, as `MetricsLog.truncate` drops it); [] when the file is missing."""
    try:
        with open(path) as f:
            lines = f.readlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line) if line.endswith("\n") else None
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and isinstance(record.get("split"), str):
            records.append(record)
    return records


def _summary_key(event: Event, value: Summary.Value) -> tuple:
    return event.step, value.tag, repr(value.simple_value)  # repr: a NaN equals a NaN


class MetricsLog:
    """Writes metrics to TensorBoard event files and to ``workdir/metrics.jsonl``, process 0
    only (the other processes of a multi-process run write nothing).

    Events are written with the `tensorboard` package's own writer, which needs no
    TensorFlow (clu's writer imports TensorFlow: a 1.5 GB dependency and 10 s per start).
    The writer (and its events file) is created on first use, so a run that stops before
    training (e.g. on a damaged checkpoint) leaves no new file behind.

    ``metrics.jsonl`` is the durable record (written after the event, line by line; cut back
    to the resumed step by `truncate`). The events a killed process had buffered are lost,
    and a kill between an event and its line leaves one event too many: so `truncate`, and
    the first write of a log that was not truncated, compare the events files with
    metrics.jsonl and, when they differ, replace them with one file rebuilt from it (each
    record one event, as `write` makes it). Each write is flushed, so little needs rebuilding.
    """

    def __init__(self, workdir: str):
        self.active = parallel.is_primary()
        self.workdir = workdir
        self._writer = None
        self._synced = False
        self.path = os.path.join(workdir, "metrics.jsonl")

    @property
    def writer(self):
        if self._writer is None:
            if not self._synced:
                self._sync_events()
            self._writer = EventFileWriter(self.workdir)
        return self._writer

    def write(self, step: int, split: str, metrics: dict[str, float], **extra) -> None:
        if not self.active:
            return
        record = {"step": step, "split": split, **extra, **metrics}
        line = json.dumps(record) + "\n"
        with writing(os.path.join(self.workdir, EVENTS_PREFIX + ".*")):
            self.writer.add_event(summary_event(record, time.time()))
            self.writer.flush()  # on disk before its metrics.jsonl line: a kill loses no event of a line
        with writing(self.path), open(self.path, "a") as f:  # a partial last line is dropped on resume
            f.write(line)

    def truncate(self, step: int) -> None:
        """Drops the metrics.jsonl records after ``step`` (and any partial line), rewriting the
        file atomically: a resumed run logs those epochs again, so each epoch appears once.
        Then makes the TensorBoard events hold exactly its records (`_sync_events`)."""
        if not self.active:
            return
        if os.path.exists(self.path):
            with open(self.path) as f:
                lines = f.readlines()
            kept = []
            for line in lines:
                try:
                    if line.endswith("\n") and json.loads(line)["step"] <= step:
                        kept.append(line)
                except (ValueError, KeyError, TypeError):
                    pass
            if len(kept) < len(lines):
                with writing(self.path):
                    with open(self.path + ".tmp", "w") as f:
                        f.writelines(kept)
                    os.replace(self.path + ".tmp", self.path)
                logging.warning(
                    "Dropped %d metrics.jsonl line(s) after step %d, the step this run resumes from.",
                    len(lines) - len(kept),
                    step,
                )
        with writing(os.path.join(self.workdir, EVENTS_PREFIX + ".*")):
            self._sync_events()

    def _sync_events(self) -> None:
        """Makes the run's TensorBoard events hold metrics.jsonl's records, each once. Events
        files that already hold exactly those summaries are kept; otherwise one new file,
        written aside (`EVENTS_REWRITE`) first, replaces them all: every record of
        metrics.jsonl as `write` makes its event, at the wall time the old files gave it (or
        now, for an event that was lost). A kill during the rebuild leaves events that the
        next one rebuilds again; metrics.jsonl is never changed here."""
        self._synced = True
        if not self.active or not os.path.isdir(self.workdir):
            return
        events = [summary_event(record, 0.0) for record in read_records(self.path)]
        expected = sorted(_summary_key(e, v) for e in events for v in e.summary.value)
        names = sorted(
            n
            for n in os.listdir(self.workdir)
            if n.startswith(EVENTS_PREFIX) and os.path.isfile(os.path.join(self.workdir, n))
        )
        found, wall_times, readable = [], {}, True
        for name in names:
            try:
                old, complete = _read_events(os.path.join(self.workdir, name))
            except (OSError, DecodeError):
                readable = False
                continue
            readable = readable and complete  # a partial last record: rewritten without it
            for event in old:
                if event.HasField("summary"):
                    for value in event.summary.value:
                        found.append(_summary_key(event, value))
                        wall_times.setdefault((event.step, value.tag), event.wall_time)
        found.sort()
        if readable and found == expected:
            return
        aside = os.path.join(self.workdir, EVENTS_REWRITE)
        shutil.rmtree(aside, ignore_errors=True)
        new_name = None
        if events:
            now = time.time()
            writer = EventFileWriter(aside)
            for event in events:
                known = [wall_times.get((event.step, v.tag)) for v in event.summary.value]
                event.wall_time = next((t for t in known if t is not None), now)
                writer.add_event(event)
            writer.close()
            [new_name] = os.listdir(aside)
        for name in names:
            os.remove(os.path.join(self.workdir, name))
        if new_name is not None:
            os.replace(os.path.join(aside, new_name), os.path.join(self.workdir, new_name))
        shutil.rmtree(aside, ignore_errors=True)
        logging.warning(
            "Rebuilt the TensorBoard events from metrics.jsonl (%d record(s), %d summaries); the %d events "
            "file(s) it replaces held %d summaries.",
            len(events),
            len(expected),
            len(names),
            len(found),
        )

    def close(self) -> None:
        if self._writer is not None:
            with writing(os.path.join(self.workdir, EVENTS_PREFIX + ".*")):
                self._writer.close()  # flushes


LOCK_NAME = ".lock"
_held_locks: dict[str, list] = {}  # realpath -> [open lock file, how many holders in this process]


def _holder_text() -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")})


def _take(path: str):
    """The lock file at ``path``, opened and flock-ed by this process, or the holder's record
    (a dict) when another process holds it. A lock file that another run unlinked while we
    waited for it is not ours: then the new one is taken."""
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            try:
                holder = json.loads(handle.read() or "{}")
            except ValueError:
                holder = {}
            handle.close()
            return holder
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                return handle
        except FileNotFoundError:
            pass
        handle.close()


@contextlib.contextmanager
def locked(workdir: str):
    """Holds ``workdir``'s run lock (``workdir/.lock``, `fcntl.flock`) for the ``with`` block:
    one run per workdir. A second process is refused at once with a `ConfigError` naming the
    process and host that hold it; the OS releases the lock when its holder exits or dies, so a
    lock left by a killed run never blocks (its file stays; a run that ends removes it).
    Re-entrant within a process (a sweep holds its members' workdirs while a member's run
    takes its own). In a multi-process run, process 0 takes it and tells the others whether
    it could (`parallel.broadcast_ok`)."""
    path = os.path.realpath(os.path.join(workdir, LOCK_NAME))
    error = None
    if parallel.is_primary() and path not in _held_locks:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            taken = _take(path)
        except OSError as failure:
            raise ConfigError(
                f"--workdir={workdir!r} is not writable ({failure.strerror}): choose a directory you can write to."
            ) from None
        if isinstance(taken, dict):
            error = (
                f"--workdir={workdir!r} is in use by another run: process {taken.get('pid', '?')} on host "
                f"{taken.get('host', '?')} (started {taken.get('started', '?')}) holds {path}. Wait for it to "
                "finish or stop it, or use another --workdir."
            )
        else:
            taken.seek(0)
            taken.truncate()
            taken.write(_holder_text())
            taken.flush()
            _held_locks[path] = [taken, 0]
    if not parallel.broadcast_ok(error is None):
        raise ConfigError(
            error
            or f"--workdir={workdir!r} is in use by another run (process 0 of this run could not "
            "lock it): wait for it to finish or use another --workdir."
        )
    if path in _held_locks:
        _held_locks[path][1] += 1
    try:
        yield
    finally:
        if path in _held_locks:
            _held_locks[path][1] -= 1
            if _held_locks[path][1] == 0:
                handle = _held_locks.pop(path)[0]
                with contextlib.suppress(OSError):
                    os.unlink(path)  # before unlocking: a waiting process then takes a new file
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
