"""What a one-layer VAE and a ladder VAE share around p(x|z): the decoding methods and the
decoder variance."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.typing import ArrayLike


class Decoding(nn.Module):
    """The methods around p(x|z) that a `vae.VAE` and a `ladder.LadderVAE` share. No fields: a
    subclass has ``decoder`` (`coders.make_decoder`), ``autoregressive_features`` and, with a learned
    decoder variance, ``log_variance`` (`priors.add_variance_and_prior_params`)."""

    @property
    def autoregressive(self) -> bool:
        """Whether p(x|z) is autoregressive: its outputs then depend on x (teacher forcing)."""
        return self.autoregressive_features > 0

    def decode(self, z: jax.Array, x: jax.Array | None = None) -> jax.Array:
        """The parameters of p(x|z) ``[b, H, W, P]`` (P: `likelihoods.likelihood_parameters`, C for the Gaussian
        and Bernoulli likelihoods; z is z_1 for a ladder vae.VAE). An autoregressive decoder needs the
        image ``x`` too: each pixel's logit is conditioned on the pixels before it in ``x``."""
        if not self.autoregressive:
            return self.decoder(z)
        if x is None:
            raise ValueError(
                "An autoregressive decoder gives p(x_i | z, x_<i): pass the image x to decode, "
                "or draw images with vae.fns(...).decode_image."
            )
        return self.decoder(z, x)

    def latent_features(self, z: jax.Array) -> jax.Array:
        """An autoregressive decoder's feature map of z (computed once per z when sampling)."""
        return self.decoder.latent_features(z)

    def pixel_logits(self, latent_features: jax.Array, x: jax.Array) -> jax.Array:
        """An autoregressive decoder's logits given `latent_features` and the image so far."""
        return self.decoder.logits(latent_features, x)

    def initialize(self, x: jax.Array, rng: jax.Array | None = None):
        """``self(x, rng)`` and, with a flow prior, its log-density once: ``init`` with this method
        creates every parameter (a flow's exist only once it is used; ``__call__`` does not use
        the prior). Models with other priors are initialised with ``__call__`` itself."""
        outputs = self(x, rng)
        if self.prior == "flow":
            self.flow_prior.log_prob(jnp.zeros((1, self.flow_prior.features), x.dtype))
        return outputs

    def variance(self) -> jax.Array:
        """The learned decoder variance c (scalar or per pixel); only when it is learned."""
        return jnp.exp(self.log_variance)


def decoder_variance(model, params, c: ArrayLike) -> ArrayLike:
    """The variance of a Gaussian decoder: ``c``, or the model's learned one (scalar or per
    pixel) as one value per pixel ``[H * W * C]``."""
    if model.decoder_variance == "fixed":
        return c
    return jnp.broadcast_to(model.apply(params, method=model.variance), model.output_shape).reshape(-1)
