"""Test-only kill points: a crash at an exact place of a run, for the tests of what it leaves.

With ``VAE_JAX_KILL_AT=<point>:<n>[:<signal>]`` in the environment, the process sends itself
``signal`` (default SIGKILL; e.g. SIGTERM, to test a stop signal at an exact place) the n-th
time it reaches `point` ``<point>``: ``step_done`` (after a training step of an unfused epoch:
mid-epoch), ``segment_done`` (after a segment of an epoch, `vae_jax.training.segments`),
``checkpoint_started`` (orbax has begun writing a step: mid-checkpoint) or ``epoch_logged``
(an epoch's metrics are logged, its checkpoint not yet written). Without the variable `point`
does nothing.
"""

from __future__ import annotations

import os
import signal

POINTS = ("step_done", "segment_done", "checkpoint_started", "epoch_logged")
_target, _, _rest = os.environ.get("VAE_JAX_KILL_AT", "").partition(":")
_count, _, _signal = _rest.partition(":")
_reached = {name: 0 for name in POINTS}


def point(name: str) -> None:
    """Counts a pass through kill point ``name``; signals the process at the requested one."""
    if name != _target:
        return
    _reached[name] += 1
    if _reached[name] == int(_count or 1):
        os.kill(os.getpid(), getattr(signal, _signal or "SIGKILL"))
