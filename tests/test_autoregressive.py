"""The autoregressive decoder: causality, greedy images, training and its likelihood."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import evaluate
from vae_jax.models import autoregressive, vae
from vae_jax.training import run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

IMAGE = (8, 8, 1)


def small_vae(kernel=5, hidden_layers=1):
    return vae.VAE(
        (16,),
        (16,),
        3,
        IMAGE,
        output_activation="none",
        autoregressive_features=8,
        autoregressive_kernel=kernel,
        autoregressive_layers=hidden_layers,
        autoregressive_z_features=2,
    )


def binary_images(n, seed=0):
    return (jax.random.uniform(jax.random.key(seed), (n, *IMAGE)) < 0.4).astype(jnp.float32)


@pytest.mark.parametrize("kernel, taps", [(3, 4), (5, 12), (7, 24)])
def test_causal_offsets_are_the_pixels_before_the_centre(kernel, taps):
    offsets = autoregressive.causal_offsets(kernel)
    assert len(offsets) == len(set(offsets)) == taps
    half = kernel // 2
    for dr, dc in offsets:
        assert dr < 0 or (dr == 0 and dc < 0)
        assert -half <= dr <= 0 and -half <= dc <= half


@pytest.mark.parametrize("kernel, hidden_layers", [(3, 0), (5, 1), (7, 2)])
def test_each_logit_depends_only_on_earlier_pixels(kernel, hidden_layers):
    model = small_vae(kernel, hidden_layers)
    x = binary_images(1)
    key = jax.random.key(1)
    params = model.init(key, x, key)
    z = jax.random.normal(key, (1, 3))
    jacobian = jax.jacfwd(lambda x: model.apply(params, z, x, method=model.decode).reshape(-1))(x).reshape(64, 64)
    assert float(jnp.max(jnp.abs(jnp.triu(jacobian)))) == 0.0  # d logit_i / d x_j = 0 for j >= i
    # ... and it does use the context: pixel (1, 1) sees (0, 0), (0, 1), (0, 2) and (1, 0).
    assert float(jnp.min(jnp.abs(jacobian[9, jnp.array([0, 1, 2, 8])]))) > 0.0


def test_decode_without_the_image_is_refused():
    model = small_vae()
    x = binary_images(2)
    key = jax.random.key(0)
    params = model.init(key, x, key)
    with pytest.raises(ValueError, match="autoregressive decoder gives p\\(x_i \\| z, x_<i\\): pass the image x"):
        model.apply(params, jnp.zeros((2, 3)), method=model.decode)


def test_greedy_images_are_the_teacher_forced_probabilities_of_their_own_path():
    model = small_vae()
    x = binary_images(2)
    key = jax.random.key(0)
    params = model.init(key, x, key)
    z = jax.random.normal(jax.random.key(3), (4, 3))
    probabilities = jax.jit(lambda p, z: autoregressive.greedy_autoregressive_images(model, p, z))(params, z)
    assert probabilities.shape == (4, *IMAGE)
    path = (probabilities > 0.5).astype(jnp.float32)
    forced = jax.nn.sigmoid(model.apply(params, z, path, method=model.decode))
    np.testing.assert_allclose(np.asarray(probabilities), np.asarray(forced), atol=1e-6)
    again = autoregressive.greedy_autoregressive_images(model, params, z)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(probabilities))


def test_training_and_importance_sampled_likelihood(tiny_config, tmp_path):
    config = tiny_config("vae_binarized_mnist")
    config.model.autoregressive_features = 8
    config.model.autoregressive_kernel = 3
    config.free_bits = 0.1
    workdir = str(tmp_path / "run")
    final = run.train_and_evaluate(config, workdir)
    assert np.isfinite(final["neg_elbo"])
    results = {k: evaluate.evaluate_run(workdir, num_samples=k, split="valid") for k in (1, 32)}
    assert results[32]["nll"] < results[1]["nll"]
    assert results[32]["nll"] < results[32]["neg_elbo"]
    # k = 1 is the ELBO of one sample: close to the negative ELBO of the evaluation.
    assert results[1]["nll"] == pytest.approx(results[1]["neg_elbo"], rel=0.05)
