"""What each model kind optimises and reports, as per-example functions of the parameters.

Every model kind (VAE, autoencoder, PCA) is reduced to the same small interface,
`ModelFns`, so that the trainer, the evaluation and the figures never branch on the kind.
All metrics are per example: nats per example for likelihood terms, summed squared error
per image for reconstructions (``mse`` is that divided by the number of pixels). For the
discretised likelihoods of 8-bit data a VAE also reports ``bits_per_dim``, its negative ELBO
in bits per pixel and channel (`bits_per_dim`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from vae_jax import losses, models
from vae_jax import pca as pca_lib

Params = Any


class Hyper(NamedTuple):
    """The loss's hyperparameters, passed to it as data (never read from a config inside it).

    Python numbers are compiled into the program as constants (a single run); arrays are
    traced, so sweep members trained together in one program each carry their own values
    (stacked along a leading member axis under `jax.vmap`).
    """

    beta: ArrayLike = 1.0  # weight of the KL term (beta-VAE; 1 for the ELBO)
    c: ArrayLike = 0.05  # variance of the Gaussian decoder N(f(z), cI) (its start when learned)
    free_bits: ArrayLike = 0.0  # nats per latent dimension the ELBO objective's KL counts at least
    kl_weight: ArrayLike = 1.0  # KL warm-up factor in [0, 1]: the training step sets it per step


def hyper(config) -> Hyper:
    """The `Hyper` of ``config`` as Python numbers (``kl_weight`` 1: no warm-up)."""
    return Hyper(beta=config.beta, c=config.c, free_bits=config.free_bits)


def _is_zero(value: ArrayLike) -> bool:
    """Whether ``value`` is a Python number equal to 0 (known when the program is traced)."""
    return isinstance(value, (int, float)) and value == 0


class ModelFns(NamedTuple):
    """Pure functions of one model kind.

    per_example_metrics(params, x, rng, hyper) -> dict of ``[b]`` arrays, always with
        ``'loss'`` (the training objective per example, what the optimiser minimises on
        average); ``hyper`` is a `Hyper` (VAEs read it; the autoencoder and PCA ignore it).
    encode(params, x) -> ``[b, latents]`` codes (the posterior mean for a VAE).
    decode_image(params, z) -> ``[b, *image_shape]`` images in [0, 1].
    standard_normal_prior: whether latents are meant to follow N(0, I) (a VAE with that
        prior) or not.
    diagnostics: metrics reported by evaluation only; the training step leaves them out
        (and so never computes them).
    sample_prior(params, key, num) -> ``[num, latents]`` draws from the prior (VAEs), or None.
    sample_images(params, key, z) -> ``[b, *image_shape]`` draws x ~ p(x|z) in [0, 1] (a VAE with
        a factorised decoder, `sample_images`), or None; `decode_image` is the mean instead.
    encode_layers(params, x) -> one ``[b, d_l]`` array of codes per stochastic layer, bottom to
        top (a `hierarchical.LadderVAE`: each layer's posterior mean, `encode` is the first),
        or None. Layer l's active units: ``metrics.active_units(lambda x:
        fns.encode_layers(params, x)[l], images)``.
    log_importance_weight(params, x, keys) -> ``[b]`` log p(x, z) - log q(z|x) in nats at one
        posterior sample per image, image i's drawn with ``keys[i]`` (a
        `hierarchical.LogImportanceWeight`), or None (a one-layer VAE, whose q(z|x) is one
        Gaussian: `metrics.vae_log_likelihood` samples it itself).
    """

    per_example_metrics: Callable[..., dict[str, jax.Array]]
    encode: Callable[[Params, jax.Array], jax.Array]
    decode_image: Callable[[Params, jax.Array], jax.Array]
    standard_normal_prior: bool
    diagnostics: tuple[str, ...] = ()
    sample_prior: Callable[[Params, jax.Array, int], jax.Array] | None = None
    sample_images: Callable[[Params, jax.Array, jax.Array], jax.Array] | None = None
    encode_layers: Callable[[Params, jax.Array], tuple[jax.Array, ...]] | None = None
    log_importance_weight: Callable[[Params, jax.Array, jax.Array], jax.Array] | None = None


def _flat(x: jax.Array) -> jax.Array:
    return x.reshape(x.shape[0], -1)


def decoder_variance(model, params, c: ArrayLike) -> ArrayLike:
    """The variance of a Gaussian decoder: ``c``, or the model's learned one (scalar or per
    pixel) as one value per pixel ``[H * W * C]``."""
    if model.decoder_variance == "fixed":
        return c
    return jnp.broadcast_to(model.apply(params, method=model.variance), model.output_shape).reshape(-1)


def log_likelihood(likelihood: str, x: jax.Array, decoder_output: jax.Array, variance: ArrayLike = None) -> jax.Array:
    """log p(x|z) ``[b]`` in nats per example for ``likelihood`` 'gaussian' (``variance``: the
    scalar c, or `decoder_variance`), 'bernoulli', 'discretized_logistic' or
    'discretized_logistic_mixture' (``variance`` unused; ``x`` ``[b, H, W, C]`` in [0, 1] on the
    8-bit grid k / 255, ``decoder_output`` ``[b, H, W, P]`` as `models.split_likelihood_parameters`
    reads it)."""
    if likelihood == "gaussian":
        return losses.gaussian_log_likelihood(_flat(x), _flat(decoder_output), variance=variance)
    if likelihood == "bernoulli":
        return losses.bernoulli_log_likelihood(_flat(x), _flat(decoder_output))
    if likelihood == "discretized_logistic":
        parameters = models.split_likelihood_parameters(likelihood, decoder_output, x.shape[-1])
        return losses.discretized_logistic_log_likelihood(x, **parameters, event_ndims=x.ndim - 1)
    if likelihood == "discretized_logistic_mixture":
        parameters = models.split_likelihood_parameters(likelihood, decoder_output, x.shape[-1])
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
        p = models.split_likelihood_parameters(likelihood, decoder_output, channels)
        return {
            "logit_weights": jnp.zeros((*p["mean"].shape[:-1], 1), p["mean"].dtype),
            "means": p["mean"][..., None],
            "log_scales": p["log_scale"][..., None],
        }
    if channels is None:
        raise ValueError("The images of a discretized_logistic_mixture decoder need `channels`.")
    return models.split_likelihood_parameters(likelihood, decoder_output, channels)


def to_image(likelihood: str, decoder_output: jax.Array, channels: int | None = None) -> jax.Array:
    """The mean of p(x|z) as an image ``[b, H, W, C]`` in [0, 1]: the Gaussian mean, the sigmoid of
    Bernoulli logits, or the mean of a discretised logistic (mixture)
    (`losses.discretized_logistic_mixture_mean`: within half an 8-bit level of the exact mean;
    ``channels``, the images' C, is needed for the mixture)."""
    if likelihood == "bernoulli":
        return jax.nn.sigmoid(decoder_output)
    if likelihood in models.DISCRETIZED_LIKELIHOODS:
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
    the logits, the Gaussian mean plus noise of ``variance`` (c, or `decoder_variance` reshaped
    to the image) clipped to [0, 1], or discretised logistic (mixture) draws on the 8-bit grid
    k / 255 (`losses.discretized_logistic_mixture_sample`; ``channels`` for the mixture)."""
    if likelihood == "bernoulli":
        return jax.random.bernoulli(key, jax.nn.sigmoid(decoder_output)).astype(decoder_output.dtype)
    if likelihood == "gaussian":
        noise = jax.random.normal(key, decoder_output.shape, decoder_output.dtype)
        std = jnp.sqrt(jnp.reshape(variance, (-1, *decoder_output.shape[1:])) if jnp.ndim(variance) else variance)
        return jnp.clip(decoder_output + std * noise, 0.0, 1.0)
    if likelihood in models.DISCRETIZED_LIKELIHOODS:
        return losses.discretized_logistic_mixture_sample(
            key, **_mixture_parameters(likelihood, decoder_output, channels)
        )
    raise ValueError(f"No sampler for likelihood {likelihood!r}.")


def squared_error_metrics(x: jax.Array, reconstruction: jax.Array) -> dict[str, jax.Array]:
    """Per-example ``loss`` = ``squared_error`` = ||x - x_hat||^2 and ``mse`` (per pixel)."""
    squared_error = losses.squared_error(_flat(x), _flat(reconstruction))
    return {"loss": squared_error, "squared_error": squared_error, "mse": squared_error / _flat(x).shape[-1]}


def kl_with_free_bits(mean: jax.Array, logvar: jax.Array, free_bits: float) -> jax.Array:
    """``[b]`` sum over latent dimensions j of max(free_bits, KL_j(q(z|x) || N(0, 1))), in nats.

    Free bits (Kingma et al. 2016, per example here): a dimension costs at least
    ``free_bits`` nats, so the optimiser gains nothing by pushing its KL below that, which
    keeps latents from collapsing early. ``free_bits=0`` is the plain KL.
    """
    per_dimension = losses.gaussian_kl_to_standard_normal(mean[..., None], logvar[..., None])
    return jnp.sum(jnp.maximum(per_dimension, free_bits), axis=-1)


def greedy_autoregressive_images(model, params, z: jax.Array) -> jax.Array:
    """Images ``[b, H, W, 1]`` of an autoregressive decoder for latents ``z``, pixel by pixel.

    Deterministic: each pixel is set to its more likely value given z and the pixels before it,
    and the returned image holds each pixel's probability p(x_i = 1 | z, x_<i) on that path
    (a sharp stand-in for the decoder's mean, for figures). One decoder pass per pixel.
    """
    features = model.apply(params, z, method=model.latent_features)
    height, width, channels = model.output_shape

    def set_pixel(i, carry):
        x, probabilities = carry
        row, column = i // width, i % width
        p = jax.nn.sigmoid(model.apply(params, features, x, method=model.pixel_logits)[:, row, column, 0])
        x = x.at[:, row, column, 0].set((p > 0.5).astype(x.dtype))
        return x, probabilities.at[:, row, column, 0].set(p)

    empty = jnp.zeros((z.shape[0], height, width, channels), jnp.float32)
    return jax.lax.fori_loop(0, height * width, set_pixel, (empty, empty))[1]


def vae_fns(model, config) -> ModelFns:
    """`ModelFns` of a `models.VAE`; ``config`` gives what shapes the program (objective,
    samples, likelihood), the `Hyper` argument the values (beta, c, free bits, KL weight).

    Loss per example: -E_q[log p(x|z)] + beta * kl_weight * KL(q(z|x) || p(z)) with one
    sample (``config.objective='elbo'``; with free bits > 0 each latent dimension's KL counts
    as at least that many nats, `kl_with_free_bits`), or the negative importance-weighted
    bound with ``config.num_train_samples`` samples (``'iwae'``, Burda et al. 2016; beta and
    free bits are not used). ``kl_weight`` in [0, 1] is the KL warm-up factor the training
    step sets. ``neg_elbo``, ``reconstruction`` and ``kl`` are always the true (unweighted,
    unclamped) terms.

    The KL is closed-form for the N(0, I) prior; for a mixture prior (``model.prior``
    'mixture' or 'vamp') it has none, and ``kl`` is the one-sample estimate
    log q(z|x) - log p(z) at the z that is decoded (unbiased; so is ``neg_elbo``).

    A `hierarchical.LadderVAE` (``model.hierarchy_latents`` set) gets `hierarchical.ladder_fns`.
    """
    from vae_jax import hierarchical  # imports this module

    if isinstance(model, hierarchical.LadderVAE):
        return hierarchical.ladder_fns(model, config)
    objective = config.objective
    num_samples = config.num_train_samples
    likelihood = config.likelihood
    standard_prior = model.prior == "standard_normal"
    channels = model.output_shape[-1]

    def per_example_metrics(params, x, rng, hyper: Hyper):
        mean, logvar = model.apply(params, x, method=model.encode)
        variance = decoder_variance(model, params, hyper.c)
        if objective == "iwae":  # z, log p(x|z): [num_samples, b, ...]
            z = losses.reparameterize(
                rng,
                jnp.broadcast_to(mean, (num_samples, *mean.shape)),
                jnp.broadcast_to(logvar, (num_samples, *logvar.shape)),
            )
            repeated = jnp.broadcast_to(x, (num_samples, *x.shape)).reshape(-1, *x.shape[1:])
            outputs = model.apply(params, z.reshape(-1, z.shape[-1]), repeated, method=model.decode)
            log_px = log_likelihood(likelihood, repeated, outputs, variance).reshape(num_samples, -1)
            output = outputs.reshape(num_samples, -1, *outputs.shape[1:])[0]
        else:
            z = losses.reparameterize(rng, mean, logvar)
            output = model.apply(params, z, x, method=model.decode)
            log_px = log_likelihood(likelihood, x, output, variance)
        if objective == "iwae" or not standard_prior:  # log p(z) and log q(z|x) at the samples, once
            log_pz = model.apply(params, z, method=model.log_prior)
            log_qz = losses.diagonal_gaussian_log_prob(z, mean, logvar)
        if standard_prior:
            kl = losses.gaussian_kl_to_standard_normal(mean, logvar)
        else:  # the sampled estimate, averaged over the samples
            kl = (log_qz - log_pz).reshape(-1, mean.shape[0]).mean(axis=0)
        if objective == "iwae":
            loss = -losses.iwae_bound(log_px, log_pz, log_qz)
            log_px = jnp.mean(log_px, axis=0)
        else:
            free_bits = standard_prior and not _is_zero(hyper.free_bits)  # refused with other priors
            kl_term = kl_with_free_bits(mean, logvar, hyper.free_bits) if free_bits else kl
            loss = -losses.elbo(log_px, kl_term, beta=hyper.beta * hyper.kl_weight)
        metrics = {
            "loss": loss,
            "neg_elbo": -losses.elbo(log_px, kl),
            "reconstruction": -log_px,
            "kl": kl,
            "squared_error": losses.squared_error(_flat(x), _flat(to_image(likelihood, output, channels))),
        }
        if likelihood in models.DISCRETIZED_LIKELIHOODS:  # a probability of discrete data: bits too
            metrics["bits_per_dim"] = bits_per_dim(metrics["neg_elbo"], _flat(x).shape[-1])
        return metrics

    def encode(params, x):
        return model.apply(params, x, method=model.encode)[0]

    def decode_image(params, z):
        if model.autoregressive:
            return greedy_autoregressive_images(model, params, z)
        return to_image(likelihood, model.apply(params, z, method=model.decode), channels)

    def sample_prior(params, key, num):
        return model.apply(params, key, num, method=model.sample_prior)

    def sample(params, key, z):
        variance = decoder_variance(model, params, config.c)
        return sample_images(likelihood, key, model.apply(params, z, method=model.decode), variance, channels)

    return ModelFns(
        per_example_metrics,
        encode,
        decode_image,
        standard_normal_prior=standard_prior,
        diagnostics=("squared_error",),
        sample_prior=sample_prior,
        sample_images=None if model.autoregressive else sample,
    )


def autoencoder_fns(model, config) -> ModelFns:
    """`ModelFns` of a `models.Autoencoder` trained on the squared error ||x - d(e(x))||^2."""
    del config

    def per_example_metrics(params, x, rng, hyper=None):
        del rng, hyper  # deterministic, no KL term
        return squared_error_metrics(x, model.apply(params, x)[0])

    def encode(params, x):
        return model.apply(params, x, method=model.encode)

    def decode_image(params, z):
        return model.apply(params, z, method=model.decode)

    return ModelFns(per_example_metrics, encode, decode_image, standard_normal_prior=False)


def pca_fns(image_shape) -> ModelFns:
    """`ModelFns` of a fitted `pca.PCA` (the params), with the squared reconstruction error."""

    def per_example_metrics(params, x, rng, hyper=None):
        del rng, hyper  # deterministic, no KL term
        return squared_error_metrics(x, pca_lib.decode(params, pca_lib.encode(params, x)))

    def decode_image(params, z):
        return pca_lib.decode(params, z).reshape((z.shape[0], *image_shape))

    return ModelFns(per_example_metrics, pca_lib.encode, decode_image, standard_normal_prior=False)
