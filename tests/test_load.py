"""`vae_jax.load`: a run's workdir or a shipped export as a `TrainedModel`, and the README's
example of it."""

import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO

import vae_jax
from experiments import evaluate
from vae_jax.errors import ConfigError
from vae_jax.training import export, run

SHIPPED = ["bmnist_vae_selected", "bmnist_vampprior", "bmnist_pixel_vampprior", "bmnist_ladder_vae"]


def binary_images(n, seed=0):
    return (np.random.default_rng(seed).random((n, 28, 28, 1)) < 0.2).astype(np.float32)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_checkpoint_loads_and_works(name):
    model = vae_jax.load(os.path.join(REPO, "checkpoints", name))
    restored = run.restore_run(os.path.join(REPO, "checkpoints", name))
    assert model.image_shape == (28, 28, 1) and model.step == restored.step
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(model.params), jax.tree.leaves(restored.params)))
    x = binary_images(3)
    codes = model.encode(x)
    assert codes.shape == (3, model.fns.latent_sizes[0]) and np.all(np.isfinite(codes))
    means = model.decode(codes)
    assert means.shape == x.shape and means.min() >= 0 and means.max() <= 1
    np.testing.assert_array_equal(model.reconstruct(x), means)
    drawn = model.sample(jax.random.key(1), 2)
    assert drawn.shape == (2, 28, 28, 1) and set(np.unique(drawn)) <= {0.0, 1.0}  # Bernoulli draws
    log_px = model.log_prob(x, num_samples=2)
    assert log_px.shape == (3,) and np.all(log_px < 0)


def test_a_fresh_run_loads_with_the_numbers_of_evaluate_and_of_its_export(tiny_config, tmp_path):
    config = tiny_config("vae_binarized_mnist")
    workdir = str(tmp_path / "run")
    run.train_and_evaluate(config, workdir)
    model = vae_jax.load(workdir)
    test_images = run.load_splits(model.config)["test"].images
    # The default key is experiments.evaluate's: the same estimate, image by image.
    reported = evaluate.evaluate_run(workdir, num_samples=5, split="test", log_progress=False)
    assert -model.log_prob(test_images, num_samples=5).mean() == pytest.approx(reported["nll"], rel=1e-6)
    # More samples tighten the bound on average; another key gives another estimate.
    assert model.log_prob(test_images, 50).mean() > model.log_prob(test_images, 1).mean()
    assert not np.array_equal(model.log_prob(test_images, 5, key=jax.random.key(9)), model.log_prob(test_images, 5))
    # An export of the run is the same model.
    shipped = str(tmp_path / "shipped")
    export.export_run(workdir, shipped)
    again = vae_jax.load(shipped)
    np.testing.assert_array_equal(again.encode(test_images), model.encode(test_images))
    # Chunking changes no number: one image at a time equals all at once.
    one_by_one = vae_jax.load(workdir, batch_size=1)
    np.testing.assert_allclose(
        one_by_one.decode(model.encode(test_images[:3])),
        model.decode(model.encode(test_images[:3])),
        rtol=1e-6,
        atol=1e-6,
    )


def test_wrong_inputs_and_models_without_a_likelihood_are_refused(tiny_config, tmp_path):
    model = vae_jax.load(os.path.join(REPO, "checkpoints", "bmnist_vae_selected"))
    with pytest.raises(ValueError, match=r"shape \[n, 28, 28, 1\]"):
        model.encode(np.zeros((28, 28, 1)))
    with pytest.raises(ValueError, match="num_samples=0"):
        model.log_prob(binary_images(2), num_samples=0)
    config = tiny_config("pca")
    workdir = str(tmp_path / "pca")
    run.train_and_evaluate(config, workdir)
    pca = vae_jax.load(workdir)
    assert pca.fns.label == "PCA" and pca.step is None
    x = run.load_splits(pca.config)["test"].images[:4]
    assert pca.reconstruct(x).shape == x.shape
    with pytest.raises(ValueError, match="PCA has no likelihood"):
        pca.log_prob(x)
    with pytest.raises(ValueError, match="PCA has no prior"):
        pca.sample(jax.random.key(0), 2)
    with pytest.raises(ConfigError):
        vae_jax.load(str(tmp_path / "nothing_here"))


def readme_example() -> str:
    readme = open(os.path.join(REPO, "README.md")).read()
    section = readme.split("## Using a trained model in your project", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs():
    result = subprocess.run(
        [sys.executable, "-c", readme_example()], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "TrainedModel(VAE, latents (40,), images (28, 28, 1))", lines
    assert float(lines[-1]) < 0  # the mean log p(x) of the sampled images, in nats
