"""Principal component analysis by a symmetric eigendecomposition of the covariance.

The lecture's linear baseline: the encoder is an (e, d) matrix with orthonormal rows, the top
eigenvectors of the data covariance (`jnp.linalg.eigh`); the decoder is its transpose.

Sign convention: each component is flipped so that its coordinate of largest magnitude is
positive (ties go to the first such coordinate). For the lecture's 2-D table this is the
"first coordinate positive" rule; for images it is well defined even where the first pixel
is always zero.

Shapes: data ``x`` is ``[n, ...]`` (flattened to ``[n, d]``), codes are ``[n, e]``.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
from absl import logging

from vae_jax.models import likelihoods
from vae_jax.models.interface import ModelFns


class PCA(NamedTuple):
    """A fitted PCA (a pytree, so it passes through `jax.jit`).

    Attributes:
      mean: ``[d]`` feature means subtracted before encoding.
      components: ``[e, d]`` orthonormal rows, ordered by decreasing variance.
      explained_variance: ``[e]`` covariance eigenvalues of the kept components.
      total_variance: scalar, trace of the covariance (sum of all eigenvalues).
    """

    mean: jax.Array
    components: jax.Array
    explained_variance: jax.Array
    total_variance: jax.Array

    @property
    def explained_variance_ratio(self) -> jax.Array:
        """``[e]`` fraction of the total variance each component explains."""
        return self.explained_variance / self.total_variance


def _flatten(x: jax.Array) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"PCA expects data of shape [n, ...] with n examples, got shape {x.shape}.")
    return x.reshape(x.shape[0], -1)


def fit(x: jax.Array, num_components: int, *, center: bool = True) -> PCA:
    """Fits PCA with ``num_components`` components to ``x`` of shape ``[n, ...]``.

    The covariance is ``X^T X / n`` of the centred data (``[d, d]``); its eigenvectors
    (``jnp.linalg.eigh``, ascending order) are reversed to decreasing variance.
    With ``center=False`` the data are taken as already centred (the lecture's table).
    """
    x = _flatten(x)
    n, d = x.shape
    if not 1 <= num_components <= d:
        raise ValueError(f"num_components must be in [1, {d}] for {d}-dimensional data, got {num_components}.")
    return _fit(x, num_components, center)


@jax.jit(static_argnums=(1, 2))
def _fit(x: jax.Array, num_components: int, center: bool) -> PCA:
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean = x.mean(axis=0) if center else jnp.zeros(x.shape[1], x.dtype)
    centred = x - mean
    # Full float32 products: a GPU's default TF32 would perturb the covariance's eigenvectors.
    covariance = jnp.matmul(centred.T, centred, precision=jax.lax.Precision.HIGHEST) / x.shape[0]
    eigenvalues, eigenvectors = jnp.linalg.eigh(covariance)
    top = eigenvectors[:, ::-1][:, :num_components].T  # [e, d], decreasing variance
    largest = jnp.argmax(jnp.abs(top), axis=1)
    signs = jnp.sign(jnp.take_along_axis(top, largest[:, None], axis=1))
    return PCA(
        mean=mean,
        components=top * signs,
        explained_variance=jnp.maximum(eigenvalues[::-1][:num_components], 0.0),
        total_variance=jnp.trace(covariance),
    )


def encode(pca: PCA, x: jax.Array) -> jax.Array:
    """Codes ``[n, e]`` of data ``[n, ...]``: ``(x - mean) @ components.T``."""
    return (_flatten(x) - pca.mean) @ pca.components.T


def decode(pca: PCA, z: jax.Array) -> jax.Array:
    """Reconstructions ``[n, d]`` (flat) of codes ``[n, e]``: ``z @ components + mean``."""
    return z @ pca.components + pca.mean


def reconstruction_error(pca: PCA, x: jax.Array) -> jax.Array:
    """Per-example squared error ``||x - decode(encode(x))||^2``, shape ``[n]``."""
    flat = _flatten(x)
    return jnp.sum((flat - decode(pca, encode(pca, flat))) ** 2, axis=-1)


def fns(image_shape, latents: int) -> ModelFns:
    """`ModelFns` of PCA with ``latents`` components of images of ``image_shape``: the params are a
    fitted `PCA` (``fit``; ``init`` gives zeros of its shapes, a restore target); the loss is the
    squared reconstruction error."""
    dim = math.prod(image_shape)

    def per_example_metrics(params, x, rng, hyper=None, training=False):
        del rng, hyper, training  # deterministic, no KL term
        return likelihoods.squared_error_metrics(x, decode(params, encode(params, x)))

    def decode_image(params, z):
        return decode(params, z).reshape((z.shape[0], *image_shape))

    def zeros(key):
        del key  # nothing random: a template of the fitted shapes
        return PCA(jnp.zeros(dim), jnp.zeros((latents, dim)), jnp.zeros(latents), jnp.zeros(()))

    def fit_and_log(images):
        start = time.perf_counter()
        fitted = jax.block_until_ready(fit(images, latents))
        logging.info(
            "PCA with %d components fitted in %.2f s; explained variance %.3f.",
            latents,
            time.perf_counter() - start,
            float(fitted.explained_variance_ratio.sum()),
        )
        return fitted

    return ModelFns(
        per_example_metrics,
        encode,
        decode_image,
        standard_normal_prior=False,
        init=zeros,
        fit=fit_and_log,
        label="PCA",
        latent_sizes=(latents,),
    )


def build(config, image_shape) -> ModelFns:
    """The `ModelFns` of PCA with ``config.model.latents`` components for images of ``image_shape``."""
    return fns(tuple(image_shape), config.model.latents)
