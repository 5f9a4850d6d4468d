"""Model output shapes, parameter counts and the VAE's sampling."""

import jax
import numpy as np
import pytest

from vae_jax import config as vae_config
from vae_jax.models import autoencoder, ladder, layers, registry, vae

IMAGE = (28, 28, 1)


def count(params) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(params))


def dense(n_in, n_out):
    return n_in * n_out + n_out


@pytest.fixture
def x():
    return jax.random.uniform(jax.random.key(0), (5, *IMAGE))


class TestVAE:
    def test_shapes_and_parameter_count(self, x):
        model = vae.VAE((400,), (400,), 20, IMAGE)
        key = jax.random.key(1)
        params = model.init(key, x, key)
        output, mean, logvar = model.apply(params, x, key)
        assert output.shape == x.shape and mean.shape == logvar.shape == (5, 20)
        # The pytorch/examples MLP VAE: 784-400-(20, 20) encoder, 20-400-784 decoder.
        assert count(params) == dense(784, 400) + 2 * dense(400, 20) + dense(20, 400) + dense(400, 784)

    def test_sampling_uses_the_explicit_key(self, x):
        model = vae.VAE((32,), (32,), 3, IMAGE)
        params = model.init(jax.random.key(0), x, jax.random.key(0))
        same = [model.apply(params, x, jax.random.key(7))[0] for _ in range(2)]
        other = model.apply(params, x, jax.random.key(8))[0]
        np.testing.assert_array_equal(same[0], same[1])
        assert not np.allclose(same[0], other)

    @pytest.mark.parametrize("prior", ["standard_normal", "mixture"])
    def test_generate_decodes_prior_samples(self, x, prior):
        model = vae.VAE((32,), (16, 32), 4, IMAGE, prior=prior, prior_components=3)
        params = jax.jit(model.init)(jax.random.key(0), x, jax.random.key(0))  # one compilation, not many ops
        generate = jax.jit(lambda key: model.apply(params, key, 6, method=model.generate))
        key = jax.random.key(2)
        samples = generate(key)
        assert samples.shape == (6, *IMAGE)
        assert float(samples.min()) >= 0 and float(samples.max()) <= 1  # sigmoid means
        # The same key: the decodings of exactly the prior draws `sample_prior` makes.
        z = jax.jit(lambda key: model.apply(params, key, 6, method=model.sample_prior))(key)
        assert z.shape == (6, 4)
        decoded = jax.jit(lambda z: model.apply(params, z, method=model.decode))(z)
        np.testing.assert_allclose(samples, decoded, rtol=1e-6, atol=1e-6)
        # Other keys give other latents, and so other images, one per latent.
        assert not np.allclose(samples, generate(jax.random.key(3)), atol=1e-3)
        assert not np.allclose(samples[0], samples[1], atol=1e-3)
        if prior == "standard_normal":  # and the draws are N(0, I)
            z = np.asarray(model.apply(params, jax.random.key(4), 4000, method=model.sample_prior))
            assert np.abs(z.mean(axis=0)).max() < 0.1  # standard error 1/sqrt(4000) = 0.016
            np.testing.assert_allclose(z.std(axis=0), 1.0, atol=0.06)
            assert np.abs(np.corrcoef(z.T) - np.eye(4)).max() < 0.1


class TestAutoencoder:
    def test_deep_shapes(self, x):
        model = autoencoder.Autoencoder((64, 32), (32, 64), 2, IMAGE)
        params = model.init(jax.random.key(0), x)
        reconstruction, code = model.apply(params, x)
        assert reconstruction.shape == x.shape and code.shape == (5, 2)

    def test_linear_autoencoder_is_affine(self, x):
        model = autoencoder.Autoencoder((), (), 10, IMAGE, output_activation="none")
        params = model.init(jax.random.key(0), x)
        assert count(params) == dense(784, 10) + dense(10, 784)
        # d(e(a x1 + (1 - a) x2)) = a d(e(x1)) + (1 - a) d(e(x2)) for an affine map.
        mixed = model.apply(params, 0.3 * x[:1] + 0.7 * x[1:2])[0]
        np.testing.assert_allclose(
            mixed, 0.3 * model.apply(params, x[:1])[0] + 0.7 * model.apply(params, x[1:2])[0], atol=1e-5
        )


def test_the_registry_builds_each_kind_from_its_config():
    """config.model.kind (and hierarchy_latents, so old config.json files keep their meaning) picks
    the kind's file; the module's fields come from config.model."""
    config = vae_config.resolve(vae_config.default_config())
    config.model.encoder_hidden, config.model.decoder_hidden, config.model.latents = (8,), (8,), 2
    config.model.activation, config.likelihood = "tanh", "bernoulli"
    fns = registry.build(config, (8, 8, 1))
    assert type(fns.module) is vae.VAE and fns.module.output_activation == "none" and fns.module.activation == "tanh"
    assert fns.label == "VAE" and fns.latent_sizes == (2,) and fns.importance_parts is not None
    config.model.hierarchy_latents = (4, 2)
    ladder_fns = registry.build(config, (8, 8, 1))
    assert type(ladder_fns.module) is ladder.LadderVAE and ladder_fns.latent_sizes == (4, 2)
    assert ladder_fns.log_importance_weight is not None
    config.model.hierarchy_latents, config.model.kind, config.likelihood = (), "ae", "squared_error"
    assert type(registry.build(config, (8, 8, 1)).module) is autoencoder.Autoencoder
    config.model.kind = "pca"
    pca_fns = registry.build(config, (8, 8, 1))
    assert pca_fns.module is None and pca_fns.fit is not None and registry.is_fitted(config.model)
    config.model.kind = "gan"
    with pytest.raises(ValueError, match="model.kind='gan'"):
        registry.build(config, (8, 8, 1))


def test_unknown_activation():
    with pytest.raises(ValueError, match="Unknown activation 'swishy'"):
        layers.activation("swishy")
