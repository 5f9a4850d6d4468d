"""p(x|z): what a decoder outputs per pixel for each likelihood, and its log-density, mean image
and samples; the squared error of the autoencoders and PCA.

The decoder's raw output is the mean f(z) of a Gaussian p(x|z) = N(f(z), cI) when its output
activation is 'sigmoid' (grey levels in [0, 1]), or the logits of a Bernoulli p(x|z) ('none';
binary data, the loss applies the sigmoid). For 8-bit data it outputs the parameters of a
discretised logistic (mixture) per pixel (`split_likelihood_parameters`), with ``P`` = 2C or
``K (1 + 2C + C (C - 1) / 2)`` numbers per pixel. Every log-density is in nats per example.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from vae_jax import losses

DISCRETIZED_LIKELIHOODS = ("discretized_logistic", "discretized_logistic_mixture")


def likelihood_parameters(likelihood: str, channels: int, mixture_components: int = 10) -> int:
    """How many numbers per pixel a decoder outputs for ``likelihood`` on ``channels``-channel
    images (`split_likelihood_parameters` gives them their meaning): one per channel for
    'gaussian' (the mean), 'bernoulli' (the logit) and 'squared_error'; two per channel for
    'discretized_logistic' (mean and log-scale); ``K (1 + 2C + C (C - 1) / 2)`` for
    'discretized_logistic_mixture' with ``K = mixture_components`` (per component: its logit
    weight, a mean and a log-scale per channel, and PixelCNN++'s coefficients of the
    channels' dependence on the previous ones)."""
    if likelihood == "discretized_logistic":
        return 2 * channels
    if likelihood == "discretized_logistic_mixture":
        return mixture_components * (1 + 2 * channels + channels * (channels - 1) // 2)
    return channels


def split_likelihood_parameters(likelihood: str, output: jax.Array, channels: int) -> dict[str, jax.Array]:
    """The parameters of p(x|z) in a decoder's ``output`` ``[..., H, W, P]`` for ``channels``-
    channel images, as keyword arguments of the `vae_jax.losses` functions.

    'discretized_logistic': ``mean`` and ``log_scale``, each ``[..., H, W, C]`` (the first C
    outputs of a pixel, then the next C). 'discretized_logistic_mixture' with ``K``
    components (``P = K (1 + 2C + C (C - 1) / 2)``, see `likelihood_parameters`):
    ``logit_weights`` ``[..., H, W, K]`` (the first K), then ``means`` and ``log_scales``
    ``[..., H, W, C, K]`` (C K each, channel-major), then ``coefficients``
    ``[..., H, W, C (C - 1) / 2, K]`` through ``tanh`` as in PixelCNN++ (None for one channel).
    """
    if likelihood == "discretized_logistic":
        if output.shape[-1] != 2 * channels:
            raise ValueError(
                f"A discretized_logistic decoder outputs {2 * channels} values per pixel, got {output.shape}."
            )
        return {"mean": output[..., :channels], "log_scale": output[..., channels:]}
    if likelihood != "discretized_logistic_mixture":
        raise ValueError(f"{likelihood!r} has no parameters to split.")
    coefficients = channels * (channels - 1) // 2
    per_component = 1 + 2 * channels + coefficients
    if output.shape[-1] % per_component:
        raise ValueError(
            f"A discretized_logistic_mixture decoder for {channels}-channel images outputs a multiple of "
            f"{per_component} values per pixel, got {output.shape}."
        )
    k = output.shape[-1] // per_component
    pixel = output.shape[:-1]
    split = {
        "logit_weights": output[..., :k],
        "means": output[..., k : k + channels * k].reshape(*pixel, channels, k),
        "log_scales": output[..., k + channels * k : k + 2 * channels * k].reshape(*pixel, channels, k),
        "coefficients": None,
    }
    if coefficients:
        split["coefficients"] = jnp.tanh(output[..., k + 2 * channels * k :].reshape(*pixel, coefficients, k))
    return split


def output_activation_for(likelihood: str, requested: str = "auto") -> str:
    """Decoder output activation: logits for Bernoulli, sigmoid means for grey levels, none
    (unbounded means, log-scales and logits) for the discretised logistics."""
    if requested != "auto":
        return requested
    return "none" if likelihood == "bernoulli" or likelihood in DISCRETIZED_LIKELIHOODS else "sigmoid"


def flat(x: jax.Array) -> jax.Array:
    """``x`` ``[b, ...]`` as ``[b, features]``."""
    return x.reshape(x.shape[0], -1)


def log_likelihood(likelihood: str, x: jax.Array, decoder_output: jax.Array, variance: ArrayLike = None) -> jax.Array:
    """log p(x|z) ``[b]`` in nats per example for ``likelihood`` 'gaussian' (``variance``: the
    scalar c, or `decoding.decoder_variance`), 'bernoulli', 'discretized_logistic' or
    'discretized_logistic_mixture' (``variance`` unused; ``x`` ``[b, H, W, C]`` in [0, 1] on the
    8-bit grid k / 255, ``decoder_output`` ``[b, H, W, P]`` as `likelihoods.split_likelihood_parameters`
    reads it)."""
    if likelihood == "gaussian":
        return losses.gaussian_log_likelihood(flat(x), flat(decoder_output), variance=variance)
    if likelihood == "bernoulli":
        return losses.bernoulli_log_likelihood(flat(x), flat(decoder_output))
    if likelihood == "discretized_logistic":
        parameters = split_likelihood_parameters(likelihood, decoder_output, x.shape[-1])
        return losses.discretized_logistic_log_likelihood(x, **parameters, event_ndims=x.ndim - 1)
    if likelihood == "discretized_logistic_mixture":
        parameters = split_likelihood_parameters(likelihood, decoder_output, x.shape[-1])
        return losses.discretized_logistic_mixture_log_likelihood(x, **parameters, event_ndims=x.ndim - 1)
    raise ValueError(
        f"A VAE needs likelihood 'gaussian', 'bernoulli', 'discretized_logistic' or "
        f"'discretized_logistic_mixture', got {likelihood!r}."
    )


def bits_per_dim(nats: ArrayLike, num_dims: int) -> ArrayLike:
    """A negative log-likelihood (or bound) of ``num_dims`` discrete values in nats, in bits per
    dimension: ``nats / (num_dims ln 2)`` (e.g. 3072 dimensions for a 32x32x3 image)."""
    return nats / (num_dims * math.log(2.0))


def _mixture_parameters(likelihood: str, decoder_output: jax.Array, channels: int | None) -> dict[str, jax.Array]:
    """The parameters of a discretised likelihood as those of a mixture (K = 1 for one logistic)."""
    if likelihood == "discretized_logistic":
        channels = decoder_output.shape[-1] // 2
        p = split_likelihood_parameters(likelihood, decoder_output, channels)
        return {
            "logit_weights": jnp.zeros((*p["mean"].shape[:-1], 1), p["mean"].dtype),
            "means": p["mean"][..., None],
            "log_scales": p["log_scale"][..., None],
        }
    if channels is None:
        raise ValueError("The images of a discretized_logistic_mixture decoder need `channels`.")
    return split_likelihood_parameters(likelihood, decoder_output, channels)


def to_image(likelihood: str, decoder_output: jax.Array, channels: int | None = None) -> jax.Array:
    """The mean of p(x|z) as an image ``[b, H, W, C]`` in [0, 1]: the Gaussian mean, the sigmoid of
    Bernoulli logits, or the mean of a discretised logistic (mixture)
    (`losses.discretized_logistic_mixture_mean`: within half an 8-bit level of the exact mean;
    ``channels``, the images' C, is needed for the mixture)."""
    if likelihood == "bernoulli":
        return jax.nn.sigmoid(decoder_output)
    if likelihood in DISCRETIZED_LIKELIHOODS:
        return losses.discretized_logistic_mixture_mean(**_mixture_parameters(likelihood, decoder_output, channels))
    return decoder_output


def sample_images(
    likelihood: str,
    key: jax.Array,
    decoder_output: jax.Array,
    variance: ArrayLike = None,
    channels: int | None = None,
) -> jax.Array:
    """Images ``[b, H, W, C]`` drawn from p(x|z) given the decoder's output: Bernoulli draws of
    the logits, the Gaussian mean plus noise of ``variance`` (c, or `decoding.decoder_variance` reshaped
    to the image) clipped to [0, 1], or discretised logistic (mixture) draws on the 8-bit grid
    k / 255 (`losses.discretized_logistic_mixture_sample`; ``channels`` for the mixture)."""
    if likelihood == "bernoulli":
        return jax.random.bernoulli(key, jax.nn.sigmoid(decoder_output)).astype(decoder_output.dtype)
    if likelihood == "gaussian":
        noise = jax.random.normal(key, decoder_output.shape, decoder_output.dtype)
        std = jnp.sqrt(jnp.reshape(variance, (-1, *decoder_output.shape[1:])) if jnp.ndim(variance) else variance)
        return jnp.clip(decoder_output + std * noise, 0.0, 1.0)
    if likelihood in DISCRETIZED_LIKELIHOODS:
        return losses.discretized_logistic_mixture_sample(
            key, **_mixture_parameters(likelihood, decoder_output, channels)
        )
    raise ValueError(f"No sampler for likelihood {likelihood!r}.")


def squared_error_metrics(x: jax.Array, reconstruction: jax.Array) -> dict[str, jax.Array]:
    """Per-example ``loss`` = ``squared_error`` = ||x - x_hat||^2 and ``mse`` (per pixel)."""
    squared_error = losses.squared_error(flat(x), flat(reconstruction))
    return {"loss": squared_error, "squared_error": squared_error, "mse": squared_error / flat(x).shape[-1]}
