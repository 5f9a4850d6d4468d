"""Reliability: exact resume after SIGKILL, damaged checkpoints, non-finite steps, and a clear
error (with nothing touched in the workdir) for every bad input."""

import glob
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import REPO, TINY_CLI_FLAGS, load_config, write_tiny_binarized_mnist

from vae_jax import errors
from vae_jax.data import datasets
from vae_jax.training import checkpoints, run, validation
from vae_jax.training import workdir as workdir_lib

# Orbax leaves unawaited coroutines behind when it fails to read a damaged checkpoint.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

STEPS_PER_EPOCH = 1500 // 32  # digits: 1500 training images, batch 32 -> 46 steps


# ----------------------------------------------------------------------------- helpers


def snapshot(root):
    """{relative path: (sha256, mtime_ns)} of every file and {relative path: None} of every
    directory under ``root`` (empty when it does not exist)."""
    state = {}
    if os.path.isfile(root):
        with open(root, "rb") as f:
            return {".": (hashlib.sha256(f.read()).hexdigest(), os.stat(root).st_mtime_ns)}
    for directory, dirs, files in os.walk(root):
        for name in dirs:
            state[os.path.relpath(os.path.join(directory, name), root)] = None
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                state[os.path.relpath(path, root)] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return state


def committed_steps(workdir):
    names = os.listdir(os.path.join(workdir, "checkpoints"))
    return sorted(int(n) for n in names if n.isdigit())


def restore_tree(workdir, step):
    """A checkpoint's whole tree (step, params, optimiser state) as numpy arrays, by orbax
    alone (no template, no pickle)."""
    path = os.path.join(workdir, "checkpoints", str(step), "default")
    return jax.tree.map(np.asarray, ocp.StandardCheckpointer().restore(path))


def assert_trees_equal(a, b):
    paths_a, leaves_a = zip(*jax.tree_util.tree_flatten_with_path(a)[0])
    paths_b, leaves_b = zip(*jax.tree_util.tree_flatten_with_path(b)[0])
    assert paths_a == paths_b
    for path, x, y in zip(paths_a, leaves_a, leaves_b):
        assert x.dtype == y.dtype, jax.tree_util.keystr(path)
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path), strict=True)


def metric_records(workdir):
    """metrics.jsonl without the wall-clock field."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    for record in records:
        record.pop("examples_per_second", None)
    return records


def read_json(path):
    with open(path) as f:
        return json.load(f)


def tiny_config(**overrides):
    config = load_config("vae")
    config.num_epochs = 2
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A completed 2-epoch run of `tiny_config()` (checkpoints at steps 46 and 92)."""
    workdir = str(tmp_path_factory.mktemp("finished") / "run")
    final = run.train_and_evaluate(tiny_config(), workdir)
    assert committed_steps(workdir) == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    return workdir, final


def copy_run(finished_run, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(finished_run[0], workdir)
    return workdir


def largest_data_file(step_dir):
    files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(step_dir, "default")) for f in fs]
    return max(files, key=os.path.getsize)


def flip_byte(path, fraction=0.75):
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    raw[int(len(raw) * fraction)] ^= 0x55
    with open(path, "wb") as f:
        f.write(bytes(raw))


def truncate(path, keep=0.5):
    with open(path, "rb") as f:
        raw = f.read()
    with open(path, "wb") as f:
        f.write(raw[: int(len(raw) * keep)])


# ----------------------------------------------------------------------------- 1. SIGKILL


CLI_FLAGS = [
    *TINY_CLI_FLAGS,
    "--config.num_epochs=6",
    "--config.checkpoint_every_epochs=2",
]


def cli_env(cache_dir):
    """Subprocess environment: CPU, and a persistent compilation cache shared by the runs
    (faster start-up; every run then executes the very same compiled programs)."""
    return dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=cache_dir,
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
    )


def start(workdir, env, log_path, *extra):
    with open(log_path, "ab") as log:
        # niced, so that the polling test process sees the short moments it kills in
        return subprocess.Popen(
            [sys.executable, "-m", "experiments.train", f"--workdir={workdir}", *CLI_FLAGS, *extra],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.nice(5),
        )


def reap(process):
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait()


def kill_when(process, condition, timeout=300):
    """SIGKILLs ``process`` as soon as ``condition()`` holds; True if it was killed (not exited)."""
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None:
            if condition():
                process.send_signal(signal.SIGKILL)
                return process.wait() == -signal.SIGKILL
            assert time.monotonic() < deadline, "the run neither finished nor reached the kill point"
            time.sleep(0.0005)
        return False
    finally:
        reap(process)


def checkpoint_names(workdir):
    try:
        return os.listdir(os.path.join(workdir, "checkpoints"))
    except OSError:
        return []


def logged_epochs(workdir):
    try:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            return [json.loads(line)["epoch"] for line in f if line.endswith("\n") and '"train"' in line]
    except OSError:
        return []


def test_sigkill_at_any_point_then_rerun_matches_uninterrupted_run(tmp_path, request):
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    env = cli_env(str(cache.mkdir("jax-compilation-cache") if cache else tmp_path / "jax-compilation-cache"))
    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    logs = str(tmp_path / "whole.log"), str(tmp_path / "parts.log")
    uninterrupted = start(whole, env, logs[0])  # runs alongside the interrupted one

    def read_log(i=1):
        with open(logs[i], errors="replace") as f:
            return f.read()

    def tail(i=1):
        return read_log(i)[-4000:]

    try:
        # 1. Killed while writing the checkpoint of epoch 4 or 6 (orbax's temporary directory
        #    exists): the epochs since the last checkpoint are logged in metrics.jsonl, their
        #    checkpoint is not committed. (Should polling miss both saves, killed after the last.)
        def mid_save():
            names = checkpoint_names(parts)
            return str(6 * STEPS_PER_EPOCH) in names or any(
                n.startswith(
                    (f"{4 * STEPS_PER_EPOCH}.orbax-checkpoint-tmp", f"{6 * STEPS_PER_EPOCH}.orbax-checkpoint-tmp")
                )
                for n in names
            )

        assert kill_when(start(parts, env, logs[1]), mid_save), tail()
        print("after kill 1: checkpoints", sorted(checkpoint_names(parts)), "logged epochs", logged_epochs(parts))
        assert committed_steps(parts), tail()
        # 2. Killed between checkpoints: epoch 5 is logged, the last checkpoint (normally) epoch 4's.
        assert kill_when(start(parts, env, logs[1]), lambda: 5 in logged_epochs(parts)), tail()
        print("after kill 2: checkpoints", sorted(checkpoint_names(parts)), "logged epochs", logged_epochs(parts))
        assert not os.path.exists(os.path.join(parts, "final_metrics.json")), tail()
        # 3. The same command again finishes the run.
        resumed = start(parts, env, logs[1])
        assert resumed.wait(timeout=300) == 0, tail()
        assert uninterrupted.wait(timeout=300) == 0, tail(0)
    finally:
        reap(uninterrupted)
    assert "Resuming from the checkpoint at step" in read_log()

    final = 6 * STEPS_PER_EPOCH
    assert committed_steps(parts) == committed_steps(whole) == [4 * STEPS_PER_EPOCH, final]
    assert not [n for n in checkpoint_names(parts) if "tmp" in n]  # the interrupted save was cleaned up
    assert_trees_equal(restore_tree(parts, final), restore_tree(whole, final))  # params, optimiser, step
    assert read_json(os.path.join(parts, "final_metrics.json")) == read_json(os.path.join(whole, "final_metrics.json"))
    records = metric_records(parts)
    assert records == metric_records(whole)  # each epoch exactly once, same values
    assert [(r["epoch"], r["split"]) for r in records] == [(e, s) for e in range(1, 7) for s in ("train", "test")]


# ----------------------------------------------------------------------------- 2. bad inputs


def write_idx(directory, num_train=64, num_test=16):
    """Tiny valid MNIST IDX files (raw, 28x28) in ``directory``."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", num_train), ("t10k", num_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_raw_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte"), 0x803, images)
        write_raw_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte"), 0x801, labels)
    return directory


def write_raw_idx(path, magic, array):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with open(path, "wb") as f:
        f.write(header + array.tobytes())


def mnist_files(tmp, config, damage=None):
    config.data.name, config.data.data_dir = "mnist", write_idx(os.path.join(tmp, "data"))
    if damage:
        damage(config.data.data_dir)


def amat_files(tmp, config, damage):
    config.data.name, config.likelihood = "binarized_mnist", "bernoulli"
    os.makedirs(os.path.join(tmp, "data"))
    config.data.data_dir = write_tiny_binarized_mnist(os.path.join(tmp, "data"))
    path = os.path.join(config.data.data_dir, "binarized_mnist_train.amat.gz")
    with gzip.open(path, "rt") as f:
        lines = f.read().splitlines()
    lines[3] = damage(lines[3])
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")


def set_token(value):
    return lambda line: " ".join([value] + line.split()[1:])


def damage_steps(damage):
    """A setup that applies ``damage(step_dir)`` to every committed step of the workdir's run."""

    def setup(tmp, config):
        workdir = os.path.join(tmp, "run")
        for step in committed_steps(workdir):
            damage(os.path.join(workdir, "checkpoints", str(step)))

    return setup


def replace_contents(step_dir, source_dir):
    """Puts another step's arrays into ``step_dir``, keeping its own metadata: a checkpoint
    orbax restores without complaint, caught only by the recorded digest."""
    shutil.rmtree(os.path.join(step_dir, "default"))
    shutil.copytree(os.path.join(source_dir, "default"), os.path.join(step_dir, "default"))


def swap_step_contents(tmp, config):
    root = os.path.join(tmp, "run", "checkpoints")
    shutil.copytree(os.path.join(root, "46"), os.path.join(tmp, "46"))
    replace_contents(os.path.join(root, "46"), os.path.join(root, "92"))
    replace_contents(os.path.join(root, "92"), os.path.join(tmp, "46"))


def overrides(**values):
    def setup(tmp, config):
        for key, value in values.items():
            *parents, leaf = key.split(".")
            node = config
            for parent in parents:
                node = node[parent]
            node[leaf] = value

    return setup


def in_run(name, content=None):
    """A setup that deletes (content None) or replaces the file ``name`` of the workdir's run."""

    def setup(tmp, config):
        path = os.path.join(tmp, "run", name)
        if content is None:
            os.remove(path)
        else:
            with open(path, "w") as f:
                f.write(content)

    return setup


CE, DE, KE = validation.ConfigError, datasets.DataError, checkpoints.CheckpointError

# (id, workdir kind, setup(tmp, config), error type, message regex). Workdir kinds: 'run' a copy
# of a finished run of the same config, 'sentinel' config.json of the case's config with a
# metrics.jsonl and final_metrics.json beside it, 'file' a workdir under a regular file, 'proc'
# a workdir under /proc.
BAD_INPUTS = [
    # config values
    (
        "latents-0",
        "run",
        overrides(**{"model.latents": 0}),
        CE,
        r"--config\.model\.latents=0 is invalid: expected an integer >= 1",
    ),
    (
        "width-0",
        "run",
        overrides(**{"model.encoder_hidden": (32, 0)}),
        CE,
        r"model\.encoder_hidden=\(32, 0\) is invalid: expected a tuple of integers >= 1",
    ),
    ("batch-0", "run", overrides(batch_size=0), CE, r"--config\.batch_size=0 is invalid"),
    (
        "batch-larger-than-data",
        "sentinel",
        overrides(batch_size=5000),
        CE,
        r"--config\.batch_size=5000 is larger than the 1500 training images of digits: use --config\.batch_size=128 or smaller",
    ),
    (
        "lr-negative",
        "run",
        overrides(**{"optimizer.learning_rate": -1.0}),
        CE,
        r"learning_rate=-1\.0 is invalid: expected a value in \(0, 10\)",
    ),
    ("lr-nan", "run", overrides(**{"optimizer.learning_rate": float("nan")}), CE, r"learning_rate=nan is invalid"),
    (
        "beta-negative",
        "run",
        overrides(beta=-1.0),
        CE,
        r"--config\.beta=-1\.0 is invalid: the KL weight must be finite and >= 0",
    ),
    ("beta-inf", "run", overrides(beta=float("inf")), CE, r"--config\.beta=inf is invalid"),
    (
        "c-zero",
        "run",
        overrides(c=0.0),
        CE,
        r"--config\.c=0\.0 is invalid: the decoder variance c must be finite and > 0",
    ),
    (
        "unknown-dataset",
        "run",
        overrides(**{"data.name": "cifar10"}),
        CE,
        r"--config\.data\.name='cifar10' is invalid: expected one of mnist, fashion_mnist",
    ),
    (
        "unknown-model",
        "run",
        overrides(**{"model.kind": "gan"}),
        CE,
        r"--config\.model\.kind='gan' is invalid: expected one of vae, ae, pca",
    ),
    (
        "unknown-activation",
        "run",
        overrides(**{"model.activation": "swish"}),
        CE,
        r"--config\.model\.activation='swish' is invalid: expected one of relu",
    ),
    (
        "likelihood-vs-kind",
        "run",
        overrides(likelihood="squared_error"),
        CE,
        r"--config\.likelihood='squared_error' is invalid: expected one of gaussian, bernoulli",
    ),
    (
        "bernoulli-on-grey",
        "run",
        overrides(likelihood="bernoulli"),
        CE,
        r"--config\.likelihood=bernoulli needs binary data: use data\.name=binarized_mnist or --config\.data\.binarize=dynamic",
    ),
    (
        "unknown-nonfinite",
        "run",
        overrides(nonfinite="ignore"),
        CE,
        r"--config\.nonfinite='ignore' is invalid: expected one of skip, stop",
    ),
    (
        "pca-too-many-latents",
        "sentinel",
        overrides(**{"model.kind": "pca", "likelihood": "squared_error", "model.latents": 100}),
        CE,
        r"--config\.model\.latents=100 is invalid for PCA of digits: at most 64 components",
    ),
    (
        "free-bits-negative",
        "run",
        overrides(free_bits=-0.1),
        CE,
        r"--config\.free_bits=-0\.1 is invalid: expected nats per latent dimension >= 0",
    ),
    (
        "unknown-selection",
        "run",
        overrides(model_selection="test"),
        CE,
        r"--config\.model_selection='test' is invalid: expected one of last, valid",
    ),
    (
        "patience-without-valid",
        "run",
        overrides(early_stopping_patience=5),
        CE,
        r"--config\.early_stopping_patience=5 needs the validation split: add --config\.model_selection=valid",
    ),
    (
        "valid-without-valid-split",
        "sentinel",
        overrides(model_selection="valid"),
        CE,
        r"--config\.model_selection=valid needs a validation split, and digits has only test, train: use --config\.model_selection=last",
    ),
    (
        "autoregressive-gaussian",
        "run",
        overrides(**{"model.autoregressive_features": 8}),
        CE,
        r"--config\.model\.autoregressive_features=8 needs model\.kind=vae and likelihood=bernoulli \(got vae, gaussian\)",
    ),
    (
        "autoregressive-even-kernel",
        "run",
        overrides(
            **{
                "model.autoregressive_features": 8,
                "likelihood": "bernoulli",
                "data.binarize": "dynamic",
                "model.autoregressive_kernel": 4,
            }
        ),
        CE,
        r"--config\.model\.autoregressive_kernel=4 is invalid: expected an odd integer >= 3",
    ),
    # data files
    (
        "missing-file",
        "sentinel",
        lambda tmp, c: mnist_files(tmp, c, lambda d: os.remove(os.path.join(d, "t10k-labels-idx1-ubyte"))),
        DE,
        r"Dataset 'mnist' not found\.(.|\n)*missing: t10k-labels-idx1-ubyte",
    ),
    (
        "wrong-magic",
        "sentinel",
        lambda tmp, c: mnist_files(
            tmp,
            c,
            lambda d: write_raw_idx(
                os.path.join(d, "train-images-idx3-ubyte"), 0x801, np.zeros((64, 28, 28), np.uint8)
            ),
        ),
        DE,
        r"train-images-idx3-ubyte: bad magic number 0x00000801, expected 0x00000803",
    ),
    (
        "truncated-idx",
        "sentinel",
        lambda tmp, c: mnist_files(tmp, c, lambda d: truncate(os.path.join(d, "t10k-images-idx3-ubyte"), 0.9)),
        DE,
        r"t10k-images-idx3-ubyte: truncated: the header declares images of shape \(16, 28, 28\)",
    ),
    (
        "wrong-image-size",
        "sentinel",
        lambda tmp, c: mnist_files(
            tmp,
            c,
            lambda d: write_raw_idx(
                os.path.join(d, "train-images-idx3-ubyte"), 0x803, np.zeros((64, 10, 10), np.uint8)
            ),
        ),
        DE,
        r"train-images-idx3-ubyte: images are 10x10, expected 28x28",
    ),
    (
        "labels-count",
        "sentinel",
        lambda tmp, c: mnist_files(
            tmp, c, lambda d: write_raw_idx(os.path.join(d, "train-labels-idx1-ubyte"), 0x801, np.zeros(63, np.uint8))
        ),
        DE,
        r"has 64 images but .*train-labels-idx1-ubyte has 63 labels",
    ),
    (
        "bad-gzip",
        "sentinel",
        lambda tmp, c: mnist_files(
            tmp,
            c,
            lambda d: os.rename(
                os.path.join(d, "t10k-images-idx3-ubyte"), os.path.join(d, "t10k-images-idx3-ubyte.gz")
            ),
        ),
        DE,
        r"t10k-images-idx3-ubyte\.gz: not a valid gzip file or truncated",
    ),
    (
        "amat-value-2",
        "sentinel",
        lambda tmp, c: amat_files(tmp, c, set_token("2")),
        DE,
        r"binarized_mnist_train\.amat\.gz: line 4 contains the value '2'; binarized MNIST values must be 0 or 1",
    ),
    (
        "amat-value-out-of-range",
        "sentinel",
        lambda tmp, c: amat_files(tmp, c, set_token("-0.5")),
        DE,
        r"line 4 contains the value '-0\.5'",
    ),
    (
        "amat-nan-pixel",
        "sentinel",
        lambda tmp, c: amat_files(tmp, c, set_token("nan")),
        DE,
        r"line 4 contains the value 'nan'",
    ),
    (
        "amat-short-line",
        "sentinel",
        lambda tmp, c: amat_files(tmp, c, lambda line: line.rsplit(" ", 1)[0]),
        DE,
        r"line 4 has 783 values, expected 784 space-separated 0/1 values",
    ),
    # workdirs
    (
        "workdir-under-file",
        "file",
        None,
        CE,
        r"--workdir='.*afile/sub' is not writable \(Not a directory\): choose a directory",
    ),
    ("workdir-under-proc", "proc", None, CE, r"--workdir='/proc/.*' is not writable"),
    (
        "workdir-other-config",
        "run",
        overrides(**{"model.latents": 3}),
        CE,
        r"holds a run with another config \(differs in: model\.latents\): use a new --workdir, or pass --config\.overwrite=True",
    ),
    (
        "workdir-no-config-json",
        "run",
        in_run("config.json"),
        CE,
        r"holds outputs of a run \(checkpoints, .*metrics\.jsonl.*\) but no config\.json",
    ),
    (
        "workdir-config-json-garbage",
        "run",
        in_run("config.json", "{not json"),
        CE,
        r"config\.json is unreadable or not JSON",
    ),
    # checkpoints: every step damaged -> refuse (the fallback of a damaged latest step is test 4)
    (
        "checkpoints-truncated",
        "run",
        damage_steps(lambda d: truncate(largest_data_file(d))),
        KE,
        r"No checkpoint in .*checkpoints can be restored: step 92 \(.*\); step 46",
    ),
    (
        "checkpoints-byte-flipped",
        "run",
        damage_steps(lambda d: flip_byte(largest_data_file(d))),
        KE,
        r"No checkpoint .* can be restored: step 92 \(.*\); step 46",
    ),
    (
        "checkpoints-contents-swapped",
        "run",
        swap_step_contents,
        KE,
        r"step 92 \(ValueError: its arrays do not match the SHA-256 recorded when it was saved\); step 46 \(ValueError: its arrays",
    ),
    (
        "checkpoints-metadata-deleted",
        "run",
        damage_steps(lambda d: os.remove(os.path.join(d, "default", "_METADATA"))),
        KE,
        r"No checkpoint .* can be restored",
    ),
    (
        "checkpoints-digest-file-deleted",
        "run",
        damage_steps(lambda d: os.remove(os.path.join(d, "_CHECKPOINT_METADATA"))),
        KE,
        r"step 92 \(ValueError: its metadata .* is missing or unreadable",
    ),
]


@pytest.mark.parametrize("case_id, kind, setup, error, pattern", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_refused_clearly_and_touches_nothing(case_id, kind, setup, error, pattern, finished_run, tmp_path):
    config = tiny_config()
    tmp = str(tmp_path)
    if kind == "run":
        workdir = copy_run(finished_run, tmp_path)
    elif kind == "file":
        with open(tmp_path / "afile", "w") as f:
            f.write("not a directory")
        workdir = str(tmp_path / "afile" / "sub")
    elif kind == "proc":
        workdir = f"/proc/vae_jax_no_such_dir_{os.getpid()}/run"
    if setup is not None:
        setup(tmp, config)
    if kind == "sentinel":
        workdir = str(tmp_path / "run")
        os.makedirs(workdir)
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json())
        with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
            f.write('{"step": 46, "split": "train", "epoch": 1, "loss": 1.0}\n')
        with open(os.path.join(workdir, "final_metrics.json"), "w") as f:
            f.write('{"loss": 1.0}\n')
    watched = str(tmp_path / "afile") if kind == "file" else workdir
    before = None if kind == "proc" else snapshot(watched)
    with pytest.raises(error) as raised:
        run.train_and_evaluate(config, workdir)
    message = str(raised.value)
    assert re.search(pattern, message), message
    if case_id != "missing-file":  # the not-found message lists every place tried
        assert message.count("\n") <= 1, message
    if before is not None:
        assert snapshot(watched) == before  # nothing new, changed or removed
    if kind == "proc":
        assert not os.path.exists(os.path.dirname(workdir))


def test_cli_reports_user_errors_in_one_line_with_status_2(tmp_path):
    workdir = str(tmp_path / "run")
    result = subprocess.run(
        [sys.executable, "-m", "experiments.train", f"--workdir={workdir}", *CLI_FLAGS, "--config.batch_size=5000"],
        cwd=REPO,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == (
        "error: --config.batch_size=5000 is larger than the 1500 training images of digits: "
        "use --config.batch_size=128 or smaller."
    )
    assert not os.path.exists(os.path.join(workdir, "config.json"))


def test_overwrite_moves_the_earlier_run_aside(finished_run, tmp_path):
    workdir = copy_run(finished_run, tmp_path)
    before = snapshot(workdir)
    config = tiny_config(**{"model.latents": 3, "overwrite": True, "num_epochs": 1})
    run.train_and_evaluate(config, workdir)
    previous = [n for n in os.listdir(workdir) if n.startswith("previous-")]
    assert len(previous) == 1
    assert snapshot(os.path.join(workdir, previous[0])) == before  # every earlier file, unchanged
    assert read_json(os.path.join(workdir, "config.json"))["model"]["latents"] == 3
    assert committed_steps(workdir) == [STEPS_PER_EPOCH]
    assert [r["epoch"] for r in metric_records(workdir)] == [1, 1]


def test_no_pickle_anywhere():
    names = glob.glob("vae_jax/**/*.py", root_dir=REPO, recursive=True) + glob.glob("experiments/*.py", root_dir=REPO)
    assert any(name.count("/") > 1 for name in names)  # vae_jax's sub-packages are searched too
    for name in names:
        with open(os.path.join(REPO, name)) as f:
            source = f.read()
        assert not re.search(r"\bimport (c?pickle|dill|joblib)\b|allow_pickle\s*=\s*True|\bpickle\.load", source), name


# ----------------------------------------------------------------------------- 3. non-finite


def poison_training_images(monkeypatch, indices=range(10)):
    """Training images with NaNs that reach the batches (after the loader's validation)."""
    real = datasets.load_dataset

    def load(*args, **kwargs):
        splits = real(*args, **kwargs)
        images = splits["train"].images.copy()
        images[list(indices)] = np.nan
        return {**splits, "train": datasets.Split(images=images, labels=splits["train"].labels)}

    monkeypatch.setattr(datasets, "load_dataset", load)


def test_nonfinite_skip_keeps_parameters_finite_and_logs_the_count(monkeypatch, tmp_path, caplog):
    poison_training_images(monkeypatch)
    workdir = str(tmp_path / "run")
    with caplog.at_level(logging.WARNING):
        final = run.train_and_evaluate(tiny_config(), workdir)
    assert all(np.isfinite(v) for v in final.values())
    tree = restore_tree(workdir, 2 * STEPS_PER_EPOCH)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(tree["params"]))
    train_records = [r for r in metric_records(workdir) if r["split"] == "train"]
    assert len(train_records) == 2 and all(r["nonfinite_steps"] >= 1 for r in train_records)
    assert int(tree["opt_state"]["total_notfinite"]) == sum(r["nonfinite_steps"] for r in train_records)
    assert re.search(
        r"\d+ step\(s\) up to step \d+ had a non-finite loss or gradient; their updates were skipped", caplog.text
    )


def test_nonfinite_stop_raises_and_leaves_the_last_good_checkpoint(monkeypatch, finished_run, tmp_path):
    workdir = copy_run(finished_run, tmp_path)
    checkpoints_before = snapshot(os.path.join(workdir, "checkpoints"))
    metrics_before = snapshot(os.path.join(workdir, "metrics.jsonl"))
    good = restore_tree(workdir, 2 * STEPS_PER_EPOCH)
    poison_training_images(monkeypatch)
    with pytest.raises(
        errors.NonFiniteError, match=r"non-finite loss or gradient.*Stopping before the next checkpoint"
    ):
        run.train_and_evaluate(tiny_config(nonfinite="stop", num_epochs=4), workdir)
    assert snapshot(os.path.join(workdir, "checkpoints")) == checkpoints_before
    assert snapshot(os.path.join(workdir, "metrics.jsonl")) == metrics_before
    last = restore_tree(workdir, 2 * STEPS_PER_EPOCH)
    assert_trees_equal(last, good)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(last["params"]))


# ----------------------------------------------------------------------------- 4. damaged latest


def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(finished_run, tmp_path, caplog):
    workdir = copy_run(finished_run, tmp_path)
    expected = restore_tree(workdir, 2 * STEPS_PER_EPOCH)
    expected_records = metric_records(workdir)
    latest = os.path.join(workdir, "checkpoints", str(2 * STEPS_PER_EPOCH))
    replace_contents(latest, os.path.join(workdir, "checkpoints", str(STEPS_PER_EPOCH)))  # only the digest sees it
    # ... and an interrupted save of a later step
    shutil.copytree(latest, os.path.join(workdir, "checkpoints", f"{3 * STEPS_PER_EPOCH}.orbax-checkpoint-tmp"))
    with caplog.at_level(logging.WARNING):
        final = run.train_and_evaluate(tiny_config(), workdir)
    assert re.search(
        r"Checkpoint step 92 in .* is damaged and cannot be used \(ValueError: its arrays do not match", caplog.text
    )
    assert "Falling back to the checkpoint at step 46" in caplog.text
    assert final == finished_run[1]
    assert_trees_equal(restore_tree(workdir, 2 * STEPS_PER_EPOCH), expected)
    assert metric_records(workdir) == expected_records
    assert [n.split("-")[0] for n in os.listdir(os.path.join(workdir, "damaged-checkpoints"))] == ["92"]
    assert sorted(checkpoint_names(workdir)) == ["46", "92"]  # the temporary directory is gone


def test_metrics_of_epochs_after_the_restored_checkpoint_are_dropped(finished_run, tmp_path):
    """A run killed after logging an epoch but before its checkpoint (simulated here, with a
    half-written last line) logs each epoch exactly once after resuming."""
    workdir = copy_run(finished_run, tmp_path)
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write('{"step": 138, "split": "train", "epoch": 3, "loss": 0.0, "stale": true}\n{"step": 138, "spl')
    run.train_and_evaluate(tiny_config(num_epochs=3), workdir)
    records = metric_records(workdir)
    assert [(r["step"], r["split"]) for r in records] == [
        (s * STEPS_PER_EPOCH, split) for s in (1, 2, 3) for split in ("train", "test")
    ]
    assert not any("stale" in r for r in records)


def test_cosine_schedule_run_cannot_be_extended(tmp_path):
    """num_epochs sets a cosine schedule's length, so changing it is not a resumption."""
    workdir = str(tmp_path / "run")
    workdir_lib.prepare(workdir, tiny_config(**{"optimizer.schedule": "cosine"}))
    workdir_lib.check(workdir, tiny_config(**{"optimizer.schedule": "cosine", "eval_batch_size": 64}))
    with pytest.raises(validation.ConfigError, match=r"another config \(differs in: num_epochs\)"):
        workdir_lib.check(workdir, tiny_config(**{"optimizer.schedule": "cosine", "num_epochs": 3}))
    workdir_lib.check(workdir + "-constant", tiny_config())
    workdir_lib.prepare(workdir + "-constant", tiny_config())
    workdir_lib.check(workdir + "-constant", tiny_config(num_epochs=3))  # constant: resumable
