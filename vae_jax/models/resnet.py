"""ResNet encoder and decoder for colour images of any size (pre-activation residual blocks,
GroupNorm, nearest-neighbour upsampling)."""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from vae_jax.models import layers

RESNET_NORMS = ("group", "none")


def group_norm_groups(width: int) -> int:
    """GroupNorm's number of groups for ``width`` channels: gcd(32, width) (32 groups as in
    Wu & He 2018 when it divides the width, else the largest power of two that does)."""
    return math.gcd(32, width)


class ResidualBlock(nn.Module):
    """Pre-layers.activation residual block (He et al. 2016): ``x + conv(act(norm(conv(act(norm(x))))))``,
    two 3x3 convolutions of ``width`` channels (the input has ``width`` channels).

    ``norm`` 'group' is GroupNorm (`group_norm_groups`), 'none' no normalisation. The second
    convolution starts at zero, so each block starts as the identity and a deep stack trains
    like a shallow one at first (as the zero-initialised last BatchNorm scale of Goyal et al.
    2017)."""

    width: int
    activation: str = "relu"
    norm: str = "group"

    def _normalise(self, h: jax.Array, name: str) -> jax.Array:
        if self.norm == "none":
            return h
        return nn.GroupNorm(num_groups=group_norm_groups(h.shape[-1]), name=name)(h)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = layers.activation(self.activation)
        h = nn.Conv(self.width, (3, 3), name="conv1")(act(self._normalise(x, "norm1")))
        h = nn.Conv(self.width, (3, 3), kernel_init=nn.initializers.zeros, name="conv2")(
            act(self._normalise(h, "norm2"))
        )
        return x + h


def resnet_coarse_shape(image_shape: Sequence[int], stages: int) -> tuple[int, int]:
    """The side lengths of a `ResNetEncoder`'s last feature map (and of the map a
    `ResNetDecoder` starts from) for images of ``image_shape`` ``(H, W, C)``: each stage halves
    them, rounding up ('SAME' padding), so any size works; the decoder crops its output."""
    height, width = image_shape[:2]
    return -(-height // 2**stages), -(-width // 2**stages)


class ResNetEncoder(nn.Module):
    """Image -> ResNet stages -> flatten -> dense heads ``(mean, logvar)`` (or a point code).

    Stage ``i`` (one per entry of ``widths``): a stride-2 3x3 convolution to ``widths[i]``
    channels (halving the sides, rounding up: odd sides are padded), then ``blocks``
    `ResidualBlock` s. The last feature map (`resnet_coarse_shape`) goes through
    ``act(norm(.))`` and is flattened into the dense heads. Inputs in [0, 1] are shifted to
    [-1, 1] first."""

    widths: Sequence[int]
    blocks: int
    latents: int
    activation: str = "relu"
    norm: str = "group"
    gaussian: bool = True

    @nn.compact
    def __call__(self, x: jax.Array):
        h = 2.0 * x - 1.0
        for stage, width in enumerate(self.widths):
            h = nn.Conv(width, (3, 3), strides=(2, 2), name=f"down{stage}")(h)
            for block in range(self.blocks):
                h = ResidualBlock(width, self.activation, self.norm, name=f"stage{stage}_block{block}")(h)
        if self.norm == "group":
            h = nn.GroupNorm(num_groups=group_norm_groups(h.shape[-1]), name="norm_out")(h)
        h = layers.activation(self.activation)(h).reshape(h.shape[0], -1)
        mean = nn.Dense(self.latents, name="mean")(h)
        if not self.gaussian:
            return mean
        return mean, nn.Dense(self.latents, name="logvar")(h)


class ResNetDecoder(nn.Module):
    """Latent -> dense -> the coarse feature map -> ResNet stages -> output head, cropped.

    The mirror of `ResNetEncoder`: a dense layer to the ``resnet_coarse_shape`` map with
    ``widths[-1]`` channels, then, for the widths in reverse order, ``blocks``
    `ResidualBlock` s followed by a 2x nearest-neighbour upsampling and a 3x3 convolution to
    the next (smaller) width (``widths[0]`` after the last stage): upsampling then convolving
    avoids the checkerboard artefacts of strided transposed convolutions (Odena et al.
    2016). The head is ``act(norm(.))`` and a 3x3 convolution to ``output_shape[-1]``
    channels (the likelihood's parameters per pixel), then ``output_activation``; the map,
    ``2 ** stages`` times the coarse one, is cropped to ``output_shape``."""

    widths: Sequence[int]
    blocks: int
    output_shape: Sequence[int]
    activation: str = "relu"
    norm: str = "group"
    output_activation: str = "none"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        height, width, channels = self.output_shape
        stages = len(self.widths)
        coarse = (*resnet_coarse_shape(self.output_shape, stages), self.widths[-1])
        h = nn.Dense(math.prod(coarse), name="to_map")(z).reshape((z.shape[0], *coarse))
        for stage in reversed(range(stages)):
            for block in range(self.blocks):
                h = ResidualBlock(self.widths[stage], self.activation, self.norm, name=f"stage{stage}_block{block}")(h)
            h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)  # nearest-neighbour, x2
            h = nn.Conv(self.widths[max(stage - 1, 0)], (3, 3), name=f"up{stage}")(h)
        if self.norm == "group":
            h = nn.GroupNorm(num_groups=group_norm_groups(h.shape[-1]), name="norm_out")(h)
        out = nn.Conv(channels, (3, 3), name="out")(layers.activation(self.activation)(h))[:, :height, :width, :]
        return layers.activation(self.output_activation)(out)
