"""How many steps each compiled call of an epoch runs, so that a stop signal is answered soon.

An epoch runs as segments (`programs.make_train_segment`); the loop looks for a stop signal
(`vae_jax.training.preemption`) between them. A whole epoch in one call is fastest, but a long epoch
(a large model, a large dataset) would keep a preempted run waiting for minutes, so a
segment takes about ``config.segment_seconds``: the first has `FIRST_LENGTH` steps, and each
measured call sets the next length from its time per step (a call that compiled its
program measures an upper bound of that time, which can only make segments shorter). Lengths
are powers of two or the whole epoch, so a run compiles few programs. Where an epoch is cut
changes no result (the state and the metric sums are carried step by step).
"""

from __future__ import annotations

FIRST_LENGTH = 64


def _power_of_two_at_most(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


class SegmentLengths:
    """The length of each next segment of an epoch of ``steps_per_epoch`` steps (at most
    ``max_steps``: a streamed segment's images must fit in memory)."""

    def __init__(self, steps_per_epoch: int, seconds: float, max_steps: int | None = None):
        self.steps_per_epoch, self.seconds = steps_per_epoch, seconds
        self.max_steps = steps_per_epoch if max_steps is None else max(1, min(max_steps, steps_per_epoch))
        self.length = min(self.max_steps, FIRST_LENGTH)
        self.compiled: set[int] = set()

    def next(self, position: int) -> int:
        """Steps of the segment that starts at step ``position`` of the epoch."""
        return min(self.length, self.steps_per_epoch - position)

    def observe(self, length: int, seconds: float) -> None:
        """Records that a segment of ``length`` steps took ``seconds`` (compilation included the
        first time a length is seen) and sets the next length."""
        first_call = length not in self.compiled
        self.compiled.add(length)
        fit = int(self.seconds * length / max(seconds, 1e-9))  # steps that take about `self.seconds`
        if fit >= self.max_steps:
            wanted = self.max_steps
        else:
            wanted = _power_of_two_at_most(fit)
        if wanted < self.length and first_call:
            return  # compilation inflated this measurement: shrink only on a measured call
        if wanted >= 2 * self.length or wanted < self.length:
            self.length = wanted
