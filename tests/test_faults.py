"""Faults that real runs meet, through the real command line: a second launch on one workdir,
a lock left by a killed run, a misspelt override, a workdir without a run; and TensorBoard
left as consistent as metrics.jsonl after a resume."""

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, TINY_CLI_FLAGS, load_config, require_or_skip

from vae_jax.training import run, workdir

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TINY = TINY_CLI_FLAGS


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
        wait_for_line(first, "Training images resident on the devices")  # the lock is held from before the data load
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


# A model whose checkpoints (about 1.6 MB of parameters and Adam moments) fill small disks fast.
BIG = ["--config.model.encoder_hidden=(1000,)", "--config.model.decoder_hidden=(1000,)", "--config.num_epochs=4"]


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 300 KB at ``tmp_path/disk`` (root only), grown with `remount`. Without root the
    test skips, or fails under ``$VAE_JAX_REQUIRE_REAL_DATA`` (CI, which runs as root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)], capture_output=True)
    require_or_skip(
        mounted.returncode == 0,
        f"a full disk is made with a tmpfs mount, which needs root: {mounted.stderr.decode().strip()[:200]}",
    )

    def resize(size):
        subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)

    try:
        yield disk, resize
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_full_disk_is_one_error_line_and_the_run_resumes_bit_identically(small_disk, tmp_path):
    disk, resize = small_disk
    run_dir = disk / "run"
    # 300 KB: clearly too small for one checkpoint, refused before training.
    refused = train_cli(run_dir, *BIG)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    [line] = error_lines(refused.stderr)
    assert f"{run_dir} has 0." in line and "MB free, less than the" in line and "one checkpoint needs" in line
    assert "epoch 1/4" not in refused.stderr
    # 2.5 MB: the epoch-1 checkpoint fits, the epoch-2 one does not.
    resize("2500k")
    full = train_cli(run_dir, *BIG)
    assert full.returncode == 2 and "Traceback" not in full.stderr and "Event loop is closed" not in full.stderr
    [line] = error_lines(full.stderr)
    assert line.startswith(f"error: could not write {run_dir}/checkpoints/92: no space left on the device. Free space")
    assert "(details: " in line  # the traceback went to a log file
    assert sorted(os.listdir(run_dir / "checkpoints"))[0] == "46"  # the last good checkpoint is intact
    # Space is back: the same command resumes from step 46 and ends as an uninterrupted run.
    resize("20m")
    resumed = train_cli(run_dir, *BIG)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming from the checkpoint at step 46" in resumed.stderr
    reference = train_cli(tmp_path / "reference", *BIG)
    assert reference.returncode == 0
    assert read_metrics(run_dir) == read_metrics(tmp_path / "reference")
    with open(run_dir / "final_metrics.json") as a, open(tmp_path / "reference" / "final_metrics.json") as b:
        assert a.read() == b.read()


def read_metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k != "examples_per_second"} for line in f]


def test_sigterm_stops_after_the_epoch_with_a_checkpoint_and_resumes_bit_identically(tmp_path):
    run_dir = tmp_path / "run"
    epochs = ["--config.num_epochs=30"]
    process = train_cli(run_dir, *epochs, wait=False)
    wait_for_line(process, "epoch 2/30")
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 2, output[-2000:]
    assert (
        "SIGTERM received: stopping after the segment of the epoch in progress" in output and "Traceback" not in output
    )
    [line] = error_lines(output)
    stopped_after = int(line.split("after epoch ")[1].split(" ")[0])
    step = int(line.split("checkpoint at step ")[1].split(" ")[0])
    assert 2 < stopped_after < 30 and step == 46 * stopped_after  # digits: 46 steps per epoch
    assert line.endswith("run the same command to resume.")
    assert str(step) in os.listdir(run_dir / "checkpoints")
    assert [r["epoch"] for r in read_metrics(run_dir) if r["split"] == "train"] == list(range(1, stopped_after + 1))
    resumed = train_cli(run_dir, *epochs)
    assert resumed.returncode == 0 and f"Resuming from the checkpoint at step {step}" in resumed.stderr
    train_cli(tmp_path / "reference", *epochs)
    assert read_metrics(run_dir) == read_metrics(tmp_path / "reference")
    with open(run_dir / "final_metrics.json") as a, open(tmp_path / "reference" / "final_metrics.json") as b:
        assert a.read() == b.read()


def test_sigterm_mid_epoch_checkpoints_at_a_segment_boundary_and_resumes_bit_identically(tmp_path):
    """A stop signal between two segments of an epoch (`vae_jax.training.segments`; here one step each)
    writes a checkpoint mid-epoch with the epoch's metric sums; the same command resumes there
    and ends exactly as an uninterrupted run cut into whole-epoch segments."""
    run_dir = tmp_path / "run"
    flags = ["--config.num_epochs=4", "--config.segment_seconds=1e-6"]
    command = [sys.executable, "-m", "experiments.train", f"--workdir={run_dir}", *TINY, *flags]
    # Segments: epoch 1 whole (its first call compiles), epoch 2 whole (measured: too slow for
    # 1e-6 s), then one step each: the 5th segment ends at step 3 of epoch 3.
    killed = subprocess.run(
        command,
        cwd=REPO,
        env={**env(), "VAE_JAX_KILL_AT": "segment_done:5:SIGTERM"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert killed.returncode == 2, killed.stderr[-2000:]
    assert "Traceback" not in killed.stderr
    [line] = error_lines(killed.stderr)
    assert line.startswith(
        "error: stopped by SIGTERM at step 3 of epoch 3's 46 (4 epochs in all), with a checkpoint at step 95 in "
    ), line
    assert "95" in checkpoint_names(run_dir) and train_epochs(run_dir) == [1, 2]
    resumed = subprocess.run(command, cwd=REPO, env=env(), capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0 and "Resuming from the checkpoint at step 95" in resumed.stderr
    assert train_cli(tmp_path / "reference", "--config.num_epochs=4").returncode == 0
    assert read_metrics(run_dir) == read_metrics(tmp_path / "reference")
    with open(run_dir / "final_metrics.json") as a, open(tmp_path / "reference" / "final_metrics.json") as b:
        assert a.read() == b.read()


SECOND_SIGNAL = """
import os, signal, sys
from vae_jax.training import preemption
with preemption.handled():
    os.kill(os.getpid(), signal.SIGTERM)
    assert preemption.requested() == "SIGTERM", preemption.requested()
    print("first signal: stop requested", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    print("still running after the second signal", flush=True)
"""


def test_a_second_signal_ends_the_process_at_once():
    result = subprocess.run(
        [sys.executable, "-c", SECOND_SIGNAL], cwd=REPO, env=env(), capture_output=True, text=True, timeout=60
    )
    assert "first signal: stop requested" in result.stdout and "still running" not in result.stdout
    assert result.returncode == -signal.SIGTERM


def checkpoint_names(run_dir):
    directory = os.path.join(run_dir, "checkpoints")
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def train_epochs(run_dir):
    try:
        return [r["epoch"] for r in read_metrics(run_dir) if r["split"] == "train"]
    except OSError:
        return []


def test_sigkill_at_exact_points_then_rerun_matches_uninterrupted_run(tmp_path):
    """Killed (SIGKILL, `vae_jax.faults`) mid-epoch, mid-checkpoint and between an epoch's log
    and its checkpoint, each time with the state on disk asserted; the same command then ends
    exactly as an uninterrupted run."""
    flags = ["--config.num_epochs=6", "--config.checkpoint_every_epochs=2", "--config.fused_epoch=False"]
    run_dir = tmp_path / "run"

    def killed_at(point):
        env_with_kill = {**env(), "VAE_JAX_KILL_AT": point}
        command = [sys.executable, "-m", "experiments.train", f"--workdir={run_dir}", *TINY, *flags]
        result = subprocess.run(command, cwd=REPO, env=env_with_kill, capture_output=True, text=True, timeout=240)
        assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]

    # 1. Mid-epoch: step 100 is in epoch 3 (46 steps an epoch); the last checkpoint is epoch 2's.
    killed_at("step_done:100")
    assert checkpoint_names(run_dir) == ["92"] and train_epochs(run_dir) == [1, 2]
    # 2. Mid-checkpoint: the resumed run's first save (epoch 4, step 184) has begun, not committed.
    killed_at("checkpoint_started:1")
    assert [n for n in checkpoint_names(run_dir) if n.isdigit()] == ["92"]
    assert any(n.startswith("184.orbax-checkpoint-tmp") for n in checkpoint_names(run_dir))
    assert train_epochs(run_dir) == [1, 2, 3, 4]
    # 3. Between log and checkpoint: epoch 4 is logged again, its checkpoint again not written.
    killed_at("epoch_logged:2")
    assert [n for n in checkpoint_names(run_dir) if n.isdigit()] == ["92"]
    assert train_epochs(run_dir) == [1, 2, 3, 4]
    # 4. The same command finishes the run: as an uninterrupted one, each epoch logged once.
    assert train_cli(run_dir, *flags).returncode == 0
    reference = train_cli(tmp_path / "reference", *flags)
    assert reference.returncode == 0
    assert read_metrics(run_dir) == read_metrics(tmp_path / "reference")
    assert [n for n in checkpoint_names(run_dir) if not n.isdigit()] == []  # the interrupted save: cleaned up
    with open(run_dir / "final_metrics.json") as a, open(tmp_path / "reference" / "final_metrics.json") as b:
        assert a.read() == b.read()
    assert set(summary_steps(str(run_dir)).values()) == {1}  # TensorBoard: each (tag, step) once


SWEEP_FILE = """from configs import vae
from vae_jax.training import sweep_spec


def get_config():
    return vae.get_config()


def get_sweep():
    return sweep_spec.values("beta", [0.5, 2.0])
"""


def test_sweep_killed_mid_checkpoint_resumes_to_the_uninterrupted_result(tmp_path):
    """A vmapped sweep SIGKILLed while writing its second member's epoch-2 checkpoint (the first
    member's is committed: it is one epoch ahead): the same command brings the first member
    back to epoch 1 and ends exactly as the uninterrupted sweep."""
    sweep_file = tmp_path / "two_betas.py"
    sweep_file.write_text(SWEEP_FILE)

    def sweep_cli(directory, **extra_env):
        command = [
            sys.executable,
            "-m",
            "experiments.sweep",
            f"--workdir={directory}",
            f"--config={sweep_file}",
            *TINY[1:],
            "--config.num_epochs=3",
            "--execution=vmap",
        ]
        return subprocess.run(
            command, cwd=REPO, env={**env(), **extra_env}, capture_output=True, text=True, timeout=240
        )

    killed = sweep_cli(tmp_path / "sweep", VAE_JAX_KILL_AT="checkpoint_started:4")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first, second = tmp_path / "sweep" / "beta=0.5", tmp_path / "sweep" / "beta=2.0"
    assert checkpoint_names(first) == ["46", "92"]
    assert [n for n in checkpoint_names(second) if n.isdigit()] == ["46"]
    assert any(n.startswith("92.orbax-checkpoint-tmp") for n in checkpoint_names(second))
    assert train_epochs(first) == train_epochs(second) == [1, 2]
    resumed = sweep_cli(tmp_path / "sweep")
    assert resumed.returncode == 0 and "Resuming from the checkpoint at step 46" in resumed.stderr
    assert sweep_cli(tmp_path / "whole").returncode == 0
    for name in ("beta=0.5", "beta=2.0"):
        assert read_metrics(tmp_path / "sweep" / name) == read_metrics(tmp_path / "whole" / name)
        with open(tmp_path / "sweep" / name / "final_metrics.json") as a:
            with open(tmp_path / "whole" / name / "final_metrics.json") as b:
                assert a.read() == b.read()
