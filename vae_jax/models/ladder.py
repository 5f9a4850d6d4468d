"""A ladder VAE: L >= 2 stochastic layers with top-down inference (Sønderby et al. 2016).

Generative model, top down (``model.hierarchy_latents`` = ``(d_1, ..., d_L)``, bottom to top)::

    p(z_L)                    N(0, I), a mixture of learned Gaussians, or the VampPrior (``model.prior``)
    p(z_l | z_{l+1})          N(mu_p(z_{l+1}), diag sigma_p^2(z_{l+1})), l = L-1, ..., 1
    p(x | z_1)                the one-layer VAE's decoder (`coders.make_decoder`: MLP, or the
                              autoregressive one with ``model.autoregressive_features > 0``)

Inference, first bottom up then top down. A deterministic bottom-up pass
``h_1 = MLP(encoder_hidden)(x)``, ``h_l = MLP(hierarchy_hidden)(h_{l-1})`` gives at every layer
a Gaussian estimate ``N(m_l, s_l^2)`` of z_l from the data alone. The top layer's posterior is
that estimate, ``q(z_L | x) = N(m_L, s_L^2)``; below it, the top-down pass computes the prior
``p(z_l | z_{l+1})`` from the sampled z_{l+1} (the same network as the generative model's) and
combines it with the bottom-up estimate by precision weighting (`precision_weighted`)::

    q(z_l | z_{l+1}, x) = N(mu_q, sigma_q^2),  sigma_q^-2 = s_l^-2 + sigma_p^-2,
                          mu_q = (m_l s_l^-2 + mu_p sigma_p^-2) sigma_q^2,

the product of the two Gaussians, normalised. So q(z_1..z_L | x) = q(z_L|x) prod_l q(z_l|z_{l+1}, x)
is drawn top down, like the prior, and shares its top-down path.

Why the Ladder VAE's precision weighting and not NVAE's / VDVAE's residual parameterisation
(q = N(mu_p + dmu, (sigma_p dsigma)^2)): the residual form is made for deep convolutional
hierarchies (tens of groups) where it keeps each KL small at the start and is stabilised by
extra machinery (spectral regularisation, normal-cell tuning, gradient skipping). With 2-3
layers of MLPs on 28x28 images, the regime in which Sønderby et al. report 81.7 nats on
MNIST, precision weighting needs nothing of that: the posterior's variance is never above the
prior's or the bottom-up estimate's in any dimension, both factors are Gaussian so every
layer's KL is closed-form per dimension (what free bits need), and the top layer's posterior is
the bottom-up estimate alone, so the VampPrior at the top, (1/K) sum_k q(z_L | u_k), is the
same network at K learned pseudo-inputs (Tomczak & Welling 2018's construction).

What the model is evaluated as (`ladder_fns`; every value per example, in nats):

- the ELBO: ``log p(x|z_1) - sum_l KL_l`` with one top-down sample, ``KL_l`` the closed-form
  ``KL(q(z_l | z_{l+1}, x) || p(z_l | z_{l+1}))`` at the sampled z_{l+1} (an unbiased estimate
  of the layer's term), and at the top ``KL(q(z_L|x) || N(0, I))`` or, for a mixture prior,
  the one-sample estimate ``log q(z_L|x) - log p(z_L)``. Logged as ``kl_1 .. kl_L`` beside
  ``kl`` (their sum), ``reconstruction`` (``-log p(x|z_1)``) and ``neg_elbo``;
- free bits per layer: each dimension of a closed-form layer's KL counts at least
  ``free_bits`` nats in the loss; a mixture-prior top layer (no per-dimension KL) counts at
  least ``free_bits * d_L`` nats as a whole (its one-sample estimate clamped); the KL
  warm-up weight multiplies the sum of the layers' terms;
- the importance-weighted bound (``objective='iwae'``) and the importance-sampled
  log-likelihood over all layers: weights ``log p(x, z_1..z_L) - log q(z_1..z_L | x)`` at
  top-down posterior samples (`log_weights`, `LogImportanceWeight`).

Codes for figures and metrics: `LadderVAE.posterior_means` is every layer's posterior mean
along the mean path (z_L = E[z_L | x], then z_l = the mean of q(z_l | z_{l+1}, x) at that
mean); ``ModelFns.encode`` returns z_1's (the decoder's input, so decode(encode(x)) is a
reconstruction; the 2-D latent figures need ``d_1 = 2``), ``ModelFns.encode_layers`` all of
them (per-layer active units). ``sample_prior`` draws top down from p(z_L), ..., p(z_1) and
returns z_1; ``decode_image`` decodes z_1.

References:
  Sønderby, Raiko, Maaløe, Sønderby & Winther, `Ladder Variational Autoencoders
  <https://arxiv.org/abs/1602.02282>`_, NeurIPS 2016.
  Tomczak & Welling, `VAE with a VampPrior <https://arxiv.org/abs/1705.07120>`_, AISTATS 2018.
  Vahdat & Kautz, `NVAE <https://arxiv.org/abs/2007.03898>`_, NeurIPS 2020 (the residual form).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from vae_jax import losses
from vae_jax.models import autoregressive, coders, decoding, interface, layers, likelihoods, priors


def precision_weighted(
    mean_a: jax.Array, logvar_a: jax.Array, mean_b: jax.Array, logvar_b: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``(mean, logvar)`` of N(mean_a, exp(logvar_a)) N(mean_b, exp(logvar_b)), normalised.

    ``1/var = 1/var_a + 1/var_b`` and ``mean = (mean_a/var_a + mean_b/var_b) var``, computed in
    log space: ``logvar = -logaddexp(-logvar_a, -logvar_b)`` and the weight of ``mean_a``,
    ``var_b / (var_a + var_b) = sigmoid(logvar_b - logvar_a)``, so no variance or precision is
    formed (none overflows). Shapes broadcast."""
    logvar = -jnp.logaddexp(-logvar_a, -logvar_b)
    mean = mean_a * jax.nn.sigmoid(logvar_b - logvar_a) + mean_b * jax.nn.sigmoid(logvar_a - logvar_b)
    return mean, logvar


class Layer(NamedTuple):
    """One stochastic layer of a top-down pass; every array ``[..., b, d_l]``.

    ``z``: the sample; ``mean``, ``logvar``: q(z_l | z_{l+1}, x) (q(z_L | x) at the top);
    ``prior_mean``, ``prior_logvar``: p(z_l | z_{l+1}), None at the top (p(z_L) is the
    model's top prior, `LadderVAE.log_prior_top`)."""

    z: jax.Array
    mean: jax.Array
    logvar: jax.Array
    prior_mean: jax.Array | None
    prior_logvar: jax.Array | None


class LadderVAE(decoding.Decoding):
    """A VAE with ``len(hierarchy_latents) >= 2`` stochastic layers and top-down inference
    (the module docstring has the model). Fields as `vae.VAE`'s, except:

    ``hierarchy_latents``: ``(d_1, ..., d_L)``, bottom (z_1, the decoder's input) to top;
    ``hierarchy_hidden``: widths of the MLP of every bottom-up block above the first
    (``h_{l-1} -> h_l``) and of every top-down block (``z_{l+1} -> p(z_l | z_{l+1})``);
    ``encoder_hidden``: the first bottom-up block (``x -> h_1``); ``decoder_hidden``: p(x|z_1)'s.
    ``prior`` (`priors.PRIORS`) is p(z_L)'s. The decoder is an MLP (``architecture`` 'mlp').
    """

    encoder_hidden: Sequence[int]
    decoder_hidden: Sequence[int]
    hierarchy_latents: Sequence[int]
    output_shape: Sequence[int]
    hierarchy_hidden: Sequence[int] = (256,)
    activation: str = "relu"
    output_activation: str = "sigmoid"
    decoder_variance: str = "fixed"  # fixed | scalar | per_pixel
    initial_variance: float = 0.05
    autoregressive_features: int = 0
    autoregressive_kernel: int = 7
    autoregressive_layers: int = 1
    autoregressive_z_features: int = 4
    prior: str = "standard_normal"  # of z_L: standard_normal | mixture | vamp
    prior_components: int = 500
    hierarchy_skip: bool = False  # the decoder sees every layer's z, not z_1 alone (`decoder_input`)
    flow_steps: int = 4  # prior='flow' (of z_L): as `vae.VAE`'s
    flow_hidden: Sequence[int] = (256,)
    likelihood: str = "gaussian"
    mixture_components: int = 10
    dropout_rate: float = 0.0  # after every hidden layer of the bottom-up, top-down and decoder MLPs

    architecture = "mlp"  # the decoder's (`coders.make_decoder`); not a field

    def setup(self):
        if len(self.hierarchy_latents) < 2:
            raise ValueError(
                f"A LadderVAE has at least 2 stochastic layers, got hierarchy_latents={tuple(self.hierarchy_latents)}."
            )
        widths = self.hierarchy_latents
        self.bottom_up = [
            layers.DenseStack(
                self.encoder_hidden if layer == 0 else self.hierarchy_hidden, self.activation, self.dropout_rate
            )
            for layer in range(len(widths))
        ]
        self.posterior_heads = [layers.GaussianHeads(d) for d in widths]
        self.top_down = [
            layers.DenseStack(self.hierarchy_hidden, self.activation, self.dropout_rate) for _ in widths[:-1]
        ]
        self.prior_heads = [layers.GaussianHeads(d) for d in widths[:-1]]
        self.decoder = coders.make_decoder(self)
        priors.add_variance_and_prior_params(self, widths[-1])

    @property
    def num_layers(self) -> int:
        return len(self.hierarchy_latents)

    def __call__(self, x: jax.Array, rng: jax.Array | None = None):
        """A top-down posterior sample (noise drawn with ``rng``; the mean path without one,
        enough for ``init``) and its decoding: ``(decoder_output, layers)`` (`infer`)."""
        if rng is None:
            noise = [jnp.zeros((x.shape[0], d)) for d in self.hierarchy_latents]
        else:
            noise = layer_noise(rng, self.hierarchy_latents, x.shape[:1])
        layers = self.infer(x, noise)
        return self.decode(decoder_input(self, [layer.z for layer in layers]), x), layers

    def bottom_up_estimates(self, x: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
        """``[(m_l, logvar s_l^2)]``, bottom to top, each ``[b, d_l]``: the deterministic bottom-up
        pass's Gaussian estimate of each z_l from ``x`` alone."""
        h = x.reshape(x.shape[0], -1)
        estimates = []
        for block, heads in zip(self.bottom_up, self.posterior_heads):
            h = block(h)
            estimates.append(heads(h))
        return estimates

    def infer(self, x: jax.Array, noise: Sequence[jax.Array]) -> tuple[Layer, ...]:
        """The top-down pass of q(z_1..z_L | x): `Layer` s, bottom to top.

        ``noise``: one standard normal array per layer, bottom to top, ``[..., b, d_l]`` (leading
        sample axes allowed: the bottom-up pass runs once per image); ``z_l = mu_q + sigma_q *
        noise_l``. Zero noise gives the mean path (`posterior_means`)."""
        estimates = self.bottom_up_estimates(x)
        top = len(estimates) - 1
        mean, logvar = (jnp.broadcast_to(a, noise[top].shape) for a in estimates[top])
        layers = [Layer(mean + jnp.exp(0.5 * logvar) * noise[top], mean, logvar, None, None)]
        for layer in reversed(range(top)):
            prior_mean, prior_logvar = self.prior_conditional(layer, layers[0].z)
            mean, logvar = precision_weighted(*estimates[layer], prior_mean, prior_logvar)
            z = mean + jnp.exp(0.5 * logvar) * noise[layer]
            layers.insert(0, Layer(z, mean, logvar, prior_mean, prior_logvar))
        return tuple(layers)

    def prior_conditional(self, layer: int, z_above: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(mean, logvar)`` ``[..., d_l]`` of p(z_l | z_{l+1}) at ``z_above`` ``[..., d_{l+1}]``;
        ``layer`` is l - 1 (0 for z_1, up to L - 2)."""
        return self.prior_heads[layer](self.top_down[layer](z_above))

    def posterior_means(self, x: jax.Array) -> tuple[jax.Array, ...]:
        """Every layer's posterior mean along the mean path, bottom to top, each ``[b, d_l]``:
        z_L = E[z_L | x], then each lower layer the mean of q(z_l | z_{l+1}, x) at the mean of
        the layer above (for l < L not E_q[z_l], which has no closed form)."""
        return tuple(layer.z for layer in self.infer(x, [jnp.zeros((x.shape[0], d)) for d in self.hierarchy_latents]))

    def encode(self, x: jax.Array):
        raise ValueError(
            "A LadderVAE's posterior is not one Gaussian q(z|x): its codes are posterior_means(x) (ModelFns.encode "
            "gives z_1's), its importance weights LogImportanceWeight (ModelFns.log_importance_weight)."
        )

    def prior_mixture(self) -> tuple[jax.Array, jax.Array]:
        """``(means, logvars)``, each ``[prior_components, d_L]``, of a mixture p(z_L): the learned
        components, or the VampPrior's q(z_L | u_k), the top bottom-up estimate at the
        pseudo-inputs (clipped to [0, 1])."""
        if self.prior == "mixture":
            return self.prior_means, self.prior_logvars
        return self.bottom_up_estimates(jnp.clip(self.pseudo_inputs, 0.0, 1.0))[-1]

    def log_prior_top(self, z: jax.Array) -> jax.Array:
        """log p(z_L) in nats for ``z`` ``[..., d_L]``; shape ``z.shape[:-1]`` (`priors.log_prob`)."""
        return priors.log_prob(self, z)

    def sample_prior(self, rng: jax.Array, num: int) -> tuple[jax.Array, ...]:
        """``num`` draws of z_1..z_L, top down from p(z_L), p(z_{L-1} | z_L), ..., p(z_1 | z_2):
        one array ``[num, d_l]`` per layer, bottom to top."""
        top_key, *layer_keys = jax.random.split(rng, self.num_layers)
        draws = [priors.sample(self, top_key, num, self.hierarchy_latents[-1])]
        for layer, key in zip(reversed(range(self.num_layers - 1)), layer_keys):
            mean, logvar = self.prior_conditional(layer, draws[0])
            draws.insert(0, losses.reparameterize(key, mean, logvar))
        return tuple(draws)

    def generate(self, rng: jax.Array, num: int) -> jax.Array:
        """Decoder outputs for ``num`` draws of z_1 from the prior (`sample_prior`)."""
        return self.decode(self.sample_prior(rng, num)[0])


def decoder_input(model: LadderVAE, zs: Sequence[jax.Array]) -> jax.Array:
    """What p(x | z_1..z_L) decodes, from one array ``[..., d_l]`` per layer (bottom to top):
    z_1 alone, or with ``model.hierarchy_skip`` every layer's z concatenated, bottom to top
    (``[..., d_1 + ... + d_L]``: skip connections from every upper latent into the decoder, as in
    BIVA and Efficient-VDVAE's top-down decoders). The codes `ModelFns.encode` gives and the
    latents `ModelFns.decode_image` takes are this array."""
    return jnp.concatenate(list(zs), axis=-1) if model.hierarchy_skip else zs[0]


def layer_noise(rng: jax.Array, widths: Sequence[int], leading: tuple[int, ...]) -> list[jax.Array]:
    """Standard normal noise for a top-down pass: one array ``[*leading, d_l]`` per layer,
    bottom to top, layer l's from ``split(rng, L)[l]``."""
    return [jax.random.normal(key, (*leading, d)) for key, d in zip(jax.random.split(rng, len(widths)), widths)]


def layer_kls(model: LadderVAE, params, layers: Sequence[Layer], log_prior_top: jax.Array | None = None):
    """Each layer's KL term ``[..., b]``, bottom to top, and its per-dimension parts.

    Returns ``(kls, per_dimension)``: ``kls[l]`` is the closed-form KL(q(z_l | z_{l+1}, x) ||
    p(z_l | z_{l+1})) at the sampled z_{l+1} (at the top: to N(0, I)), or, for a mixture p(z_L),
    the one-sample estimate ``log q(z_L|x) - log p(z_L)`` (``log_prior_top``, log p(z_L) at the
    sample, is computed when not given); ``per_dimension[l]`` ``[..., b, d_l]`` are the
    closed-form KL's terms per dimension (None for the estimate)."""
    kls, per_dimension = [], []
    for layer in layers:
        if layer.prior_mean is not None:
            dims = losses.gaussian_kl(
                layer.mean[..., None],
                layer.logvar[..., None],
                layer.prior_mean[..., None],
                layer.prior_logvar[..., None],
            )
        elif model.prior == "standard_normal":
            dims = losses.gaussian_kl_to_standard_normal(layer.mean[..., None], layer.logvar[..., None])
        else:
            if log_prior_top is None:
                log_prior_top = model.apply(params, layer.z, method=model.log_prior_top)
            log_q = losses.diagonal_gaussian_log_prob(layer.z, layer.mean, layer.logvar)
            kls.append(log_q - log_prior_top)
            per_dimension.append(None)
            continue
        kls.append(jnp.sum(dims, axis=-1))
        per_dimension.append(dims)
    return kls, per_dimension


def kl_with_free_bits(kl: jax.Array, per_dimension: jax.Array | None, width: int, free_bits: ArrayLike) -> jax.Array:
    """A layer's KL term as the loss counts it with free bits: ``sum_j max(free_bits, KL_j)``
    over its dimensions, or, without a per-dimension KL (a mixture-prior top layer's one-sample
    estimate ``kl``), ``max(free_bits * width, kl)`` (only when ``free_bits > 0``: a negative
    estimate is left as it is without free bits)."""
    if per_dimension is not None:
        return jnp.sum(jnp.maximum(per_dimension, free_bits), axis=-1)
    return jnp.where(free_bits > 0, jnp.maximum(kl, free_bits * width), kl)


def log_joint_and_posterior(
    model: LadderVAE, params, layers: Sequence[Layer], log_prior_top: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """``(log p(z_1..z_L), log q(z_1..z_L | x))`` ``[..., b]`` at the layers' samples:
    ``log p(z_L) + sum_{l<L} log p(z_l | z_{l+1})`` and ``sum_l log q(z_l | z_{l+1}, x)``."""
    if log_prior_top is None:
        log_prior_top = model.apply(params, layers[-1].z, method=model.log_prior_top)
    log_p = log_prior_top + sum(
        losses.diagonal_gaussian_log_prob(layer.z, layer.prior_mean, layer.prior_logvar) for layer in layers[:-1]
    )
    log_q = sum(losses.diagonal_gaussian_log_prob(layer.z, layer.mean, layer.logvar) for layer in layers)
    return log_p, log_q


def log_weights(model: LadderVAE, params, likelihood: str, variance: ArrayLike, x: jax.Array, noise) -> jax.Array:
    """Importance weights ``log p(x, z_1..z_L) - log q(z_1..z_L | x)`` ``[b]`` (nats) at the
    top-down posterior sample of ``noise`` (`LadderVAE.infer`, one ``[b, d_l]`` per layer):
    ``log p(x | z_1) + log p(z_1..z_L) - log q(z_1..z_L | x)``. Its mean over the noise is the
    ELBO; `losses.iwae_bound` of k of them the IWAE bound and the importance-sampled log p(x).
    ``variance``: the Gaussian decoder's (`decoding.decoder_variance`), else unused."""
    layers = model.apply(params, x, noise, method=model.infer)
    decoded = model.apply(params, decoder_input(model, [layer.z for layer in layers]), x, method=model.decode)
    log_p, log_q = log_joint_and_posterior(model, params, layers)
    return likelihoods.log_likelihood(likelihood, x, decoded, variance) + log_p - log_q


@dataclasses.dataclass(frozen=True)
class LogImportanceWeight:
    """``(params, x [b, ...], keys [b]) -> [b]``: one importance weight per image (`log_weights`),
    image i's top-down noise drawn from ``keys[i]`` (`layer_noise` with no leading axes, so an
    image's draw depends on its key only). ``c``: the Gaussian decoder's fixed variance (None
    for other likelihoods). Hashable (a frozen dataclass of the model and two options), so a
    ``jax.tree_util.Partial(LogImportanceWeight(...), params)`` compiled once serves new
    parameters: the hook `likelihood.model_log_likelihood` calls for a `LadderVAE`, also
    ``ModelFns.log_importance_weight``."""

    model: LadderVAE
    likelihood: str
    c: float | None = None

    def __call__(self, params, x: jax.Array, keys: jax.Array) -> jax.Array:
        widths = self.model.hierarchy_latents
        noise = jax.vmap(lambda key: tuple(layer_noise(key, widths, ())))(keys)
        variance = decoding.decoder_variance(self.model, params, self.c)
        return log_weights(self.model, params, self.likelihood, variance, x, list(noise))


def fns(model: LadderVAE, config) -> interface.ModelFns:
    """`interface.ModelFns` of a `LadderVAE` (what `vae.fns` returns for one).

    Loss per example: ``-log p(x|z_1) + beta * kl_weight * sum_l KL_l`` with one top-down sample
    (``objective='elbo'``; the layers' KL terms as the module docstring says, each with free
    bits, `kl_with_free_bits`), or the negative IWAE bound of ``num_train_samples`` top-down
    samples (``'iwae'``; beta and free bits unused). Metrics: ``loss``, ``neg_elbo``,
    ``reconstruction``, ``kl`` and ``kl_1 .. kl_L`` (unclamped, unweighted; with 'iwae'
    averaged over the samples), the diagnostic ``squared_error`` (and ``bits_per_dim`` for
    discretised likelihoods), nats per example.
    """
    objective = config.objective
    num_samples = config.num_train_samples
    likelihood = config.likelihood
    channels = model.output_shape[-1]
    widths = tuple(model.hierarchy_latents)
    mixture_top = model.prior != "standard_normal"
    flat = lambda a: a.reshape(a.shape[0], -1)

    def per_example_metrics(params, x, rng, hyper: interface.Hyper, training: bool = False):
        rngs = None
        if training and model.dropout_rate:  # the step's dropout masks, from its key
            rng, dropout_key = jax.random.split(rng)
            rngs = {"dropout": dropout_key}
        iwae = objective == "iwae"
        leading = (num_samples, x.shape[0]) if iwae else x.shape[:1]
        layers = model.apply(params, x, layer_noise(rng, widths, leading), method=model.infer, rngs=rngs)
        variance = decoding.decoder_variance(model, params, hyper.c)
        if iwae:  # z_1, log p(x|z_1): [num_samples, b, ...]
            repeated = jnp.broadcast_to(x, (num_samples, *x.shape)).reshape(-1, *x.shape[1:])
            flat_z = decoder_input(model, [layer.z for layer in layers])
            outputs = model.apply(
                params, flat_z.reshape(-1, flat_z.shape[-1]), repeated, method=model.decode, rngs=rngs
            )
            log_px = likelihoods.log_likelihood(likelihood, repeated, outputs, variance).reshape(num_samples, -1)
            output = outputs.reshape(num_samples, -1, *outputs.shape[1:])[0]
        else:
            output = model.apply(
                params, decoder_input(model, [layer.z for layer in layers]), x, method=model.decode, rngs=rngs
            )
            log_px = likelihoods.log_likelihood(likelihood, x, output, variance)
        log_prior_top = None
        if iwae or mixture_top:  # log p(z_L) at the samples, once (the VampPrior encodes its pseudo-inputs)
            log_prior_top = model.apply(params, layers[-1].z, method=model.log_prior_top, rngs=rngs)
        kls, per_dimension = layer_kls(model, params, layers, log_prior_top)
        if iwae:
            log_p, log_q = log_joint_and_posterior(model, params, layers, log_prior_top)
            loss = -losses.iwae_bound(log_px, log_p, log_q)
            log_px = jnp.mean(log_px, axis=0)
            kls = [jnp.mean(kl, axis=0) for kl in kls]
        else:
            terms = kls
            if not interface.is_zero(hyper.free_bits):  # traced: always
                terms = [kl_with_free_bits(*t, hyper.free_bits) for t in zip(kls, per_dimension, widths)]
            loss = -losses.elbo(log_px, sum(terms), beta=hyper.beta * hyper.kl_weight)
        kl = sum(kls)
        metrics = {
            "loss": loss,
            "neg_elbo": -losses.elbo(log_px, kl),
            "reconstruction": -log_px,
            "kl": kl,
            **{f"kl_{layer + 1}": value for layer, value in enumerate(kls)},
            "squared_error": losses.squared_error(flat(x), flat(likelihoods.to_image(likelihood, output, channels))),
        }
        if likelihood in likelihoods.DISCRETIZED_LIKELIHOODS:
            metrics["bits_per_dim"] = likelihoods.bits_per_dim(metrics["neg_elbo"], flat(x).shape[-1])
        return metrics

    def encode_layers(params, x):
        return model.apply(params, x, method=model.posterior_means)

    def encode(params, x):
        return decoder_input(model, encode_layers(params, x))

    def decode_image(params, z):
        if model.autoregressive:
            return autoregressive.greedy_autoregressive_images(model, params, z)
        return likelihoods.to_image(likelihood, model.apply(params, z, method=model.decode), channels)

    def sample_prior(params, key, num):
        return decoder_input(model, model.apply(params, key, num, method=model.sample_prior))

    def sample(params, key, z):
        if model.autoregressive:
            return autoregressive.sample_autoregressive_images(model, params, key, z)
        variance = decoding.decoder_variance(model, params, config.c)
        output = model.apply(params, z, method=model.decode)
        return likelihoods.sample_images(likelihood, key, output, variance, channels)

    c = float(config.c) if likelihood == "gaussian" and model.decoder_variance == "fixed" else None
    top_prior = priors.DESCRIPTIONS[model.prior]
    return interface.ModelFns(
        per_example_metrics,
        encode,
        decode_image,
        standard_normal_prior=False,  # z_1's marginal is not N(0, I)
        diagnostics=("squared_error",),
        sample_prior=sample_prior,
        sample_images=sample,
        encode_layers=encode_layers,
        log_importance_weight=LogImportanceWeight(model, likelihood, c),
        init=lambda key: model.init(  # the mean path
            key,
            jnp.zeros((1, *model.output_shape), jnp.float32),
            method=model.initialize if model.prior == "flow" else None,
        ),
        module=model,
        label="ladder VAE",
        likelihood=likelihood,
        latent_sizes=widths,
        prior_description=f"the ladder's prior (z_L ~ {top_prior}, each z_l ~ p(z_l | z_l+1))",
        autoregressive=model.autoregressive,
    )


def build(config, image_shape) -> interface.ModelFns:
    """The `interface.ModelFns` of the ladder VAE of ``config`` (``config.model.hierarchy_latents``
    set; ``config.c`` starts a learned decoder variance) for images of ``image_shape``."""
    module = coders.module_from_config(
        LadderVAE, config, image_shape, initial_variance=config.c, likelihood=config.likelihood
    )
    return fns(module, config)
