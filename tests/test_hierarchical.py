"""The ladder VAE (`vae_jax.models.ladder`): shapes, the ELBO by hand, closed-form against Monte
Carlo KLs, the importance-sampled log p(x) against the exact one, free bits per layer, the
VampPrior at the top with the autoregressive decoder at the bottom, and the empty hierarchy
(the one-layer VAE, unchanged).

The models are tiny (4x4 or 8x8 binary images, MLPs of width 4-16) and untrained, so every
test runs in seconds; the by-hand references are float64 numpy re-implementations written
from the module docstring's formulas (textbook forms, not the code's log-space ones).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import config as config_lib
from vae_jax.models import interface, ladder, registry, vae
from vae_jax.training import programs, validation

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

IMAGE = (4, 4, 1)


def ladder_config(widths=(3, 2), **changes):
    """A resolved config of a tiny ladder VAE on binary images (Bernoulli likelihood)."""
    config = config_lib.default_config()
    config.data.name = "binarized_mnist"
    config.likelihood = "bernoulli"
    config.model.encoder_hidden = (16,)
    config.model.decoder_hidden = (12,)
    config.model.hierarchy_latents = tuple(widths)
    config.model.hierarchy_hidden = (8,)
    config.model.prior_components = 3
    for key, value in changes.items():
        node = config
        *path, leaf = key.split(".")
        for name in path:
            node = node[name]
        node[leaf] = value
    return config_lib.resolve(config)


def build(config, image=IMAGE, seed=0):
    fns = registry.build(config, image)
    model = fns.module
    params = programs.create_train_state(fns, config, 1, jax.random.key(seed), 0).params
    return fns, model, params


def binary_images(n, image=IMAGE, seed=1):
    return (jax.random.uniform(jax.random.key(seed), (n, *image)) < 0.4).astype(jnp.float32)


# ----------------------------------------------------------------------------- by hand (float64)


def dense(p, h):
    return h @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)


def stack(block, h):
    """`layers.DenseStack` (relu) from its parameters ``Dense_0, Dense_1, ...``."""
    for i in range(len(block)):
        h = np.maximum(dense(block[f"Dense_{i}"], h), 0.0)
    return h


def normal_log_prob(z, mean, logvar):
    return -0.5 * np.sum((z - mean) ** 2 / np.exp(logvar) + logvar + math.log(2 * math.pi), axis=-1)


def normal_kl(mean_q, logvar_q, mean_p, logvar_p):
    """KL(N(mean_q, var_q) || N(mean_p, var_p)) summed over the last axis (the textbook form)."""
    var_q, var_p = np.exp(logvar_q), np.exp(logvar_p)
    return 0.5 * np.sum(np.log(var_p / var_q) + (var_q + (mean_q - mean_p) ** 2) / var_p - 1.0, axis=-1)


def by_hand(params, x, noise):
    """z, q and p of every layer, and log p(x | z_1) (Bernoulli), of the tiny MLP ladder."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params["params"])
    num_layers = len(noise)
    h = np.asarray(x, np.float64).reshape(len(x), -1)
    estimates = []
    for layer in range(num_layers):
        h = stack(p[f"bottom_up_{layer}"], h)
        heads = p[f"posterior_heads_{layer}"]
        estimates.append((dense(heads["mean"], h), dense(heads["logvar"], h)))
    z, q, prior = [None] * num_layers, [None] * num_layers, [None] * num_layers
    mean, logvar = estimates[-1]
    z[-1], q[-1] = mean + np.exp(0.5 * logvar) * noise[-1], (mean, logvar)
    for layer in reversed(range(num_layers - 1)):
        t = stack(p[f"top_down_{layer}"], z[layer + 1])
        heads = p[f"prior_heads_{layer}"]
        prior_mean, prior_logvar = dense(heads["mean"], t), dense(heads["logvar"], t)
        bottom_mean, bottom_logvar = estimates[layer]
        precision = np.exp(-bottom_logvar) + np.exp(-prior_logvar)  # the product of the two Gaussians
        mean = (bottom_mean * np.exp(-bottom_logvar) + prior_mean * np.exp(-prior_logvar)) / precision
        logvar = -np.log(precision)
        z[layer], q[layer], prior[layer] = (
            mean + np.exp(0.5 * logvar) * noise[layer],
            (mean, logvar),
            (prior_mean, prior_logvar),
        )
    logits = dense(p["decoder"]["out"], stack(p["decoder"]["body"], z[0]))
    target = np.asarray(x, np.float64).reshape(len(x), -1)
    log_px = np.sum(target * -np.logaddexp(0, -logits) + (1 - target) * -np.logaddexp(0, logits), axis=-1)
    return z, q, prior, log_px


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("widths", [(3, 2), (4, 3, 2)])
def test_shapes_of_every_output(widths):
    config = ladder_config(widths)
    fns, model, params = build(config)
    assert isinstance(model, ladder.LadderVAE) and model.num_layers == len(widths)
    x, b = binary_images(5), 5
    layers = model.apply(params, x, ladder.layer_noise(jax.random.key(2), widths, (b,)), method=model.infer)
    for layer, d in zip(layers, widths):
        assert layer.z.shape == layer.mean.shape == layer.logvar.shape == (b, d)
    assert all(layer.prior_mean.shape == layer.prior_logvar.shape == (b, d) for layer, d in zip(layers[:-1], widths))
    assert layers[-1].prior_mean is None  # p(z_L) is the top prior
    metrics = fns.per_example_metrics(params, x, jax.random.key(3), interface.hyper(config))
    kl_names = [f"kl_{layer}" for layer in range(1, len(widths) + 1)]
    assert set(metrics) == {"loss", "neg_elbo", "reconstruction", "kl", "squared_error", *kl_names}
    assert all(value.shape == (b,) for value in metrics.values())
    assert fns.encode(params, x).shape == (b, widths[0])
    assert [codes.shape for codes in fns.encode_layers(params, x)] == [(b, d) for d in widths]
    np.testing.assert_array_equal(fns.encode(params, x), fns.encode_layers(params, x)[0])
    z = fns.sample_prior(params, jax.random.key(4), 6)
    assert z.shape == (6, widths[0])
    assert [a.shape for a in model.apply(params, jax.random.key(4), 6, method=model.sample_prior)] == [
        (6, d) for d in widths
    ]
    images = fns.decode_image(params, z)
    assert images.shape == (6, *IMAGE) and 0.0 <= float(images.min()) <= float(images.max()) <= 1.0
    assert fns.sample_images(params, jax.random.key(5), z).shape == (6, *IMAGE)
    assert fns.log_importance_weight(params, x, jax.random.split(jax.random.key(6), b)).shape == (b,)
    iwae = ladder_config(widths, objective="iwae", num_train_samples=3)
    iwae_metrics = build(iwae)[0].per_example_metrics(params, x, jax.random.key(3), interface.hyper(iwae))
    assert set(iwae_metrics) == set(metrics) and all(value.shape == (b,) for value in iwae_metrics.values())
    with pytest.raises(ValueError, match="not one Gaussian"):  # metrics must not treat it as a one-layer VAE
        model.apply(params, x, method=model.encode)


@pytest.mark.parametrize("widths", [(3, 2), (4, 3, 2)])
def test_one_sample_elbo_and_weights_by_hand(widths):
    """With fixed parameters and noise: the ELBO's terms, the per-layer closed-form KLs and the
    log weight log p(x|z_1) + sum_l log p(z_l|z_{l+1}) + log p(z_L) - sum_l log q(z_l|...)
    equal a float64 re-implementation (float32 rounding: 1e-4 nats on values of ~10)."""
    config = ladder_config(widths)
    fns, model, params = build(config)
    x, key = binary_images(4), jax.random.key(7)
    noise = ladder.layer_noise(key, widths, (4,))  # what per_example_metrics draws with `key`
    z, q, prior, log_px = by_hand(params, x, [np.asarray(n, np.float64) for n in noise])
    kls = [normal_kl(*q[layer], *prior[layer]) for layer in range(len(widths) - 1)]
    kls.append(normal_kl(*q[-1], np.zeros_like(z[-1]), np.zeros_like(z[-1])))  # the top: to N(0, I)
    metrics = fns.per_example_metrics(params, x, key, interface.hyper(config))
    tolerance = dict(rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(metrics["reconstruction"], -log_px, **tolerance)
    for layer, kl in enumerate(kls):
        np.testing.assert_allclose(metrics[f"kl_{layer + 1}"], kl, **tolerance)
    np.testing.assert_allclose(metrics["neg_elbo"], -log_px + sum(kls), **tolerance)
    np.testing.assert_allclose(metrics["loss"], metrics["neg_elbo"], rtol=1e-6)

    log_p = normal_log_prob(z[-1], 0.0, 0.0) + sum(normal_log_prob(z[l], *prior[l]) for l in range(len(widths) - 1))
    log_q = sum(normal_log_prob(z[l], *q[l]) for l in range(len(widths)))
    weights = ladder.log_weights(model, params, "bernoulli", None, x, noise)
    np.testing.assert_allclose(weights, log_px + log_p - log_q, **tolerance)
    # IWAE with one sample: the negative log weight of the sample drawn with the same key.
    iwae = ladder_config(widths, objective="iwae", num_train_samples=1)
    iwae_loss = build(iwae)[0].per_example_metrics(params, x, key, interface.hyper(iwae))["loss"]
    one = ladder.layer_noise(key, widths, (1, 4))
    np.testing.assert_allclose(
        iwae_loss, -ladder.log_weights(model, params, "bernoulli", None, x, [n[0] for n in one]), **tolerance
    )


def test_closed_form_kls_are_the_monte_carlo_differences_in_expectation():
    """Each layer's closed-form KL(q(z_l|z_{l+1},x) || p(z_l|z_{l+1})) at the sampled z_{l+1}
    (and the top's to N(0, I)) is E[log q(z_l|...) - log p(z_l|...)] over z_l ~ q: the per-sample
    difference D = (log q - log p) - KL has mean 0. With N = 20,000 top-down samples per image
    the mean of D is checked against 5 standard errors of it (std(D) / sqrt(N), estimated: a
    false alarm has probability < 1e-6 per check), while the KLs are 0.35-3.5 nats: a wrong sign or
    a missing term (e.g. the prior's variance) is off by tenths of a nat or more."""
    widths = (4, 3, 2)
    config = ladder_config(widths, **{"model.activation": "tanh"})  # no dead units: every image's q differs
    _, model, params = build(config)
    params = jax.tree_util.tree_map_with_path(  # sharper posteriors: KLs of nats, not hundredths
        lambda path, a: 3.0 * a if "posterior_heads" in jax.tree_util.keystr(path) else a, params
    )
    x, n = binary_images(3), 20_000
    layers = model.apply(params, x, ladder.layer_noise(jax.random.key(8), widths, (n, 3)), method=model.infer)
    kls, _ = ladder.layer_kls(model, params, layers)
    for index, (layer, kl) in enumerate(zip(layers, kls)):
        z, mean, logvar = (np.asarray(a, np.float64) for a in (layer.z, layer.mean, layer.logvar))
        if layer.prior_mean is None:  # the top: N(0, I)
            prior = (0.0, 0.0)
        else:
            prior = (np.asarray(layer.prior_mean, np.float64), np.asarray(layer.prior_logvar, np.float64))
        difference = normal_log_prob(z, mean, logvar) - normal_log_prob(z, *prior) - np.asarray(kl, np.float64)
        standard_error = difference.std(axis=0) / math.sqrt(n)  # [3 images]
        assert np.all(np.abs(difference.mean(axis=0)) <= 5 * standard_error), (index, difference.mean(0))
        assert np.all(np.asarray(kl).mean(axis=0) > 0.3), index  # the check has something to see


def test_sample_prior_draws_top_down():
    """z_L ~ N(0, I), then z_l ~ p(z_l | z_{l+1}) at the drawn z_{l+1}: over 20,000 draws the
    standardised residuals (z_l - mu_p(z_{l+1})) / sigma_p(z_{l+1}) have mean 0 and variance 1
    within 5 standard errors (0.035 for the mean; 0.05 for the variance)."""
    widths, n = (4, 3, 2), 20_000
    _, model, params = build(ladder_config(widths))
    draws = model.apply(params, jax.random.key(12), n, method=model.sample_prior)
    residuals = [np.asarray(draws[-1], np.float64)]
    for layer in range(len(widths) - 1):
        mean, logvar = model.apply(params, layer, draws[layer + 1], method=model.prior_conditional)
        residuals.append(np.asarray((draws[layer] - mean) * jnp.exp(-0.5 * logvar), np.float64))
    for r in residuals:
        np.testing.assert_allclose(r.mean(axis=0), 0.0, atol=5 / math.sqrt(n))
        np.testing.assert_allclose(r.var(axis=0), 1.0, atol=5 * math.sqrt(2 / n))


def exact_log_px(model, params, x, half=7.0, points=281):
    """log p(x) = log ∫∫ p(x|z_1) p(z_1|z_2) p(z_2) dz_1 dz_2 on a grid, for widths (1, 1)."""
    grid = jnp.linspace(-half, half, points)
    z1, z2 = (a.reshape(-1, 1) for a in jnp.meshgrid(grid, grid, indexing="ij"))
    prior_mean, prior_logvar = model.apply(params, 0, z2, method=model.prior_conditional)
    log_prior = model.apply(params, z2, method=model.log_prior_top) + jax.vmap(
        lambda z, m, v: -0.5 * jnp.sum((z - m) ** 2 / jnp.exp(v) + v + math.log(2 * math.pi))
    )(z1, prior_mean, prior_logvar)
    logits = model.apply(params, z1, method=model.decode).reshape(len(z1), -1)
    flat = x.reshape(len(x), -1)
    log_px_z = flat @ jax.nn.log_sigmoid(logits).T + (1 - flat) @ jax.nn.log_sigmoid(-logits).T  # [n, grid]
    cell = 2 * math.log(float(grid[1] - grid[0]))
    return jax.nn.logsumexp(log_px_z + log_prior[None], axis=-1) + cell


@pytest.mark.parametrize("prior", ["standard_normal", "vamp"])
def test_importance_sampled_likelihood_rises_with_k_to_the_exact_value(prior):
    """E[L_k], from one pool of 20,000 log weights per image of `ModelFns.log_importance_weight`
    split into groups of k, rises with k and stays below log p(x); L_20000 is log p(x) within
    0.05 nats per image. log p(x) = log ∫∫ p(x|z_1) p(z_1|z_2) p(z_2) dz_1 dz_2 on a 281 x 281
    grid over [-7, 7]^2 (widths (1, 1); within 0.002 nats of a 501 x 501 grid over [-9, 9]^2).

    Measured (three seeds; N(0, I) / VampPrior top): E[L_1] -16.3 / -18.7, E[L_10] -12.37 /
    -12.83, E[L_100] -12.22 / -12.51, E[L_1000] -12.21 / -12.48 against log p(x) -12.22 / -12.48;
    L_20000 within 0.02 / 0.04 of it per image. The estimates of E[L_k] are noisy by about 0.01
    nats (0.02 for k = 1000: 20 groups): the margins below are theirs. The VampPrior's
    pseudo-inputs are random binary images with sharpened posteriors, which moves log p(x) by
    0.2-0.3 nats per image against N(0, I) on z_2 (checked: > 0.15): a top prior left out of
    the weights would fail."""
    config = ladder_config((1, 1), **{"model.prior": prior})
    fns, model, params = build(config)
    p = params["params"]  # sharper: p(x|z_1) depends on z_1, p(z_1|z_2) on z_2 (a posterior far from q)
    p["decoder"]["body"]["Dense_0"]["kernel"] = 4.0 * p["decoder"]["body"]["Dense_0"]["kernel"]
    p["prior_heads_0"]["mean"]["kernel"] = 3.0 * p["prior_heads_0"]["mean"]["kernel"]
    if prior == "vamp":  # components away from N(0, I)
        p["pseudo_inputs"] = binary_images(3, seed=4)
        p["posterior_heads_1"]["mean"]["kernel"] = 4.0 * p["posterior_heads_1"]["mean"]["kernel"]
    x, pool = binary_images(4, seed=3), 20_000
    keys = jax.vmap(lambda s: jax.random.split(jax.random.fold_in(jax.random.key(9), s), 4))(jnp.arange(pool))
    weights = jax.jit(jax.vmap(fns.log_importance_weight, in_axes=(None, None, 0)))(params, x, keys)
    log_w = np.asarray(weights, np.float64)  # [pool, images]
    exact = np.asarray(exact_log_px(model, params, x), np.float64)
    if prior == "vamp":  # the same networks with N(0, I) on z_2: another log p(x)
        standard = build(ladder_config((1, 1)))[1]
        without = {"params": {name: value for name, value in p.items() if name != "pseudo_inputs"}}
        assert np.all(np.abs(exact - np.asarray(exact_log_px(standard, without, x))) > 0.15)

    def expected_bound(k):  # the mean over images of E[L_k]: groups of k weights
        groups = log_w.reshape(pool // k, k, -1)
        top = groups.max(axis=1, keepdims=True)
        return float(np.mean(top[:, 0] + np.log(np.mean(np.exp(groups - top), axis=1))))

    bounds = [expected_bound(k) for k in (1, 10, 100, 1000)]
    assert bounds[0] < bounds[1] - 0.5 and bounds[1] < bounds[2] - 0.03 and bounds[2] < bounds[3] + 0.02, bounds
    assert max(bounds) < float(exact.mean()) + 0.03, (bounds, exact.mean())
    top = log_w.max(axis=0)
    estimate = top + np.log(np.mean(np.exp(log_w - top), axis=0))
    np.testing.assert_allclose(estimate, exact, atol=0.05)


def test_empty_hierarchy_is_the_one_layer_vae():
    """``hierarchy_latents=()`` (the default) builds exactly the `vae.VAE` of before: the same
    module, parameters and metrics (no kl_1), and `vae.fns` without the ladder's hooks."""
    config = ladder_config(())
    config.unlock()
    config.model.latents = 3
    fns, model, params = build(config)
    assert type(model) is vae.VAE and fns.encode_layers is None and fns.log_importance_weight is None
    direct = vae.VAE((16,), (12,), 3, IMAGE, output_activation="none", likelihood="bernoulli", prior_components=3)
    assert model == direct
    direct_params = direct.init(jax.random.key(0), jnp.zeros((1, *IMAGE)), jax.random.key(0))
    jax.tree.map(np.testing.assert_array_equal, params, direct_params)
    x = binary_images(4)
    metrics = fns.per_example_metrics(params, x, jax.random.key(2), interface.hyper(config))
    assert set(metrics) == {"loss", "neg_elbo", "reconstruction", "kl", "squared_error"}
    reference = vae.fns(direct, config).per_example_metrics(
        direct_params, x, jax.random.key(2), interface.hyper(config)
    )
    jax.tree.map(np.testing.assert_array_equal, metrics, reference)


@pytest.mark.parametrize("prior", ["standard_normal", "vamp"])
def test_free_bits_count_per_layer_in_the_loss_not_in_the_logged_kls(prior):
    """Each dimension of a closed-form layer's KL counts at least free_bits nats in the loss (a
    VampPrior top layer, whose KL is a one-sample estimate: the layer at least free_bits * d_L);
    the KL weight multiplies the sum; the logged kl_l stay the true terms."""
    widths, free_bits, beta, kl_weight = (4, 3, 2), 0.3, 2.0, 0.5
    config = ladder_config(widths, **{"model.prior": prior, "free_bits": free_bits, "beta": beta})
    fns, model, params = build(config)
    x, key = binary_images(6), jax.random.key(10)
    hyper = interface.hyper(config)._replace(kl_weight=kl_weight)
    metrics = fns.per_example_metrics(params, x, key, hyper)
    layers = model.apply(params, x, ladder.layer_noise(key, widths, (6,)), method=model.infer)
    kls, per_dimension = ladder.layer_kls(model, params, layers)
    counted = []
    for kl, dims, d in zip(kls, per_dimension, widths):
        np.testing.assert_allclose(metrics[f"kl_{len(counted) + 1}"], kl, rtol=1e-6)
        counted.append(np.sum(np.maximum(dims, free_bits), -1) if dims is not None else np.maximum(kl, free_bits * d))
    assert (per_dimension[-1] is None) == (prior == "vamp")
    np.testing.assert_allclose(metrics["loss"], metrics["reconstruction"] + beta * kl_weight * sum(counted), rtol=1e-5)
    assert np.any(np.concatenate([np.ravel(d) for d in per_dimension if d is not None]) < free_bits)  # some clamped
    np.testing.assert_allclose(metrics["kl"], sum(kls), rtol=1e-5, atol=1e-6)
    # Far above every dimension's KL: the loss is the reconstruction plus the floor of every layer.
    high = fns.per_example_metrics(params, x, key, hyper._replace(free_bits=50.0))
    np.testing.assert_allclose(high["loss"], high["reconstruction"] + beta * kl_weight * 50.0 * sum(widths), rtol=1e-5)
    np.testing.assert_array_equal(high["kl"], metrics["kl"])


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_per_layer_kls_sum_to_kl(objective):
    config = ladder_config((4, 3, 2), objective=objective, num_train_samples=4, **{"model.prior": "vamp"})
    fns, _, params = build(config)
    metrics = fns.per_example_metrics(params, binary_images(5), jax.random.key(11), interface.hyper(config))
    np.testing.assert_allclose(metrics["kl_1"] + metrics["kl_2"] + metrics["kl_3"], metrics["kl"], rtol=1e-6)
    np.testing.assert_allclose(metrics["neg_elbo"], metrics["reconstruction"] + metrics["kl"], rtol=1e-6)


def test_vamp_top_and_autoregressive_bottom_train_together():
    """A 2-layer ladder with the VampPrior on z_2, the autoregressive decoder on z_1, free bits
    and KL warm-up: 30 Adam steps on one batch lower the loss, and every part learns (the
    pseudo-inputs and the masked convolution included)."""
    image = (8, 8, 1)
    config = ladder_config(
        (4, 2),
        free_bits=0.1,
        kl_warmup_steps=10,
        **{"model.prior": "vamp", "model.autoregressive_features": 8, "model.autoregressive_kernel": 3},
    )
    config.unlock()
    config.optimizer.learning_rate = 1e-2
    validation.validate_config(config)
    fns = registry.build(config, image)
    state = programs.create_train_state(fns, config, 30, jax.random.key(0), 10)
    start = jax.tree.map(np.asarray, state.params)
    step = jax.jit(
        programs.make_train_step(fns, dynamic_binarization=False, hyper=interface.hyper(config), kl_warmup_steps=10)
    )
    x = binary_images(32, image)
    losses = []
    for i in range(30):
        state, metrics = step(state, x, jax.random.key(i))
        losses.append(float(metrics["loss"]))
        assert set(metrics) == {
            "loss",
            "neg_elbo",
            "reconstruction",
            "kl",
            "kl_1",
            "kl_2",
        }  # squared_error: evaluation only
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 2.0, losses  # measured: 45.6 -> 43.1 nats
    moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - b).max()), state.params, start)["params"]
    assert moved["pseudo_inputs"] > 0 and moved["decoder"]["context"]["taps"]["kernel"] > 0
    assert moved["prior_heads_0"]["mean"]["kernel"] > 0 and moved["top_down_0"]["Dense_0"]["kernel"] > 0
    images = fns.decode_image(
        state.params, fns.sample_prior(state.params, jax.random.key(1), 3)
    )  # greedy, pixel by pixel
    assert images.shape == (3, *image)


def test_config_checks():
    validation.validate_config(ladder_config((3, 2), free_bits=0.2, **{"model.prior": "vamp"}))  # free bits: per layer
    bad = {
        "has one layer": ladder_config((3,)),
        "MLPs": ladder_config((3, 2), **{"model.architecture": "conv"}),
        "integers >= 1": ladder_config((3, 0)),
    }
    for message, config in bad.items():
        with pytest.raises(validation.ConfigError, match=message):
            validation.validate_config(config)
    ae = ladder_config((3, 2), likelihood="squared_error", **{"model.kind": "ae"})
    with pytest.raises(validation.ConfigError, match="makes a ladder VAE"):
        validation.validate_config(ae)
    one_layer = ladder_config((), free_bits=0.2, **{"model.prior": "vamp"})
    with pytest.raises(validation.ConfigError, match="closed-form KL"):  # the one-layer rule is unchanged
        validation.validate_config(one_layer)


@pytest.mark.parametrize("widths", [(3, 2), (4, 3, 2)])
def test_skip_connections_feed_every_layer_into_the_decoder(widths):
    """``model.hierarchy_skip``: p(x | z_1..z_L) decodes every layer's z, concatenated: its first
    layer takes d_1 + ... + d_L inputs, the reconstruction depends on the upper layers given z_1,
    codes and prior draws are the concatenation, and the weights stay an ELBO in expectation."""
    config = ladder_config(widths, **{"model.hierarchy_skip": True})
    fns, model, params = build(config)
    plain_params = build(ladder_config(widths))[2]
    kernel = params["params"]["decoder"]["body"]["Dense_0"]["kernel"]
    assert (
        kernel.shape[0] == sum(widths)
        and plain_params["params"]["decoder"]["body"]["Dense_0"]["kernel"].shape[0] == widths[0]
    )
    x, b = binary_images(5), 5
    codes = fns.encode(params, x)
    assert codes.shape == (b, sum(widths))
    np.testing.assert_array_equal(codes, jnp.concatenate(fns.encode_layers(params, x), axis=-1))
    assert fns.sample_prior(params, jax.random.key(4), 6).shape == (6, sum(widths))
    assert fns.decode_image(params, codes).shape == (b, *IMAGE)

    def reconstruction(upper):  # the decoder's output at fixed z_1 as the upper layers move
        z = jnp.concatenate([codes[:, : widths[0]], upper], axis=-1)
        return model.apply(params, z, method=model.decode).sum()

    assert float(jnp.abs(jax.grad(reconstruction)(codes[:, widths[0] :])).max()) > 0
    metrics = fns.per_example_metrics(params, x, jax.random.key(3), interface.hyper(config))
    np.testing.assert_allclose(metrics["neg_elbo"], metrics["reconstruction"] + metrics["kl"], rtol=1e-5)
    keys = jax.random.split(jax.random.key(6), b)
    weights = fns.log_importance_weight(params, x, keys)
    assert weights.shape == (b,) and np.all(np.isfinite(weights))
    # IWAE with one sample is the negative log weight of the same top-down sample.
    iwae = ladder_config(widths, objective="iwae", num_train_samples=1, **{"model.hierarchy_skip": True})
    key = jax.random.key(7)
    iwae_loss = build(iwae)[0].per_example_metrics(params, x, key, interface.hyper(iwae))["loss"]
    one = ladder.layer_noise(key, widths, (1, b))
    np.testing.assert_allclose(
        iwae_loss, -ladder.log_weights(model, params, "bernoulli", None, x, [n[0] for n in one]), rtol=1e-5, atol=1e-4
    )
