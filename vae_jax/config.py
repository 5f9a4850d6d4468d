"""The one source of truth for configs: every key, its default, and a loader.

`default_config()` lists every value a run reads (``configs/vae.py`` returns it; the other
config files change a few fields). `resolve` turns a config file's `ConfigDict`, or a run's
``config.json`` read back as a dict, into a complete, locked config: missing keys take their
defaults, JSON lists become tuples again and integers given for floats become floats. An
unknown key is a `ConfigError` that names the closest existing keys. Library code then reads
keys directly (``config.model.prior``), never ``config.get(key, default)``.
"""

from __future__ import annotations

import difflib
import json
import os
from typing import Any, Mapping

import ml_collections

from vae_jax.errors import ConfigError


def default_config() -> ml_collections.ConfigDict:
    """Every config value, with its default: a VAE with a Gaussian decoder of variance c on
    Fashion-MNIST (MLP 784-400-20-400-784)."""
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    # mnist | fashion_mnist | binarized_mnist | digits, or any images (docs/data.md): folder (PNG/JPEG
    # files in data_dir) | arrays (.npz/.npy at data_dir) | tfds:<name> (a tensorflow-datasets dataset)
    config.data.name = "fashion_mnist"
    config.data.data_dir = ""  # '' -> $VAE_JAX_DATA_DIR, then the usual places; folder, arrays: required
    # none (grey levels) | static (one seeded Bernoulli draw when the data are loaded) |
    # dynamic (a fresh Bernoulli draw of every training batch, in the training step)
    config.data.binarize = "none"
    config.data.download = False  # allow tensorflow-datasets to download (needs network)
    config.data.crop = 0  # side of a centre square crop of every image, in stored pixels (0: none)
    config.data.image_size = 0  # resize to image_size x image_size (0: keep; non-square: centre square first)
    config.data.channels = 0  # 1: grey | 3: RGB | 0: as stored
    # Data without a validation (test) split get one of this fraction of the training images,
    # held out by split_seed (not config.seed: every seed of a sweep sees the same split).
    config.data.valid_fraction = 0.0  # 0: no validation split
    config.data.test_fraction = 0.1
    config.data.split_seed = 0
    # auto | resident (the training split on the devices) | streaming (read segment by segment
    # from the host: vae_jax/data/streaming.py); auto streams when it would fill over a quarter of a device.
    config.data.pipeline = "auto"

    config.model = ml_collections.ConfigDict()
    config.model.kind = "vae"  # vae | ae | pca
    config.model.encoder_hidden = (400,)
    config.model.decoder_hidden = (400,)
    config.model.latents = 20
    config.model.activation = "relu"
    # auto: sigmoid means (Gaussian), logits (Bernoulli), none (the discretised logistics' parameters)
    config.model.output_activation = "auto"
    # mlp | conv (stride-2 convolutions, then the MLP widths) | resnet (ResNet stages, then one
    # dense layer to the latents and from them: encoder_hidden and decoder_hidden are not used)
    config.model.architecture = "mlp"
    config.model.conv_features = (32, 64)  # conv widths of the encoder (the decoder mirrors them)
    # resnet: one stage per width, each a stride-2 convolution (x2 upsampling in the decoder)
    # and resnet_blocks pre-activation residual blocks (two 3x3 convolutions each);
    # resnet_norm: group (GroupNorm: per example, no batch statistics) | none.
    config.model.resnet_widths = (64, 128, 256)
    config.model.resnet_blocks = 2
    config.model.resnet_norm = "group"
    config.model.decoder_variance = "fixed"  # fixed (c below) | scalar | per_pixel (learned, from c)
    # > 0: autoregressive Bernoulli decoder p(x_i | z, x_<i) (a local PixelCNN head on the decoder):
    config.model.autoregressive_features = 0  # its width (0: factorised decoder, p(x|z) = prod_i p(x_i|z))
    config.model.autoregressive_kernel = 7  # the masked convolution's size (odd): the context it sees
    config.model.autoregressive_layers = 1  # per-pixel dense layers after it
    config.model.autoregressive_z_features = 4  # channels of the decoder's feature map of z
    # p(z): standard_normal N(0, I) | mixture (of learned Gaussians) | vamp (VampPrior: the
    # encoder's posteriors at learned pseudo-inputs); prior_components of the latter two.
    config.model.prior = "standard_normal"
    config.model.prior_components = 500
    config.model.mixture_components = 10  # K of likelihood=discretized_logistic_mixture
    # A ladder VAE (vae_jax/models/ladder.py): the widths (d_1, ..., d_L) of L >= 2 stochastic layers,
    # bottom (the decoder's z_1) to top, with top-down inference; () is the one-layer VAE of
    # model.latents (unused by a ladder). encoder_hidden is the first bottom-up block (x -> h_1),
    # hierarchy_hidden the MLP of every other block, bottom-up (h_l -> h_{l+1}) and top-down
    # (z_{l+1} -> p(z_l | z_{l+1})); model.prior is p(z_L)'s, and free_bits count per layer.
    config.model.hierarchy_latents = ()
    config.model.hierarchy_hidden = (256,)
    # A ladder's decoder sees every layer's z (concatenated), not z_1 alone: skip connections from
    # the upper latents into p(x|z) (the codes of figures and vae_jax.load are then that concatenation).
    config.model.hierarchy_skip = False
    # Dropout after every hidden layer of the MLP encoders and decoders (a ladder's bottom-up and
    # top-down blocks too), in training steps only (masks from the step's key); 0: none.
    config.model.dropout_rate = 0.0
    # model.prior='flow': a masked autoregressive flow on N(0, I) (vae_jax/models/flows.py) of this
    # many steps, each a MADE with these hidden widths (the one-layer VAE's p(z), a ladder's p(z_L)).
    config.model.flow_steps = 4
    config.model.flow_hidden = (256,)

    # Likelihood p(x|z): 'gaussian' N(f(z), cI) for grey levels, 'bernoulli' for binary data,
    # 'discretized_logistic' (a logistic per pixel and channel, discretised to the 256 levels of
    # 8-bit data) or 'discretized_logistic_mixture' (PixelCNN++'s mixture of model.mixture_components
    # of them per pixel) for 8-bit images, with bits_per_dim reported beside the nats;
    # 'squared_error' for the deterministic AE / PCA (loss ||x - d(e(x))||^2).
    config.likelihood = "gaussian"
    config.c = 0.05  # decoder variance c of the Gaussian likelihood
    config.beta = 1.0  # KL weight: loss = -E[log p(x|z)] + beta * KL
    config.objective = "elbo"  # elbo | iwae (importance-weighted bound with num_train_samples)
    config.num_train_samples = 1  # k of the IWAE objective
    # The KL weight rises linearly from 0 to beta over this many steps, or epochs (one of the two).
    config.kl_warmup_steps = 0
    config.kl_warmup_epochs = 0
    config.free_bits = 0.0  # nats per latent dimension the ELBO objective's KL counts at least

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.learning_rate = 1e-3
    config.optimizer.schedule = "constant"  # constant | cosine
    config.optimizer.warmup_steps = 0
    config.optimizer.name = "adam"  # adam | adamax (Kingma & Ba 2015's infinity-norm variant)
    # Decoupled weight decay (Loshchilov & Hutter 2019): each step also subtracts
    # learning_rate * weight_decay * params, outside the adaptive scaling. 0: none.
    config.optimizer.weight_decay = 0.0
    # > 0: an exponential moving average of the parameters (Polyak averaging) with this decay, kept
    # in the training state and used for validation, selection, the test pass, evaluation and export.
    config.ema_decay = 0.0

    config.batch_size = 128
    config.num_epochs = 30
    config.model_selection = "last"  # last | valid (keep the epoch best on the validation split)
    config.early_stopping_patience = 0  # with model_selection=valid: stop after this many epochs without gain
    # > 0: stop once the training steps have taken this many minutes (counted from metrics.jsonl's
    # rates, so a resumed run counts as an uninterrupted one), at the end of an epoch; the run is
    # then complete (selected, tested once). Which epoch that is depends on the machine's speed.
    config.max_training_minutes = 0.0
    config.eval_batch_size = 1000
    config.fused_epoch = True  # compiled lax.scan over the steps (else one jitted call per step)
    # An epoch runs in segments of about this many seconds (the whole epoch when it is shorter);
    # a stop signal (SIGTERM, Ctrl-C) is answered with a checkpoint after the segment in progress.
    config.segment_seconds = 10.0
    config.checkpoint_every_epochs = 1
    config.num_figure_examples = 16
    # sample (each pixel drawn from p(x|z)) | greedy (each pixel its likelier value): autoregressive figures
    config.figure_decoding = "sample"
    config.nonfinite = "skip"  # skip | stop: what a non-finite loss or gradient does
    config.overwrite = False  # start over in a workdir that holds a run of another config
    return config


def dotted_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """Every leaf key of ``config`` as a dotted name, e.g. ``model.latents``."""
    keys = []
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            keys += dotted_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def unknown_key_message(name: str, where: str = "the config") -> str:
    """``name`` is no config value: the message lists the closest existing keys."""
    known = dotted_keys(default_config())
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    leaf = name.rsplit(".", 1)[-1]
    close += [key for key in known if key.rsplit(".", 1)[-1] == leaf and key not in close]
    hint = f"did you mean {', '.join(close)}?" if close else "see configs/vae.py for every key."
    return f"{where} has no value {name!r}: {hint}"


def _restored(default: Any, value: Any, name: str) -> Any:
    """``value`` with the type of ``default`` where JSON lost it (tuples, floats)."""
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if default is not None and type(value) is not type(default):
        raise ConfigError(
            f"--config.{name}={value!r} is invalid: expected a {type(default).__name__} like the default {default!r}."
        )
    return value


def _merge(target: ml_collections.ConfigDict, values: Mapping, prefix: str, where: str) -> None:
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in target:
            while isinstance(value, Mapping) and value:  # name the first value of an unknown group
                key, value = next(iter(value.items()))
                name = f"{name}.{key}"
            raise ConfigError(unknown_key_message(name, where))
        if isinstance(target[key], ml_collections.ConfigDict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"--config.{name} is a group of values, not {value!r}.")
            _merge(target[key], value, f"{name}.", where)
        else:
            target[key] = _restored(target[key], value, name)


def resolve(config: ml_collections.ConfigDict | Mapping, where: str = "the config") -> ml_collections.ConfigDict:
    """The complete, locked config of ``config`` (a `ConfigDict` or a plain dict): defaults
    for missing keys, types restored; `ConfigError` for an unknown key or a wrong type."""
    values = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config
    resolved = default_config()
    _merge(resolved, values, "", where)
    resolved.lock()
    return resolved


def as_json(config: ml_collections.ConfigDict) -> str:
    """The text of a run's ``config.json``: sorted keys, indented."""
    return json.dumps(json.loads(config.to_json()), indent=2, sort_keys=True)


def read_run_config(workdir: str) -> ml_collections.ConfigDict:
    """The resolved config of the run in ``workdir`` (its ``config.json``); `ConfigError` when
    there is none or it cannot be read."""
    path = os.path.join(workdir, "config.json")
    try:
        with open(path) as f:
            values = json.load(f)
    except FileNotFoundError:
        raise ConfigError(
            f"--workdir={workdir!r} holds no run (no config.json): train one first with "
            f"python -m experiments.train --config=configs/vae.py --workdir={workdir}"
        ) from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path} is unreadable or not JSON ({error})") from None
    return resolve(values, where=path)
