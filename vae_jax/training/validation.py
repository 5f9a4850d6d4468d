"""Checks of a run's config and of the config against the data, done before anything compiles.

Every failure raises `ConfigError` with one or two lines: what value is wrong, what is
expected and how to fix it (as a command-line override). The config is a resolved one
(`vae_jax.config.resolve`): every key is present. The workdir's checks are in
`vae_jax.training.workdir`.
"""

from __future__ import annotations

from vae_jax.checks import choice as _choice
from vae_jax.checks import finite as _finite
from vae_jax.checks import nonnegative_int as _nonnegative_int
from vae_jax.checks import positive_int as _positive_int
from vae_jax.checks import require as _require
from vae_jax.data import datasets
from vae_jax.errors import ConfigError
from vae_jax.models import checks as model_checks
from vae_jax.models import registry
from vae_jax.training import programs, selection

SCHEDULES = ("constant", "cosine")
NONFINITE_POLICIES = ("skip", "stop")
# A dynamic binarisation is drawn in the training step, a static one when the data are loaded.
BINARIZE_MODES = ("none", "static", "dynamic")


def validate_config(config) -> None:
    """Raises `ConfigError` for the first invalid value of a training config."""
    model_checks.validate_kind(config)
    _validate_data(config)
    _choice(config.data.binarize, "data.binarize", BINARIZE_MODES)
    _choice(config.data.pipeline, "data.pipeline", ("auto", "resident", "streaming"))
    _choice(config.figure_decoding, "figure_decoding", ("sample", "greedy"))
    model_checks.validate(config)
    _nonnegative_int(config.kl_warmup_steps, "kl_warmup_steps")
    _nonnegative_int(config.kl_warmup_epochs, "kl_warmup_epochs")
    _require(
        not (config.kl_warmup_steps and config.kl_warmup_epochs),
        f"--config.kl_warmup_steps={config.kl_warmup_steps} and --config.kl_warmup_epochs="
        f"{config.kl_warmup_epochs} both set the KL warm-up: set one of them to 0.",
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
    _choice(config.optimizer.name, "optimizer.name", programs.OPTIMIZERS)
    _require(
        _finite(config.optimizer.weight_decay) and 0 <= config.optimizer.weight_decay < 1,
        f"--config.optimizer.weight_decay={config.optimizer.weight_decay!r} is invalid: expected the decoupled "
        "decay per step and unit learning rate in [0, 1), e.g. 0 (none) or 3e-4.",
    )
    _require(
        _finite(config.max_training_minutes) and config.max_training_minutes >= 0,
        f"--config.max_training_minutes={config.max_training_minutes!r} is invalid: expected minutes >= 0 "
        "(0: no budget), e.g. 60.",
    )
    _require(
        _finite(config.ema_decay) and 0 <= config.ema_decay < 1,
        f"--config.ema_decay={config.ema_decay!r} is invalid: expected 0 (no average) or a decay in (0, 1), e.g. "
        "0.999 or 0.9995.",
    )
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
    _choice(config.model_selection, "model_selection", selection.MODES)
    patience = config.early_stopping_patience
    _nonnegative_int(patience, "early_stopping_patience")
    _require(
        patience == 0 or selection.selects_on_validation(config),
        f"--config.early_stopping_patience={patience} needs the validation split: add "
        "--config.model_selection=valid (early stopping never looks at the test split).",
    )


def _validate_data(config) -> None:
    """The data's name, the folder or file the name needs, and the crop, resize, channels and
    held-out fractions (`vae_jax.data.datasets`)."""
    d = config.data
    name = d.name
    _require(
        name in datasets.DATASETS
        or name in datasets.SOURCES
        or (name.startswith(datasets.TFDS_PREFIX) and name != datasets.TFDS_PREFIX),
        f"--config.data.name={name!r} is invalid: expected one of {', '.join(datasets.DATASETS + datasets.SOURCES)}, or "
        f"{datasets.TFDS_PREFIX}<name> for a tensorflow-datasets image dataset (e.g. {datasets.TFDS_PREFIX}cifar10).",
    )
    _require(
        name not in datasets.SOURCES or bool(d.data_dir),
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


def validate_device_split(config, num_devices: int) -> None:
    """Data parallelism gives every device an equal share of each batch (PCA has no batches)."""
    if registry.is_fitted(config.model) or config.batch_size % num_devices == 0:
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
    num_train = train_images_shape[0]
    validate_batch_size(config, num_train)
    _require(
        not selection.selects_on_validation(config) or "valid" in split_names,
        f"--config.model_selection=valid needs a validation split, and {config.data.name} has only "
        f"{', '.join(sorted(split_names))}: use --config.model_selection=last, or hold out a validation split "
        "with --config.data.valid_fraction=0.1, or a dataset with one (e.g. binarized_mnist).",
    )
    model_checks.validate_against_data(config, train_images_shape)
