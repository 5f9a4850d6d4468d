"""Importance-sampled log p(x) against the exact value, for models with 2 latents.

With 2 latents, log p(x) = log ∫ p(x|z) p(z) dz can be computed by brute force: logsumexp over
a fine grid of z of log p(x|z) + log p(z) + log(cell area) (`exact_posterior`). The tests
compare `likelihood.model_log_likelihood` (k = 16,000 samples from q(z|x)) with it, per image, for
the routes that have no closed form: a factorised Bernoulli decoder, an autoregressive decoder
(log p(x|z) is one teacher-forced pass), a mixture-of-Gaussians prior and a VampPrior.

The models are small (4x4 binary images, MLPs of width 16-32) and not trained; instead:
- the decoder's first layer is scaled up (`sharpen`) so that p(x|z) depends strongly on z (the
  posterior std is 0.3-0.6 for the factorised decoder, not ~1) and the prior matters: the
  mixture priors here move log p(x) by 0.5-4.3 nats per image against N(0, I);
- the encoder's output layers are solved by least squares (`fit_encoder_heads`) so that q(z|x)
  is the exact posterior's mean and twice its variance (from the same grid): a proposal like
  that of a trained VAE, which keeps the estimator's noise well below the tolerance.
The estimator is consistent for any q, so neither step makes the comparison easier to pass
for a wrong estimator; they only make it sharp.

Tolerance: |L_k(x_i) - log p(x_i)| < 0.05 nats for every image, and < 0.02 for the mean over
the 6 images. Measured (sample keys 0-9): errors with standard deviation 0.005-0.008 nats and
at most 0.016 (factorised), 0.015 (autoregressive), 0.030 (mixture) and 0.020 (VampPrior; the
mixture posteriors are not Gaussian); k = 4000 had twice the noise (up to 0.06). What the
tolerance catches: a missing ``- log k`` is off by log 16000 = 9.7 nats; a prior ignored (N(0, I)
instead) by 0.5-4.3 nats; samples past k in the last chunk counted (k = 16,000 in chunks of
6000, 18,000 drawn) by log(18000 / 16000) = 0.12 nats; an autoregressive decoder given the
wrong context (zeros for x) by 0.05-0.7 nats.

Grid error: the grid `GRID` (401 x 401 points on [-6, 6]^2, spacing 0.03) agrees with one of
1001 x 1001 points on [-9, 9]^2 within 1e-5 nats; each test checks it against the coarser,
wider `CHECK_GRID` (201 x 201 on [-8, 8]^2, within 4e-4 measured) to 1e-3, far below the
tolerance.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import config as vae_config
from vae_jax.evaluation import likelihood
from vae_jax.models import layers, likelihoods, registry, vae

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

IMAGE = (4, 4, 1)
NUM_IMAGES = 6
NUM_SAMPLES = 16000
SAMPLE_CHUNK = 6000  # 3 chunks: the last one has 2000 samples past k, which must get weight 0
DATA_CHUNK = 4  # 2 chunks: the last one padded
TOLERANCE = 0.05  # nats, per image (see the module docstring)
MEAN_TOLERANCE = 0.02  # nats, the mean over the images
GRID = dict(points=401, half=6.0)
CHECK_GRID = dict(points=201, half=8.0)
INFLATION = 2.0  # q's variance / the posterior's
GRID_AGREEMENT = 1e-3
# Mixture priors away from N(0, I): component means and log-variances.
MIXTURE = (jnp.array([[1.5, 1.5], [-2.0, 0.5], [0.5, -2.0]]), jnp.full((3, 2), math.log(0.5)))
VAMP = (jnp.array([[-1.5, 1.0], [2.0, -0.5], [0.0, 2.0]]), jnp.full((3, 2), math.log(0.3)))


def build(prior="standard_normal", autoregressive_features=0):
    config = vae_config.default_config()
    config.likelihood = "bernoulli"
    config.model.latents = 2
    config.model.encoder_hidden = (32,)  # > images + pseudo-inputs: the heads can be fitted exactly
    config.model.decoder_hidden = (16,)
    config.model.prior = prior
    config.model.prior_components = 3
    config.model.autoregressive_features = autoregressive_features
    config.model.autoregressive_kernel = 3
    config.model.autoregressive_z_features = 2
    return config, registry.build(config, IMAGE).module


def binary_images(n=NUM_IMAGES, seed=0):
    return (jax.random.uniform(jax.random.key(seed), (n, *IMAGE)) < 0.4).astype(jnp.float32)


def init(model):
    key = jax.random.key(0)
    params = model.init(key, binary_images(), key)
    return jax.tree.map(jnp.asarray, params)  # a copy (new nested dicts) to edit


def sharpen(params, factor=3.0):
    """Scales the first layer of the decoder (of its latent part, for an autoregressive one) so
    that p(x|z) varies with z; for an autoregressive decoder also its per-pixel conditioning on z
    and its masked convolution, so that each pixel depends on z and on the pixels before it."""
    decoder = params["params"]["decoder"]
    latent_part = decoder.get("base", decoder)
    latent_part["body"]["Dense_0"]["kernel"] = factor * latent_part["body"]["Dense_0"]["kernel"]
    if "condition" in decoder:
        decoder["condition"]["kernel"] = factor * decoder["condition"]["kernel"]
        decoder["context"]["taps"]["kernel"] = factor * decoder["context"]["taps"]["kernel"]
    return params


def grid(points, half):
    """``(z [points^2, 2], log cell area)``: ``points`` x ``points`` equally spaced points on
    [-half, half]^2, ends included."""
    axis = np.linspace(-half, half, points)
    z = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    return jnp.asarray(z, jnp.float32), 2 * math.log(axis[1] - axis[0])


@functools.partial(jax.jit, static_argnums=0)
def log_joint(model, params, x, z):
    """``[n, len(z)]`` log p(x|z) + log p(z): the model's decoder output under
    `likelihoods.log_likelihood` (one teacher-forced pass for an autoregressive decoder) and
    `vae.VAE.log_prior`. ``params`` and ``z`` are arguments, not constants folded at compile time."""
    log_pz = model.apply(params, z, method=model.log_prior)

    def one_image(image):
        xs = jnp.broadcast_to(image, (len(z), *image.shape))
        return likelihoods.log_likelihood("bernoulli", xs, model.apply(params, z, xs, method=model.decode)) + log_pz

    return jax.lax.map(one_image, x)


def exact_posterior(model, params, x):
    """``(log p(x) [n], posterior mean [n, 2], posterior variance [n, 2])`` on the grid `GRID`;
    log p(x) is checked against the coarser, wider `CHECK_GRID`."""
    z, log_cell = grid(**GRID)
    joint = log_joint(model, params, x, z)
    exact = np.asarray(jax.nn.logsumexp(joint, axis=-1) + log_cell)
    check_z, check_log_cell = grid(**CHECK_GRID)
    check = np.asarray(jax.nn.logsumexp(log_joint(model, params, x, check_z), axis=-1) + check_log_cell)
    assert np.max(np.abs(exact - check)) < GRID_AGREEMENT, (exact, check)
    weights = jax.nn.softmax(joint, axis=-1)
    mean = weights @ z
    return exact, mean, weights @ z**2 - mean**2


def fit_encoder_heads(config, params, inputs, means, logvars):
    """Sets the encoder's ``mean`` and ``logvar`` layers so that q(z|inputs[i]) =
    N(means[i], exp(logvars[i])): least squares on the encoder body's features (exact, as the
    body is wider than the number of inputs)."""
    encoder = params["params"]["encoder"]
    body = layers.MLP(tuple(config.model.encoder_hidden), config.model.activation)
    features = np.asarray(body.apply({"params": encoder["body"]}, inputs), np.float64)
    features = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    for name, target in (("mean", means), ("logvar", logvars)):
        target = np.asarray(target, np.float64)
        weights = np.linalg.lstsq(features, target, rcond=None)[0]
        assert np.max(np.abs(features @ weights - target)) < 1e-4
        encoder[name] = {
            "kernel": jnp.asarray(weights[:-1], jnp.float32),
            "bias": jnp.asarray(weights[-1], jnp.float32),
        }
    return params


def exact_and_fitted_proposal(config, model, params, x, fixed=None):
    """``(exact log p(x) [n], params)`` with q(z|x_i) := N(posterior mean, INFLATION x posterior
    variance) for each image. ``fixed`` ``(inputs, means, logvars)``: further encoder outputs to
    keep (a VampPrior's components; the prior, so log p(x), stays as it is)."""
    exact, mean, variance = exact_posterior(model, params, x)
    inputs, means, logvars = x, mean, jnp.log(INFLATION * variance)
    if fixed is not None:
        inputs, means, logvars = (jnp.concatenate([a, b]) for a, b in zip(fixed, (inputs, means, logvars)))
    return exact, fit_encoder_heads(config, params, inputs, means, logvars)


def importance_sampled(model, params, config, x, seed=1):
    result = likelihood.model_log_likelihood(
        vae.fns(model, config),
        params,
        x,
        jax.random.key(seed),
        num_samples=NUM_SAMPLES,
        sample_chunk=SAMPLE_CHUNK,
        data_chunk=DATA_CHUNK,
    )
    assert result["num_samples"] == NUM_SAMPLES and result["nll"] == pytest.approx(-np.mean(result["per_example"]))
    return result["per_example"]


def assert_close(estimate, exact):
    np.testing.assert_array_less(np.abs(estimate - exact), TOLERANCE)
    assert abs(np.mean(estimate - exact)) < MEAN_TOLERANCE, estimate - exact


def without_prior(params):
    """The encoder and decoder of ``params``: those of the same model with the N(0, I) prior."""
    return {"params": {name: params["params"][name] for name in ("encoder", "decoder")}}


def brute_force_mixture(z, means, logvars):
    """log (1/K) sum_k N(z; m_k, diag exp(logvar_k)) in float64 numpy."""
    z, means, logvars = (np.asarray(a, np.float64) for a in (z, means, logvars))
    per_component = -0.5 * np.sum(
        (z[:, None] - means) ** 2 / np.exp(logvars) + logvars + math.log(2 * math.pi), axis=-1
    )
    top = per_component.max(axis=-1)
    return top + np.log(np.mean(np.exp(per_component - top[:, None]), axis=-1))


@pytest.mark.parametrize("autoregressive_features", [0, 8], ids=["factorised", "autoregressive"])
def test_bernoulli_decoder_with_the_standard_normal_prior(autoregressive_features):
    config, model = build(autoregressive_features=autoregressive_features)
    assert model.autoregressive == (autoregressive_features > 0)
    x = binary_images()
    exact, params = exact_and_fitted_proposal(config, model, sharpen(init(model)), x)
    estimate = importance_sampled(model, params, config, x)
    assert_close(estimate, exact)


@pytest.mark.parametrize("prior", ["mixture", "vamp"])
def test_mixture_priors_away_from_the_standard_normal(prior):
    """The estimate follows log p(x) under a 3-component prior whose means are away from 0, and
    that differs from log p(x) under N(0, I) (same encoder and decoder) by far more than the
    tolerance: an estimator that ignored the prior would fail."""
    config, model = build(prior)
    x = binary_images()
    params = sharpen(init(model))
    means, logvars = MIXTURE if prior == "mixture" else VAMP
    if prior == "mixture":
        params["params"]["prior_means"], params["params"]["prior_logvars"] = means, logvars
        exact, params = exact_and_fitted_proposal(config, model, params, x)
    else:  # the VampPrior's components are the encoder's posteriors at the pseudo-inputs: set them
        pseudo = jax.random.uniform(jax.random.key(2), (3, *IMAGE))
        params["params"]["pseudo_inputs"] = pseudo
        params = fit_encoder_heads(config, params, pseudo, means, logvars)
        exact, params = exact_and_fitted_proposal(config, model, params, x, fixed=(pseudo, means, logvars))
    z = jax.random.normal(jax.random.key(3), (50, 2)) * 2.0
    np.testing.assert_allclose(
        model.apply(params, z, method=model.log_prior), brute_force_mixture(z, means, logvars), rtol=1e-4, atol=1e-4
    )
    estimate = importance_sampled(model, params, config, x)
    assert_close(estimate, exact)

    # Under N(0, I) (the same encoder and decoder) log p(x) is 0.5-4.3 nats higher per image.
    _, standard = build()
    exact_standard = exact_posterior(standard, without_prior(params), x)[0]
    assert np.min(np.abs(estimate - exact_standard)) > 5 * TOLERANCE, estimate - exact_standard


def test_the_autoregressive_flow_prior():
    """The estimate follows log p(x) under a 2-step flow prior moved away from its identity start
    (its density checked against the change of variables in tests/test_flows.py), and log p(x)
    differs from that under N(0, I) by far more than the tolerance."""
    config, model = build("flow")
    config.model.flow_steps, config.model.flow_hidden = 2, (16,)
    model = registry.build(config, IMAGE).module
    key = jax.random.key(0)
    params = jax.tree.map(jnp.asarray, model.init(key, binary_images(), key, method=model.initialize))
    flow = params["params"]["flow_prior"]
    leaves, tree = jax.tree.flatten(flow)
    keys = jax.random.split(jax.random.key(5), len(leaves))
    params["params"]["flow_prior"] = jax.tree.unflatten(
        tree, [leaf + 0.25 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)]
    )
    x = binary_images()
    exact, params = exact_and_fitted_proposal(config, model, sharpen(params), x)
    estimate = importance_sampled(model, params, config, x)
    assert_close(estimate, exact)
    _, standard = build()
    exact_standard = exact_posterior(standard, without_prior(params), x)[0]
    assert np.mean(np.abs(estimate - exact_standard)) > 5 * TOLERANCE, estimate - exact_standard
