"""Checks of a run's config and workdir, done before any data is read or anything compiles.

Every failure raises `ConfigError` with one or two lines: what value is wrong, what is
expected and how to fix it (as a command-line override).
"""

from __future__ import annotations

import json
import os
import tempfile

from vae_jax import data

KINDS = ("vae", "ae", "pca")
LIKELIHOODS = {"vae": ("gaussian", "bernoulli"), "ae": ("squared_error",), "pca": ("squared_error",)}
SCHEDULES = ("constant", "cosine")
NONFINITE_POLICIES = ("skip", "stop")
# Values that may change between a run and its resumption (they change no result so far).
RESUMABLE_KEYS = ("num_epochs", "checkpoint_every_epochs", "eval_batch_size", "num_figure_examples",
                  "fused_epoch", "overwrite")


class ConfigError(ValueError):
    """A config value, or the workdir, cannot be used; the message says how to fix it."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _positive_int(value, name: str) -> None:
    _require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
             f"--config.{name}={value!r} is invalid: expected an integer >= 1.")


def _choice(value, name: str, allowed) -> None:
    _require(value in allowed, f"--config.{name}={value!r} is invalid: expected one of {', '.join(allowed)}.")


def validate_config(config) -> None:
    """Raises `ConfigError` for the first invalid value of a training config."""
    _choice(config.model.kind, "model.kind", KINDS)
    _choice(config.data.name, "data.name", data.DATASETS)
    _choice(config.data.binarize, "data.binarize", data.BINARIZE_MODES)
    _choice(config.likelihood, "likelihood", LIKELIHOODS[config.model.kind])
    _positive_int(config.model.latents, "model.latents")
    for name in ("encoder_hidden", "decoder_hidden"):
        widths = tuple(config.model[name])
        _require(all(isinstance(w, int) and w >= 1 for w in widths),
                 f"--config.model.{name}={widths!r} is invalid: expected a tuple of integers >= 1, e.g. '(400,)' or '()'.")
    for name in ("batch_size", "num_epochs", "eval_batch_size", "checkpoint_every_epochs"):
        _positive_int(config[name], name)
    _require(config.c > 0, f"--config.c={config.c!r} is invalid: the decoder variance c must be > 0 (e.g. 0.05).")
    _require(config.beta >= 0, f"--config.beta={config.beta!r} is invalid: the KL weight must be >= 0.")
    learning_rate = config.optimizer.learning_rate
    _require(0 < learning_rate < 10, f"--config.optimizer.learning_rate={learning_rate!r} is invalid: expected a value in (0, 10), e.g. 1e-3.")
    _choice(config.optimizer.schedule, "optimizer.schedule", SCHEDULES)
    _require(config.optimizer.warmup_steps >= 0, f"--config.optimizer.warmup_steps={config.optimizer.warmup_steps!r} must be >= 0.")
    _choice(config.nonfinite, "nonfinite", NONFINITE_POLICIES)
    binary = config.data.binarize == "dynamic" or config.data.name == "binarized_mnist"
    _require(config.likelihood != "bernoulli" or binary,
             "--config.likelihood=bernoulli needs binary data: use data.name=binarized_mnist or "
                          "--config.data.binarize=dynamic (a Bernoulli likelihood of grey levels is not a likelihood).")


def validate_batch_size(config, num_train: int) -> None:
    """The batch must fit in the training split (one step per epoch at least)."""
    _require(config.batch_size <= num_train,
             f"--config.batch_size={config.batch_size} is larger than the {num_train} training images of "
             f"{config.data.name}: use --config.batch_size={min(128, num_train)} or smaller.")


def _comparable(config_dict: dict, prefix: str = "") -> dict:
    """Flat ``{'model.latents': 20, ...}`` of the values a resumed run must share."""
    flat = {}
    for key, value in config_dict.items():
        if isinstance(value, dict):
            flat.update(_comparable(value, f"{prefix}{key}."))
        elif f"{prefix}{key}" not in RESUMABLE_KEYS:
            flat[f"{prefix}{key}"] = value
    return flat


def prepare_workdir(workdir: str, config) -> None:
    """Creates ``workdir`` and checks it is writable and holds no run of another config.

    A workdir whose ``config.json`` differs (other than in `RESUMABLE_KEYS`) is refused
    unless ``--config.overwrite=True``; then the new config replaces the old one.
    """
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workdir):
            pass
    except OSError as error:
        raise ConfigError(f"--workdir={workdir!r} is not writable ({error.strerror}): "
                          "choose a directory you can write to.") from None
    path = os.path.join(workdir, "config.json")
    new = json.loads(config.to_json())
    if os.path.exists(path):
        try:
            with open(path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            raise ConfigError(f"{path} is unreadable or not JSON: remove it if the run in {workdir!r} "
                              "is yours, or use another --workdir.") from None
        old, new_values = _comparable(old), _comparable(new)
        changed = sorted(k for k in set(old) | set(new_values) if old.get(k) != new_values.get(k))
        _require(not changed or config.get("overwrite", False),
                 f"--workdir={workdir!r} holds a run with another config (differs in: {', '.join(changed)}): "
                 "use a new --workdir, or pass --config.overwrite=True to start that run over.")
    with open(path + ".tmp", "w") as f:
        json.dump(new, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)
