"""Flax Linen models: MLP encoders and decoders, a deterministic autoencoder and a VAE.

All modules are pure: ``params = model.init(...)``, ``model.apply(params, ...)``. Inputs are
images ``[batch, H, W, C]`` (any trailing shape), flattened inside the encoder; decoders
return ``[batch, *output_shape]``.

The decoder's raw output is the mean f(z) of a Gaussian p(x|z) = N(f(z), cI) when
``output_activation='sigmoid'`` (grey levels in [0, 1]), or the logits of a Bernoulli
p(x|z) when ``output_activation='none'`` (binary data; the loss applies the sigmoid).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from vae_jax import losses

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "gelu": nn.gelu,
    "tanh": jnp.tanh,
    "elu": nn.elu,
    "sigmoid": nn.sigmoid,
    "none": lambda x: x,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The activation function called ``name`` (one of `ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Dense layers of widths ``hidden``, each followed by ``activation``; flattens its input."""

    hidden: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            x = activation(self.activation)(nn.Dense(width)(x))
        return x


class Encoder(nn.Module):
    """Image -> latent. Gaussian heads ``(mean, logvar)`` when ``gaussian``, else a point code."""

    hidden: Sequence[int]
    latents: int
    activation: str = "relu"
    gaussian: bool = True

    @nn.compact
    def __call__(self, x: jax.Array):
        h = MLP(self.hidden, self.activation, name="body")(x)
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

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        h = MLP(self.hidden, self.activation, name="body")(z)
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

    @nn.compact
    def __call__(self, x: jax.Array):
        for width in self.features:
            x = activation(self.activation)(nn.Conv(width, (3, 3), strides=(2, 2))(x))
        return Encoder(self.hidden, self.latents, self.activation, self.gaussian, name="head")(x)


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

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        height, width, channels = self.output_shape
        scale = 2 ** len(self.features)
        coarse = (-(-height // scale), -(-width // scale), self.features[0])
        h = MLP(self.hidden, self.activation, name="body")(z)
        h = activation(self.activation)(nn.Dense(math.prod(coarse), name="to_map")(h)).reshape((z.shape[0], *coarse))
        for width_out in self.features[1:]:
            h = activation(self.activation)(nn.ConvTranspose(width_out, (3, 3), strides=(2, 2))(h))
        out = nn.ConvTranspose(channels, (3, 3), strides=(2, 2), name="out")(h)[:, :height, :width, :]
        return activation(self.output_activation)(out)


def make_encoder(module, gaussian: bool) -> nn.Module:
    """The encoder of an `Autoencoder` or `VAE` ``module`` (by its ``architecture``)."""
    if module.architecture == "conv":
        return ConvEncoder(module.conv_features, module.encoder_hidden, module.latents, module.activation, gaussian)
    return Encoder(module.encoder_hidden, module.latents, module.activation, gaussian=gaussian)


def make_decoder(module) -> nn.Module:
    """The decoder of an `Autoencoder` or `VAE` ``module`` (by its ``architecture``)."""
    if module.architecture == "conv":
        return ConvDecoder(tuple(reversed(module.conv_features)), module.decoder_hidden, module.output_shape,
                           module.activation, module.output_activation)
    return Decoder(module.decoder_hidden, module.output_shape, module.activation, module.output_activation)


class _EncoderDecoder(nn.Module):
    """The fields an `Autoencoder` and a `VAE` share (sizes come from ``config.model``)."""

    encoder_hidden: Sequence[int]
    decoder_hidden: Sequence[int]
    latents: int
    output_shape: Sequence[int]
    activation: str = "relu"
    output_activation: str = "sigmoid"
    architecture: str = "mlp"  # mlp | conv
    conv_features: Sequence[int] = (32, 64)


class Autoencoder(_EncoderDecoder):
    """Deterministic autoencoder x -> z = e(x) -> d(z).

    With ``encoder_hidden = decoder_hidden = ()`` and ``output_activation='none'`` it is
    the lecture's linear autoencoder: one linear (affine) layer each way.
    """

    def setup(self):
        self.encoder = make_encoder(self, gaussian=False)
        self.decoder = make_decoder(self)

    def __call__(self, x: jax.Array):
        """Returns ``(reconstruction, code)``."""
        z = self.encode(x)
        return self.decode(z), z

    def encode(self, x: jax.Array) -> jax.Array:
        return self.encoder(x)

    def decode(self, z: jax.Array) -> jax.Array:
        return self.decoder(z)


class VAE(_EncoderDecoder):
    """Variational autoencoder: q(z|x) = N(mean(x), exp(logvar(x))), prior N(0, I).

    ``decoder_variance`` 'scalar' or 'per_pixel' adds a learned log-variance parameter
    (the lecture's c, learned instead of fixed; initialised at ``log(initial_variance)``).
    """

    decoder_variance: str = "fixed"  # fixed | scalar | per_pixel
    initial_variance: float = 0.05

    def setup(self):
        self.encoder = make_encoder(self, gaussian=True)
        self.decoder = make_decoder(self)
        if self.decoder_variance != "fixed":
            shape = () if self.decoder_variance == "scalar" else tuple(self.output_shape)
            self.log_variance = self.param("decoder_log_variance", nn.initializers.constant(math.log(self.initial_variance)), shape)

    def __call__(self, x: jax.Array, rng: jax.Array):
        """Encodes, samples z = mean + std * xi with ``rng``, decodes.

        Returns ``(decoder_output, mean, logvar)``; shapes ``[b, *output_shape]``, ``[b, latents]``.
        """
        mean, logvar = self.encode(x)
        z = losses.reparameterize(rng, mean, logvar)
        return self.decode(z), mean, logvar

    def encode(self, x: jax.Array):
        """``(mean, logvar)`` of q(z|x), each ``[b, latents]``."""
        return self.encoder(x)

    def decode(self, z: jax.Array) -> jax.Array:
        return self.decoder(z)

    def variance(self) -> jax.Array:
        """The learned decoder variance c (scalar or per pixel); only when it is learned."""
        return jnp.exp(self.log_variance)

    def generate(self, rng: jax.Array, num: int) -> jax.Array:
        """Decoder outputs for ``num`` latents drawn from the prior N(0, I)."""
        return self.decode(jax.random.normal(rng, (num, self.latents)))


def output_activation_for(likelihood: str, requested: str = "auto") -> str:
    """Decoder output activation: logits for Bernoulli, sigmoid means for grey levels."""
    if requested != "auto":
        return requested
    return "none" if likelihood == "bernoulli" else "sigmoid"


def build_model(model_config, likelihood: str, output_shape: Sequence[int], initial_variance: float = 0.05) -> nn.Module:
    """The `VAE` or `Autoencoder` described by ``config.model`` for images of ``output_shape``.

    ``initial_variance`` (the config's c) starts a learned decoder variance.
    """
    kwargs = dict(
        encoder_hidden=tuple(model_config.encoder_hidden),
        decoder_hidden=tuple(model_config.decoder_hidden),
        latents=model_config.latents,
        output_shape=tuple(output_shape),
        activation=model_config.activation,
        output_activation=output_activation_for(likelihood, model_config.get("output_activation", "auto")),
        architecture=model_config.get("architecture", "mlp"),
        conv_features=tuple(model_config.get("conv_features", (32, 64))),
    )
    if model_config.kind == "vae":
        return VAE(**kwargs, decoder_variance=model_config.get("decoder_variance", "fixed"),
                   initial_variance=initial_variance)
    if model_config.kind == "ae":
        return Autoencoder(**kwargs)
    raise ValueError(f"build_model makes 'vae' or 'ae' models, got model.kind={model_config.kind!r}.")
