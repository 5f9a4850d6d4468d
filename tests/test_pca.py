"""PCA: the lecture's worked 2-D table, and agreement with an SVD on random data."""

import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.models import pca

LECTURE_POINTS = np.array([[-0.50, -0.40], [-0.40, -0.10], [0.10, 0.00], [0.30, 0.30], [0.50, 0.20]])
LECTURE_ENCODED = np.array([-0.63, -0.39, 0.09, 0.41, 0.53])
LECTURE_DECODED = np.array([[-0.54, -0.33], [-0.34, -0.20], [0.07, 0.04], [0.35, 0.21], [0.46, 0.27]])


class TestLectureTable:
    def test_encoded_and_decoded_values_at_two_decimals(self):
        fitted = pca.fit(LECTURE_POINTS, 1, center=False)
        encoded = np.asarray(pca.encode(fitted, LECTURE_POINTS))[:, 0]
        decoded = np.asarray(pca.decode(fitted, pca.encode(fitted, LECTURE_POINTS)))
        two_decimals = np.vectorize(lambda v: f"{v:.2f}")
        np.testing.assert_array_equal(two_decimals(encoded), two_decimals(LECTURE_ENCODED))
        np.testing.assert_array_equal(two_decimals(decoded), two_decimals(LECTURE_DECODED))

    def test_centring_changes_nothing_for_centred_data(self):
        centred = pca.fit(LECTURE_POINTS, 1)
        np.testing.assert_allclose(centred.mean, 0.0, atol=1e-7)
        np.testing.assert_allclose(np.asarray(pca.encode(centred, LECTURE_POINTS))[:, 0], LECTURE_ENCODED, atol=6e-3)

    def test_sign_convention_first_coordinate_positive(self):
        for flipped in (LECTURE_POINTS, -LECTURE_POINTS):
            assert pca.fit(flipped, 1, center=False).components[0, 0] > 0


class TestAgainstSVD:
    @pytest.fixture
    def data(self):
        rng = np.random.default_rng(0)
        scales = np.linspace(3.0, 0.1, 12)
        return (rng.normal(size=(500, 12)) * scales) @ np.linalg.qr(rng.normal(size=(12, 12)))[0] + 2.0

    def test_subspace_and_variances_match_svd(self, data):
        fitted = pca.fit(data, 4)
        centred = data - data.mean(0)
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        # Same subspace: principal angles are zero, i.e. the projections coincide.
        np.testing.assert_allclose(
            np.asarray(fitted.components).T @ np.asarray(fitted.components), vt[:4].T @ vt[:4], atol=1e-4
        )
        np.testing.assert_allclose(fitted.explained_variance, singular[:4] ** 2 / len(data), rtol=1e-4)
        np.testing.assert_allclose(fitted.total_variance, (singular**2).sum() / len(data), rtol=1e-5)

    def test_components_orthonormal_and_ordered(self, data):
        fitted = pca.fit(data, 5)
        np.testing.assert_allclose(fitted.components @ fitted.components.T, np.eye(5), atol=1e-5)
        assert np.all(np.diff(np.asarray(fitted.explained_variance)) <= 0)
        assert 0 < float(fitted.explained_variance_ratio.sum()) < 1

    def test_reconstruction_error_is_the_discarded_variance(self, data):
        fitted = pca.fit(data, 4)
        error = float(jnp.mean(pca.reconstruction_error(fitted, data)))
        discarded = float(fitted.total_variance - fitted.explained_variance.sum())
        np.testing.assert_allclose(error, discarded, rtol=1e-3)

    def test_full_rank_reconstructs_exactly(self, data):
        fitted = pca.fit(data, 12)
        np.testing.assert_allclose(pca.decode(fitted, pca.encode(fitted, data)), data, atol=1e-4)

    def test_images_are_flattened(self):
        images = np.random.default_rng(1).uniform(size=(50, 4, 4, 1))
        fitted = pca.fit(images, 3)
        assert fitted.components.shape == (3, 16)
        assert pca.encode(fitted, images).shape == (50, 3)


@pytest.mark.parametrize("components", [0, 3])
def test_invalid_number_of_components(components):
    with pytest.raises(ValueError, match="num_components"):
        pca.fit(np.zeros((10, 2)), components)


def test_rejects_unbatched_data():
    with pytest.raises(ValueError, match=r"\[n, \.\.\.\]"):
        pca.fit(np.zeros(5), 1)
