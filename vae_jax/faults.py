"""Test-only kill points: a crash at an exact place of a run, for the tests of what it leaves.

With ``VAE_JAX_KILL_AT=<point>:<n>`` in the environment, the process SIGKILLs itself the n-th
time it reaches `point` ``<point>``: ``step_done`` (after a training step of an unfused epoch:
mid-epoch), ``checkpoint_started`` (orbax has begun writing a step: mid-checkpoint) or
``epoch_logged`` (an epoch's metrics are logged, its checkpoint not yet written). Without the
variable `point` does nothing.
"""

from __future__ import annotations

import os
import signal

POINTS = ("step_done", "checkpoint_started", "epoch_logged")
_target, _, _count = os.environ.get("VAE_JAX_KILL_AT", "").partition(":")
_reached = {name: 0 for name in POINTS}


def point(name: str) -> None:
    """Counts a pass through kill point ``name``; SIGKILLs the process at the requested one."""
    if name != _target:
        return
    _reached[name] += 1
    if _reached[name] == int(_count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
