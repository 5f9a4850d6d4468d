"""The per-example objectives of each model kind: ELBO, IWAE, learned variance, KL weight."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from vae_jax import losses, objectives, train


@pytest.fixture
def setup():
    config = load_config("vae")
    fns, model = train.model_fns(config, (8, 8, 1))
    keys = train.run_keys(0)
    params = train.create_train_state(model, (8, 8, 1), config, 1, keys["init"], 0).params
    x = jax.random.uniform(keys["data"], (16, 8, 8, 1))
    return config, model, params, x, keys["train"]


def test_vae_loss_is_reconstruction_plus_beta_kl(setup):
    config, model, params, x, key = setup
    config.beta = 3.0
    metrics = objectives.vae_fns(model, config).per_example_metrics(params, x, key, objectives.hyper(config))
    np.testing.assert_allclose(metrics["loss"], metrics["reconstruction"] + 3.0 * metrics["kl"], rtol=1e-5)
    np.testing.assert_allclose(metrics["neg_elbo"], metrics["reconstruction"] + metrics["kl"], rtol=1e-5)
    half = objectives.vae_fns(model, config).per_example_metrics(
        params, x, key, objectives.hyper(config)._replace(kl_weight=0.5)
    )
    np.testing.assert_allclose(half["loss"], metrics["reconstruction"] + 1.5 * metrics["kl"], rtol=1e-5)


def test_gaussian_reconstruction_term_uses_c(setup):
    config, model, params, x, key = setup
    output = model.apply(params, x, key)[0]
    expected = -losses.gaussian_log_likelihood(x.reshape(16, -1), output.reshape(16, -1), variance=config.c)
    metrics = objectives.vae_fns(model, config).per_example_metrics(params, x, key, objectives.hyper(config))
    np.testing.assert_allclose(metrics["reconstruction"], expected, rtol=1e-5)


def test_iwae_with_one_sample_is_the_single_sample_elbo(setup):
    config, model, params, x, key = setup
    elbo = objectives.vae_fns(model, config).per_example_metrics(params, x, key, objectives.hyper(config))
    config.objective, config.num_train_samples = "iwae", 1
    iwae = objectives.vae_fns(model, config).per_example_metrics(params, x, key, objectives.hyper(config))
    # Same sample z: same reconstruction term; the KL is then estimated by log q(z|x) - log p(z).
    np.testing.assert_allclose(iwae["reconstruction"], elbo["reconstruction"], rtol=1e-5)
    mean, logvar = model.apply(params, x, method=model.encode)
    z = losses.reparameterize(key, mean[None], logvar[None])[0]
    sampled_kl = losses.diagonal_gaussian_log_prob(z, mean, logvar) - losses.standard_normal_log_prob(z)
    np.testing.assert_allclose(iwae["loss"], elbo["reconstruction"] + sampled_kl, rtol=1e-4, atol=1e-3)


def test_iwae_bound_tightens_with_more_samples(setup):
    config, model, params, x, key = setup
    config.objective = "iwae"
    bounds = []
    for k in (1, 50):
        config.num_train_samples = k
        fns = objectives.vae_fns(model, config)
        bounds.append(
            np.mean(
                [
                    float(
                        jnp.mean(
                            fns.per_example_metrics(params, x, jax.random.fold_in(key, i), objectives.hyper(config))[
                                "loss"
                            ]
                        )
                    )
                    for i in range(5)
                ]
            )
        )
    assert bounds[1] < bounds[0]


@pytest.mark.parametrize("kind", ["scalar", "per_pixel"])
def test_learned_variance_starts_at_c_and_gets_gradients(kind, setup):
    config, _, fixed_params, x, key = setup
    fixed = objectives.vae_fns(train.model_fns(config, (8, 8, 1))[1], config)
    config.model.decoder_variance = kind
    fns, model = train.model_fns(config, (8, 8, 1))
    params = model.init(jax.random.key(0), x, key)
    params["params"].update({k: v for k, v in fixed_params["params"].items()})
    np.testing.assert_allclose(
        fns.per_example_metrics(params, x, key, objectives.hyper(config))["loss"],
        fixed.per_example_metrics(fixed_params, x, key, objectives.hyper(config))["loss"],
        rtol=1e-5,
    )
    grads = jax.grad(lambda p: jnp.mean(fns.per_example_metrics(p, x, key, objectives.hyper(config))["loss"]))(params)
    log_variance_grad = grads["params"]["decoder_log_variance"]
    assert log_variance_grad.shape == (() if kind == "scalar" else (8, 8, 1))
    assert float(jnp.abs(log_variance_grad).sum()) > 0


def test_conv_vae_trains_through_the_same_objective(setup):
    config, *_, x, key = setup
    config.model.architecture, config.model.conv_features = "conv", (8, 16)
    fns, model = train.model_fns(config, (8, 8, 1))
    params = model.init(jax.random.key(0), x, key)
    metrics = fns.per_example_metrics(params, x, key, objectives.hyper(config))
    assert metrics["loss"].shape == (16,) and np.all(np.isfinite(metrics["loss"]))
    assert fns.decode_image(params, jnp.zeros((3, 2))).shape == (3, 8, 8, 1)
