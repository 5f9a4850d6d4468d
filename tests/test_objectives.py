"""The per-example objectives of each model kind: ELBO, IWAE, learned variance, KL weight."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config

from vae_jax import losses
from vae_jax.models import interface, registry, vae
from vae_jax.training import programs, run


@pytest.fixture
def setup():
    config = load_config("vae")
    fns = registry.build(config, (8, 8, 1))
    model = fns.module
    keys = programs.run_keys(0)
    params = programs.create_train_state(fns, config, 1, keys["init"], 0).params
    x = jax.random.uniform(keys["data"], (16, 8, 8, 1))
    return config, model, params, x, keys["train"]


def test_vae_loss_is_reconstruction_plus_beta_kl(setup):
    config, model, params, x, key = setup
    config.beta = 3.0
    metrics = vae.fns(model, config).per_example_metrics(params, x, key, interface.hyper(config))
    np.testing.assert_allclose(metrics["loss"], metrics["reconstruction"] + 3.0 * metrics["kl"], rtol=1e-5)
    np.testing.assert_allclose(metrics["neg_elbo"], metrics["reconstruction"] + metrics["kl"], rtol=1e-5)
    half = vae.fns(model, config).per_example_metrics(params, x, key, interface.hyper(config)._replace(kl_weight=0.5))
    np.testing.assert_allclose(half["loss"], metrics["reconstruction"] + 1.5 * metrics["kl"], rtol=1e-5)


@pytest.mark.parametrize("beta, kl_weight", [(1.0, 1.0), (2.0, 0.5)])
def test_free_bits_clamp_each_dimension_of_the_loss_not_the_logged_kl(setup, beta, kl_weight):
    config, model, params, x, key = setup
    mean, logvar = (np.asarray(a, np.float64) for a in model.apply(params, x, method=model.encode))
    kl_j = 0.5 * (np.square(mean) + np.exp(logvar) - 1.0 - logvar)  # [b, latents], by hand
    free_bits = float(np.median(kl_j))  # some dimensions below it (clamped), some above
    assert (kl_j < free_bits).any() and (kl_j > free_bits).any()
    fns = vae.fns(model, config)
    for value in (free_bits, jnp.float32(free_bits)):  # a run's constant, a sweep member's traced value
        hyper = interface.Hyper(beta=beta, c=config.c, free_bits=value, kl_weight=kl_weight)
        metrics = fns.per_example_metrics(params, x, key, hyper)
        clamped = np.maximum(kl_j, free_bits).sum(axis=1)
        np.testing.assert_allclose(
            metrics["loss"], metrics["reconstruction"] + beta * kl_weight * clamped, rtol=1e-5, atol=1e-4
        )
        np.testing.assert_allclose(metrics["kl"], kl_j.sum(axis=1), rtol=1e-5, atol=1e-5)  # unclamped
        np.testing.assert_allclose(metrics["neg_elbo"], metrics["reconstruction"] + kl_j.sum(axis=1), rtol=1e-5)
    # The same sample: the reconstruction term is the one without free bits.
    plain = fns.per_example_metrics(params, x, key, interface.Hyper(beta, config.c, 0.0, kl_weight))
    np.testing.assert_allclose(metrics["reconstruction"], plain["reconstruction"], rtol=1e-6)


def test_gaussian_reconstruction_term_uses_c(setup):
    config, model, params, x, key = setup
    output = model.apply(params, x, key)[0]
    expected = -losses.gaussian_log_likelihood(x.reshape(16, -1), output.reshape(16, -1), variance=config.c)
    metrics = vae.fns(model, config).per_example_metrics(params, x, key, interface.hyper(config))
    np.testing.assert_allclose(metrics["reconstruction"], expected, rtol=1e-5)


def test_iwae_with_one_sample_is_the_single_sample_elbo(setup):
    config, model, params, x, key = setup
    elbo = vae.fns(model, config).per_example_metrics(params, x, key, interface.hyper(config))
    config.objective, config.num_train_samples = "iwae", 1
    iwae = vae.fns(model, config).per_example_metrics(params, x, key, interface.hyper(config))
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
        fns = vae.fns(model, config)
        bounds.append(
            np.mean(
                [
                    float(
                        jnp.mean(
                            fns.per_example_metrics(params, x, jax.random.fold_in(key, i), interface.hyper(config))[
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
    fixed = registry.build(config, (8, 8, 1))
    config.model.decoder_variance = kind
    fns = registry.build(config, (8, 8, 1))
    model = fns.module
    params = model.init(jax.random.key(0), x, key)
    params["params"].update({k: v for k, v in fixed_params["params"].items()})
    np.testing.assert_allclose(
        fns.per_example_metrics(params, x, key, interface.hyper(config))["loss"],
        fixed.per_example_metrics(fixed_params, x, key, interface.hyper(config))["loss"],
        rtol=1e-5,
    )
    grads = jax.grad(lambda p: jnp.mean(fns.per_example_metrics(p, x, key, interface.hyper(config))["loss"]))(params)
    log_variance_grad = grads["params"]["decoder_log_variance"]
    assert log_variance_grad.shape == (() if kind == "scalar" else (8, 8, 1))
    assert float(jnp.abs(log_variance_grad).sum()) > 0


def test_conv_vae_trains_through_the_same_objective(setup):
    config, *_, x, key = setup
    config.model.architecture, config.model.conv_features = "conv", (8, 16)
    fns = registry.build(config, (8, 8, 1))
    model = fns.module
    params = model.init(jax.random.key(0), x, key)
    metrics = fns.per_example_metrics(params, x, key, interface.hyper(config))
    assert metrics["loss"].shape == (16,) and np.all(np.isfinite(metrics["loss"]))
    assert fns.decode_image(params, jnp.zeros((3, 2))).shape == (3, 8, 8, 1)


def test_iwae_objective_trains_end_to_end(tiny_config, tmp_path):
    """A run with objective='iwae' (k = 5): its loss falls, and is the IWAE bound, below the ELBO's."""
    config = tiny_config("vae_binarized_mnist")
    config.objective, config.num_train_samples = "iwae", 5
    workdir = str(tmp_path / "run")
    final = run.train_and_evaluate(config, workdir)
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["objective"] == "iwae"
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        train_lines = [r for r in map(json.loads, f) if r["split"] == "train"]
    losses_by_epoch = [r["loss"] for r in train_lines]
    assert len(losses_by_epoch) == config.num_epochs
    assert losses_by_epoch[-1] < losses_by_epoch[0] - 5.0, losses_by_epoch
    assert all(np.isfinite(v) for v in final.values()), final
    # -L_5 <= the negative ELBO of the same samples (Jensen), on the training and the test split; here
    # by several nats (6 on test after 3 epochs), where one sample (k = 1) would give about the ELBO.
    assert all(r["loss"] < r["neg_elbo"] - 1.0 for r in train_lines), train_lines
    assert final["loss"] < final["neg_elbo"] - 1.0, final
    assert final["reconstruction"] > 0 and final["kl"] >= 0
