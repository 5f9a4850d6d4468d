"""Checks of a run's config and of the config against the data, done before anything compiles.

Every failure raises `ConfigError` with one or two lines: what value is wrong, what is
expected and how to fix it (as a command-line override). The config is a resolved one
(`vae_jax.config.resolve`): every key is present. The workdir's checks are in
`vae_jax.workdir`.
"""

from __future__ import annotations

import math

from vae_jax import data, models, selection
from vae_jax.errors import ConfigError

KINDS = ("vae", "ae", "pca")
ARCHITECTURES = ("mlp", "conv", "resnet")
DECODER_VARIANCES = ("fixed", "scalar", "per_pixel")
OBJECTIVES = ("elbo", "iwae")
LIKELIHOODS = {
    "vae": ("gaussian", "bernoulli", *models.DISCRETIZED_LIKELIHOODS),
    "ae": ("squared_error",),
    "pca": ("squared_error",),
}
SCHEDULES = ("constant", "cosine")
NONFINITE_POLICIES = ("skip", "stop")
# A dynamic binarisation is drawn in the training step, a static one when the data are loaded.
BINARIZE_MODES = ("none", "static", "dynamic")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _positive_int(value, name: str) -> None:
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value >= 1,
        f"--config.{name}={value!r} is invalid: expected an integer >= 1.",
    )


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _nonnegative_int(value, name: str) -> None:
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        f"--config.{name}={value!r} is invalid: expected an integer >= 0.",
    )


def _choice(value, name: str, allowed) -> None:
    _require(value in allowed, f"--config.{name}={value!r} is invalid: expected one of {', '.join(allowed)}.")


def validate_config(config) -> None:
    """Raises `ConfigError` for the first invalid value of a training config."""
    _choice(config.model.kind, "model.kind", KINDS)
    _validate_data(config)
    _choice(config.data.binarize, "data.binarize", BINARIZE_MODES)
    _choice(config.data.pipeline, "data.pipeline", ("auto", "resident", "streaming"))
    _choice(config.figure_decoding, "figure_decoding", ("sample", "greedy"))
    _choice(config.likelihood, "likelihood", LIKELIHOODS[config.model.kind])
    _positive_int(config.model.latents, "model.latents")
    _choice(config.model.activation, "model.activation", tuple(models.ACTIVATIONS))
    _choice(config.model.output_activation, "model.output_activation", ("auto", *models.ACTIVATIONS))
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
    _nonnegative_int(config.kl_warmup_steps, "kl_warmup_steps")
    _nonnegative_int(config.kl_warmup_epochs, "kl_warmup_epochs")
    _require(
        not (config.kl_warmup_steps and config.kl_warmup_epochs),
        f"--config.kl_warmup_steps={config.kl_warmup_steps} and --config.kl_warmup_epochs="
        f"{config.kl_warmup_epochs} both set the KL warm-up: set one of them to 0.",
    )
    for name in ("encoder_hidden", "decoder_hidden", "conv_features", "resnet_widths", "hierarchy_hidden"):
        widths = tuple(config.model[name])
        _require(
            all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths),
            f"--config.model.{name}={widths!r} is invalid: expected a tuple of integers >= 1, e.g. '(400,)' or '()'.",
        )
    for name in ("batch_size", "num_epochs", "eval_batch_size", "checkpoint_every_epochs"):
        _positive_int(config[name], name)
    _require(
        _finite(config.segment_seconds) and config.segment_seconds > 0,
        f"--config.segment_seconds={config.segment_seconds!r} is invalid: expected seconds > 0 (e.g. 10), the "
        "longest an epoch runs without looking for a stop signal.",
    )
    _require(
        _finite(config.c) and config.c > 0,
        f"--config.c={config.c!r} is invalid: the decoder variance c must be finite and > 0 (e.g. 0.05).",
    )
    _require(
        _finite(config.beta) and config.beta >= 0,
        f"--config.beta={config.beta!r} is invalid: the KL weight must be finite and >= 0 (e.g. 1.0).",
    )
    learning_rate = config.optimizer.learning_rate
    _require(
        _finite(learning_rate) and 0 < learning_rate < 10,
        f"--config.optimizer.learning_rate={learning_rate!r} is invalid: expected a value in (0, 10), e.g. 1e-3.",
    )
    _choice(config.optimizer.schedule, "optimizer.schedule", SCHEDULES)
    _require(
        isinstance(config.optimizer.warmup_steps, int) and config.optimizer.warmup_steps >= 0,
        f"--config.optimizer.warmup_steps={config.optimizer.warmup_steps!r} must be >= 0.",
    )
    _choice(config.nonfinite, "nonfinite", NONFINITE_POLICIES)
    _require(
        _finite(config.free_bits) and config.free_bits >= 0,
        f"--config.free_bits={config.free_bits!r} is invalid: expected nats per latent dimension >= 0 "
        "(e.g. 0.0 for the plain KL, or 0.1).",
    )
    _validate_autoregressive(config)
    _validate_hierarchy(config)
    _validate_prior(config)
    _validate_resnet(config)
    _validate_discretized(config)
    _choice(config.model_selection, "model_selection", selection.MODES)
    patience = config.early_stopping_patience
    _nonnegative_int(patience, "early_stopping_patience")
    _require(
        patience == 0 or selection.selects_on_validation(config),
        f"--config.early_stopping_patience={patience} needs the validation split: add "
        "--config.model_selection=valid (early stopping never looks at the test split).",
    )
    binary = config.data.binarize != "none" or config.data.name == "binarized_mnist"
    _require(
        config.likelihood != "bernoulli" or binary,
        "--config.likelihood=bernoulli needs binary data: use data.name=binarized_mnist or "
        "--config.data.binarize=dynamic or static (a Bernoulli likelihood of grey levels is not a likelihood).",
    )


def _validate_data(config) -> None:
    """The data's name, the folder or file the name needs, and the crop, resize, channels and
    held-out fractions (`vae_jax.data`)."""
    d = config.data
    name = d.name
    _require(
        name in data.DATASETS
        or name in data.SOURCES
        or (name.startswith(data.TFDS_PREFIX) and name != data.TFDS_PREFIX),
        f"--config.data.name={name!r} is invalid: expected one of {', '.join(data.DATASETS + data.SOURCES)}, or "
        f"{data.TFDS_PREFIX}<name> for a tensorflow-datasets image dataset (e.g. {data.TFDS_PREFIX}cifar10).",
    )
    _require(
        name not in data.SOURCES or bool(d.data_dir),
        f"--config.data.name={name} needs --config.data.data_dir=PATH: "
        + (
            "the folder of PNG/JPEG files." if name == "folder" else "the .npz or .npy file, or a folder of .npy files."
        ),
    )
    _nonnegative_int(d.crop, "data.crop")
    _nonnegative_int(d.image_size, "data.image_size")
    _require(
        d.channels in (0, 1, 3) and not isinstance(d.channels, bool),
        f"--config.data.channels={d.channels!r} is invalid: expected 1 (grey), 3 (RGB) or 0 (as stored).",
    )
    for key in ("valid_fraction", "test_fraction"):
        _require(
            _finite(d[key]) and 0 <= d[key] < 1,
            f"--config.data.{key}={d[key]!r} is invalid: expected a fraction of the training images in [0, 1), "
            "e.g. 0.1.",
        )
    _require(
        d.valid_fraction + d.test_fraction < 1,
        f"--config.data.valid_fraction={d.valid_fraction} and --config.data.test_fraction={d.test_fraction} would "
        "leave no training images: keep their sum below 1.",
    )
    _nonnegative_int(d.split_seed, "data.split_seed")


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
        config.model.architecture == "mlp",
        f"--config.model.hierarchy_latents={latents!r}: the ladder VAE's networks are MLPs; use "
        f"--config.model.architecture=mlp (got {config.model.architecture}).",
    )


def _validate_prior(config) -> None:
    """A mixture or VampPrior: a VAE, some components, and no per-dimension free bits (a ladder
    VAE's top layer counts them as a whole: `hierarchical.kl_with_free_bits`)."""
    prior = config.model.prior
    _choice(prior, "model.prior", models.PRIORS)
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
    _choice(model.resnet_norm, "model.resnet_norm", models.RESNET_NORMS)
    _require(
        model.architecture != "resnet" or len(model.resnet_widths) > 0,
        "--config.model.architecture=resnet needs at least one stage: e.g. "
        "--config.model.resnet_widths='(64, 128, 256)'.",
    )


def _validate_discretized(config) -> None:
    """A discretised logistic (mixture): 8-bit grey levels or colours, unbounded decoder outputs."""
    _positive_int(config.model.mixture_components, "model.mixture_components")
    if config.likelihood not in models.DISCRETIZED_LIKELIHOODS:
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


def validate_device_split(config, num_devices: int) -> None:
    """Data parallelism gives every device an equal share of each batch (PCA has no batches)."""
    if config.model.kind == "pca" or config.batch_size % num_devices == 0:
        return
    suggestion = max(1, round(config.batch_size / num_devices)) * num_devices
    raise ConfigError(
        f"--config.batch_size={config.batch_size} does not divide evenly over the {num_devices} devices "
        f"(each device trains on an equal share of every batch): use --config.batch_size={suggestion} "
        f"(a multiple of {num_devices})."
    )


def validate_batch_size(config, num_train: int) -> None:
    """The batch must fit in the training split (one step per epoch at least)."""
    _require(
        config.batch_size <= num_train,
        f"--config.batch_size={config.batch_size} is larger than the {num_train} training images of "
        f"{config.data.name}: use --config.batch_size={min(128, num_train)} or smaller.",
    )


def validate_against_data(config, train_images_shape, split_names=("train", "test")) -> None:
    """Checks of the config against the loaded training images ``[N, H, W, C]`` and the names
    of the dataset's splits."""
    num_train, dim = train_images_shape[0], math.prod(train_images_shape[1:])
    validate_batch_size(config, num_train)
    _require(
        not selection.selects_on_validation(config) or "valid" in split_names,
        f"--config.model_selection=valid needs a validation split, and {config.data.name} has only "
        f"{', '.join(sorted(split_names))}: use --config.model_selection=last, or hold out a validation split "
        "with --config.data.valid_fraction=0.1, or a dataset with one (e.g. binarized_mnist).",
    )
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
