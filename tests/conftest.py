"""Shared test helpers: small configs and tiny datasets that tests write themselves."""

import gzip
import importlib
import os
import subprocess

import jax
import numpy as np
import pytest

# Tests compare results (runs against runs, devices against devices, against numpy) with
# float32 tolerances: matrix products at full float32 precision on every backend (a GPU's
# default may use TF32; the CPU always computes float32 in full, so this changes nothing here).
jax.config.update("jax_default_matmul_precision", "highest")

# Set (to anything but "" or "0") by .ci/run: a test that needs what a fresh clone lacks (the real
# binarised MNIST beside the checkout, root for a tmpfs mount) then fails instead of skipping.
REQUIRE_ENV_VAR = "VAE_JAX_REQUIRE_REAL_DATA"

CONFIGS = ("vae", "ae", "linear_ae", "pca", "vae_binarized_mnist")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# `load_config("vae")` on the command line of experiments.train / experiments.sweep.
TINY_CLI_FLAGS = [
    "--config=configs/vae.py",
    "--config.data.name=digits",
    "--config.model.encoder_hidden=(32,)",
    "--config.model.decoder_hidden=(32,)",
    "--config.model.latents=2",
    "--config.batch_size=32",
    "--config.eval_batch_size=128",
    "--config.num_figure_examples=4",
]


def load_config(name: str):
    """``configs/<name>.py``'s config, shrunk for tests (digits or tiny files, small MLPs)."""
    config = importlib.import_module(f"configs.{name}").get_config()
    if config.data.name != "binarized_mnist":
        config.data.name = "digits"
    if config.model.encoder_hidden:
        config.model.encoder_hidden = config.model.decoder_hidden = (32,)
    config.model.latents = 2
    config.batch_size = 32
    config.num_epochs = 3
    config.eval_batch_size = 128
    config.num_figure_examples = 4
    return config


def write_tiny_binarized_mnist(directory: str, sizes=(("train", 96), ("valid", 32), ("test", 40))) -> str:
    """Writes gzipped Larochelle-format `.amat` files of random 0/1 images with structure."""
    rng = np.random.default_rng(0)
    prototypes = rng.uniform(size=(4, 784)) < 0.3
    for split, n in sizes:
        images = prototypes[rng.integers(0, 4, n)] ^ (rng.uniform(size=(n, 784)) < 0.05)
        lines = "\n".join(" ".join(map(str, row)) for row in images.astype(int)) + "\n"
        with gzip.open(os.path.join(directory, f"binarized_mnist_{split}.amat.gz"), "wt") as f:
            f.write(lines)
    return directory


def require_or_skip(condition: bool, reason: str) -> None:
    """Nothing when ``condition`` holds; otherwise the test stops with ``reason``: it fails when
    ``$VAE_JAX_REQUIRE_REAL_DATA`` is set (CI, where the data and root are there), and skips
    otherwise (a fresh clone without ``../shared/data``, a user who is not root)."""
    __tracebackhide__ = True  # reports name the caller's line, not this one
    if condition:
        return
    if os.environ.get(REQUIRE_ENV_VAR, "") not in ("", "0"):
        pytest.fail(f"{reason} (${REQUIRE_ENV_VAR} is set: required, not skipped)")
    pytest.skip(f"{reason} (set ${REQUIRE_ENV_VAR}=1 to make this a failure)")


@pytest.fixture
def tiny_config(tmp_path):
    """A function ``name -> shrunk config`` whose data exist offline."""

    def make(name: str):
        config = load_config(name)
        if config.data.name == "binarized_mnist":
            config.data.data_dir = write_tiny_binarized_mnist(str(tmp_path))
        return config

    return make


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit status 2, one ``error:`` line on stderr that holds each of ``fragments``, no traceback."""
    output = f"exit status {result.returncode}; stderr:\n{result.stderr[-3000:]}"
    assert result.returncode == 2, output
    assert "Traceback" not in result.stderr + result.stdout, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    for fragment in fragments:
        assert fragment in errors[0], output
