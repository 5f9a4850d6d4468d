"""Stopping cleanly on SIGTERM or SIGINT (preemption, Ctrl-C).

While `handled` is active, the first signal only asks the training loop to stop: the loop
finishes the segment of the epoch in progress (one compiled program of about
``config.segment_seconds``, `vae_jax.training.segments`), writes a checkpoint of every member (mid-
epoch, with the epoch's metric sums so far) and raises `errors.Interrupted`; the same command
then resumes bit-identically. A second signal ends the process at once (the OS's default
action: a segment in progress is not waited for); what was saved before stays intact
(checkpoints are written atomically).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

_requested: list[int] = []  # the signals received while a loop ran


def _handle(signum, frame) -> None:
    del frame
    _requested.append(signum)
    for sig in (signal.SIGTERM, signal.SIGINT):  # a second signal: the OS's default, at once
        signal.signal(sig, signal.SIG_DFL)
    # Written straight to the file descriptor: a handler that logs can interrupt the logging of
    # the main thread mid-write (Python's buffered stderr then fails with a reentrant call).
    message = (
        f"{signal.Signals(signum).name} received: stopping after the segment of the epoch in progress, with a "
        "checkpoint (send it again to stop at once).\n"
    )
    try:
        os.write(2, message.encode())
    except OSError:
        pass


def requested() -> str | None:
    """The name of the signal that asked the loop to stop, if any."""
    return signal.Signals(_requested[0]).name if _requested else None


@contextlib.contextmanager
def handled():
    """SIGTERM and SIGINT ask the loop to stop (see the module docstring) inside the block; the
    previous handlers come back after it. Outside the main thread signals keep their handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    _requested.clear()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _requested.clear()
