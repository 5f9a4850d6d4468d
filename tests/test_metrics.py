"""Tests for `vae_jax.metrics`, each against a known answer on a small model."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats
from jax.tree_util import Partial

from vae_jax import losses
from vae_jax.data import datasets
from vae_jax.evaluation import latent_geometry, likelihood
from vae_jax.models import pca as pca_lib
from vae_jax.models import vae


class TraceCounter:
    """Wraps a function and counts how often JAX traces it (Python runs once per trace)."""

    def __init__(self, fn):
        self.fn, self.count = fn, 0

    def __call__(self, *args):
        self.count += 1
        return self.fn(*args)


# ----------------------------------------------------------------------------- linear Gaussian


class LinearGaussian:
    """p(z) = N(0, I_d), p(x|z) = N(Wz + b, c I_D) with orthogonal columns of W.

    Then p(x) = N(b, W W^T + c I) and the exact posterior is diagonal:
    q(z|x) = N(S W^T (x - b) / c, S), S = (I + W^T W / c)^{-1} = diag(1 / (1 + s_j^2 / c)).
    """

    def __init__(self, seed=0, d=2, D=4, c=0.5, scales=(2.0, 0.7)):
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.normal(size=(D, D)))
        self.W = (q[:, :d] * np.asarray(scales)).astype(np.float32)
        self.b = rng.normal(size=D).astype(np.float32)
        self.c = c
        self.posterior_var = (1.0 / (1.0 + np.asarray(scales) ** 2 / c)).astype(np.float32)
        self.cov = self.W.astype(np.float64) @ self.W.T + c * np.eye(D)

    def sample(self, n, seed=1):
        rng = np.random.default_rng(seed)
        return rng.multivariate_normal(self.b, self.cov, size=n).astype(np.float32)

    def log_px(self, x):
        return scipy.stats.multivariate_normal.logpdf(x, self.b, self.cov)

    def encode(self, x):
        mean = (x - self.b) @ self.W / self.c * self.posterior_var
        return mean, jnp.broadcast_to(jnp.log(self.posterior_var), mean.shape)

    def wrong_encode(self, x):
        # 4.5 posterior stds off in each dimension and twice as wide.
        mean, logvar = self.encode(x)
        return mean + 1.5, logvar + 1.5

    def log_likelihood(self, x, z):
        return losses.gaussian_log_likelihood(x, z @ self.W.T + self.b, variance=self.c)


@pytest.fixture(scope="module")
def linear_gaussian():
    return LinearGaussian()


class TestImportanceSampledLogLikelihood:
    @pytest.mark.parametrize("num_samples", [1, 300])
    def test_exact_posterior_gives_exact_log_likelihood(self, linear_gaussian, num_samples):
        # Every weight p(x|z) p(z) / q(z|x) equals p(x): the estimate is exact for any k.
        m = linear_gaussian
        x = m.sample(13)
        result = likelihood.importance_sampled_log_likelihood(
            m.encode, m.log_likelihood, x, jax.random.key(0), num_samples=num_samples, sample_chunk=64, data_chunk=4
        )  # 5 sample chunks for k = 300 (the last one partial), 4 data chunks
        truth = m.log_px(x)
        np.testing.assert_allclose(result["per_example"], truth, atol=1e-4)
        assert result["per_example"].shape == (13,)
        assert result["num_samples"] == num_samples
        assert result["log_likelihood"] == pytest.approx(truth.mean(), abs=1e-4)
        assert result["nll"] == -result["log_likelihood"]
        assert result["standard_error"] == pytest.approx(np.std(truth, ddof=1) / math.sqrt(13), rel=1e-3)

    def test_wrong_posterior_is_below_and_converges_with_k(self, linear_gaussian):
        # E[L_k] increases to log p(x). Over 8 keys (100 images each) this q gives mean errors
        # L_k - log p(x) of -14.2 (k = 1), -0.28 +- 0.08 (k = 100) and -0.017 +- 0.013
        # (k = 2000), so the ordering and the 0.05 tolerance hold for (almost) any key.
        m = linear_gaussian
        x = m.sample(100)
        truth = m.log_px(x).mean()
        estimates = {
            k: likelihood.importance_sampled_log_likelihood(
                m.wrong_encode, m.log_likelihood, x, jax.random.key(1), num_samples=k, sample_chunk=64, data_chunk=25
            )["log_likelihood"]
            for k in (1, 100, 2000)
        }
        assert estimates[1] < estimates[100] < estimates[2000] <= truth + 0.02
        assert truth - estimates[1] > 1.0  # the wrong q is clearly wrong
        assert abs(estimates[2000] - truth) < 0.05

    def test_equals_iwae_bound_on_the_documented_samples_whatever_the_chunking(self, linear_gaussian):
        m = linear_gaussian
        x, k, key = m.sample(11), 50, jax.random.key(3)
        whole = likelihood.importance_sampled_log_likelihood(
            m.wrong_encode, m.log_likelihood, x, key, num_samples=k, sample_chunk=k, data_chunk=11
        )

        @jax.jit
        def expected_bound(x, key):
            mean, logvar = m.wrong_encode(x)
            # Sample s of image i: reparameterize(fold_in(fold_in(key, i), s), mean_i, logvar_i).
            keys = jax.vmap(
                lambda s: jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(key, i), s))(jnp.arange(len(x)))
            )(jnp.arange(k))
            z = jax.vmap(jax.vmap(losses.reparameterize), in_axes=(0, None, None))(keys, mean, logvar)
            return losses.iwae_bound(
                jax.vmap(m.log_likelihood, in_axes=(None, 0))(x, z),
                losses.standard_normal_log_prob(z),
                losses.diagonal_gaussian_log_prob(z, mean, logvar),
                axis=0,
            )

        np.testing.assert_allclose(whole["per_example"], expected_bound(x, key), rtol=1e-6, atol=1e-5)
        # 4 sample chunks (the last one of 2 samples) and 3 data chunks (the last one of 3 images).
        chunked = likelihood.importance_sampled_log_likelihood(
            m.wrong_encode, m.log_likelihood, x, key, num_samples=k, sample_chunk=16, data_chunk=4
        )
        np.testing.assert_allclose(chunked["per_example"], whole["per_example"], atol=2e-5)
        # An image's estimate does not depend on the other images, and samples are nested in k.
        alone = likelihood.importance_sampled_log_likelihood(
            m.wrong_encode, m.log_likelihood, x[:5], key, num_samples=k, sample_chunk=16, data_chunk=4
        )
        np.testing.assert_allclose(alone["per_example"], whole["per_example"][:5], atol=2e-5)

    def test_one_trace_for_all_chunks_all_k_and_new_params(self, linear_gaussian):
        m = linear_gaussian
        encode = TraceCounter(lambda scale, x: jax.tree.map(lambda a: a * scale, m.wrong_encode(x)))
        log_likelihood = TraceCounter(m.log_likelihood)
        x = m.sample(11)
        for scale, k in [(1.0, 10), (0.5, 10), (0.5, 25)]:  # new parameters and k reuse the program
            result = likelihood.importance_sampled_log_likelihood(
                Partial(encode, jnp.float32(scale)),
                log_likelihood,
                x,
                jax.random.key(4),
                num_samples=k,
                sample_chunk=3,
                data_chunk=4,
            )  # 3 data chunks, 4 or 9 sample chunks (the last partial)
            assert np.isfinite(result["per_example"]).all() and result["num_samples"] == k
        assert encode.count == 1 and log_likelihood.count == 1

    def test_rejects_bad_arguments(self, linear_gaussian):
        m = linear_gaussian
        with pytest.raises(ValueError, match="num_samples"):
            likelihood.importance_sampled_log_likelihood(
                m.encode, m.log_likelihood, m.sample(2), jax.random.key(0), num_samples=0
            )
        with pytest.raises(ValueError, match="empty"):
            likelihood.importance_sampled_log_likelihood(
                m.encode, m.log_likelihood, np.zeros((0, 4), np.float32), jax.random.key(0), num_samples=2
            )


class TestVAELogLikelihood:
    def test_matches_the_generic_estimator_and_traces_params(self):
        shape = (3, 3, 1)
        model = vae.VAE((8,), (8,), 2, shape)
        x = np.random.default_rng(0).uniform(size=(9, *shape)).astype(np.float32)
        init = jax.jit(model.init)  # one compilation instead of many eager ops
        params = init(jax.random.key(1), x, jax.random.key(2))
        config = ml_collections.ConfigDict(
            {"likelihood": "gaussian", "c": 0.1, "objective": "elbo", "num_train_samples": 1}
        )
        result = likelihood.model_log_likelihood(
            vae.fns(model, config), params, x, jax.random.key(3), num_samples=20, sample_chunk=8, data_chunk=4
        )

        def encode(x):
            return model.apply(params, x, method=model.encode)

        def log_likelihood(x, z):
            output = model.apply(params, z, method=model.decode)
            return losses.gaussian_log_likelihood(x.reshape(len(x), -1), output.reshape(len(z), -1), variance=0.1)

        expected = likelihood.importance_sampled_log_likelihood(
            encode, log_likelihood, x, jax.random.key(3), num_samples=20, sample_chunk=8, data_chunk=4
        )
        np.testing.assert_allclose(result["per_example"], expected["per_example"], rtol=1e-5, atol=1e-4)
        # Parameters are traced: new parameters of the same model reuse the compiled program.
        cache_size = likelihood._importance_sampled_chunk._cache_size()
        other = init(jax.random.key(5), x, jax.random.key(2))
        again = likelihood.model_log_likelihood(
            vae.fns(model, config), other, x, jax.random.key(3), num_samples=20, sample_chunk=8, data_chunk=4
        )
        assert likelihood._importance_sampled_chunk._cache_size() == cache_size
        assert not np.allclose(again["per_example"], result["per_example"])

    @pytest.mark.parametrize("kind", ["scalar", "per_pixel"])
    def test_learned_decoder_variance_is_the_one_used(self, kind):
        """With a learned variance, log p(x|z) is N(x; f(z), exp(decoder_log_variance)), not N(f(z), c)."""
        shape = (3, 3, 1)
        model = vae.VAE((8,), (8,), 2, shape, decoder_variance=kind)
        x = np.random.default_rng(0).uniform(size=(9, *shape)).astype(np.float32)
        params = jax.jit(model.init)(jax.random.key(1), x, jax.random.key(2))
        # c is not the learned variance: were c used, the estimates below would not match.
        config = ml_collections.ConfigDict(
            {"likelihood": "gaussian", "c": 0.05, "objective": "elbo", "num_train_samples": 1}
        )

        def encode(params, x):
            return model.apply(params, x, method=model.encode)

        def exact_log_likelihood(params, variance, x, z):  # log N(x; f(z), diag(variance)), written out
            mean = model.apply(params, z, method=model.decode).reshape(len(z), -1)
            x = x.reshape(len(x), -1)
            return -0.5 * jnp.sum(jnp.square(x - mean) / variance + jnp.log(2 * jnp.pi * variance), axis=-1)

        hand_set = 0.3 if kind == "scalar" else np.random.default_rng(1).uniform(0.1, 0.6, size=shape)
        estimates = []
        for variance in (np.float32(hand_set), np.float32(2 * hand_set)):
            p = {"params": dict(params["params"], decoder_log_variance=jnp.log(variance))}
            result = likelihood.model_log_likelihood(
                vae.fns(model, config), p, x, jax.random.key(3), num_samples=10, sample_chunk=10, data_chunk=9
            )["per_example"]
            expected = likelihood.importance_sampled_log_likelihood(
                Partial(encode, p),
                Partial(exact_log_likelihood, p, jnp.asarray(variance).reshape(-1)),
                x,
                jax.random.key(3),
                num_samples=10,
                sample_chunk=10,
                data_chunk=9,
            )["per_example"]
            np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-4)
            estimates.append(result)
        # The variance parameter moves the estimate (by nats per image).
        assert np.abs(estimates[1] - estimates[0]).min() > 0.1


# ----------------------------------------------------------------------------- active units


class TestActiveUnits:
    def test_dead_dimensions_are_exactly_the_constant_ones(self):
        x = np.random.default_rng(0).normal(size=(37, 5)).astype(np.float32)
        # dims: 0 = x0 (var ~1), 1 = constant, 2 = x1 + x2 (var ~2), 3 = 0.03 x3 (var ~1e-3), 4 = constant.
        mixing = np.zeros((5, 5), np.float32)
        mixing[0, 0], mixing[1, 2], mixing[2, 2], mixing[3, 3] = 1.0, 1.0, 1.0, 0.03
        offset = np.array([0.5, 3.0, 0.0, 0.0, -2.0], np.float32)
        encode = TraceCounter(lambda x: (x @ mixing + offset, jnp.zeros((len(x), 5))))  # (mean, logvar)
        result = latent_geometry.active_units(encode, x, batch_size=8)  # 5 chunks, the last one padded
        assert result["active_units"] == 2
        np.testing.assert_array_equal(result["active"], [True, False, True, False, False])
        np.testing.assert_allclose(
            result["variances"], np.var(x @ mixing + offset, axis=0, dtype=np.float64), rtol=1e-5, atol=1e-12
        )
        assert result["variances"][1] == result["variances"][4] == 0.0
        assert encode.count == 1
        # The threshold is what separates dimension 3 (variance ~1e-3) from the active ones.
        assert latent_geometry.active_units(encode, x, threshold=1e-5)["active_units"] == 3


# ----------------------------------------------------------------------------- continuity


@pytest.fixture(scope="module")
def linear_decoder():
    A = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    _, singular_values, vt = np.linalg.svd(A.astype(np.float64))
    return A, singular_values, vt


def identity(x):
    return x


class TestContinuity:
    def test_linear_decoder_ratios_are_bounded_by_the_singular_values(self, linear_decoder):
        A, singular_values, _ = linear_decoder
        codes = np.random.default_rng(2).normal(size=(20, 3)).astype(np.float32)
        result = latent_geometry.continuity(
            identity, lambda z: z @ A.T, codes, jax.random.key(0), num_pairs=32, num_steps=10
        )
        ratios = result["ratios"]
        assert ratios.shape == (32, 10)
        assert (ratios <= singular_values[0] * (1 + 1e-5)).all()
        assert (ratios >= singular_values[-1] * (1 - 1e-5)).all()
        assert result["max_ratio"] <= singular_values[0] * (1 + 1e-5)
        # A linear map moves equal latent steps by equal output steps: no jumps.
        assert result["max_jump"] == pytest.approx(1 / 10, rel=1e-4)
        assert result["max_jump_worst"] == pytest.approx(1 / 10, rel=1e-4)
        pairs = result["pairs"]
        assert pairs.shape == (32, 2) and (pairs[:, 0] != pairs[:, 1]).all()

    def test_paths_along_the_top_singular_vector_attain_the_operator_norm(self, linear_decoder):
        A, singular_values, vt = linear_decoder
        codes = (np.array([-2.0, -0.5, 1.0, 3.0])[:, None] * vt[0]).astype(np.float32)
        result = latent_geometry.continuity(
            identity, lambda z: z @ A.T, codes, jax.random.key(1), num_pairs=32, num_steps=5
        )
        np.testing.assert_allclose(result["ratios"], singular_values[0], rtol=1e-4)
        assert result["mean_ratio"] == pytest.approx(singular_values[0], rel=1e-4)
        assert result["max_ratio"] == pytest.approx(singular_values[0], rel=1e-4)

    def test_normalised_ratio_ignores_the_latent_scale(self, linear_decoder):
        A, _, _ = linear_decoder
        codes = np.random.default_rng(3).normal(size=(25, 3)).astype(np.float32)
        results = {
            scale: latent_geometry.continuity(
                identity,
                lambda z, s=scale: jnp.tanh((z / s) @ A.T),
                codes * scale,
                jax.random.key(2),
                num_pairs=32,
                num_steps=8,
            )
            for scale in (1.0, 10.0)
        }
        assert results[10.0]["mean_ratio"] == pytest.approx(results[1.0]["mean_ratio"] / 10, rel=1e-4)
        assert results[10.0]["code_std"] == pytest.approx(results[1.0]["code_std"] * 10, rel=1e-5)
        assert results[10.0]["mean_ratio_normalised"] == pytest.approx(results[1.0]["mean_ratio_normalised"], rel=1e-4)
        assert results[10.0]["max_ratio_normalised"] == pytest.approx(results[1.0]["max_ratio_normalised"], rel=1e-4)

    def test_a_step_decoder_jumps(self):
        # d(z) = (1, 1, 1) where z_0 > 0, else 0: every path crossing z_0 = 0 changes in one step;
        # paths that do not cross have equal decoded endpoints and are left out of max_jump.
        codes = np.stack([np.linspace(-1, 1, 10), np.zeros(10)], axis=1).astype(np.float32)
        decode = lambda z: jnp.where(z[:, :1] > 0, 1.0, 0.0) * jnp.ones((1, 3))
        result = latent_geometry.continuity(identity, decode, codes, jax.random.key(3), num_pairs=32, num_steps=7)
        assert result["max_jump"] == 1.0 and result["max_jump_worst"] == 1.0

    def test_one_trace_for_all_path_chunks(self, linear_decoder):
        A, _, _ = linear_decoder
        decode = TraceCounter(lambda z: z @ A.T)
        encode = TraceCounter(identity)
        codes = np.random.default_rng(4).normal(size=(21, 3)).astype(np.float32)
        for key in (0, 1):
            latent_geometry.continuity(
                encode, decode, codes, jax.random.key(key), num_pairs=32, num_steps=4, batch_size=8, paths_per_batch=6
            )
        assert decode.count == 1 and encode.count == 1


# ----------------------------------------------------------------------------- completeness


@pytest.fixture(scope="module")
def digits():
    return datasets.load_dataset("digits")


@pytest.fixture(scope="module")
def digit_classifier(digits):
    return latent_geometry.fit_image_classifier(digits["train"].images, digits["train"].labels)


class TestClassifierConfidence:
    def test_confident_on_real_digits_not_on_noise(self, digits, digit_classifier):
        test = digits["test"]
        real = latent_geometry.classifier_confidence(digit_classifier, test.images)
        assert real.shape == (len(test.images),)
        assert real.mean() > 0.8
        assert (digit_classifier.predict(test.images.reshape(len(test.images), -1)) == test.labels).mean() > 0.85
        noise = np.random.default_rng(0).uniform(size=test.images.shape).astype(np.float32)
        assert latent_geometry.classifier_confidence(digit_classifier, noise, batch_size=50).mean() < real.mean() - 0.1

    def test_max_train_subsamples(self, digits):
        classifier = latent_geometry.fit_image_classifier(digits["train"].images, digits["train"].labels, max_train=300)
        assert classifier.n_features_in_ == 64


class TestEmptyRegions:
    def test_nearest_neighbour_distances_match_brute_force(self):
        rng = np.random.default_rng(0)
        points = rng.normal(size=(53, 3)).astype(np.float32)
        queries = rng.normal(size=(19, 3)).astype(np.float32)
        brute = scipy.spatial.distance.cdist(queries, points)
        np.testing.assert_allclose(
            latent_geometry.nearest_neighbour_distances(queries, points, query_chunk=7, point_chunk=10),
            brute.min(axis=1),
            rtol=1e-4,
            atol=1e-4,
        )
        leave_one_out = scipy.spatial.distance.cdist(points, points) + np.diag(np.full(53, np.inf))
        np.testing.assert_allclose(
            latent_geometry.nearest_neighbour_distances(
                points, points, exclude_self=True, query_chunk=8, point_chunk=16
            ),
            leave_one_out.min(axis=1),
            rtol=1e-4,
            atol=1e-4,
        )

    def test_fraction_is_small_in_distribution_and_one_far_away(self):
        rng = np.random.default_rng(1)
        codes = rng.normal(size=(2000, 2)).astype(np.float32)
        near = latent_geometry.empty_region_fraction(rng.normal(size=(1000, 2)).astype(np.float32), codes)
        assert near["empty_fraction"] < 0.05
        assert near["threshold"] == pytest.approx(latent_geometry.empty_region_threshold(codes))
        far = latent_geometry.empty_region_fraction(
            rng.normal(size=(500, 2)).astype(np.float32) + 10.0, codes, threshold=near["threshold"]
        )
        assert far["empty_fraction"] == 1.0


class TestCompleteness:
    def test_known_answers(self, digits, digit_classifier):
        test_images = digits["test"].images
        image = jnp.asarray(test_images[5])
        decode = TraceCounter(lambda z: jnp.broadcast_to(image, (z.shape[0], *image.shape)))
        # AE-like codes: a tight cloud far from the origin, so N(0, I) samples fall in empty space
        # while samples of the Gaussian fitted to the codes do not.
        codes = (0.3 * np.random.default_rng(2).normal(size=(1500, 2)) + 10.0).astype(np.float32)
        result = latent_geometry.completeness(
            decode,
            digit_classifier,
            codes,
            test_images,
            jax.random.key(0),
            num_samples=400,
            max_codes=1000,
            batch_size=128,
        )
        expected_test = latent_geometry.classifier_confidence(digit_classifier, test_images).mean()
        expected_sample = latent_geometry.classifier_confidence(digit_classifier, test_images[5:6])[0]
        assert result["test_confidence"] == pytest.approx(expected_test, rel=1e-6)
        for name in ("standard_normal", "fitted_gaussian"):
            assert result[name]["sample_confidence"] == pytest.approx(expected_sample, rel=1e-5)
            assert result[name]["confidence_ratio"] == pytest.approx(expected_sample / expected_test, rel=1e-5)
        assert result["standard_normal"]["empty_fraction"] == 1.0
        assert result["fitted_gaussian"]["empty_fraction"] < 0.05
        assert result["empty_threshold"] > 0
        assert decode.count == 1  # 400 samples in chunks of 128 (one padded), two distributions

    def test_pca_samples_look_like_digits(self, digits, digit_classifier):
        # PCA codes are not N(0, I): samples of the fitted Gaussian should fill the data region,
        # and decode to images the classifier finds more confidently like digits than noise.
        fitted = pca_lib.fit(digits["train"].images, 2)
        codes = latent_geometry.encode_images(Partial(pca_lib.encode, fitted), digits["train"].images, batch_size=512)
        np.testing.assert_allclose(codes, pca_lib.encode(fitted, digits["train"].images), rtol=1e-5, atol=1e-5)
        decode = Partial(lambda params, z: pca_lib.decode(params, z).reshape(len(z), 8, 8, 1), fitted)
        result = latent_geometry.completeness(
            decode,
            digit_classifier,
            codes,
            digits["test"].images,
            jax.random.key(1),
            num_samples=300,
            latent_distributions=("fitted_gaussian",),
        )
        assert set(result) == {"test_confidence", "empty_threshold", "fitted_gaussian"}
        assert 0.0 <= result["fitted_gaussian"]["empty_fraction"] < 0.2
        assert 0.3 < result["fitted_gaussian"]["confidence_ratio"] <= 1.05

    def test_rejects_unknown_distributions(self, digit_classifier, digits):
        with pytest.raises(ValueError, match="Unknown latent distributions"):
            latent_geometry.completeness(
                identity,
                digit_classifier,
                np.zeros((5, 2), np.float32),
                digits["test"].images,
                jax.random.key(0),
                latent_distributions=("uniform",),
            )
