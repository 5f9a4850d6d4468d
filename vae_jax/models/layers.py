"""Dense building blocks: activations, MLPs, the MLP and convolutional encoders and decoders, and
the per-layer dense stacks and Gaussian heads of the ladder VAE.

All modules are pure: ``params = module.init(...)``, ``module.apply(params, ...)``. Inputs are
images ``[batch, H, W, C]`` (any trailing shape for the MLP), flattened inside the encoder;
decoders return ``[batch, *output_shape]``.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "gelu": nn.gelu,
    "tanh": jnp.tanh,
    "elu": nn.elu,
    "sigmoid": nn.sigmoid,
    "silu": nn.silu,
    "none": lambda x: x,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The activation function called ``name`` (one of `ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


def dropout(module: nn.Module, rate: float, h: jax.Array) -> jax.Array:
    """``h`` with each unit zeroed with probability ``rate`` (and the rest scaled by 1 / (1 - rate))
    when the module is applied with a ``'dropout'`` key (``apply(..., rngs={'dropout': key})``:
    the training step's); unchanged otherwise (evaluation, sampling, the likelihood) and when
    ``rate`` is 0 (then no layer is added at all: the module is that of a run without it)."""
    if not rate:
        return h
    return nn.Dropout(rate, deterministic=not module.has_rng("dropout"))(h)


class MLP(nn.Module):
    """Dense layers of widths ``hidden``, each followed by ``activation`` (and `dropout` at
    ``dropout_rate``); flattens its input."""

    hidden: Sequence[int]
    activation: str = "relu"
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            x = dropout(self, self.dropout_rate, activation(self.activation)(nn.Dense(width)(x)))
        return x


class Encoder(nn.Module):
    """Image -> latent. Gaussian heads ``(mean, logvar)`` when ``gaussian``, else a point code."""

    hidden: Sequence[int]
    latents: int
    activation: str = "relu"
    gaussian: bool = True
    dropout_rate: float = 0.0  # `dropout` after each hidden layer

    @nn.compact
    def __call__(self, x: jax.Array):
        h = MLP(self.hidden, self.activation, self.dropout_rate, name="body")(x)
        mean = nn.Dense(self.latents, name="mean")(h)
        if not self.gaussian:
            return mean
        return mean, nn.Dense(self.latents, name="logvar")(h)


class Decoder(nn.Module):
    """Latent ``[batch, latents]`` -> ``[batch, *output_shape]`` (Gaussian mean or logits)."""

    hidden: Sequence[int]
    output_shape: Sequence[int]
    activation: str = "relu"
    output_activation: str = "sigmoid"
    dropout_rate: float = 0.0  # `dropout` after each hidden layer

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        h = MLP(self.hidden, self.activation, self.dropout_rate, name="body")(z)
        out = nn.Dense(math.prod(self.output_shape), name="out")(h)
        out = activation(self.output_activation)(out)
        return out.reshape((z.shape[0], *self.output_shape))


class ConvEncoder(nn.Module):
    """Image -> stride-2 3x3 convolutions of widths ``features`` -> an MLP `Encoder`."""

    features: Sequence[int]
    hidden: Sequence[int]
    latents: int
    activation: str = "relu"
    gaussian: bool = True
    dropout_rate: float = 0.0  # `dropout` after each hidden layer

    @nn.compact
    def __call__(self, x: jax.Array):
        for width in self.features:
            x = activation(self.activation)(nn.Conv(width, (3, 3), strides=(2, 2))(x))
        return Encoder(self.hidden, self.latents, self.activation, self.gaussian, self.dropout_rate, name="head")(x)


class ConvDecoder(nn.Module):
    """Latent -> MLP -> a coarse feature map -> stride-2 transposed convolutions -> image.

    The feature map is ``output_shape`` divided by ``2 ** len(features)`` (rounded up), so
    28x28 images with two layers start from 7x7; the result is cropped to ``output_shape``.
    """

    features: Sequence[int]
    hidden: Sequence[int]
    output_shape: Sequence[int]
    activation: str = "relu"
    output_activation: str = "sigmoid"
    dropout_rate: float = 0.0  # `dropout` after each hidden layer

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        height, width, channels = self.output_shape
        scale = 2 ** len(self.features)
        coarse = (-(-height // scale), -(-width // scale), self.features[0])
        h = MLP(self.hidden, self.activation, self.dropout_rate, name="body")(z)
        h = activation(self.activation)(nn.Dense(math.prod(coarse), name="to_map")(h)).reshape((z.shape[0], *coarse))
        for width_out in self.features[1:]:
            h = activation(self.activation)(nn.ConvTranspose(width_out, (3, 3), strides=(2, 2))(h))
        out = nn.ConvTranspose(channels, (3, 3), strides=(2, 2), name="out")(h)[:, :height, :width, :]
        return activation(self.output_activation)(out)


class DenseStack(nn.Module):
    """Dense layers of widths ``hidden``, each followed by ``activation`` (and `dropout` at
    ``dropout_rate``), on the last axis (leading axes kept: samples, batch)."""

    hidden: Sequence[int]
    activation: str = "relu"
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        for width in self.hidden:
            h = dropout(self, self.dropout_rate, activation(self.activation)(nn.Dense(width)(h)))
        return h


class GaussianHeads(nn.Module):
    """``h [..., n] -> (mean, logvar)``, each ``[..., features]``: two dense layers."""

    features: int

    @nn.compact
    def __call__(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        return nn.Dense(self.features, name="mean")(h), nn.Dense(self.features, name="logvar")(h)
