"""Data parallelism: 4 simulated CPU devices (epoch 1), then 2 processes joined by
jax.distributed resuming that checkpoint (epoch 2), give the single-device run's metrics,
parameters and optimiser state (up to float reordering), each device holding only its rows of
the training images; a batch that does not split over the devices is refused;
jax.distributed starts only when configured."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import REPO, TINY_CLI_FLAGS, load_config

from vae_jax import parallel
from vae_jax.training import run, validation

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

STEPS_PER_EPOCH = 1500 // 32  # digits: 1500 training images, batch 32
EPOCHS = 2
# `reference_config()` on the command line (plus --config.num_epochs).
CLI_FLAGS = TINY_CLI_FLAGS
RTOL = 1e-5
TIMEOUT = 240  # seconds a launch may take before its processes are killed


def reference_config():
    config = load_config("vae")
    config.num_epochs = EPOCHS
    return config


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(**extra):
    """CPU only, no inherited device count or coordinator."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PJRT_NPROC", "JAX_COORDINATOR_ADDRESS")}
    return dict(env, JAX_PLATFORMS="cpu", **extra)


def start(workdir, env, log_path, *flags):
    """Starts ``python -m experiments.train`` (the config of `reference_config`)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "experiments.train", f"--workdir={workdir}", *CLI_FLAGS, *flags],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def finish(processes, logs):
    """Waits for ``processes``, which are always reaped: SIGKILLed if still running at the
    timeout, once one of them has failed (the others would wait for it in collectives) or
    on any error (workers waiting on a collective ignore SIGTERM). Returns the logs' texts."""
    try:
        deadline = time.monotonic() + TIMEOUT
        while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in processes):
                break
            time.sleep(0.1)
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()
    texts = []
    for log_path in logs:
        with open(log_path, errors="replace") as f:
            texts.append(f.read())
    codes = [p.returncode for p in processes]
    assert codes == [0] * len(processes), f"exit codes {codes}\n" + "\n".join(t[-3000:] for t in texts)
    return texts


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The single-device reference run (in this process: one CPU device; 2 epochs) and,
    alongside it in a subprocess, epoch 1 of the same run on 4 simulated CPU devices."""
    root = tmp_path_factory.mktemp("parallel")
    four_devices, log = str(root / "four-devices"), str(root / "four-devices.log")
    env = cli_env(
        XLA_FLAGS="--xla_force_host_platform_device_count=4", PJRT_NPROC="8"
    )  # enough CPU threads that 4 devices' collectives do not starve on 2 cores
    process = start(four_devices, env, log, "--config.num_epochs=1")
    try:
        reference = str(root / "reference")
        # One CPU device, placed explicitly (on a GPU machine the default backend is the GPU).
        run.train_and_evaluate(reference_config(), reference, mesh=parallel.data_mesh(jax.devices("cpu")[:1]))
    finally:
        [text] = finish([process], [log])
    return reference, four_devices, text, process.pid


def metric_records(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    for record in records:
        record.pop("examples_per_second", None)  # wall clock: train records only
    return records


def restore_tree(workdir, step):
    """A checkpoint's tree (step, params, optimiser state) as numpy arrays, whatever devices
    saved it (orbax needs a target to restore onto another topology: this one device)."""
    path = os.path.join(workdir, "checkpoints", str(step), "default")
    checkpointer = ocp.StandardCheckpointer()
    metadata = checkpointer.metadata(path)
    metadata = getattr(metadata, "item_metadata", metadata)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), metadata)
    return jax.tree.map(np.asarray, checkpointer.restore(path, target))


def relative_difference(a, b):
    """max |a - b| / max |b| (per leaf, the largest over leaves) of two numeric trees."""
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    return max(
        float(np.max(np.abs(np.asarray(x, np.float64) - y)) / max(float(np.max(np.abs(y))), 1e-30))
        for x, y in zip(leaves_a, leaves_b)
    )


def final_metrics(workdir):
    with open(os.path.join(workdir, "final_metrics.json")) as f:
        return json.load(f)


def values(records):
    return [[r[k] for k in sorted(r) if k not in ("epoch", "split", "step")] for r in records]


def compare(workdir, reference, epochs, label):
    """Asserts that ``workdir``'s run of ``epochs`` epochs matches the reference's first
    ``epochs``: the same metrics.jsonl records (epochs, splits, steps, fields), and within
    RTOL of their scale their values, final_metrics.json (the last epoch's test metrics), and
    the checkpoint's parameters and optimiser state. Returns the largest differences."""
    records, expected = metric_records(workdir), metric_records(reference)[: 2 * epochs]
    assert [(r["epoch"], r["split"], r["step"], sorted(r)) for r in records] == [
        (r["epoch"], r["split"], r["step"], sorted(r)) for r in expected
    ]
    final, expected_final = final_metrics(workdir), expected[-1]  # the last epoch's test metrics
    step = epochs * STEPS_PER_EPOCH
    tree, expected_tree = restore_tree(workdir, step), restore_tree(reference, step)
    assert int(tree["step"]) == int(expected_tree["step"]) == step
    differences = {
        "metrics": relative_difference(values(records), values(expected)),
        "final metrics": relative_difference(
            [final[k] for k in sorted(final)], [expected_final[k] for k in sorted(final)]
        ),
        "parameters": relative_difference(tree["params"], expected_tree["params"]),
        "optimiser state": relative_difference(tree["opt_state"], expected_tree["opt_state"]),
    }
    print(
        f"{label}: max relative difference to one device after {step} steps: "
        + ", ".join(f"{name} {value:.1e}" for name, value in differences.items())
    )
    assert max(differences.values()) < RTOL, differences
    return differences


def test_four_devices_match_one_device(runs):
    reference, four_devices, log, _ = runs
    assert "46 steps of 32 examples per epoch, 8 per device on 4 device(s) of 1 process(es)" in log
    assert "rows 0-1500 of 1500 (padded to 1500) on this process, 375 per device" in log
    compare(four_devices, reference, 1, "4 devices (1 process)")


def test_two_processes_resume_and_match_one_process(runs, tmp_path):
    """2 processes (1 CPU device each) joined by jax.distributed (gloo collectives) resume
    the 4-device run's checkpoint (another topology) for epoch 2."""
    reference, four_devices, _, four_devices_pid = runs
    workdir = str(tmp_path / "run")
    shutil.copytree(four_devices, workdir)
    address = f"127.0.0.1:{free_port()}"
    logs = [str(tmp_path / f"process{i}.log") for i in range(2)]
    processes = []
    try:
        for i in range(2):
            processes.append(
                start(
                    workdir,
                    cli_env(),
                    logs[i],
                    f"--config.num_epochs={EPOCHS}",
                    f"--coordinator_address={address}",
                    "--num_processes=2",
                    f"--process_id={i}",
                )
            )
    finally:
        texts = finish(processes, logs)
    for i, text in enumerate(texts):  # each process holds (and copied) only its half of the images
        assert "16 per device on 2 device(s) of 2 process(es)" in text
        assert f"rows {750 * i}-{750 * (i + 1)} of 1500 (padded to 1500) on this process, 750 per device" in text
        assert f"Resuming from the checkpoint at step {STEPS_PER_EPOCH}" in text
    compare(workdir, reference, EPOCHS, "2 processes (1 device each)")
    # Process 0 alone writes metrics and figures: the TensorBoard events files (named
    # events.out.tfevents.<time>.<host>.<pid>.<n>) are those of the 4-device run and of process 0.
    events = [n for n in os.listdir(workdir) if n.startswith("events.out.tfevents")]
    assert sorted(int(n.split(".")[-2]) for n in events) == sorted([four_devices_pid, processes[0].pid]), events


SHARD_ROWS_CHECK = """
import jax, numpy as np
from vae_jax import parallel
mesh = parallel.data_mesh()
images = np.arange(10 * 3, dtype=np.float32).reshape(10, 3) + 1
array = parallel.shard_rows(images, mesh)
assert array.shape == (12, 3), array.shape  # 3 rows per device, 2 of them padding
assert [s.data.shape[0] for s in array.addressable_shards] == [3] * 4
np.testing.assert_array_equal(np.asarray(array), np.concatenate([images, np.zeros((2, 3), np.float32)]))
indices = np.array([9, 0, 4, 7, 3, 8, 1, 2])
batch = jax.jit(lambda a, i: a[i], out_shardings=parallel.batch_sharded(mesh))(array, indices)
np.testing.assert_array_equal(np.asarray(batch), images[indices])
print("ok")
"""


def test_rows_split_over_devices_with_padding():
    """10 rows over 4 devices: 3 per device, zero padding at the end; gathered batches equal
    the host's rows."""
    result = subprocess.run(
        [sys.executable, "-c", SHARD_ROWS_CHECK],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=cli_env(XLA_FLAGS="--xla_force_host_platform_device_count=4", PJRT_NPROC="8"),
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_batch_size_must_divide_over_the_devices(monkeypatch, tmp_path):
    monkeypatch.setattr(jax, "device_count", lambda *args: 4)
    config = reference_config()
    config.batch_size = 30
    workdir = str(tmp_path / "run")
    with pytest.raises(validation.ConfigError) as raised:
        run.train_and_evaluate(config, workdir)
    assert str(raised.value) == (
        "--config.batch_size=30 does not divide evenly over the 4 devices (each device "
        "trains on an equal share of every batch): use --config.batch_size=32 (a multiple of 4)."
    )
    assert not os.path.exists(workdir)  # refused before any work


def test_distributed_starts_only_when_configured(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda *args: calls.append(args))
    for name in [n for n in os.environ if n.startswith(("SLURM_", "OMPI_")) or n == "JAX_COORDINATOR_ADDRESS"]:
        monkeypatch.delenv(name)
    assert not parallel.initialize() and calls == []  # one process: nothing to start
    assert parallel.initialize("10.0.0.1:1234", 2, 1) and calls == [("10.0.0.1:1234", 2, 1)]
    with pytest.raises(validation.ConfigError, match=r"--num_processes, --process_id missing"):
        parallel.initialize("10.0.0.1:1234")
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.2:1234")
    assert parallel.initialize(num_processes=4, process_id=3) and calls[-1] == ("10.0.0.2:1234", 4, 3)
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS")
    slurm = dict(SLURM_JOB_ID="7", SLURM_STEP_NODELIST="node[01-02]", SLURM_PROCID="1", SLURM_LOCALID="0")
    for name, value in dict(slurm, SLURM_NTASKS="1").items():
        monkeypatch.setenv(name, value)
    assert not parallel.initialize()  # a SLURM job of one task is one process
    monkeypatch.setenv("SLURM_NTASKS", "8")
    assert parallel.initialize() and calls[-1] == (None, None, None)  # JAX reads the rest from SLURM


SWEEP_FILE = """from configs import vae
from vae_jax.training import sweep_spec


def get_config():
    return vae.get_config()


def get_sweep():
    return sweep_spec.values("beta", [0.5, 2.0])
"""


def run_sweep_cli(directory, name, execution, env, *extra_flags, processes=1):
    """Runs the 2-member sweep of `SWEEP_FILE` (1 epoch of `reference_config`) with
    ``python -m experiments.sweep`` in ``processes`` processes; returns the results table
    ``{member: final metrics}``, the workdir and the logs."""
    sweep_file = directory / "two_betas.py"
    sweep_file.write_text(SWEEP_FILE)
    workdir = directory / name
    flags = [f"--workdir={workdir}", f"--config={sweep_file}", *CLI_FLAGS[1:], "--config.num_epochs=1"]
    flags += [f"--execution={execution}", *extra_flags]
    address = f"127.0.0.1:{free_port()}"
    logs = [str(directory / f"{name}-{i}.log") for i in range(processes)]
    launched = []
    try:
        for i, log in enumerate(logs):
            distributed = [f"--coordinator_address={address}", f"--num_processes={processes}", f"--process_id={i}"]
            with open(log, "ab") as out:
                launched.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "experiments.sweep", *flags, *(distributed if processes > 1 else [])],
                        cwd=REPO,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
    finally:
        texts = finish(launched, logs)
    with open(workdir / "sweep_results.json") as f:
        results = {row["name"]: row["metrics"] for row in json.load(f)["members"]}
    return results, workdir, texts


@pytest.fixture(scope="module")
def one_device_sweep(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sweep-one-device")
    results, _, _ = run_sweep_cli(directory, "one-device", "in_turn", cli_env())
    return results


def assert_sweep_matches(results, reference, workdir):
    assert sorted(results) == sorted(reference) == ["beta=0.5", "beta=2.0"]
    for name, metrics in reference.items():
        for metric, value in metrics.items():
            assert results[name][metric] == pytest.approx(value, rel=RTOL), (name, metric)
        assert final_metrics(str(workdir / name)) == results[name]  # each member's folder is its run


@pytest.mark.parametrize("execution", ["vmap", "in_turn"])
def test_sweep_on_four_devices_matches_one_device(execution, one_device_sweep, tmp_path):
    """A sweep is data parallel like a run: its 2 members on 4 simulated devices (vmapped, or
    in turn) end as on one device."""
    env = cli_env(XLA_FLAGS="--xla_force_host_platform_device_count=4", PJRT_NPROC="8")
    results, workdir, [log] = run_sweep_cli(tmp_path, "four-devices", execution, env)
    way = "in one vmapped program" if execution == "vmap" else "in turn"
    assert "8 per device on 4 device(s) of 1 process(es)" in log and f"2 members trained {way}" in log
    assert_sweep_matches(results, one_device_sweep, workdir)


def test_sweep_in_two_processes_matches_one_process(one_device_sweep, tmp_path):
    """2 processes joined by jax.distributed train the vmapped sweep together; process 0 alone
    writes the results."""
    results, workdir, logs = run_sweep_cli(tmp_path, "two-processes", "vmap", cli_env(), processes=2)
    for i, log in enumerate(logs):
        assert "16 per device on 2 device(s) of 2 process(es)" in log
        assert f"rows {750 * i}-{750 * (i + 1)} of 1500" in log
    assert "| beta=0.5 |" in logs[0] and "| beta=0.5 |" not in logs[1]  # the table, printed by process 0
    assert_sweep_matches(results, one_device_sweep, workdir)
