"""A learned prior p(z) as a masked autoregressive flow (MAF; Papamakarios et al. 2017) on N(0, I).

Each of ``steps`` steps maps z to ``u = (z - m(z)) * exp(-s(z))``, where ``m_i`` and ``s_i`` depend
only on the coordinates before ``i`` in that step's order (a MADE network, Germain et al. 2015:
dense layers whose weights are masked so that output ``i`` sees inputs ``< i``). The orders
alternate between forward and reversed from step to step, so every coordinate can depend on every
other. With ``u_K`` the last step's output, by the change of variables

    log p(z) = log N(u_K; 0, I) + sum_k sum_i -s_k,i(z_k-1),

the Jacobian of each step being triangular with diagonal ``exp(-s)``. Density evaluation is one
pass per step (parallel over coordinates): what the ELBO's KL estimate and importance sampling
need at every step. Sampling inverts the steps coordinate by coordinate (``d`` passes per step):
only figures and `ModelFns.sample_prior` do it. The last layer of each MADE starts at zero, so the
flow starts as the identity and the prior as N(0, I) (VLAE, Chen et al. 2017, and Xu et al. 2019
report this prior on the top latent of static binarised MNIST VAEs).

Shapes: ``z`` ``[..., d]``; ``log_prob`` ``[...]`` in nats.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from vae_jax import losses
from vae_jax.models import layers


def made_masks(features: int, hidden: Sequence[int], reverse: bool) -> list[np.ndarray]:
    """The masks ``[in, out]`` of a MADE with ``hidden`` widths on ``features`` coordinates, and
    of its output layer (two outputs per coordinate: ``m`` then ``s``). Coordinate ``i`` has
    degree ``i + 1`` in the step's order (reversed when ``reverse``); hidden unit ``j`` of a layer
    has degree ``1 + j mod (d - 1)``; a unit sees inputs of degree <= its own, and the output of
    degree ``k`` sees hidden units of degree < ``k`` (so ``m_i``, ``s_i`` see ``z_<i`` only)."""
    degrees = np.arange(1, features + 1)
    if reverse:
        degrees = degrees[::-1]
    masks, previous = [], degrees
    for width in hidden:
        units = 1 + np.arange(width) % max(features - 1, 1)
        masks.append((previous[:, None] <= units[None, :]).astype(np.float32))
        previous = units
    output = np.concatenate([degrees, degrees])
    masks.append((previous[:, None] < output[None, :]).astype(np.float32))
    return masks


class MaskedDense(nn.Module):
    """A dense layer whose kernel is multiplied by a fixed 0/1 ``mask`` ``[in, out]``."""

    mask: np.ndarray
    zero_init: bool = False

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
        kernel = self.param("kernel", init, self.mask.shape)
        bias = self.param("bias", nn.initializers.zeros, (self.mask.shape[1],))
        return h @ (kernel * jnp.asarray(self.mask)) + bias


# Each step's log-scale is soft-clamped to (-LOG_SCALE_BOUND, LOG_SCALE_BOUND) (``b tanh(s / b)``), so
# one step stretches or shrinks a coordinate by at most e^3: a function of z_<i like any other, so
# the density stays exact, and training cannot blow a scale up to inf.
LOG_SCALE_BOUND = 3.0


class MADE(nn.Module):
    """``z [..., d] -> (m, s)``, each ``[..., d]``, with ``m_i``, ``s_i`` functions of the
    coordinates before ``i`` in the order of ``reverse`` (`made_masks`); ``s`` soft-clamped
    (`LOG_SCALE_BOUND`)."""

    features: int
    hidden: Sequence[int]
    reverse: bool
    activation: str = "relu"

    @nn.compact
    def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        masks = made_masks(self.features, self.hidden, self.reverse)
        h = z
        for i, mask in enumerate(masks[:-1]):
            h = layers.activation(self.activation)(MaskedDense(mask, name=f"hidden_{i}")(h))
        out = MaskedDense(masks[-1], zero_init=True, name="out")(h)
        log_scale = out[..., self.features :]
        return out[..., : self.features], LOG_SCALE_BOUND * jnp.tanh(log_scale / LOG_SCALE_BOUND)


class AutoregressiveFlowPrior(nn.Module):
    """p(z) over ``features`` latents: ``steps`` masked autoregressive steps on N(0, I) (the
    module docstring has the model). ``hidden``: the widths of each step's MADE."""

    features: int
    steps: int = 4
    hidden: Sequence[int] = (256,)
    activation: str = "relu"

    def setup(self):
        self.mades = [
            MADE(self.features, tuple(self.hidden), reverse=bool(k % 2), activation=self.activation)
            for k in range(self.steps)
        ]

    def to_base(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(u, log_det)``: the base-distribution point of ``z`` and ``log |det du/dz|`` ``[...]``."""
        log_det = jnp.zeros(z.shape[:-1], z.dtype)
        for made in self.mades:
            m, s = made(z)
            z = (z - m) * jnp.exp(-s)
            log_det = log_det - jnp.sum(s, axis=-1)
        return z, log_det

    def log_prob(self, z: jax.Array) -> jax.Array:
        """log p(z) in nats, ``[...]`` for ``z`` ``[..., features]`` (change of variables)."""
        u, log_det = self.to_base(z)
        return losses.standard_normal_log_prob(u) + log_det

    def from_base(self, u: jax.Array) -> jax.Array:
        """The inverse of `to_base`: ``z`` for base points ``u``, each step inverted coordinate by
        coordinate in its order (``features`` passes of its MADE)."""
        for made in reversed(self.mades):
            z = jnp.zeros_like(u)
            for _ in range(self.features):  # after pass i, coordinates 1..i (in the step's order) are final
                m, s = made(z)
                z = u * jnp.exp(s) + m
            u = z
        return u

    def sample(self, rng: jax.Array, num: int) -> jax.Array:
        """``[num, features]`` draws: N(0, I) base points through `from_base`."""
        return self.from_base(jax.random.normal(rng, (num, self.features)))
