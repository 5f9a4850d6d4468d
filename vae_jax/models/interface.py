"""What every model kind gives the rest of the library: `ModelFns`, pure functions of the
parameters, and `Hyper`, the loss's hyperparameters passed as data.

Every model kind (`vae_jax.models.registry`) is reduced to this small interface, so that the
trainer, the evaluation and the figures never branch on the kind. All metrics are per example:
nats per example for likelihood terms, summed squared error per image for reconstructions
(``mse`` is that divided by the number of pixels). For the discretised likelihoods of 8-bit
data a VAE also reports ``bits_per_dim`` (`vae_jax.models.likelihoods.bits_per_dim`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
from jax.typing import ArrayLike

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


def is_zero(value: ArrayLike) -> bool:
    """Whether ``value`` is a Python number equal to 0 (known when the program is traced)."""
    return isinstance(value, (int, float)) and value == 0


class ImportanceParts(NamedTuple):
    """The pieces of a one-layer VAE's importance weight log p(x|z) + log p(z) - log q(z|x), for
    `vae_jax.evaluation.likelihood` to draw z ~ q(z|x) = N(mean, exp(logvar)) itself. Each is a
    hashable callable of the parameters first, so ``Partial(part, params)`` compiles once.

    encode(params, x) -> ``(mean, logvar)``, each ``[b, d]``: q(z|x).
    log_likelihood(params, x, z) -> ``[b]``: log p(x|z) in nats.
    log_prior(params, z) -> ``[...]``: log p(z) in nats, or None for N(0, I).
    """

    encode: Callable
    log_likelihood: Callable
    log_prior: Callable | None


class ModelFns(NamedTuple):
    """Pure functions of one model kind: everything the trainer, the evaluation, the figures and
    `vae_jax.load` ask of a model (`vae_jax.models.registry.build` makes them).

    per_example_metrics(params, x, rng, hyper, training=False) -> dict of ``[b]`` arrays, always
        with ``'loss'`` (the training objective per example, what the optimiser minimises on
        average); ``hyper`` is a `Hyper` (VAEs read it; the autoencoder and PCA ignore it);
        ``training`` (the training step's call) turns dropout on (``model.dropout_rate``), its
        masks drawn from ``rng``; evaluation leaves it off.
    encode(params, x) -> ``[b, latents]`` codes (the posterior mean for a VAE).
    decode_image(params, z) -> ``[b, *image_shape]`` images in [0, 1] (p(x|z)'s mean; greedy
        pixel by pixel for an autoregressive decoder).
    standard_normal_prior: whether latents are meant to follow N(0, I) (a VAE with that
        prior) or not.
    diagnostics: metrics reported by evaluation only; the training step leaves them out
        (and so never computes them).
    sample_prior(params, key, num) -> ``[num, latents]`` draws from the prior (VAEs), or None.
    sample_images(params, key, z) -> ``[b, *image_shape]`` draws x ~ p(x|z) in [0, 1], or None
        (a model without a likelihood). Exact for an autoregressive decoder too (pixel by pixel).
    encode_layers(params, x) -> one ``[b, d_l]`` array of codes per stochastic layer, bottom to
        top (a ladder VAE: each layer's posterior mean, `encode` is the first), or None. Layer
        l's active units: ``latent_geometry.active_units(lambda x: fns.encode_layers(params,
        x)[l], images)``.
    log_importance_weight(params, x, keys) -> ``[b]`` log p(x, z) - log q(z|x) in nats at one
        posterior sample per image, image i's drawn with ``keys[i]`` (a ladder VAE), or None.
    importance_parts: `ImportanceParts` of a one-layer VAE (its q(z|x) is one Gaussian, sampled
        by the estimator itself), or None. A model with either hook has a likelihood that
        `vae_jax.evaluation.likelihood.model_log_likelihood` estimates.
    init(key) -> the model's initial parameters (for PCA: zeros of the fitted shapes).
    fit(images) -> parameters fitted in closed form (PCA), or None for a model trained by
        gradient steps.
    module: the Flax module (None for PCA), for code that applies it directly.
    label: a short name for logs and figure titles ('VAE', 'ladder VAE', 'AE', 'PCA').
    likelihood: the config's p(x|z) ('gaussian', 'bernoulli', a discretised logistic;
        'squared_error' for the autoencoder and PCA).
    latent_sizes: the width of each stochastic layer (or of the code), bottom to top.
    prior_description: how figures name the prior samples are drawn from, or None (no prior).
    autoregressive: whether p(x|z) is autoregressive over pixels (its figures then show draws
        or greedy decodings, `config.figure_decoding`).
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
    importance_parts: ImportanceParts | None = None
    init: Callable[[jax.Array], Params] | None = None
    fit: Callable[[jax.Array], Params] | None = None
    module: Any = None
    label: str = ""
    likelihood: str = "squared_error"
    latent_sizes: tuple[int, ...] = ()
    prior_description: str | None = None
    autoregressive: bool = False
