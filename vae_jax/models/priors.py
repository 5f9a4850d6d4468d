"""Priors p(z) beyond N(0, I): a mixture of learned Gaussians and the VampPrior (Tomczak & Welling
2018), their parameters, and sampling from a mixture; with them the learned decoder variance
(both are parameters a VAE and a ladder VAE add in ``setup``)."""

from __future__ import annotations

import math

import jax
from flax import linen as nn

from vae_jax import losses
from vae_jax.models import flows

PRIORS = ("standard_normal", "mixture", "vamp", "flow")
# How figure titles name each prior.
DESCRIPTIONS = {
    "standard_normal": "N(0, I)",
    "mixture": "(mixture of Gaussians)",
    "vamp": "(VampPrior)",
    "flow": "(autoregressive flow)",
}


def add_variance_and_prior_params(module: nn.Module, prior_width: int) -> None:
    """In ``module.setup``: the learned decoder log-variance (``module.decoder_variance``
    'scalar' or 'per_pixel', initialised at ``log(initial_variance)``) and the parameters of a
    learned prior over ``prior_width`` latents (``module.prior`` 'mixture': its components'
    means and log-variances; 'vamp': ``prior_components`` pseudo-inputs in [0, 1], initialised
    near black as in the VampPrior paper). A `vae.VAE`'s and a `ladder.LadderVAE`'s."""
    if module.decoder_variance != "fixed":
        shape = () if module.decoder_variance == "scalar" else tuple(module.output_shape)
        module.log_variance = module.param(
            "decoder_log_variance", nn.initializers.constant(math.log(module.initial_variance)), shape
        )
    if module.prior == "mixture":
        shape = (module.prior_components, prior_width)
        module.prior_means = module.param("prior_means", nn.initializers.normal(1.0), shape)
        module.prior_logvars = module.param("prior_logvars", nn.initializers.zeros, shape)
    elif module.prior == "vamp":
        near_black = lambda key, shape: 0.05 + 0.01 * jax.random.normal(key, shape)
        module.pseudo_inputs = module.param(
            "pseudo_inputs", near_black, (module.prior_components, *module.output_shape)
        )
    elif module.prior == "flow":
        module.flow_prior = flows.AutoregressiveFlowPrior(
            prior_width, module.flow_steps, tuple(module.flow_hidden), module.activation
        )


def log_prob(module: nn.Module, z: jax.Array) -> jax.Array:
    """log p(z) in nats, ``z.shape[:-1]``, under ``module.prior`` (the one-layer VAE's p(z), the
    ladder's p(z_L)): N(0, I), a mixture (``module.prior_mixture()``: learned components or the
    VampPrior's) or the autoregressive flow."""
    if module.prior == "standard_normal":
        return losses.standard_normal_log_prob(z)
    if module.prior == "flow":
        return module.flow_prior.log_prob(z)
    return losses.gaussian_mixture_log_prob(z, *module.prior_mixture())


def sample(module: nn.Module, rng: jax.Array, num: int, width: int) -> jax.Array:
    """``[num, width]`` draws from ``module.prior`` (a mixture: a uniform component, then its
    Gaussian; the flow: its inverse of N(0, I) draws)."""
    if module.prior == "standard_normal":
        return jax.random.normal(rng, (num, width))
    if module.prior == "flow":
        return module.flow_prior.sample(rng, num)
    return sample_mixture(rng, *module.prior_mixture(), num)


def sample_mixture(rng: jax.Array, means: jax.Array, logvars: jax.Array, num: int) -> jax.Array:
    """``[num, d]`` draws from the equal-weight mixture of N(means[k], exp(logvars[k])), each
    ``[K, d]``: a uniform component, then its Gaussian."""
    component_key, noise_key = jax.random.split(rng)
    component = jax.random.randint(component_key, (num,), 0, means.shape[0])
    return losses.reparameterize(noise_key, means[component], logvars[component])
