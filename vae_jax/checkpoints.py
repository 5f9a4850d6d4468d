"""Orbax checkpoints of a run: atomic saves, and restores that survive a damaged latest step.

A checkpoint holds a pytree (a flax `TrainState`: step, params and optimiser state, or a
fitted PCA). Orbax writes each step to a temporary directory and renames it when complete,
so a run killed mid-save leaves at worst an unfinished temporary directory, never a
half-written step. Restoring reads arrays only (no pickle, no code execution).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging


class CheckpointError(RuntimeError):
    """No checkpoint in the workdir can be restored; the message says what to do."""


def _drop_orbax_info(record) -> bool:
    """Logging filter: orbax's INFO chatter (a dozen lines a save) is left out; warnings stay."""
    return not (record.levelno <= 20 and f"{os.sep}orbax{os.sep}" in record.pathname)


def open_manager(workdir: str, *, max_to_keep: int = 2) -> ocp.CheckpointManager:
    """The checkpoint manager of ``workdir/checkpoints`` (created if missing)."""
    absl_logger = logging.get_absl_logger()
    if _drop_orbax_info not in absl_logger.filters:
        absl_logger.addFilter(_drop_orbax_info)
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           cleanup_tmp_directories=True)
    return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")), options=options)


def save(manager: ocp.CheckpointManager, step: int, tree: Any) -> None:
    """Saves ``tree`` as ``step`` and waits until it is on disk."""
    manager.save(step, args=ocp.args.StandardSave(tree), force=True)
    manager.wait_until_finished()


def restore_latest(manager: ocp.CheckpointManager, target: Any) -> Any | None:
    """The newest restorable checkpoint shaped like ``target``, or None when there is none.

    A step that fails to restore (damaged or truncated files, other shapes) is reported and
    the previous step is tried. If steps exist but none restores, raises `CheckpointError`
    rather than silently starting over on top of earlier results.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    if not steps:
        return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    failures = []
    for step in steps:
        try:
            return manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as error:  # orbax raises many types for damaged files
            summary = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
            logging.warning("Checkpoint step %d in %s cannot be restored (%s); trying an earlier one.",
                            step, manager.directory, summary)
            failures.append(f"step {step} ({summary})")
    raise CheckpointError(
        f"No checkpoint in {manager.directory} can be restored: {'; '.join(failures)}. "
        "Move that directory away to start over, or use another --workdir.")
