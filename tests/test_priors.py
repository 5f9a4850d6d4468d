"""Priors other than N(0, I): the mixture of Gaussians and the VampPrior."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import evaluate
from vae_jax import losses
from vae_jax.evaluation import likelihood
from vae_jax.models import interface, vae
from vae_jax.training import run, validation

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

IMAGE = (8, 8, 1)


def small_vae(prior="standard_normal", components=4):
    return vae.VAE((16,), (16,), 3, IMAGE, output_activation="none", prior=prior, prior_components=components)


def binary_images(n, seed=0):
    return (jax.random.uniform(jax.random.key(seed), (n, *IMAGE)) < 0.4).astype(jnp.float32)


def init(model, seed=0):
    key = jax.random.key(seed)
    return model.init(key, binary_images(2), key)


def brute_force_mixture(z, means, logvars):
    """log (1/K) sum_k N(z; m_k, diag exp(logvar_k)) in float64 numpy, one component at a time."""
    z, means, logvars = (np.asarray(a, np.float64) for a in (z, means, logvars))
    per_component = np.stack(
        [
            -0.5 * np.sum((z - m) ** 2 / np.exp(lv) + lv + math.log(2 * math.pi), axis=-1)
            for m, lv in zip(means, logvars)
        ],
        axis=-1,
    )
    top = per_component.max(axis=-1, keepdims=True)
    return (top + np.log(np.mean(np.exp(per_component - top), axis=-1, keepdims=True)))[..., 0]


class TestMixtureLogProb:
    def test_matches_a_brute_force_sum_over_components(self):
        keys = jax.random.split(jax.random.key(0), 3)
        z = 2.0 * jax.random.normal(keys[0], (4, 5, 3))  # leading sample and batch axes
        means, logvars = jax.random.normal(keys[1], (7, 3)), 0.5 * jax.random.normal(keys[2], (7, 3))
        result = losses.gaussian_mixture_log_prob(z, means, logvars)
        assert result.shape == (4, 5)
        np.testing.assert_allclose(result, brute_force_mixture(z, means, logvars), rtol=1e-5, atol=1e-5)

    def test_copies_of_one_gaussian_are_that_gaussian(self):
        z = jax.random.normal(jax.random.key(1), (6, 2))
        mean, logvar = jnp.array([0.5, -1.0]), jnp.array([0.2, -0.3])
        mixture = losses.gaussian_mixture_log_prob(z, jnp.stack([mean] * 3), jnp.stack([logvar] * 3))
        np.testing.assert_allclose(mixture, losses.diagonal_gaussian_log_prob(z, mean, logvar), rtol=1e-5)

    def test_far_components_do_not_underflow(self):
        means = jnp.array([[-8.0], [8.0]])  # 2 x 8^2 / exp(-2) ~ 900 nats apart
        result = losses.gaussian_mixture_log_prob(jnp.array([[8.0]]), means, jnp.full((2, 1), -2.0))
        expected = -0.5 * (-2.0 + math.log(2 * math.pi)) - math.log(2)  # at one mean, the other adds nothing
        np.testing.assert_allclose(result, [expected], rtol=1e-4)

    def test_shapes_are_checked(self):
        with pytest.raises(ValueError, match=r"\[K, d\]"):
            losses.gaussian_mixture_log_prob(jnp.zeros((2, 3)), jnp.zeros((4, 2)), jnp.zeros((4, 2)))
        with pytest.raises(ValueError):
            losses.gaussian_mixture_log_prob(jnp.zeros((2, 3)), jnp.zeros((4, 3)), jnp.zeros((5, 3)))


def test_vamp_prior_is_the_mixture_of_posteriors_at_the_pseudo_inputs():
    model = small_vae("vamp", components=5)
    params = init(model)
    pseudo = params["params"]["pseudo_inputs"]
    assert pseudo.shape == (5, *IMAGE) and 0.0 < float(pseudo.mean()) < 0.1  # near black, as in the paper
    means, logvars = model.apply(params, jnp.clip(pseudo, 0.0, 1.0), method=model.encode)
    z = jax.random.normal(jax.random.key(2), (10, 3))
    np.testing.assert_allclose(
        model.apply(params, z, method=model.log_prior), brute_force_mixture(z, means, logvars), rtol=1e-5, atol=1e-5
    )


def test_mixture_prior_samples_come_from_its_components():
    model = small_vae("mixture", components=2)
    params = init(model)
    params["params"]["prior_means"] = jnp.array([[-10.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
    params["params"]["prior_logvars"] = jnp.full((2, 3), math.log(1e-4))
    z = model.apply(params, jax.random.key(3), 400, method=model.sample_prior)
    assert z.shape == (400, 3)
    assert np.all(np.abs(np.abs(z[:, 0]) - 10.0) < 0.1) and np.all(np.abs(z[:, 1:]) < 0.1)
    assert 120 < int(np.sum(z[:, 0] > 0)) < 280  # both components, about equally often


def test_a_one_component_standard_mixture_gives_the_standard_normal_results(tiny_config):
    """A mixture whose only component is N(0, I) is the N(0, I) prior: the ELBO's sampled KL
    averages to the closed form, and the importance-sampled likelihood is the same. (That the
    likelihood uses the prior at all, i.e. follows a mixture away from N(0, I), is checked against
    exact values in test_exact_likelihood.py.)"""
    config = tiny_config("vae_binarized_mnist")
    standard, mixture = small_vae(), small_vae("mixture", components=1)
    params = init(standard)
    mixed = {"params": dict(params["params"], prior_means=jnp.zeros((1, 3)), prior_logvars=jnp.zeros((1, 3)))}
    x = binary_images(64, seed=4)
    closed = vae.fns(standard, config).per_example_metrics(params, x, jax.random.key(5), interface.hyper(config))
    sampled_fns = vae.fns(mixture, config)
    kls = [
        sampled_fns.per_example_metrics(mixed, x, jax.random.key(s), interface.hyper(config))["kl"] for s in range(200)
    ]
    kls = np.asarray(kls)  # [200 draws, 64 images]: the estimate's standard error is ~0.01 nats
    assert float(np.mean(kls)) == pytest.approx(float(np.mean(closed["kl"])), abs=0.05)
    one = sampled_fns.per_example_metrics(mixed, x, jax.random.key(5), interface.hyper(config))
    np.testing.assert_allclose(one["neg_elbo"], one["reconstruction"] + one["kl"], rtol=1e-5)
    np.testing.assert_allclose(one["reconstruction"], closed["reconstruction"], rtol=1e-5)  # same z
    nll = [
        likelihood.model_log_likelihood(vae.fns(m, config), p, x, jax.random.key(6), num_samples=20)["nll"]
        for m, p in ((standard, params), (mixture, mixed))
    ]
    assert nll[0] == pytest.approx(nll[1], rel=1e-5)


def test_pseudo_inputs_are_learned(tiny_config):
    config = tiny_config("vae_binarized_mnist")
    model = small_vae("vamp", components=4)
    params = init(model)
    fns = vae.fns(model, config)
    loss = lambda p: jnp.mean(
        fns.per_example_metrics(p, binary_images(16), jax.random.key(7), interface.hyper(config))["loss"]
    )
    grads = jax.grad(loss)(params)["params"]
    assert float(jnp.max(jnp.abs(grads["pseudo_inputs"]))) > 0.0


@pytest.mark.parametrize("prior", ["vamp", "mixture"])
def test_training_figures_and_likelihood_with_a_richer_prior(prior, tiny_config, tmp_path):
    config = tiny_config("vae_binarized_mnist")
    config.model.prior, config.model.prior_components = prior, 6
    workdir = str(tmp_path / prior)
    final = run.train_and_evaluate(config, workdir)
    assert all(np.isfinite(v) for v in final.values())
    assert final["neg_elbo"] == pytest.approx(final["reconstruction"] + final["kl"], rel=1e-5)
    result = evaluate.evaluate_run(workdir, num_samples=8, split="test")
    assert np.isfinite(result["nll"]) and result["nll"] <= result["neg_elbo"] + 0.5


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            dict(prior="gamma"),
            r"--config\.model\.prior='gamma' is invalid: expected one of standard_normal, mixture, vamp",
        ),
        (dict(prior="vamp", prior_components=0), r"--config\.model\.prior_components=0"),
        (
            dict(prior="vamp", free_bits=0.25),
            r"--config\.free_bits=0\.25 needs the closed-form KL .* use --config\.free_bits=0",
        ),
    ],
)
def test_invalid_prior_settings_are_refused(overrides, message, tiny_config):
    config = tiny_config("vae_binarized_mnist")
    for key, value in overrides.items():
        if key == "free_bits":
            config.free_bits = value
        else:
            config.model[key] = value
    with pytest.raises(validation.ConfigError, match=message):
        validation.validate_config(config)
