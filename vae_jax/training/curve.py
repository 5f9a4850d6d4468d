"""A run's validation curve against training time, read from its ``metrics.jsonl``: what each
minute of training bought, and so what more time would buy.

Each epoch's training time is its steps x batch size / the ``examples_per_second`` its train
record gives (the time of the epoch's training steps, compiling included, as measured by the
process that finished the epoch; the validation pass after it is not counted). Minutes are the
sum of those times up to the epoch. The value is the epoch's validation criterion (the negative
ELBO for likelihood models, `selection.criterion`), an upper bound of the validation NLL.
"""

from __future__ import annotations

import dataclasses
import math
import os

from vae_jax import config as config_lib
from vae_jax.training import selection
from vae_jax.training import workdir as workdir_lib

METRICS_FILE = "metrics.jsonl"


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    epoch: int
    step: int
    minutes: float  # training minutes up to the end of this epoch
    value: float  # this epoch's validation criterion
    best: float  # the lowest validation criterion up to this epoch (what selection would keep)
    best_epoch: int


def read_records(workdir: str) -> list[dict]:
    """The complete records of ``workdir/metrics.jsonl`` (`workdir.read_records`); [] if none."""
    return workdir_lib.read_records(os.path.join(workdir, METRICS_FILE))


def cumulative_minutes(records: list[dict], batch_size: int) -> dict[int, tuple[int, float]]:
    """``{epoch: (step, training minutes up to the end of that epoch)}`` from the train records
    (each epoch's steps over its logged rate: the time of the training steps alone, without
    evaluation or checkpoints)."""
    train = {r["epoch"]: r for r in records if r.get("split") == "train" and "examples_per_second" in r}
    result, minutes, previous_step = {}, 0.0, 0
    for epoch in sorted(train):
        record = train[epoch]
        minutes += (record["step"] - previous_step) * batch_size / record["examples_per_second"] / 60
        previous_step = record["step"]
        result[epoch] = (record["step"], minutes)
    return result


def training_minutes(records: list[dict], batch_size: int, last_step: float = math.inf) -> float:
    """The training minutes of the epochs logged up to ``last_step`` (`cumulative_minutes`): what
    ``config.max_training_minutes`` counts, so a resumed run counts the same as an uninterrupted one."""
    done = [minutes for step, minutes in cumulative_minutes(records, batch_size).values() if step <= last_step]
    return max(done, default=0.0)


def validation_curve(records: list[dict], batch_size: int) -> list[CurvePoint]:
    """One point per epoch that has both a train record (with its rate) and a validation record.

    Records are those of one run (a sweep member's folder is one run)."""
    valid = {r["epoch"]: r for r in records if r.get("split") == "valid"}
    points = []
    best, best_epoch = math.inf, 0
    for epoch, (step, minutes) in sorted(cumulative_minutes(records, batch_size).items()):
        if epoch not in valid:
            continue
        value = selection.criterion(valid[epoch])
        if math.isfinite(value) and value < best:
            best, best_epoch = value, epoch
        points.append(CurvePoint(epoch, step, minutes, value, best, best_epoch))
    return points


def at_minutes(points: list[CurvePoint], marks: list[float]) -> list[tuple[float, CurvePoint | None]]:
    """For each mark, the last point within that many training minutes: its ``best`` is what
    the run would have kept had it been stopped there. None where the run trained for less than
    the mark in all, or its first epoch took longer."""
    result = []
    for mark in marks:
        reached = [p for p in points if p.minutes <= mark]
        ran_long_enough = bool(points) and points[-1].minutes >= mark
        result.append((mark, reached[-1] if reached and ran_long_enough else None))
    return result


def run_curve(workdir: str) -> list[CurvePoint]:
    """The validation curve of the run in ``workdir`` (from its metrics.jsonl; [] before its
    first epoch). `ConfigError` if ``workdir`` holds no run."""
    config = config_lib.read_run_config(workdir)
    return validation_curve(read_records(workdir), config.batch_size)
