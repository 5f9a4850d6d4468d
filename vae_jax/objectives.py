"""What each model kind optimises and reports, as per-example functions of the parameters.

Every model kind (VAE, autoencoder, PCA) is reduced to the same small interface,
`ModelFns`, so that the trainer, the evaluation and the figures never branch on the kind.
All metrics are per example: nats per example for likelihood terms, summed squared error
per image for reconstructions (``mse`` is that divided by the number of pixels).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from vae_jax import losses
from vae_jax import pca as pca_lib

Params = Any


class ModelFns(NamedTuple):
    """Pure functions of one model kind.

    per_example_metrics(params, x, rng) -> dict of ``[b]`` arrays, always with ``'loss'``
        (the training objective per example, what the optimiser minimises on average).
    encode(params, x) -> ``[b, latents]`` codes (the posterior mean for a VAE).
    decode_image(params, z) -> ``[b, *image_shape]`` images in [0, 1].
    standard_normal_prior: whether latents are meant to follow N(0, I) (VAE) or not.
    """

    per_example_metrics: Callable[..., dict[str, jax.Array]]
    encode: Callable[[Params, jax.Array], jax.Array]
    decode_image: Callable[[Params, jax.Array], jax.Array]
    standard_normal_prior: bool


def _flat(x: jax.Array) -> jax.Array:
    return x.reshape(x.shape[0], -1)


def log_likelihood(config, x: jax.Array, decoder_output: jax.Array) -> jax.Array:
    """log p(x|z) in nats per example for ``config.likelihood`` ('gaussian' or 'bernoulli')."""
    if config.likelihood == "gaussian":
        return losses.gaussian_log_likelihood(_flat(x), _flat(decoder_output), variance=config.c)
    if config.likelihood == "bernoulli":
        return losses.bernoulli_log_likelihood(_flat(x), _flat(decoder_output))
    raise ValueError(f"A VAE needs likelihood 'gaussian' or 'bernoulli', got {config.likelihood!r}.")


def to_image(config, decoder_output: jax.Array) -> jax.Array:
    """The decoder's mean image in [0, 1] (sigmoid of Bernoulli logits)."""
    return jax.nn.sigmoid(decoder_output) if config.likelihood == "bernoulli" else decoder_output


def squared_error_metrics(x: jax.Array, reconstruction: jax.Array) -> dict[str, jax.Array]:
    """Per-example ``loss`` = ``squared_error`` = ||x - x_hat||^2 and ``mse`` (per pixel)."""
    squared_error = losses.squared_error(_flat(x), _flat(reconstruction))
    return {"loss": squared_error, "squared_error": squared_error,
            "mse": squared_error / _flat(x).shape[-1]}


def vae_fns(model, config) -> ModelFns:
    """`ModelFns` of a `models.VAE` with loss -E_q[log p(x|z)] + beta * KL(q(z|x) || N(0, I))."""

    def per_example_metrics(params, x, rng):
        output, mean, logvar = model.apply(params, x, rng)
        log_px = log_likelihood(config, x, output)
        kl = losses.gaussian_kl_to_standard_normal(mean, logvar)
        return {
            "loss": -losses.elbo(log_px, kl, beta=config.beta),
            "neg_elbo": -losses.elbo(log_px, kl),
            "reconstruction": -log_px,
            "kl": kl,
            "squared_error": losses.squared_error(_flat(x), _flat(to_image(config, output))),
        }

    def encode(params, x):
        return model.apply(params, x, method=model.encode)[0]

    def decode_image(params, z):
        return to_image(config, model.apply(params, z, method=model.decode))

    return ModelFns(per_example_metrics, encode, decode_image, standard_normal_prior=True)


def autoencoder_fns(model, config) -> ModelFns:
    """`ModelFns` of a `models.Autoencoder` trained on the squared error ||x - d(e(x))||^2."""
    del config

    def per_example_metrics(params, x, rng):
        del rng
        return squared_error_metrics(x, model.apply(params, x)[0])

    def encode(params, x):
        return model.apply(params, x, method=model.encode)

    def decode_image(params, z):
        return model.apply(params, z, method=model.decode)

    return ModelFns(per_example_metrics, encode, decode_image, standard_normal_prior=False)


def pca_fns(image_shape) -> ModelFns:
    """`ModelFns` of a fitted `pca.PCA` (the params), with the squared reconstruction error."""

    def per_example_metrics(params, x, rng):
        del rng
        return squared_error_metrics(x, pca_lib.decode(params, pca_lib.encode(params, x)))

    def decode_image(params, z):
        return pca_lib.decode(params, z).reshape((z.shape[0], *image_shape))

    return ModelFns(per_example_metrics, pca_lib.encode, decode_image, standard_normal_prior=False)
