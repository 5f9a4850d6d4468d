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


class Autoencoder(nn.Module):
    """Deterministic autoencoder x -> z = e(x) -> d(z).

    With ``encoder_hidden = decoder_hidden = ()`` and ``output_activation='none'`` it is
    the lecture's linear autoencoder: one linear (affine) layer each way.
    """

    encoder_hidden: Sequence[int]
    decoder_hidden: Sequence[int]
    latents: int
    output_shape: Sequence[int]
    activation: str = "relu"
    output_activation: str = "sigmoid"

    def setup(self):
        self.encoder = Encoder(self.encoder_hidden, self.latents, self.activation, gaussian=False)
        self.decoder = Decoder(self.decoder_hidden, self.output_shape, self.activation, self.output_activation)

    def __call__(self, x: jax.Array):
        """Returns ``(reconstruction, code)``."""
        z = self.encode(x)
        return self.decode(z), z

    def encode(self, x: jax.Array) -> jax.Array:
        return self.encoder(x)

    def decode(self, z: jax.Array) -> jax.Array:
        return self.decoder(z)


class VAE(nn.Module):
    """Variational autoencoder: q(z|x) = N(mean(x), exp(logvar(x))), prior N(0, I)."""

    encoder_hidden: Sequence[int]
    decoder_hidden: Sequence[int]
    latents: int
    output_shape: Sequence[int]
    activation: str = "relu"
    output_activation: str = "sigmoid"

    def setup(self):
        self.encoder = Encoder(self.encoder_hidden, self.latents, self.activation, gaussian=True)
        self.decoder = Decoder(self.decoder_hidden, self.output_shape, self.activation, self.output_activation)

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

    def generate(self, rng: jax.Array, num: int) -> jax.Array:
        """Decoder outputs for ``num`` latents drawn from the prior N(0, I)."""
        return self.decode(jax.random.normal(rng, (num, self.latents)))


def output_activation_for(likelihood: str, requested: str = "auto") -> str:
    """Decoder output activation: logits for Bernoulli, sigmoid means for grey levels."""
    if requested != "auto":
        return requested
    return "none" if likelihood == "bernoulli" else "sigmoid"


def build_model(model_config, likelihood: str, output_shape: Sequence[int]) -> nn.Module:
    """The `VAE` or `Autoencoder` described by ``config.model`` for images of ``output_shape``."""
    kwargs = dict(
        encoder_hidden=tuple(model_config.encoder_hidden),
        decoder_hidden=tuple(model_config.decoder_hidden),
        latents=model_config.latents,
        output_shape=tuple(output_shape),
        activation=model_config.activation,
        output_activation=output_activation_for(likelihood, model_config.get("output_activation", "auto")),
    )
    if model_config.kind == "vae":
        return VAE(**kwargs)
    if model_config.kind == "ae":
        return Autoencoder(**kwargs)
    raise ValueError(f"build_model makes 'vae' or 'ae' models, got model.kind={model_config.kind!r}.")
