"""Orbax checkpoints of a run: atomic saves, and restores that survive a damaged latest step.

A checkpoint holds a pytree (a flax `TrainState`: step, params and optimiser state, or a
fitted PCA). Orbax writes each step to a temporary directory and renames it when complete,
so a run killed mid-save leaves at worst an unfinished temporary directory (removed when
the next run opens the manager), never a half-written step. Restoring reads arrays only
(no pickle, no code execution).

Orbax does not notice every kind of damage (a changed byte inside an array's data file
restores silently), so each save also records a SHA-256 of the tree's arrays in the step's
own metadata (written in the same atomic commit) and every restore is checked against it.
A step that fails to restore or to match is reported and the previous step is used; the
damaged newer steps are then moved to ``workdir/damaged-checkpoints/`` (kept, never
deleted) so that the run can write those steps again.

In a multi-process run every process calls `save` and `restore_latest` (orbax coordinates
them: each replicated array is written once); process 0 alone moves damaged steps aside.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from vae_jax import errors, faults
from vae_jax.errors import CheckpointError

# Key of the tree digest in orbax's per-step custom metadata, and the file orbax keeps it in.
_DIGEST_KEY = "vae_jax_sha256"
_STEP_METADATA_FILE = "_CHECKPOINT_METADATA"
# At least two steps are kept, so that a damaged latest step has a fallback.
MIN_TO_KEEP = 2


# While a save runs: orbax's warnings and errors, kept back from the console (a failed write
# of a full disk logs a traceback from each of its threads) and attached to the error raised.
_held_back: list | None = None


def _drop_orbax_info(record) -> bool:
    """Logging filter: orbax's INFO chatter (a dozen lines a save) is left out; its warnings
    and errors during a save are held back for the error they lead to (`save`)."""
    if f"{os.sep}orbax{os.sep}" not in record.pathname:
        return True
    if record.levelno <= 20:
        return False
    if _held_back is not None:
        _held_back.append(record)
        return False
    return True


def open_manager(workdir: str, *, max_to_keep: int = MIN_TO_KEEP, name: str = "checkpoints") -> ocp.CheckpointManager:
    """The checkpoint manager of ``workdir/<name>`` (created if missing); it keeps the newest
    ``max(max_to_keep, 2)`` steps. ``name`` is ``checkpoints`` (the run's latest state) or
    ``best_checkpoints`` (the state selected on the validation split)."""
    absl_logger = logging.get_absl_logger()
    if _drop_orbax_info not in absl_logger.filters:
        absl_logger.addFilter(_drop_orbax_info)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max(max_to_keep, MIN_TO_KEEP), create=True, cleanup_tmp_directories=True
    )
    return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, name)), options=options)


def tree_digest(tree: Any) -> str:
    """SHA-256 of the dtypes, shapes and bytes of ``tree``'s leaves, in leaf order.

    Scalars count by value only: a step saved as an int32 array is restored as a Python
    int when the restore target's step is one (a fresh `TrainState`)."""
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        array = np.asarray(jax.device_get(leaf))
        if array.ndim == 0:
            digest.update(f"scalar {array.item()!r};".encode())
        else:
            digest.update(f"{array.dtype.str}{array.shape};".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def save(manager: ocp.CheckpointManager, step: int, tree: Any, metadata: dict | None = None) -> None:
    """Saves ``tree`` (with its digest, and ``metadata``: JSON values that `saved_metadata`
    returns) as ``step`` and waits until it is on disk.

    Orbax writes the step aside and renames it when complete, so a failed write (a full disk,
    a quota, a read-only filesystem) leaves the earlier steps intact: it raises
    `errors.WriteError` naming the step's directory, with orbax's own log records and
    traceback attached as notes (for a log file, not the console)."""
    global _held_back
    _held_back = []
    # Tensorstore prints the errors of its callbacks into orbax's closed event loop on
    # `sys.stderr` (a failed write: one traceback per array, some of them after the save has
    # given up): held back as well, and after a failed write for good (the process is about to
    # stop with one error line; `sys.__stderr__` is still the console).
    stderr, sys.stderr = sys.stderr, io.StringIO()
    failed = False
    try:
        manager.save(
            step,
            args=ocp.args.StandardSave(tree),
            force=True,
            custom_metadata={**(metadata or {}), _DIGEST_KEY: tree_digest(tree)},
        )
        faults.point("checkpoint_started")
        manager.wait_until_finished()
    except Exception as error:
        if not errors.is_write_failure(error):
            raise
        failed = True
        try:  # let the interrupted save's threads end while their output is held back
            manager.close()
        except Exception:  # noqa: BLE001  (they fail as the save did)
            pass
        failure = errors.write_error(_step_dir(manager, step), error)
        for record in _held_back:
            failure.add_note(f"orbax: {record.getMessage()}")
        failure.add_note(f"stderr during the save:\n{sys.stderr.getvalue()}")
        raise failure from error
    finally:
        held_back, _held_back = _held_back, None
        if not failed:
            sys.stderr = stderr
    for record in held_back:  # a save that succeeded: its warnings are shown after all
        logging.get_absl_logger().handle(record)


def _step_dir(manager: ocp.CheckpointManager, step: int) -> str:
    return os.path.join(str(manager.directory), str(step))


def saved_metadata(manager: ocp.CheckpointManager, step: int) -> dict:
    """The ``metadata`` that `save` recorded with ``step`` (and its digest, under
    ``vae_jax_sha256``). Raises ValueError when the step's metadata file cannot be read."""
    path = os.path.join(_step_dir(manager, step), _STEP_METADATA_FILE)
    try:
        with open(path) as f:
            custom = json.load(f).get("custom_metadata") or {}
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(f"its metadata {path} is missing or unreadable ({error})") from None
    return custom if isinstance(custom, dict) else {}


def recorded_digest(manager: ocp.CheckpointManager, step: int) -> str | None:
    """The SHA-256 (`tree_digest`) that `save` recorded with ``step``; None for a step saved
    without one. Raises ValueError when the step's metadata file cannot be read."""
    return saved_metadata(manager, step).get(_DIGEST_KEY)


def _verify(manager: ocp.CheckpointManager, step: int, restored: Any, require_digest: bool = False) -> None:
    """Raises ValueError unless ``restored`` matches the digest recorded when it was saved (or,
    with ``require_digest``, when none was recorded)."""
    expected = recorded_digest(manager, step)
    if expected is None and require_digest:
        raise ValueError("it has no recorded SHA-256 to check its arrays against")
    if expected is None:  # written before digests were recorded: nothing to check against
        logging.info("Checkpoint step %d has no recorded digest; restored unverified.", step)
    elif tree_digest(restored) != expected:
        raise ValueError("its arrays do not match the SHA-256 recorded when it was saved")


def _move_aside(manager: ocp.CheckpointManager, steps: list[int]) -> None:
    """Moves damaged step directories to ``workdir/damaged-checkpoints/<step>-<time>``
    (process 0 of a multi-process run moves them; every process then sees them gone)."""
    if jax.process_index() == 0:
        aside = os.path.join(os.path.dirname(str(manager.directory)), "damaged-checkpoints")
        os.makedirs(aside, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for step in steps:
            target = os.path.join(aside, f"{step}-{stamp}")
            os.replace(_step_dir(manager, step), target)
            logging.warning("Moved the damaged checkpoint step %d to %s.", step, target)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("vae_jax.damaged_checkpoints_moved")
    manager.reload()


def restore_latest(
    manager: ocp.CheckpointManager, target: Any, max_step: int | None = None, *, require_digest: bool = False
) -> Any | None:
    """The newest intact checkpoint shaped like ``target`` (at most at ``max_step``, when
    given), or None when there is none. With ``require_digest`` (shipped parameters,
    `experiments.export`) a step without a recorded SHA-256 counts as damaged.

    A step that fails to restore (damaged, truncated or missing files, other shapes) or
    whose arrays do not match their recorded digest is reported and the previous step is
    tried; newer damaged steps are then moved aside. If steps exist but none restores,
    raises `CheckpointError` (and changes nothing) rather than silently starting over on
    top of earlier results.
    """
    steps = sorted((s for s in manager.all_steps() if max_step is None or s <= max_step), reverse=True)
    if not steps:
        return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    failures = []
    for step in steps:
        try:
            restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
            _verify(manager, step, restored, require_digest)
        except Exception as error:  # orbax raises many types for damaged files
            summary = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
            logging.warning(
                "Checkpoint step %d in %s is damaged and cannot be used (%s); trying an earlier one.",
                step,
                manager.directory,
                summary,
            )
            failures.append(f"step {step} ({summary})")
            continue
        if failures:
            logging.warning("Falling back to the checkpoint at step %d in %s.", step, manager.directory)
            _move_aside(manager, steps[: len(failures)])
        return restored
    raise CheckpointError(
        f"No checkpoint in {manager.directory} can be restored: {'; '.join(failures)}. "
        "Move that directory away to start over, or use another --workdir."
    )
