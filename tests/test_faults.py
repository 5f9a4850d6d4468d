"""Faults that real runs meet, through the real command line: a second launch on one workdir,
a lock left by a killed run, a misspelt override, a workdir without a run; and TensorBoard
left as consistent as metrics.jsonl after a resume."""

import collections
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import load_config
from vae_jax import run, workdir

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    "--config=configs/vae.py",
    "--config.data.name=digits",
    "--config.model.encoder_hidden=(32,)",
    "--config.model.decoder_hidden=(32,)",
    "--config.model.latents=2",
    "--config.batch_size=32",
    "--config.eval_batch_size=128",
    "--config.num_figure_examples=4",
]


def env():
    return {
        **{k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_COORDINATOR_ADDRESS")},
        "JAX_PLATFORMS": "cpu",
    }


def train_cli(workdir_path, *flags, wait=True, timeout=240):
    command = [sys.executable, "-m", "experiments.train", f"--workdir={workdir_path}", *TINY, *flags]
    if not wait:
        return subprocess.Popen(
            command, cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    return subprocess.run(command, cwd=REPO, env=env(), capture_output=True, text=True, timeout=timeout)


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def wait_for_line(process, text, timeout=180):
    """Reads the process's output until a line containing ``text`` (the process keeps running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if text in line:
            return
        if not line and process.poll() is not None:
            break
    pytest.fail(f"{text!r} never appeared (exit {process.poll()})")


def test_second_launch_is_refused_and_a_killed_runs_lock_never_blocks(tmp_path):
    run_dir = tmp_path / "run"
    first = train_cli(run_dir, "--config.num_epochs=500", wait=False)
    try:
        wait_for_line(first, "Training images split by rows")  # the lock is held from before the data load
        second = train_cli(run_dir, "--config.num_epochs=500")
        assert second.returncode == 2, second.stderr[-2000:]
        [line] = error_lines(second.stderr)
        assert f"--workdir='{run_dir}' is in use by another run: process {first.pid} on host" in line
        assert "Traceback" not in second.stderr
        assert first.poll() is None  # the first run is untouched
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The killed run's lock file is still there, but its flock died with it.
    assert os.path.exists(run_dir / workdir.LOCK_NAME)
    again = train_cli(run_dir, "--config.num_epochs=1")
    assert again.returncode == 0, again.stderr[-2000:]


def test_common_mistakes_are_one_error_line(tmp_path):
    misspelt = train_cli(tmp_path / "run", "--config.model.latent=3")
    assert misspelt.returncode == 2 and "Traceback" not in misspelt.stderr
    [line] = error_lines(misspelt.stderr)
    assert "--config.model.latent=3: configs/vae.py has no value 'model.latent': did you mean model.latents" in line
    assert not os.path.exists(tmp_path / "run")  # refused before anything was written
    missing = subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", f"--workdir={tmp_path / 'nothing'}"],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    [line] = error_lines(missing.stderr)
    assert "holds no run (no config.json): train one first with python -m experiments.train" in line
    assert not os.path.exists(tmp_path / "nothing")


def summary_steps(run_dir):
    """``{(tag, step): count}`` over every events file in ``run_dir``, read back."""
    counts = collections.Counter()
    for name in os.listdir(run_dir):
        if name.startswith(workdir.EVENTS_PREFIX):
            for event in workdir.read_events(os.path.join(run_dir, name)):
                for value in event.summary.value:
                    counts[(value.tag, event.step)] += 1
    return counts


def test_resume_leaves_tensorboard_without_repeated_epochs(tmp_path):
    """A run resumed from its epoch-1 checkpoint trains epoch 2 again: its events files then
    hold every (tag, step) once, as metrics.jsonl holds every epoch once."""
    config = load_config("vae")
    config.num_epochs = 2
    run_dir = str(tmp_path / "run")
    run.train_and_evaluate(config, run_dir)
    steps = summary_steps(run_dir)
    assert set(steps.values()) == {1} and len({step for _, step in steps}) == 2
    shutil.rmtree(os.path.join(run_dir, "checkpoints", str(max(step for _, step in steps))))  # lost: epoch 2
    os.remove(os.path.join(run_dir, "final_metrics.json"))
    run.train_and_evaluate(config, run_dir)
    assert summary_steps(run_dir) == steps  # each (tag, step) once, the same ones
