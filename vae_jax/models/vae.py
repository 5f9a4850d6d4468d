"""The variational autoencoder (one stochastic layer): its Flax module and its objective.

q(z|x) = N(mean(x), exp(logvar(x))) from an MLP, conv or ResNet encoder (`coders`), a prior p(z)
(N(0, I), a learned mixture or the VampPrior: `priors`), and p(x|z) from the decoder
(`likelihoods`; optionally autoregressive: `autoregressive`). The loss is the negative ELBO
(reparameterisation, closed-form KL to N(0, I); free bits, KL warm-up) or the IWAE bound.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from vae_jax import losses
from vae_jax.models import autoregressive, coders, decoding, interface, likelihoods, priors
from vae_jax.models.interface import ModelFns


class VAE(coders.EncoderDecoder, decoding.Decoding):
    """Variational autoencoder: q(z|x) = N(mean(x), exp(logvar(x))), prior p(z).

    ``decoder_variance`` 'scalar' or 'per_pixel' adds a learned log-variance parameter
    (the lecture's c, learned instead of fixed; initialised at ``log(initial_variance)``).

    ``prior`` (`priors.PRIORS`): 'standard_normal' N(0, I); 'mixture', an equal-weight mixture of
    ``prior_components`` learned diagonal Gaussians; 'vamp', the VampPrior (Tomczak &
    Welling 2018), the mixture of the encoder's posteriors q(z|u_k) at ``prior_components``
    learned pseudo-inputs u_k (images in [0, 1], initialised near black as in the paper).
    """

    decoder_variance: str = "fixed"  # fixed | scalar | per_pixel
    initial_variance: float = 0.05
    # > 0: p(x|z) is autoregressive over pixels (`autoregressive.AutoregressiveDecoder`, Bernoulli logits).
    autoregressive_features: int = 0
    autoregressive_kernel: int = 7
    autoregressive_layers: int = 1
    autoregressive_z_features: int = 4
    prior: str = "standard_normal"  # standard_normal | mixture | vamp | flow
    prior_components: int = 500
    flow_steps: int = 4  # prior='flow': masked autoregressive steps (`flows.AutoregressiveFlowPrior`)
    flow_hidden: Sequence[int] = (256,)  # and the hidden widths of each step's MADE
    # p(x|z): what the decoder outputs per pixel (`likelihoods.likelihood_parameters`).
    likelihood: str = "gaussian"  # gaussian | bernoulli | discretized_logistic | discretized_logistic_mixture
    mixture_components: int = 10  # K of discretized_logistic_mixture

    def setup(self):
        self.encoder = coders.make_encoder(self, gaussian=True)
        self.decoder = coders.make_decoder(self)
        priors.add_variance_and_prior_params(self, self.latents)

    def __call__(self, x: jax.Array, rng: jax.Array):
        """Encodes, samples z = mean + std * xi with ``rng``, decodes.

        Returns ``(decoder_output, mean, logvar)``; shapes ``[b, H, W, P]`` (see `decode`), ``[b, latents]``.
        """
        mean, logvar = self.encode(x)
        z = losses.reparameterize(rng, mean, logvar)
        return self.decode(z, x), mean, logvar

    def encode(self, x: jax.Array):
        """``(mean, logvar)`` of q(z|x), each ``[b, latents]``."""
        return self.encoder(x)

    def prior_mixture(self) -> tuple[jax.Array, jax.Array]:
        """``(means, logvars)``, each ``[prior_components, latents]``, of a mixture prior: the
        learned components, or the encoder's posteriors at the pseudo-inputs (clipped to [0, 1],
        the paper's hardtanh)."""
        if self.prior == "mixture":
            return self.prior_means, self.prior_logvars
        return self.encoder(jnp.clip(self.pseudo_inputs, 0.0, 1.0))

    def log_prior(self, z: jax.Array) -> jax.Array:
        """log p(z) in nats for ``z`` ``[..., latents]``; shape ``z.shape[:-1]`` (`priors.log_prob`)."""
        return priors.log_prob(self, z)

    def sample_prior(self, rng: jax.Array, num: int) -> jax.Array:
        """``[num, latents]`` draws from p(z) (`priors.sample`)."""
        return priors.sample(self, rng, num, self.latents)

    def generate(self, rng: jax.Array, num: int) -> jax.Array:
        """Decoder outputs for ``num`` latents drawn from the prior (`sample_prior`)."""
        return self.decode(self.sample_prior(rng, num))


def kl_with_free_bits(mean: jax.Array, logvar: jax.Array, free_bits: float) -> jax.Array:
    """``[b]`` sum over latent dimensions j of max(free_bits, KL_j(q(z|x) || N(0, 1))), in nats.

    Free bits (Kingma et al. 2016, per example here): a dimension costs at least
    ``free_bits`` nats, so the optimiser gains nothing by pushing its KL below that, which
    keeps latents from collapsing early. ``free_bits=0`` is the plain KL.
    """
    per_dimension = losses.gaussian_kl_to_standard_normal(mean[..., None], logvar[..., None])
    return jnp.sum(jnp.maximum(per_dimension, free_bits), axis=-1)


def fns(model, config) -> ModelFns:
    """`interface.ModelFns` of a `vae.VAE`; ``config`` gives what shapes the program (objective,
    samples, likelihood), the `interface.Hyper` argument the values (beta, c, free bits, KL weight).

    Loss per example: -E_q[log p(x|z)] + beta * kl_weight * KL(q(z|x) || p(z)) with one
    sample (``config.objective='elbo'``; with free bits > 0 each latent dimension's KL counts
    as at least that many nats, `kl_with_free_bits`), or the negative importance-weighted
    bound with ``config.num_train_samples`` samples (``'iwae'``, Burda et al. 2016; beta and
    free bits are not used). ``kl_weight`` in [0, 1] is the KL warm-up factor the training
    step sets. ``neg_elbo``, ``reconstruction`` and ``kl`` are always the true (unweighted,
    unclamped) terms.

    The KL is closed-form for the N(0, I) prior; for a mixture prior (``model.prior``
    'mixture' or 'vamp') it has none, and ``kl`` is the one-sample estimate
    log q(z|x) - log p(z) at the z that is decoded (unbiased; so is ``neg_elbo``).

    """
    objective = config.objective
    num_samples = config.num_train_samples
    likelihood = config.likelihood
    standard_prior = model.prior == "standard_normal"
    channels = model.output_shape[-1]

    def per_example_metrics(params, x, rng, hyper: interface.Hyper, training: bool = False):
        rngs = None
        if training and model.dropout_rate:  # the step's dropout masks, from its key
            rng, dropout_key = jax.random.split(rng)
            rngs = {"dropout": dropout_key}
        mean, logvar = model.apply(params, x, method=model.encode, rngs=rngs)
        variance = decoding.decoder_variance(model, params, hyper.c)
        if objective == "iwae":  # z, log p(x|z): [num_samples, b, ...]
            z = losses.reparameterize(
                rng,
                jnp.broadcast_to(mean, (num_samples, *mean.shape)),
                jnp.broadcast_to(logvar, (num_samples, *logvar.shape)),
            )
            repeated = jnp.broadcast_to(x, (num_samples, *x.shape)).reshape(-1, *x.shape[1:])
            outputs = model.apply(params, z.reshape(-1, z.shape[-1]), repeated, method=model.decode, rngs=rngs)
            log_px = likelihoods.log_likelihood(likelihood, repeated, outputs, variance).reshape(num_samples, -1)
            output = outputs.reshape(num_samples, -1, *outputs.shape[1:])[0]
        else:
            z = losses.reparameterize(rng, mean, logvar)
            output = model.apply(params, z, x, method=model.decode, rngs=rngs)
            log_px = likelihoods.log_likelihood(likelihood, x, output, variance)
        if objective == "iwae" or not standard_prior:  # log p(z) and log q(z|x) at the samples, once
            log_pz = model.apply(params, z, method=model.log_prior, rngs=rngs)
            log_qz = losses.diagonal_gaussian_log_prob(z, mean, logvar)
        if standard_prior:
            kl = losses.gaussian_kl_to_standard_normal(mean, logvar)
        else:  # the sampled estimate, averaged over the samples
            kl = (log_qz - log_pz).reshape(-1, mean.shape[0]).mean(axis=0)
        if objective == "iwae":
            loss = -losses.iwae_bound(log_px, log_pz, log_qz)
            log_px = jnp.mean(log_px, axis=0)
        else:
            free_bits = standard_prior and not interface.is_zero(hyper.free_bits)  # refused with other priors
            kl_term = kl_with_free_bits(mean, logvar, hyper.free_bits) if free_bits else kl
            loss = -losses.elbo(log_px, kl_term, beta=hyper.beta * hyper.kl_weight)
        metrics = {
            "loss": loss,
            "neg_elbo": -losses.elbo(log_px, kl),
            "reconstruction": -log_px,
            "kl": kl,
            "squared_error": losses.squared_error(
                likelihoods.flat(x), likelihoods.flat(likelihoods.to_image(likelihood, output, channels))
            ),
        }
        if likelihood in likelihoods.DISCRETIZED_LIKELIHOODS:  # a probability of discrete data: bits too
            metrics["bits_per_dim"] = likelihoods.bits_per_dim(metrics["neg_elbo"], likelihoods.flat(x).shape[-1])
        return metrics

    def encode(params, x):
        return model.apply(params, x, method=model.encode)[0]

    def decode_image(params, z):
        if model.autoregressive:
            return autoregressive.greedy_autoregressive_images(model, params, z)
        return likelihoods.to_image(likelihood, model.apply(params, z, method=model.decode), channels)

    def sample_prior(params, key, num):
        return model.apply(params, key, num, method=model.sample_prior)

    def sample(params, key, z):
        if model.autoregressive:
            return autoregressive.sample_autoregressive_images(model, params, key, z)
        variance = decoding.decoder_variance(model, params, config.c)
        return likelihoods.sample_images(
            likelihood, key, model.apply(params, z, method=model.decode), variance, channels
        )

    c = float(config.c) if likelihood == "gaussian" else None
    return interface.ModelFns(
        per_example_metrics,
        encode,
        decode_image,
        standard_normal_prior=standard_prior,
        diagnostics=("squared_error",),
        sample_prior=sample_prior,
        sample_images=sample,
        importance_parts=interface.ImportanceParts(
            _VAEEncode(model),
            _VAELogLikelihood(model, _LikelihoodConfig(likelihood, c)),
            None if standard_prior else _VAELogPrior(model),
        ),
        init=lambda key: model.init(
            key,
            jnp.zeros((1, *model.output_shape), jnp.float32),
            key,
            method=model.initialize if model.prior == "flow" else None,
        ),
        module=model,
        label="VAE",
        likelihood=likelihood,
        latent_sizes=(model.latents,),
        prior_description=f"the prior {priors.DESCRIPTIONS[model.prior]}",
        autoregressive=model.autoregressive,
    )


def build(config, image_shape) -> ModelFns:
    """The `ModelFns` of the one-layer VAE of ``config`` (``config.model``, ``config.likelihood``;
    ``config.c`` starts a learned decoder variance) for images of ``image_shape``."""
    module = coders.module_from_config(
        VAE, config, image_shape, initial_variance=config.c, likelihood=config.likelihood
    )
    return fns(module, config)


class _LikelihoodConfig(NamedTuple):
    """The fields of a config that `likelihoods.log_likelihood` reads (hashable)."""

    likelihood: str
    c: float | None


# The `interface.ImportanceParts` of a VAE: hashable (frozen dataclasses of the module and options).
@dataclasses.dataclass(frozen=True)
class _VAEEncode:
    model: Any

    def __call__(self, params, x):
        return self.model.apply(params, x, method=self.model.encode)


@dataclasses.dataclass(frozen=True)
class _VAELogPrior:
    model: Any

    def __call__(self, params, z):
        return self.model.apply(params, z, method=self.model.log_prior)


@dataclasses.dataclass(frozen=True)
class _VAELogLikelihood:
    model: Any
    config: _LikelihoodConfig

    def __call__(self, params, x, z):
        variance = decoding.decoder_variance(self.model, params, self.config.c)
        decoded = self.model.apply(params, z, x, method=self.model.decode)
        return likelihoods.log_likelihood(self.config.likelihood, x, decoded, variance)
