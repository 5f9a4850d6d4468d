"""Checks of ``config.model`` and of what a model asks of the rest of the config and of the
data (likelihood, objective, priors, decoders, layer widths), before anything compiles. Each
failure raises `ConfigError` with one line naming the override to change
(`vae_jax.training.validation` calls them)."""

from __future__ import annotations

import math

from vae_jax.checks import choice as _choice
from vae_jax.checks import nonnegative_int as _nonnegative_int
from vae_jax.checks import positive_int as _positive_int
from vae_jax.checks import require as _require
from vae_jax.models import layers, likelihoods, priors, registry, resnet

ARCHITECTURES = ("mlp", "conv", "resnet")
DECODER_VARIANCES = ("fixed", "scalar", "per_pixel")
OBJECTIVES = ("elbo", "iwae")
LIKELIHOODS = {
    "vae": ("gaussian", "bernoulli", *likelihoods.DISCRETIZED_LIKELIHOODS),
    "ae": ("squared_error",),
    "pca": ("squared_error",),
}


def validate_kind(config) -> None:
    """``config.model.kind`` names a kind of the registry."""
    _choice(config.model.kind, "model.kind", registry.CONFIG_KINDS)


def validate(config) -> None:
    """Raises `ConfigError` for the first invalid model value of a resolved config."""
    _positive_int(config.model.flow_steps, "model.flow_steps")
    rate = config.model.dropout_rate
    _require(
        isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 <= rate < 1,
        f"--config.model.dropout_rate={rate!r} is invalid: expected a probability in [0, 1), e.g. 0 (none) or 0.2.",
    )
    _require(
        rate == 0 or (config.model.architecture != "resnet" and registry.kind_of(config.model) != "pca"),
        f"--config.model.dropout_rate={rate} applies to MLP and conv models (their dense layers); "
        f"{config.model.architecture} {config.model.kind} has none: use --config.model.dropout_rate=0.",
    )
    _choice(config.likelihood, "likelihood", LIKELIHOODS[config.model.kind])
    _positive_int(config.model.latents, "model.latents")
    _choice(config.model.activation, "model.activation", tuple(layers.ACTIVATIONS))
    _choice(config.model.output_activation, "model.output_activation", ("auto", *layers.ACTIVATIONS))
    _choice(config.model.architecture, "model.architecture", ARCHITECTURES)
    _require(
        config.model.architecture != "conv" or len(config.model.conv_features) > 0,
        "--config.model.architecture=conv needs at least one conv layer: e.g. --config.model.conv_features='(32, 64)'.",
    )
    _choice(config.model.decoder_variance, "model.decoder_variance", DECODER_VARIANCES)
    _require(
        config.model.decoder_variance == "fixed" or config.likelihood == "gaussian",
        f"--config.model.decoder_variance={config.model.decoder_variance} needs likelihood=gaussian "
        f"(got {config.likelihood}): use --config.model.decoder_variance=fixed.",
    )
    _choice(config.objective, "objective", OBJECTIVES)
    _positive_int(config.num_train_samples, "num_train_samples")
    _require(
        config.objective == "elbo" or config.model.kind == "vae",
        f"--config.objective={config.objective} needs model.kind=vae: use --config.objective=elbo.",
    )
    for name in (
        "encoder_hidden",
        "decoder_hidden",
        "conv_features",
        "resnet_widths",
        "hierarchy_hidden",
        "flow_hidden",
    ):
        widths = tuple(config.model[name])
        _require(
            all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths),
            f"--config.model.{name}={widths!r} is invalid: expected a tuple of integers >= 1, e.g. '(400,)' or '()'.",
        )
    _validate_autoregressive(config)
    _validate_hierarchy(config)
    _validate_prior(config)
    _validate_resnet(config)
    _validate_discretized(config)
    binary = config.data.binarize != "none" or config.data.name == "binarized_mnist"
    _require(
        config.likelihood != "bernoulli" or binary,
        "--config.likelihood=bernoulli needs binary data: use data.name=binarized_mnist or "
        "--config.data.binarize=dynamic or static (a Bernoulli likelihood of grey levels is not a likelihood).",
    )


def _validate_autoregressive(config) -> None:
    """An autoregressive decoder: a VAE with Bernoulli pixels and sensible layer sizes."""
    model = config.model
    features = model.autoregressive_features
    _nonnegative_int(features, "model.autoregressive_features")
    if features == 0:
        return
    _require(
        config.model.kind == "vae" and config.likelihood == "bernoulli",
        f"--config.model.autoregressive_features={features} needs model.kind=vae and likelihood=bernoulli "
        f"(got {config.model.kind}, {config.likelihood}): use --config.model.autoregressive_features=0.",
    )
    kernel = model.autoregressive_kernel
    _require(
        isinstance(kernel, int) and not isinstance(kernel, bool) and kernel >= 3 and kernel % 2 == 1,
        f"--config.model.autoregressive_kernel={kernel!r} is invalid: expected an odd integer >= 3, e.g. 7.",
    )
    _nonnegative_int(model.autoregressive_layers, "model.autoregressive_layers")
    _positive_int(model.autoregressive_z_features, "model.autoregressive_z_features")


def _validate_hierarchy(config) -> None:
    """A ladder VAE (``model.hierarchy_latents``): a VAE with an MLP, at least two layers."""
    latents = tuple(config.model.hierarchy_latents)
    _require(
        all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in latents),
        f"--config.model.hierarchy_latents={latents!r} is invalid: expected a tuple of integers >= 1, the widths of "
        "the stochastic layers bottom to top, e.g. '(32, 16)', or '()' for the one-layer VAE.",
    )
    if not latents:
        return
    _require(
        len(latents) >= 2,
        f"--config.model.hierarchy_latents={latents!r} has one layer: a one-layer VAE is "
        f"--config.model.hierarchy_latents='()' --config.model.latents={latents[0]}; a ladder needs two or more.",
    )
    _require(
        config.model.kind == "vae",
        f"--config.model.hierarchy_latents={latents!r} makes a ladder VAE; model.kind is {config.model.kind}: "
        "use --config.model.hierarchy_latents='()'.",
    )
    _require(
        isinstance(config.model.hierarchy_skip, bool),
        f"--config.model.hierarchy_skip={config.model.hierarchy_skip!r} is invalid: expected True or False.",
    )
    _require(
        config.model.architecture == "mlp",
        f"--config.model.hierarchy_latents={latents!r}: the ladder VAE's networks are MLPs; use "
        f"--config.model.architecture=mlp (got {config.model.architecture}).",
    )


def _validate_prior(config) -> None:
    """A mixture or VampPrior: a VAE, some components, and no per-dimension free bits (a ladder
    VAE's top layer counts them as a whole: `ladder.kl_with_free_bits`)."""
    prior = config.model.prior
    _choice(prior, "model.prior", priors.PRIORS)
    _positive_int(config.model.prior_components, "model.prior_components")
    if prior == "standard_normal":
        return
    _require(
        config.model.kind == "vae",
        f"--config.model.prior={prior} is a VAE's prior; model.kind is "
        f"{config.model.kind}: use --config.model.prior=standard_normal.",
    )
    _require(
        config.free_bits == 0 or bool(config.model.hierarchy_latents),
        f"--config.free_bits={config.free_bits} needs the "
        f"closed-form KL of each latent dimension, which --config.model.prior={prior} has not: use "
        "--config.free_bits=0 (or the standard_normal prior).",
    )


def _validate_resnet(config) -> None:
    """The ResNet's stages and blocks (any image size works: odd sides are padded, then cropped)."""
    model = config.model
    _nonnegative_int(model.resnet_blocks, "model.resnet_blocks")
    _choice(model.resnet_norm, "model.resnet_norm", resnet.RESNET_NORMS)
    _require(
        model.architecture != "resnet" or len(model.resnet_widths) > 0,
        "--config.model.architecture=resnet needs at least one stage: e.g. "
        "--config.model.resnet_widths='(64, 128, 256)'.",
    )


def _validate_discretized(config) -> None:
    """A discretised logistic (mixture): 8-bit grey levels or colours, unbounded decoder outputs."""
    _positive_int(config.model.mixture_components, "model.mixture_components")
    if config.likelihood not in likelihoods.DISCRETIZED_LIKELIHOODS:
        return
    _require(
        config.data.binarize == "none" and config.data.name != "binarized_mnist",
        f"--config.likelihood={config.likelihood} models the 256 levels of 8-bit images, not binary data: use "
        "--config.data.binarize=none and a dataset of 8-bit images, or --config.likelihood=bernoulli.",
    )
    _require(
        config.model.output_activation in ("auto", "none"),
        f"--config.model.output_activation={config.model.output_activation} would bound the means, log-scales "
        f"and logits of likelihood={config.likelihood}: use --config.model.output_activation=auto.",
    )


def validate_against_data(config, train_images_shape) -> None:
    """Checks of the model against the training images ``[N, H, W, C]``."""
    num_train, dim = train_images_shape[0], math.prod(train_images_shape[1:])
    channels = train_images_shape[-1]
    _require(
        config.model.autoregressive_features == 0 or channels == 1,
        f"--config.model.autoregressive_features needs single-channel images; {config.data.name} has "
        f"{channels} channels: use --config.model.autoregressive_features=0.",
    )
    if config.model.kind == "pca":
        _require(
            config.model.latents <= min(dim, num_train),
            f"--config.model.latents={config.model.latents} is invalid for PCA of {config.data.name}: at most "
            f"{min(dim, num_train)} components exist (pixels per image, training images).",
        )
