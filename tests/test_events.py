"""TensorBoard events after a SIGKILL and a resume: `workdir.MetricsLog` rebuilds them from
metrics.jsonl (the durable record), so a resumed run's events equal an uninterrupted run's,
tag for tag, step for step and value for value, each (tag, step) once."""

import collections
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, load_config

from vae_jax import parallel
from vae_jax.training import workdir

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

STEPS = 10  # steps per epoch of the unit tests' logs


def write_epoch(log, epoch):
    """An epoch's two records, as the training loop writes them (a wall-clock rate that differs
    from run to run, an extra field that is no metric)."""
    step = STEPS * epoch
    train = {"loss": 1.0 / epoch, "kl": epoch / 7.0, "reconstruction": 0.5 + 1.0 / epoch}
    log.write(step, "train", train, epoch=epoch, examples_per_second=1000.0 + time.time() % 1)
    log.write(step, "test", {"loss": 2.0 / epoch, "kl": epoch / 3.0}, epoch=epoch)


def env():
    return {
        **{k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_COORDINATOR_ADDRESS")},
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests")]),
    }


def kill_writer(directory, mode):
    """Runs this file as a script: a `MetricsLog` writes 3 epochs to ``directory`` and is
    SIGKILLed (see ``__main__`` below)."""
    script = os.path.abspath(__file__)
    result = subprocess.run(
        [sys.executable, script, str(directory), mode],
        check=False,
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]


def summaries(directory):
    """``{(tag, step, value): count}`` over every events file in ``directory``."""
    counts = collections.Counter()
    for name in os.listdir(directory):
        if name.startswith(workdir.EVENTS_PREFIX):
            for event in workdir.read_events(os.path.join(directory, name)):
                for value in event.summary.value:
                    counts[(value.tag, event.step, value.simple_value)] += 1
    return counts


def events_files(directory):
    return sorted(n for n in os.listdir(directory) if n.startswith(workdir.EVENTS_PREFIX))


def records(directory):
    with open(os.path.join(directory, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k != "examples_per_second"} for line in f]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted log of 4 epochs."""
    directory = tmp_path_factory.mktemp("reference")
    log = workdir.MetricsLog(str(directory))
    log.truncate(0)  # as the training loop does, on a new run
    for epoch in (1, 2, 3, 4):
        write_epoch(log, epoch)
    log.close()
    counts = summaries(directory)
    assert set(counts.values()) == {1} and len(counts) == 4 * 5
    assert {tag for tag, _, _ in counts} == {
        "train/loss",
        "train/kl",
        "train/reconstruction",
        "test/loss",
        "test/kl",
    }  # the record's extra fields (epoch, examples_per_second) are no summaries
    return directory


@pytest.mark.parametrize("mode", ["flushed", "lost", "ahead"])
def test_sigkilled_log_resumes_to_the_events_of_an_uninterrupted_log(mode, reference, tmp_path):
    """Killed after epoch 3 (whose checkpoint was not written: the resume is from epoch 2's step):
    ``flushed``, the log as it is (each write flushed); ``lost``, a writer that had flushed
    nothing to disk (the issue: TensorFlow's GFile buffers until a flush, every 2 minutes);
    ``ahead``, killed between epoch 4's event and its metrics.jsonl line. The resumed log
    retrains epochs 3 and 4: its events then equal the uninterrupted log's."""
    kill_writer(tmp_path, mode)
    before = summaries(tmp_path)
    steps = {step for _, step, _ in before}
    if mode == "lost":
        assert steps < {10, 20, 30}, before  # the kill lost events that metrics.jsonl holds
    elif mode == "flushed":
        assert steps == {10, 20, 30}
    else:
        assert steps == {10, 20, 30, 40}  # an event of a record that metrics.jsonl lacks
    log = workdir.MetricsLog(str(tmp_path))
    log.truncate(2 * STEPS)
    after_truncate = summaries(tmp_path)
    assert {step for _, step, _ in after_truncate} == {10, 20} and set(after_truncate.values()) == {1}
    for epoch in (3, 4):
        write_epoch(log, epoch)
    log.close()
    assert summaries(tmp_path) == summaries(reference)  # each (tag, step, value) once, the same ones
    assert records(tmp_path) == records(reference)
    assert not os.path.exists(tmp_path / workdir.EVENTS_REWRITE)


def test_matching_events_files_are_left_as_they_are(reference, tmp_path):
    """A resume whose events already match metrics.jsonl rewrites nothing (the earlier run's
    file stays, byte for byte); the resumed run writes its own file beside it."""
    directory = tmp_path / "run"
    log = workdir.MetricsLog(str(directory))
    for epoch in (1, 2):
        write_epoch(log, epoch)
    log.close()
    [name] = events_files(directory)
    content = (directory / name).read_bytes()
    log = workdir.MetricsLog(str(directory))
    log.truncate(2 * STEPS)
    assert events_files(directory) == [name] and (directory / name).read_bytes() == content
    for epoch in (3, 4):
        write_epoch(log, epoch)
    log.close()
    assert len(events_files(directory)) == 2 and (directory / name).read_bytes() == content
    assert summaries(directory) == summaries(reference)


def test_a_partial_last_event_is_rewritten(reference, tmp_path):
    """An events file cut inside a record (a writer killed mid-write) is replaced by a complete one."""
    log = workdir.MetricsLog(str(tmp_path))
    for epoch in (1, 2, 3, 4):
        write_epoch(log, epoch)
    log.close()
    [name] = events_files(tmp_path)
    with open(tmp_path / name, "ab") as f:
        f.write(b"\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00partial")
    workdir.MetricsLog(str(tmp_path)).truncate(4 * STEPS)
    [rebuilt] = events_files(tmp_path)
    _, complete = workdir._read_events(str(tmp_path / rebuilt))
    assert complete and summaries(tmp_path) == summaries(reference)


def test_a_log_written_without_truncate_drops_events_that_metrics_jsonl_lacks(tmp_path):
    """A fitted model logs its one evaluation when metrics.jsonl is missing: a run killed
    after that event but before its line leaves an event that the next run's write drops."""
    log = workdir.MetricsLog(str(tmp_path))
    log.writer.add_event(workdir.summary_event({"step": 0, "split": "test", "loss": 1.5}, time.time()))
    log.close()  # no metrics.jsonl line
    assert summaries(tmp_path) == {("test/loss", 0, 1.5): 1}
    log = workdir.MetricsLog(str(tmp_path))
    log.write(0, "test", {"loss": 1.5})
    log.close()
    assert summaries(tmp_path) == {("test/loss", 0, 1.5): 1}


def test_other_processes_write_and_rebuild_nothing(monkeypatch, tmp_path):
    """Process 0 alone writes: another process's log neither writes nor rebuilds the events."""
    kill_writer(tmp_path, "lost")
    names = events_files(tmp_path)
    contents = {name: (tmp_path / name).read_bytes() for name in names}
    with open(tmp_path / "metrics.jsonl") as f:
        lines = f.read()
    monkeypatch.setattr(parallel, "is_primary", lambda: False)
    log = workdir.MetricsLog(str(tmp_path))
    assert not log.active
    log.truncate(STEPS)
    write_epoch(log, 2)
    log.close()
    assert {name: (tmp_path / name).read_bytes() for name in events_files(tmp_path)} == contents
    with open(tmp_path / "metrics.jsonl") as f:
        assert f.read() == lines


KILLED_RUN = """
import sys
from conftest import load_config
from vae_jax.training import run

config = load_config("vae")
config.num_epochs = 3
config.checkpoint_every_epochs = 2
run.train_and_evaluate(config, sys.argv[1])
"""


def test_training_run_sigkilled_after_logging_resumes_to_the_uninterrupted_events(tmp_path):
    """A real run SIGKILLed after logging epoch 3, before its checkpoint (`vae_jax.faults`): the
    resumed run retrains epoch 3, and its events equal an uninterrupted run's."""
    from vae_jax.training import run

    run_dir, reference_dir = str(tmp_path / "run"), str(tmp_path / "reference")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, run_dir],
        check=False,
        cwd=REPO,
        env={**env(), "VAE_JAX_KILL_AT": "epoch_logged:3"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    config = load_config("vae")
    config.num_epochs = 3
    config.checkpoint_every_epochs = 2
    run.train_and_evaluate(config, run_dir)
    run.train_and_evaluate(config, reference_dir)
    resumed, expected = summaries(run_dir), summaries(reference_dir)
    assert len({step for _, step, _ in expected}) == 3 and set(expected.values()) == {1}
    assert resumed == expected


if __name__ == "__main__":  # the killed writer of `kill_writer`
    directory, mode = sys.argv[1:]
    if mode == "lost":

        class Buffered(workdir.EventFileWriter):
            """A writer whose events never leave the process's memory."""

            def add_event(self, event):
                pass

            def flush(self):
                pass

        workdir.EventFileWriter = Buffered
    log = workdir.MetricsLog(directory)
    log.truncate(0)
    for epoch in (1, 2, 3):
        write_epoch(log, epoch)
    if mode == "ahead":
        event = workdir.summary_event({"step": 4 * STEPS, "split": "train", "loss": 0.25}, time.time())
        log.writer.add_event(event)
        log.writer.flush()
        with open(log.path, "a") as f:
            f.write('{"step": 40, "split": "tr')  # the line's start: the kill came mid-write
    os.kill(os.getpid(), signal.SIGKILL)
