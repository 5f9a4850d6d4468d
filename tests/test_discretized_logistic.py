"""The discretised logistic likelihood and its mixture (PixelCNN++) for 8-bit data: normalisation,
values against direct computations, gradients at the edges, reductions, means and samples, and
their use by a VAE (bits per dimension)."""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import scipy.special
from conftest import load_config
from jax.test_util import check_grads

from vae_jax import losses
from vae_jax.evaluation import likelihood as likelihood_estimate
from vae_jax.models import interface, likelihoods, registry

LEVELS = np.arange(256, dtype=np.float32) / 255  # every value of an 8-bit pixel, as the models see it

# (mean, log_scale) pairs: inside and outside [-1, 1], on a bin edge, sharp (at and below the
# floor of -7), wide, and far beyond what a decoder outputs.
PARAMETERS = [(m, s) for m in (-3.0, -1.0, -0.3, 1.0 / 255, 0.0, 0.6, 1.0, 2.0) for s in (-9.0, -7.0, -3.0, 0.0, 3.0)]
EXTREME = [(m, s) for m in (-1.0, 0.5 / 255, 0.37, 5.0) for s in (-20.0, -12.0, 10.0, 60.0, 100.0)]


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def direct_log_probabilities(mean, log_scale, num_bins=256):
    """log P(k) for every bin k, from the definition in float64 (sigmoid differences)."""
    top = num_bins - 1
    centres = 2.0 * np.arange(num_bins) / top - 1.0
    mean, scale = float(np.float32(mean)), math.exp(np.float32(log_scale))  # the float32 parameters
    upper = np.where(np.arange(num_bins) == top, 1.0, scipy.special.expit((centres + 1.0 / top - mean) / scale))
    lower = np.where(np.arange(num_bins) == 0, 0.0, scipy.special.expit((centres - 1.0 / top - mean) / scale))
    with np.errstate(divide="ignore"):  # log 0 = -inf where float64 underflows (not compared)
        return np.log(upper - lower)


def mp_log_probability(k, mean, log_scale, num_bins=256):
    """log P(k) from the definition in 400-digit arithmetic with unbounded exponents (the far
    tails, where float64 under- or overflows): sigma(a) - sigma(b) = (e^a - e^b) / ((1 + e^a)(1 + e^b))."""
    with mpmath.workdps(400):
        top = num_bins - 1
        centre = mpmath.mpf(2 * k) / top - 1
        half, scale = mpmath.mpf(1) / top, mpmath.exp(log_scale)
        a, b = (centre + half - mean) / scale, (centre - half - mean) / scale
        if k == 0:
            return float(-mpmath.log(1 + mpmath.exp(-a)))  # log sigma(a)
        if k == top:
            return float(-mpmath.log(1 + mpmath.exp(b)))  # log(1 - sigma(b))
        return float(mpmath.log((mpmath.exp(a) - mpmath.exp(b)) / ((1 + mpmath.exp(a)) * (1 + mpmath.exp(b)))))


def log_probabilities(mean, log_scale, **kwargs):
    """The library's log P(k) of the 256 values for each (mean, log_scale) pair: ``[256, n]``."""
    mean, log_scale = (np.broadcast_to(np.float32(v), (256, len(mean))) for v in (mean, log_scale))
    x = np.broadcast_to(LEVELS[:, None], mean.shape)
    return np.asarray(losses.discretized_logistic_log_likelihood(x, mean, log_scale, event_ndims=0, **kwargs))


class TestDiscretizedLogistic:
    def test_probabilities_of_the_256_values_sum_to_one(self):
        means, log_scales = np.array(PARAMETERS).T
        total = scipy.special.logsumexp(log_probabilities(means, log_scales).astype(np.float64), axis=0)
        np.testing.assert_allclose(total, 0.0, atol=2e-6)
        means, log_scales = np.array(EXTREME).T
        log_p = log_probabilities(means, log_scales, min_log_scale=None)
        assert np.all(log_p <= 0) and not np.any(np.isnan(log_p))
        np.testing.assert_allclose(scipy.special.logsumexp(log_p.astype(np.float64), axis=0), 0.0, atol=2e-6)

    @pytest.mark.parametrize("num_bins", [2, 16])
    def test_other_numbers_of_levels_sum_to_one(self, num_bins):
        x = np.arange(num_bins, dtype=np.float32)[:, None] / (num_bins - 1)
        means, log_scales = (
            np.broadcast_to(np.float32(v), (num_bins, len(PARAMETERS))) for v in np.array(PARAMETERS).T
        )
        log_p = losses.discretized_logistic_log_likelihood(
            np.broadcast_to(x, means.shape), means, log_scales, event_ndims=0, num_bins=num_bins
        )
        np.testing.assert_allclose(scipy.special.logsumexp(np.float64(log_p), axis=0), 0.0, atol=2e-6)

    def test_agrees_with_the_definition(self):
        means, log_scales = np.array(PARAMETERS).T
        log_p = log_probabilities(means, log_scales, min_log_scale=None)
        for i, (mean, log_scale) in enumerate(PARAMETERS):
            expected = direct_log_probabilities(mean, log_scale)
            usable = expected > -20  # float64 differences of sigmoids are exact enough there
            np.testing.assert_allclose(log_p[usable, i], expected[usable], rtol=2e-5, atol=2e-5)

    @pytest.mark.parametrize("k", [0, 1, 77, 128, 254, 255])
    def test_agrees_with_high_precision_in_the_tails(self, k):
        means, log_scales = np.array(EXTREME + [(-1.0, -5.0), (1.0, -5.0), (0.0, -4.0)]).T
        log_p = log_probabilities(means, log_scales, min_log_scale=None)[k]
        expected = np.array([mp_log_probability(k, m, s) for m, s in zip(means, log_scales)])
        np.testing.assert_allclose(log_p, expected, rtol=5e-5, atol=1e-5)

    def test_data_are_mapped_to_their_bins_exactly(self):
        k = np.arange(256)
        mean, log_scale = np.full(256, 0.1, np.float32), np.full(256, -2.5, np.float32)
        exact = losses.discretized_logistic_log_likelihood(k / 255.0, mean, log_scale, event_ndims=0)
        for x in (np.float32(k) / np.float32(255), (k + 0.3) / 255, (k - 0.3) / 255, k.astype(np.uint8) / 255):
            np.testing.assert_array_equal(
                losses.discretized_logistic_log_likelihood(x, mean, log_scale, event_ndims=0), exact
            )
        np.testing.assert_allclose(exact, direct_log_probabilities(0.1, -2.5), rtol=1e-5)

    def test_nats_per_example_over_the_event_axes(self):
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (4, 5, 6, 3)) / 255.0
        mean, log_scale = rng.normal(size=(2, 4, 5, 6, 3)).astype(np.float32)
        per_element = losses.discretized_logistic_log_likelihood(x, mean, log_scale, event_ndims=0)
        per_example = losses.discretized_logistic_log_likelihood(x, mean, log_scale)  # event_ndims=3
        assert per_element.shape == x.shape and per_example.shape == (4,)
        np.testing.assert_allclose(per_example, np.sum(per_element, axis=(1, 2, 3)), rtol=1e-5)
        per_row = losses.discretized_logistic_log_likelihood(x, mean, log_scale, event_ndims=1)
        np.testing.assert_allclose(per_row, np.sum(per_element, axis=-1), rtol=1e-5)
        jitted = jax.jit(functools.partial(losses.discretized_logistic_log_likelihood, event_ndims=3))
        np.testing.assert_allclose(jitted(x, mean, log_scale), per_example, rtol=1e-6)

    def test_log_scale_floor(self):
        x, mean = np.full(3, 0.5, np.float32), np.zeros(3, np.float32)
        f = functools.partial(losses.discretized_logistic_log_likelihood, x, mean, event_ndims=0)
        np.testing.assert_array_equal(f(np.full(3, -12.0, np.float32)), f(np.full(3, -7.0, np.float32)))
        assert float(jax.grad(lambda s: f(s).sum())(np.full(3, -12.0, np.float32)).sum()) == 0.0
        assert not np.array_equal(f(np.full(3, -12.0, np.float32), min_log_scale=None), f(np.full(3, -7.0)))

    @pytest.mark.parametrize("parameters, floor", [(PARAMETERS, -7.0), (EXTREME, None)])
    def test_gradients_are_finite_at_the_edges(self, parameters, floor):
        """d log P / d (mean, log_scale) at the edge bins and next to them, for every pair."""
        x = np.array([0.0, 1.0, 1 / 255, 254 / 255, 0.5], np.float32)[:, None]
        means, log_scales = (np.broadcast_to(np.float32(v), (5, len(parameters))) for v in np.array(parameters).T)
        f = lambda m, s: losses.discretized_logistic_log_likelihood(  # noqa: E731
            np.broadcast_to(x, m.shape), m, s, event_ndims=0, min_log_scale=floor
        ).sum()
        grads = jax.jit(jax.grad(f, argnums=(0, 1)))(means, log_scales)
        assert all(np.all(np.isfinite(g)) for g in grads), grads

    def test_gradients_match_finite_differences(self, x64):
        x = np.array([0.0, 1.0, 3 / 255, 128 / 255, 250 / 255])
        f = jax.jit(lambda m, s: losses.discretized_logistic_log_likelihood(x, m, s, event_ndims=1))
        check_grads(f, (np.array([-0.99, 0.98, 0.2, -0.1, 1.3]), np.array([-3.0, -2.0, -4.5, 0.5, -1.0])), order=1)

    def test_errors(self):
        with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
            losses.discretized_logistic_log_likelihood(jnp.zeros(3), jnp.zeros(2), jnp.zeros(3), event_ndims=1)
        with pytest.raises(ValueError, match="log_scale"):
            losses.discretized_logistic_log_likelihood(jnp.zeros(3), jnp.zeros(3), jnp.zeros(2), event_ndims=1)
        with pytest.raises(ValueError, match="num_bins"):
            losses.discretized_logistic_log_likelihood(jnp.zeros(3), jnp.zeros(3), jnp.zeros(3), num_bins=1)
        with pytest.raises(ValueError, match="event_ndims"):
            losses.discretized_logistic_log_likelihood(jnp.zeros(3), jnp.zeros(3), jnp.zeros(3))  # 3 > ndim


def random_mixture(shape, channels, components, seed=0, coefficients=True, spread=1.0):
    """Mixture parameters for pixels of ``shape`` (without the channel axis)."""
    rng = np.random.default_rng(seed)
    logits = (2.0 * rng.normal(size=(*shape, components))).astype(np.float32)
    means = (spread * rng.uniform(-1.2, 1.2, (*shape, channels, components))).astype(np.float32)
    log_scales = rng.uniform(-7.5, 0.0, (*shape, channels, components)).astype(np.float32)
    coeffs = None
    if coefficients and channels > 1:
        coeffs = np.tanh(rng.normal(size=(*shape, channels * (channels - 1) // 2, components))).astype(np.float32)
    return logits, means, log_scales, coeffs


def every_pixel(channels, num_bins):
    """``[num_bins ** channels, channels]``: every value of a pixel."""
    grid = np.stack(np.meshgrid(*[np.arange(num_bins)] * channels, indexing="ij"), axis=-1)
    return (grid.reshape(-1, channels) / (num_bins - 1)).astype(np.float32)


def broadcast_mixture(parameters, n):
    return [None if p is None else np.broadcast_to(p, (n, *p.shape)) for p in parameters]


class TestMixture:
    @pytest.mark.parametrize(
        "channels, num_bins, coefficients", [(1, 256, False), (2, 256, True), (3, 16, True), (3, 16, False)]
    )
    def test_probabilities_of_every_pixel_value_sum_to_one(self, channels, num_bins, coefficients):
        pixels = every_pixel(channels, num_bins)
        for seed in range(3):
            logits, means, log_scales, coeffs = broadcast_mixture(
                random_mixture((), channels, 3, seed, coefficients), len(pixels)
            )
            log_p = losses.discretized_logistic_mixture_log_likelihood(
                pixels, logits, means, log_scales, coefficients=coeffs, event_ndims=1, num_bins=num_bins
            )
            assert log_p.shape == (len(pixels),)
            np.testing.assert_allclose(scipy.special.logsumexp(np.float64(log_p)), 0.0, atol=5e-6)

    def test_extreme_parameters_sum_to_one(self):
        pixels = every_pixel(2, 256)
        logits = np.array([80.0, -80.0, 0.0], np.float32)
        means = np.array([[-5.0, 0.0, 1.0], [3.0, 1.0 / 255, -1.0]], np.float32)
        log_scales = np.array([[-20.0, 8.0, -7.0], [-12.0, 0.0, 60.0]], np.float32)
        coeffs = np.array([[1.0, -1.0, 0.5]], np.float32)
        for floor in (-7.0, None):
            args = broadcast_mixture((logits, means, log_scales, coeffs), len(pixels))
            log_p = losses.discretized_logistic_mixture_log_likelihood(
                pixels, *args[:3], coefficients=args[3], event_ndims=1, min_log_scale=floor
            )
            assert not np.any(np.isnan(log_p))
            np.testing.assert_allclose(scipy.special.logsumexp(np.float64(log_p)), 0.0, atol=5e-6)

    def test_agrees_with_a_direct_computation(self):
        """log sum_k pi_k prod_c P(x_c | mu_ck + sum_j alpha x_j, s_ck) in float64 numpy (RGB)."""
        rng = np.random.default_rng(1)
        x = rng.integers(0, 256, (2, 4, 3)).astype(np.float32) / 255  # [b, pixels, C]
        logits, means, log_scales, coeffs = random_mixture((2, 4), 3, 5, seed=2)
        log_p = losses.discretized_logistic_mixture_log_likelihood(
            x, logits, means, log_scales, coefficients=coeffs, event_ndims=2
        )
        v = 2.0 * np.round(x * 255) / 255 - 1.0  # the data on [-1, 1]
        expected = np.zeros(2)
        for b, i in itertools.product(range(2), range(4)):
            k = np.round(x[b, i] * 255).astype(int)
            mu = np.float64(means[b, i]).copy()
            mu[1] += coeffs[b, i, 0] * v[b, i, 0]  # PixelCNN++: g depends on r
            mu[2] += coeffs[b, i, 1] * v[b, i, 0] + coeffs[b, i, 2] * v[b, i, 1]  # b on r and g
            log_channel = np.array(
                [
                    [
                        mp_log_probability(int(k[c]), float(np.float32(mu[c, j])), max(log_scales[b, i, c, j], -7.0))
                        for j in range(5)
                    ]
                    for c in range(3)
                ]
            )
            weights = scipy.special.log_softmax(np.float64(logits[b, i]))
            expected[b] += scipy.special.logsumexp(weights + log_channel.sum(axis=0))
        np.testing.assert_allclose(log_p, expected, rtol=1e-5)

    def test_one_component_is_the_discretized_logistic(self):
        rng = np.random.default_rng(3)
        x = rng.integers(0, 256, (3, 4, 4, 3)) / 255.0
        mean, log_scale = rng.normal(size=(2, 3, 4, 4, 3)).astype(np.float32)
        mixture = losses.discretized_logistic_mixture_log_likelihood(
            x, np.zeros((3, 4, 4, 1), np.float32), mean[..., None], log_scale[..., None]
        )
        np.testing.assert_allclose(mixture, losses.discretized_logistic_log_likelihood(x, mean, log_scale), rtol=1e-6)

    def test_gradients_are_finite(self):
        pixels = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]], np.float32)
        logits, means, log_scales, coeffs = random_mixture((3,), 3, 4, seed=4)
        means[0] = 6.0  # far from the data
        log_scales[1] = -30.0  # far below the floor
        logits[2] = [90.0, -90.0, 0.0, 0.0]

        def total(logits, means, log_scales, coeffs):
            return losses.discretized_logistic_mixture_log_likelihood(
                pixels, logits, means, log_scales, coefficients=coeffs, event_ndims=2
            ).sum()

        grads = jax.jit(jax.grad(total, argnums=(0, 1, 2, 3)))(logits, means, log_scales, coeffs)
        assert all(np.all(np.isfinite(g)) for g in grads)

    def test_shape_errors(self):
        x = jnp.zeros((2, 3))
        logits, means, log_scales, coeffs = (jnp.asarray(a) for a in random_mixture((2,), 3, 4))
        f = losses.discretized_logistic_mixture_log_likelihood
        with pytest.raises(ValueError, match="logit_weights"):
            f(x, logits[:, :3], means, log_scales, event_ndims=1)
        with pytest.raises(ValueError, match="log_scales"):
            f(x, logits, means, log_scales[..., :3], event_ndims=1)
        with pytest.raises(ValueError, match="coefficients"):
            f(x, logits, means, log_scales, coefficients=coeffs[:, :2], event_ndims=1)
        with pytest.raises(ValueError, match="event_ndims"):
            f(x, logits, means, log_scales, event_ndims=0)


class TestMeanAndSamples:
    def test_mean_is_within_half_a_level_of_the_exact_mean(self):
        means, log_scales = np.array(PARAMETERS).T.astype(np.float32)
        mean = losses.discretized_logistic_mixture_mean(
            np.zeros((len(means), 1)), means[:, None, None], log_scales[:, None, None]
        )[:, 0]
        exact = np.exp(np.float64(log_probabilities(means, log_scales))).T @ np.float64(LEVELS)
        assert np.max(np.abs(mean - exact)) <= 0.5 / 255 + 1e-5, np.abs(mean - exact)

    def test_mixture_mean_weights_the_components(self):
        logits, means, log_scales, _ = random_mixture((5,), 2, 3, seed=5)
        mean = losses.discretized_logistic_mixture_mean(logits, means, log_scales)
        weights = scipy.special.softmax(logits, axis=-1)
        single = [
            losses.discretized_logistic_mixture_mean(
                np.zeros((5, 1)), means[..., k : k + 1], log_scales[..., k : k + 1]
            )
            for k in range(3)
        ]
        np.testing.assert_allclose(mean, sum(weights[:, k, None] * single[k] for k in range(3)), rtol=1e-5, atol=1e-6)
        assert mean.shape == (5, 2) and np.all((mean >= 0) & (mean <= 1))

    def test_samples_follow_the_likelihood(self):
        """Histogram of 100,000 draws of a two-channel pixel with PixelCNN++ coefficients (8 levels)
        against the probabilities of the 64 values: total variation about 0.01 from sampling."""
        num_bins, n = 8, 100_000
        parameters = random_mixture((), 2, 3, seed=6, spread=0.8)
        parameters[2][:] = np.maximum(parameters[2], -3.0)  # several levels each
        draws = losses.discretized_logistic_mixture_sample(
            jax.random.key(0), *broadcast_mixture(parameters[:3], n), coefficients=None, num_bins=num_bins
        )
        coupled = losses.discretized_logistic_mixture_sample(
            jax.random.key(1),
            *broadcast_mixture(parameters[:3], n),
            coefficients=np.broadcast_to(parameters[3], (n, *parameters[3].shape)),
            num_bins=num_bins,
        )
        pixels = every_pixel(2, num_bins)
        for samples, coeffs in ((draws, None), (coupled, parameters[3])):
            samples = np.asarray(samples)
            assert samples.shape == (n, 2)
            on_grid = np.round(samples * (num_bins - 1)) / (num_bins - 1)
            np.testing.assert_allclose(samples, on_grid, rtol=0, atol=1e-6)
            index = np.round(samples * (num_bins - 1)).astype(int) @ np.array([num_bins, 1])
            frequencies = np.bincount(index, minlength=num_bins**2) / n
            args = broadcast_mixture((*parameters[:3], coeffs), len(pixels))
            probabilities = np.exp(
                losses.discretized_logistic_mixture_log_likelihood(
                    pixels, *args[:3], coefficients=args[3], event_ndims=1, num_bins=num_bins
                )
            )
            assert 0.5 * np.abs(frequencies - probabilities).sum() < 0.025
        # The coefficients change the draws.
        assert not np.allclose(np.asarray(draws).mean(0), np.asarray(coupled).mean(0), atol=1e-3)


def test_bits_per_dim():
    np.testing.assert_allclose(likelihoods.bits_per_dim(3072 * math.log(2.0) * 3.5, 3072), 3.5)
    np.testing.assert_allclose(likelihoods.bits_per_dim(np.array([math.log(2.0)]), 1), [1.0])


@pytest.mark.parametrize("likelihood", likelihoods.DISCRETIZED_LIKELIHOODS)
def test_a_vae_reports_bits_per_dim(likelihood):
    """The objective's log-likelihood is the loss function's (nats per example), and bits/dim is
    the negative ELBO over D ln 2; the importance-sampled NLL reports bits/dim too."""
    config = load_config("vae")
    config.likelihood, config.model.mixture_components = likelihood, 2
    shape = (6, 5, 3)
    fns = registry.build(config, shape)
    model = fns.module
    assert model.output_activation == "none"
    parameters = likelihoods.likelihood_parameters(likelihood, 3, 2)
    assert parameters == (6 if likelihood == "discretized_logistic" else 20)  # 2C, or K (1 + 2C + 3)
    # 'rbg' keys: XLA compiles their random bits much faster than threefry's
    keys = {name: jax.random.key(i, impl="unsafe_rbg") for i, name in enumerate(("init", "train", "eval"))}
    x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (8, *shape)) / 255.0, jnp.float32)
    params = jax.jit(model.init)(keys["init"], x, keys["init"])

    @jax.jit  # one program: eager calls would compile each operation apart
    def outputs(params, x, key):
        output = model.apply(params, x, key)[0]
        split = likelihoods.split_likelihood_parameters(likelihood, output, 3)
        direct = (
            losses.discretized_logistic_log_likelihood(x, **split)
            if likelihood == "discretized_logistic"
            else losses.discretized_logistic_mixture_log_likelihood(x, **split)
        )
        z = jnp.zeros((3, 2))
        return (
            output,
            direct,
            likelihoods.log_likelihood(likelihood, x, output),
            fns.per_example_metrics(params, x, key, interface.hyper(config)),
            fns.decode_image(params, z),
            fns.sample_images(params, key, z),
        )

    output, direct, log_px, result, images, samples = outputs(params, x, keys["train"])
    assert output.shape == (8, 6, 5, parameters)
    np.testing.assert_allclose(log_px, direct, rtol=1e-6)
    np.testing.assert_allclose(result["reconstruction"], -direct, rtol=1e-5)
    np.testing.assert_allclose(result["bits_per_dim"], result["neg_elbo"] / (90 * math.log(2.0)), rtol=1e-6)
    assert images.shape == (3, *shape) and float(images.min()) >= 0 and float(images.max()) <= 1
    assert samples.shape == (3, *shape)
    np.testing.assert_allclose(samples, np.round(samples * 255) / 255, rtol=0, atol=1e-6)  # 8-bit levels
    if likelihood == "discretized_logistic_mixture":  # (one compilation of the estimate is enough)
        nll = likelihood_estimate.model_log_likelihood(fns, params, x, keys["eval"], num_samples=2)
        np.testing.assert_allclose(nll["bits_per_dim"], nll["nll"] / (90 * math.log(2.0)), rtol=1e-6)
