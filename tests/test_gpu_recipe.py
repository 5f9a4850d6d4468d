"""`experiments/gpu_recipe.sh` end to end on the CPU, small (no GPU here): its tests step, training
for a time budget, and the export that `vae_jax.load` and `experiments.evaluate` read."""

import os
import subprocess

import jax
import numpy as np
from conftest import REPO, write_tiny_binarized_mnist

import vae_jax
from vae_jax.training import run

SCRIPT = os.path.join(REPO, "experiments", "gpu_recipe.sh")
SMALL = (
    "--config.model.encoder_hidden=(16,) --config.model.decoder_hidden=(16,) --config.model.hierarchy_hidden=(16,) "
    "--config.model.autoregressive_features=4 --config.model.autoregressive_z_features=2 "
    "--config.model.prior_components=4 --config.num_epochs=2 --config.batch_size=32 --config.eval_batch_size=64 "
    "--config.kl_warmup_epochs=0 --config.checkpoint_every_epochs=1 --config.num_figure_examples=4"
)


def recipe(output, minutes, data_dir, **env):
    environment = {
        **os.environ,
        "RECIPE_PLATFORM": "cpu",
        "RECIPE_TESTS": "tests/test_losses.py -k elbo",
        "RECIPE_OVERRIDES": SMALL,
        "EVALUATION_MINUTES": "0",
        **env,
    }
    return subprocess.run(
        ["bash", SCRIPT, output, str(minutes), data_dir],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_recipe_tests_trains_and_exports_the_average(tmp_path):
    os.makedirs(tmp_path / "data")
    data_dir = write_tiny_binarized_mnist(str(tmp_path / "data"))
    output = str(tmp_path / "out")
    result = recipe(output, 3, data_dir)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    assert "passed" in open(os.path.join(output, "tests.log")).read()
    restored = run.restore_run(os.path.join(output, "run"))
    assert restored.config.ema_decay == 0.9995 and restored.config.max_training_minutes >= 1
    assert restored.config.model.dropout_rate == 0.1 and restored.config.optimizer.weight_decay == 1e-4
    shipped = vae_jax.load(os.path.join(output, "export"))
    for a, b in zip(jax.tree.leaves(shipped.params), jax.tree.leaves(restored.params)):  # the average
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(restored.raw_params))
    )


def test_bad_arguments_are_one_error_line(tmp_path):
    for args in (["only_one"], [str(tmp_path / "o"), "ten", str(tmp_path)], [str(tmp_path / "o"), "0", str(tmp_path)]):
        result = subprocess.run(["bash", SCRIPT, *args], cwd=REPO, capture_output=True, text=True, timeout=60)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
