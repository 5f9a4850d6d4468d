"""The local autoregressive decoder (a PixelCNN head on a factorised decoder's feature map of z,
"PixelVAE"): causal neighbourhoods, the masked convolution, the decoder, and greedy decoding
of images pixel by pixel."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from vae_jax.models import layers, tall_matmul


def causal_offsets(kernel_size: int) -> list[tuple[int, int]]:
    """The ``(row, column)`` offsets of a ``k x k`` window strictly before its centre in raster
    order: the rows above, and the pixels to the left in the centre row (PixelCNN's mask A)."""
    half = kernel_size // 2
    return [(dr, dc) for dr in range(-half, 1) for dc in range(-half, half + 1) if dr < 0 or dc < 0]


def causal_neighbourhoods(x: jax.Array, kernel_size: int) -> jax.Array:
    """``[b, H, W, C * n]``: at each pixel, the values of the ``n`` pixels of `causal_offsets`
    (zero outside the image). Slices of the padded image: no convolution, no gradient needed."""
    half = kernel_size // 2
    height, width = x.shape[-3:-1]
    padded = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(half, half), (half, half), (0, 0)])
    return jnp.concatenate(
        [
            padded[..., half + dr : half + dr + height, half + dc : half + dc + width, :]
            for dr, dc in causal_offsets(kernel_size)
        ],
        axis=-1,
    )


class MaskedConv(nn.Module):
    """Same-size 2-D convolution whose output at a pixel sees only the input pixels before it
    in raster order (`causal_offsets`), so it never sees the pixel it helps to predict.

    Computed as a dense layer on `causal_neighbourhoods` (a masked convolution's taps without
    the masked-out half): one matrix product, forward and backward (`tall_matmul.RowsDense`)."""

    features: int
    kernel_size: int = 7

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        taps = tall_matmul.RowsDense(self.features, name="taps")
        return taps(causal_neighbourhoods(x, self.kernel_size))


class AutoregressiveDecoder(nn.Module):
    """p(x|z) = prod_i p(x_i | z, x_<i): a factorised decoder's feature map of z, mixed per pixel
    with a masked convolution of the pixels before it (a local PixelCNN head; Gulrajani et
    al. 2017, "PixelVAE"). Single-channel images; outputs Bernoulli logits.

    The latent decoder ``base`` maps z to ``[b, H, W, z_features]``; at each pixel,
    ``h = act(MaskedConv(x) + Dense(features))`` goes through ``hidden_layers`` per-pixel
    dense layers of width ``features`` to one logit (`tall_matmul.RowsDense`: Dense layers
    whose weight and bias gradients, sums over every pixel of the batch, use every core). Teacher forcing makes the log-likelihood
    one parallel pass (``__call__(z, x)``); decoding images is sequential
    (`greedy_autoregressive_images`).
    """

    base: nn.Module
    features: int = 32
    kernel_size: int = 7
    hidden_layers: int = 1
    activation: str = "relu"

    def setup(self):
        self.context = MaskedConv(self.features, self.kernel_size)
        self.condition = tall_matmul.RowsDense(self.features)
        self.hidden = [tall_matmul.RowsDense(self.features) for _ in range(self.hidden_layers)]
        self.out = tall_matmul.RowsDense(1)

    def latent_features(self, z: jax.Array) -> jax.Array:
        """``[b, H, W, z_features]``: everything the decoder takes from z."""
        return self.base(z)

    def logits(self, latent_features: jax.Array, x: jax.Array) -> jax.Array:
        """Logits ``[b, H, W, 1]`` of each pixel given z's features and the pixels before it in ``x``."""
        act = layers.activation(self.activation)
        h = act(self.context(2.0 * x - 1.0) + self.condition(latent_features))
        for layer in self.hidden:
            h = act(layer(h))
        return self.out(h)

    def __call__(self, z: jax.Array, x: jax.Array) -> jax.Array:
        return self.logits(self.latent_features(z), x)


def greedy_autoregressive_images(model, params, z: jax.Array) -> jax.Array:
    """Images ``[b, H, W, 1]`` of an autoregressive decoder for latents ``z``, pixel by pixel.

    Deterministic: each pixel is set to its more likely value given z and the pixels before it,
    and the returned image holds each pixel's probability p(x_i = 1 | z, x_<i) on that path
    (a sharp stand-in for the decoder's mean, for figures). One decoder pass per pixel.
    """
    features = model.apply(params, z, method=model.latent_features)
    height, width, channels = model.output_shape

    def set_pixel(i, carry):
        x, probabilities = carry
        row, column = i // width, i % width
        p = jax.nn.sigmoid(model.apply(params, features, x, method=model.pixel_logits)[:, row, column, 0])
        x = x.at[:, row, column, 0].set((p > 0.5).astype(x.dtype))
        return x, probabilities.at[:, row, column, 0].set(p)

    empty = jnp.zeros((z.shape[0], height, width, channels), jnp.float32)
    return jax.lax.fori_loop(0, height * width, set_pixel, (empty, empty))[1]


def sample_autoregressive_images(model, params, key: jax.Array, z: jax.Array) -> jax.Array:
    """Binary images ``[b, H, W, 1]`` drawn exactly from an autoregressive decoder's
    p(x|z) = prod_i p(x_i | z, x_<i) for latents ``z`` ``[b, latents]``.

    Pixel by pixel in raster order (row by row, left to right), as
    `greedy_autoregressive_images` walks them: pixel ``i`` is drawn from the
    Bernoulli of its logit given z's features and the pixels drawn before it (those after it are
    still 0 and the masked convolution does not see them), with the key
    ``fold_in(key, i)``. One decoder pass per pixel; the images of the batch are independent
    draws (the same z twice gives two draws).
    """
    features = model.apply(params, z, method=model.latent_features)
    height, width, channels = model.output_shape

    def draw_pixel(i, x):
        row, column = i // width, i % width
        logits = model.apply(params, features, x, method=model.pixel_logits)[:, row, column, 0]
        draw = jax.random.bernoulli(jax.random.fold_in(key, i), jax.nn.sigmoid(logits))
        return x.at[:, row, column, 0].set(draw.astype(x.dtype))

    empty = jnp.zeros((z.shape[0], height, width, channels), jnp.float32)
    return jax.lax.fori_loop(0, height * width, draw_pixel, empty)
