"""The library's face: `load` a trained run or a shipped export as a `TrainedModel`.

    import jax, vae_jax

    model = vae_jax.load("checkpoints/bmnist_vae_selected")  # or a run's workdir
    codes = model.encode(images)                  # [n, latents]: posterior means
    images = model.sample(jax.random.key(0), 16)  # x ~ p(x|z), z ~ p(z)
    log_px = model.log_prob(images, num_samples=100)  # [n] nats: importance-sampled log p(x)

Images are ``[n, H, W, C]`` arrays in [0, 1] of the model's image shape (``model.image_shape``;
binary for a Bernoulli decoder). Nothing is trained: the parameters are those
``experiments.evaluate`` uses (the validation-selected state, the last one, or the exported
ones, whose SHA-256 is checked), and every function is jitted and run in chunks of
``batch_size`` images, so any number of images fits in memory.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import chunks
from vae_jax.data import datasets
from vae_jax.errors import ConfigError
from vae_jax.evaluation import likelihood
from vae_jax.models.interface import ModelFns
from vae_jax.training import programs, run


class TrainedModel:
    """A trained model of any kind (VAE, ladder VAE, autoencoder, PCA) with its parameters.

    ``config``: the run's resolved config; ``fns``: its `vae_jax.models.interface.ModelFns`;
    ``params``: the parameters it computes with (a run's moving average when it keeps one,
    ``config.ema_decay``); ``raw_params``: the optimiser's parameters before averaging (None for an
    export, which ships the evaluated ones alone); ``step``: the training step they are of (None
    for PCA);
    ``image_shape``: ``(H, W, C)`` of the images it models.
    """

    def __init__(
        self, config, fns: ModelFns, params: Any, step: int | None, *, raw_params: Any = None, batch_size: int = 500
    ):
        self.config, self.fns, self.params, self.step, self.raw_params = config, fns, params, step, raw_params
        self.image_shape = tuple(datasets.config_image_shape(config.data))
        self.batch_size = batch_size
        self._encode = jax.jit(fns.encode)
        self._decode = jax.jit(fns.decode_image)
        self._sample_prior = None if fns.sample_prior is None else jax.jit(fns.sample_prior, static_argnums=2)
        self._sample_images = None if fns.sample_images is None else jax.jit(fns.sample_images)

    def __repr__(self) -> str:
        return f"TrainedModel({self.fns.label}, latents {self.fns.latent_sizes}, images {self.image_shape})"

    def _images(self, images) -> np.ndarray:
        images = np.asarray(images, np.float32)
        if images.shape[1:] != self.image_shape:
            raise ValueError(
                f"Expected images of shape [n, {', '.join(map(str, self.image_shape))}] (the model's), got "
                f"{images.shape}: add a batch axis or crop/resize them as the run's config.data does."
            )
        return images

    def _in_chunks(self, function, rows: np.ndarray, *args) -> np.ndarray:
        """``function(params, chunk, *args)`` over fixed-size chunks of ``rows`` (one compiled shape)."""
        parts = []
        for chunk, _, count in chunks.padded_chunks(rows, min(self.batch_size, len(rows))):
            parts.append(np.asarray(function(self.params, jnp.asarray(chunk), *args))[:count])
        return np.concatenate(parts)

    def encode(self, images) -> np.ndarray:
        """``[n, latents]`` codes of ``images``: the posterior means of q(z|x) (a ladder VAE's z_1),
        an autoencoder's codes, or PCA's coordinates."""
        return self._in_chunks(self._encode, self._images(images))

    def decode(self, z) -> np.ndarray:
        """``[n, H, W, C]`` images in [0, 1] for latents ``z`` ``[n, latents]``: the mean of p(x|z)
        (greedy pixel by pixel for an autoregressive decoder), or the decoder's output."""
        return self._in_chunks(self._decode, np.asarray(z, np.float32))

    def reconstruct(self, images) -> np.ndarray:
        """``decode(encode(images))``."""
        return self.decode(self.encode(images))

    def sample(self, key: jax.Array, n: int) -> np.ndarray:
        """``n`` images ``[n, H, W, C]`` drawn from the model: z ~ p(z), then x ~ p(x|z) (exact draws,
        pixel by pixel for an autoregressive decoder). Only models with a prior (VAEs)."""
        if self._sample_prior is None or self._sample_images is None:
            raise ValueError(f"A {self.fns.label} has no prior to sample from: decode(z) chosen latents instead.")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r}: expected a number of images >= 1.")
        prior_key, image_key = jax.random.split(key)
        z = self._sample_prior(self.params, prior_key, n)
        return np.asarray(self._sample_images(self.params, image_key, z))

    def log_prob(
        self,
        images,
        num_samples: int = 1000,
        *,
        key: jax.Array | None = None,
        sample_chunk: int = 128,
    ) -> np.ndarray:
        """``[n]`` importance-sampled estimates of log p(x) in nats per image, with ``num_samples``
        samples each (`vae_jax.evaluation.likelihood.model_log_likelihood`: a lower bound in
        expectation that tightens as ``num_samples`` grows). The default ``key`` is the one
        ``experiments.evaluate`` uses, so ``-log_prob(test_images, k).mean()`` is its NLL for k.
        Only models with a likelihood (VAEs)."""
        if self.fns.importance_parts is None and self.fns.log_importance_weight is None:
            raise ValueError(f"A {self.fns.label} has no likelihood p(x): log_prob needs a VAE.")
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples={num_samples!r}: expected an integer >= 1.")
        if key is None:
            key = jax.random.fold_in(programs.run_keys(self.config.seed)["eval"], num_samples)
        images = self._images(images)
        result = likelihood.model_log_likelihood(
            self.fns,
            self.params,
            images,
            key,
            num_samples=num_samples,
            sample_chunk=sample_chunk,
            data_chunk=min(128, len(images)),
        )
        return np.asarray(result["per_example"])

    @property
    def num_parameters(self) -> int:
        """How many numbers the parameters hold."""
        return sum(math.prod(np.shape(leaf)) for leaf in jax.tree.leaves(self.params))


def load(path: str, *, batch_size: int = 500) -> TrainedModel:
    """The `TrainedModel` of a run's workdir (``python -m experiments.train --workdir=...``; its
    validation-selected or last checkpoint) or of an exported run (``checkpoints/<name>``,
    ``python -m experiments.export``), without training. ``batch_size``: images per compiled
    call. Raises `vae_jax.errors.ConfigError` when ``path`` holds no run."""
    try:
        restored = run.restore_run(path)
    except FileNotFoundError as error:
        raise ConfigError(f"{path} holds no run ({error}): pass a run's workdir or an exported directory.") from None
    return TrainedModel(
        restored.config,
        restored.fns,
        restored.params,
        restored.step,
        raw_params=restored.raw_params,
        batch_size=batch_size,
    )
