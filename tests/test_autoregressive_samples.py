"""True samples of the autoregressive decoder (`autoregressive.sample_autoregressive_images`) and
what the figures of an autoregressive VAE show (``config.figure_decoding``)."""

import itertools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import load_config
from vae_jax import config as config_lib
from vae_jax.evaluation import model_figures
from vae_jax.models import autoregressive, likelihoods, registry, vae

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def autoregressive_vae(image_shape, latents=2):
    return vae.VAE(
        (8,),
        (8,),
        latents,
        image_shape,
        output_activation="none",
        autoregressive_features=8,
        autoregressive_kernel=3,
        autoregressive_layers=1,
        autoregressive_z_features=2,
    )


def init(model, seed=0):
    x = jnp.zeros((1, *model.output_shape))
    key = jax.random.key(seed)
    return model.init(key, x, key)


def scale_logits(params, factor, bias=0.0):
    """``params`` with the decoder's last layer (kernel, and bias plus ``bias``) times ``factor``:
    every logit times ``factor`` (a nonzero ``bias`` moves the logits of pixels whose hidden units
    are all 0 off 0)."""
    out = params["params"]["decoder"]["out"]
    scaled = {"kernel": factor * out["kernel"], "bias": factor * (out["bias"] + bias)}
    return {"params": {**params["params"], "decoder": {**params["params"]["decoder"], "out": scaled}}}


def sample(model, params, key, z):
    return jax.jit(lambda p, k, z: autoregressive.sample_autoregressive_images(model, p, k, z))(params, key, z)


def test_samples_are_binary_images_that_vary_with_the_key():
    model = autoregressive_vae((8, 8, 1))
    params = init(model)
    z = jax.random.normal(jax.random.key(1), (6, 2))
    first, second = (np.asarray(sample(model, params, jax.random.key(seed), z)) for seed in (0, 1))
    assert first.shape == (6, 8, 8, 1) and first.dtype == np.float32
    assert set(np.unique(first)) <= {0.0, 1.0}
    assert 0.05 < first.mean() < 0.95  # the untrained decoder's pixels are near p = 1/2: both values occur
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(np.asarray(sample(model, params, jax.random.key(0), z)), first)  # seeded


def test_samples_of_a_decoder_with_extreme_logits_are_its_greedy_decodings():
    model = autoregressive_vae((8, 8, 1))
    params = scale_logits(init(model, seed=2), 1e4, bias=0.05)
    z = jax.random.normal(jax.random.key(2), (5, 2))
    greedy = np.asarray(autoregressive.greedy_autoregressive_images(model, params, z))
    # Every logit on the greedy path is far from 0: each pixel's probability is 0 or 1 in float32.
    logits = model.apply(params, z, jnp.asarray(greedy), method=model.decode)
    assert float(jnp.min(jnp.abs(logits))) > 40
    assert set(np.unique(greedy)) <= {0.0, 1.0}
    assert np.all((0 < greedy.mean((1, 2, 3))) & (greedy.mean((1, 2, 3)) < 1))  # both values in each image
    for seed in range(3):
        np.testing.assert_array_equal(np.asarray(sample(model, params, jax.random.key(seed), z)), greedy)


def test_sample_frequencies_of_a_2x2_image_match_the_models_probabilities():
    """Over 40,000 draws for one z, the frequency of each of the 16 binary 2x2 images is within
    4.5 standard errors (sqrt(p (1 - p) / n)) of its probability under the model, p(x|z) =
    prod_i p(x_i | z, x_<i) computed by teacher forcing; the total variation distance is below
    0.01. The conditionals depend strongly on the earlier pixels, so drawing pixels out of
    order or from the wrong context would fail."""
    model = autoregressive_vae((2, 2, 1))
    params = scale_logits(init(model, seed=3), 4.0)
    z = jax.random.normal(jax.random.key(4), (1, 2))
    images = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=4))).reshape(16, 2, 2, 1)  # raster order
    logits = model.apply(params, jnp.repeat(z, 16, 0), images, method=model.decode)
    log_p = likelihoods.log_likelihood("bernoulli", images, logits)
    p = np.exp(np.asarray(log_p, np.float64))
    assert p.sum() == pytest.approx(1.0, abs=1e-5)
    # Strong dependence: the last pixel's probability differs by > 0.2 between some contexts.
    last = np.asarray(jax.nn.sigmoid(logits[:, 1, 1, 0]))
    assert last.max() - last.min() > 0.2

    n = 40_000
    drawn = np.asarray(sample(model, params, jax.random.key(5), jnp.repeat(z, n, 0)))
    assert set(np.unique(drawn)) <= {0.0, 1.0}
    index = drawn.reshape(n, 4).astype(int) @ np.array([8, 4, 2, 1])  # the image's row in `images`
    frequency = np.bincount(index, minlength=16) / n
    standard_error = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(frequency - p) <= 4.5 * standard_error + 1e-12), np.c_[frequency, p]
    assert 0.5 * np.abs(frequency - p).sum() < 0.01


def figure_run(decoding, image_shape=(8, 8, 1)):
    """A resolved autoregressive-VAE config (2 latents), its fns and initial params, and splits."""
    config = load_config("vae_binarized_mnist")
    config.model.autoregressive_features = 8
    config.model.autoregressive_kernel = 3
    config.figure_decoding = decoding
    config = config_lib.resolve(config)
    fns = registry.build(config, image_shape)
    model = fns.module
    key = jax.random.key(0)
    params = model.init(key, jnp.zeros((1, *image_shape)), key)
    images = (np.random.default_rng(0).uniform(size=(20, *image_shape)) < 0.3).astype(np.float32)
    return config, fns, params, {"test": types.SimpleNamespace(images=images, labels=None)}


@pytest.mark.parametrize("decoding", ["sample", "greedy"])
def test_figures_of_an_autoregressive_vae_say_what_they_show(decoding, monkeypatch, tmp_path):
    shown = {}

    def save_reconstructions(path, originals, reconstructions, title):
        shown["reconstructions"] = (np.asarray(reconstructions), title)

    monkeypatch.setattr(model_figures.figures, "save_reconstructions", save_reconstructions)
    monkeypatch.setattr(
        model_figures.figures, "save_samples", lambda path, images, title: shown.update(samples=(images, title))
    )
    monkeypatch.setattr(
        model_figures.figures, "save_manifold", lambda path, images, size, title: shown.update(manifold=(images, title))
    )
    monkeypatch.setattr(model_figures.figures, "save_latent_scatter", lambda *args: None)
    config, fns, params, splits = figure_run(decoding)
    model_figures.save_figures(config, fns, params, splits, str(tmp_path), jax.random.key(1))
    assert set(shown) == {"reconstructions", "samples", "manifold"}
    for name, (images, title) in shown.items():
        binary = set(np.unique(images)) <= {0.0, 1.0}
        if decoding == "sample":
            assert binary, name  # draws of p(x|z): every pixel 0 or 1
            assert "x ~ p(x|z)" in title and "greedy" not in title, title
        else:
            assert not binary, name  # greedy decodings show each pixel's probability on the greedy path
            assert "greedy decodings (each pixel its likelier value)" in title and "x ~ p(x|z)" not in title, title
    assert shown["samples"][1].startswith({"sample": "samples x ~ p(x|z)", "greedy": "greedy decodings"}[decoding])
    assert shown["samples"][1].endswith("z from the prior N(0, I)")


def test_an_unknown_figure_decoding_is_refused():
    config, fns, params, _ = figure_run("greedy")
    config.figure_decoding = "mode"
    with pytest.raises(ValueError, match="figure_decoding is 'sample' or 'greedy', got 'mode'"):
        model_figures.figure_decoder(config, fns, params)
