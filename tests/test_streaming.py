"""Streamed training images (`vae_jax.data.streaming`): the same batches as the resident path, each
device's rows where they belong, bit-identical runs, and a stopped streaming run that resumes
bit-identically."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO, TINY_CLI_FLAGS

from vae_jax import parallel
from vae_jax.data import streaming
from vae_jax.training import run, sweep


class DecodedRows:
    """A per-example source (like a decoder of image files): uint8 rows, one call each."""

    def __init__(self, array):
        self.array, self.calls = array, 0

    def __len__(self):
        return len(self.array)

    def __getitem__(self, i):
        self.calls += 1
        return self.array[i]


def test_streamed_images_read_a_memmap_and_a_per_example_source_alike(tmp_path):
    values = np.random.default_rng(0).integers(0, 256, (50, 6, 5, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", values)
    memmap = np.load(tmp_path / "images.npy", mmap_mode="r", allow_pickle=False)
    from_file = streaming.StreamedImages(memmap)
    per_example = DecodedRows(values)
    from_reader = streaming.StreamedImages(per_example, num_threads=3)
    assert from_file.shape == from_reader.shape == (50, 6, 5, 3) and len(from_file) == 50
    indices = np.array([[7, 3], [49, 0], [3, 3]])
    expected = values[indices].astype(np.float32) / 255
    np.testing.assert_array_equal(from_file.rows(indices), expected)
    np.testing.assert_array_equal(from_reader.rows(indices), expected)
    assert per_example.calls >= indices.size  # read one example at a time, through Grain
    np.testing.assert_array_equal(from_file[10:13], values[10:13] / np.float32(255))
    floats = streaming.StreamedImages(values.astype(np.float32) / 255)
    np.testing.assert_array_equal(floats[np.array([1, 2])], values[[1, 2]] / np.float32(255))


def test_a_segments_rows_are_laid_out_for_the_resident_programs_gather():
    values = np.random.default_rng(1).random((40, 4, 4, 1), dtype=np.float32)
    reader = streaming.SegmentReader(streaming.StreamedImages(values), parallel.data_mesh())
    orders = [np.arange(24).reshape(3, 8) * 37 % 40, None, np.arange(24)[::-1].reshape(3, 8)]
    images, positions = reader.read(orders)
    assert positions[1] is None and images.shape == (48, 4, 4, 1)
    for order, position in zip([orders[0], orders[2]], [positions[0], positions[2]]):
        np.testing.assert_array_equal(np.asarray(images)[np.asarray(position)], values[order])
    reader.close()


FOUR_DEVICES = """
import numpy as np
from vae_jax import parallel
from vae_jax.data import streaming
values = np.arange(64 * 2, dtype=np.float32).reshape(64, 2, 1, 1)
mesh = parallel.data_mesh()
assert mesh.size == 4
read = []
class Source:
    def __len__(self): return 64
    def __getitem__(self, i):
        read.append(i)
        return values[i]
reader = streaming.SegmentReader(streaming.StreamedImages(Source(), num_threads=1), mesh)
orders = [np.random.default_rng(k).permutation(64)[:48].reshape(3, 16) for k in range(2)]
images, positions = reader.read(orders)
for order, position in zip(orders, positions):
    assert (np.asarray(images)[np.asarray(position)] == values[order]).all()
for shard in images.addressable_shards:  # device d holds its 4 rows of every step of every member
    d = shard.device.id
    want = np.concatenate([values[o[:, 4 * d : 4 * d + 4].reshape(-1)] for o in orders])
    assert (np.asarray(shard.data) == want).all(), d
print("ok")
"""


def test_each_device_holds_its_share_of_every_batch():
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_COORDINATOR_ADDRESS")}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4", PJRT_NPROC="8")
    result = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICES], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_auto_streams_what_would_fill_a_device(monkeypatch):
    mesh = parallel.data_mesh()
    monkeypatch.setattr(streaming, "device_memory_bytes", lambda device: 4 * 2**30)
    assert streaming.choose_pipeline("auto", 2**30, mesh)[0] == "resident"
    assert streaming.choose_pipeline("auto", 2**30 + 1, mesh)[0] == "streaming"
    assert streaming.choose_pipeline("resident", 2**40, mesh) == ("resident", "config.data.pipeline=resident")
    assert streaming.max_segment_steps(2, 128, 784 * 4) == streaming.SEGMENT_BYTES // (2 * 128 * 784 * 4)


def test_streaming_and_resident_runs_are_equal_bit_for_bit(tiny_config, tmp_path):
    config = tiny_config("vae")
    config.num_epochs = 2
    resident = run.train_and_evaluate(config, str(tmp_path / "resident"))
    config.data.pipeline = "streaming"
    config.segment_seconds = 1e-6  # many segments: each read and prefetched on its own
    streamed = run.train_and_evaluate(config, str(tmp_path / "streamed"))
    assert streamed == resident
    _, _, _, params_a = run.restore(str(tmp_path / "resident"))
    _, _, _, params_b = run.restore(str(tmp_path / "streamed"))
    for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_stopped_streaming_run_resumes_bit_identically(tmp_path):
    def cli(workdir, *flags, **extra_env):
        env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_COORDINATOR_ADDRESS")}
        command = [sys.executable, "-m", "experiments.train", f"--workdir={workdir}", *TINY_CLI_FLAGS]
        command += ["--config.num_epochs=3", *flags]
        return subprocess.run(
            command, cwd=REPO, env={**env, "JAX_PLATFORMS": "cpu", **extra_env}, capture_output=True, text=True
        )

    streamed = ["--config.data.pipeline=streaming", "--config.segment_seconds=1e-6"]
    stopped = cli(tmp_path / "run", *streamed, VAE_JAX_KILL_AT="segment_done:5:SIGTERM")
    assert stopped.returncode == 2 and "with a checkpoint at step 95" in stopped.stderr, stopped.stderr[-2000:]
    resumed = cli(tmp_path / "run", *streamed)
    assert resumed.returncode == 0 and "Resuming from the checkpoint at step 95" in resumed.stderr
    assert cli(tmp_path / "resident", "--config.data.pipeline=resident").returncode == 0

    def records(workdir):
        with open(workdir / "metrics.jsonl") as f:
            return [{k: v for k, v in json.loads(line).items() if k != "examples_per_second"} for line in f]

    assert records(tmp_path / "run") == records(tmp_path / "resident")
    with open(tmp_path / "run" / "final_metrics.json") as a, open(tmp_path / "resident" / "final_metrics.json") as b:
        assert a.read() == b.read()


@pytest.mark.parametrize("execution", ["vmap", "in_turn"])
def test_streamed_sweep_members_match_resident_ones(execution, tiny_config, tmp_path):
    config = tiny_config("vae")
    config.num_epochs = 1
    members = [{"beta": 0.5}, {"beta": 2.0}]
    results = {}
    for pipeline in ("resident", "streaming"):
        config.data.pipeline = pipeline
        results[pipeline] = sweep.run_sweep(config, members, str(tmp_path / pipeline), execution=execution)
    assert results["streaming"] == results["resident"]
