"""The autoregressive-flow prior (`vae_jax.models.flows`): autoregressive masks, the exact
log-density against a brute-force change of variables and a numerical integral on a 2-D grid,
sampling as the inverse, and a VAE and a ladder VAE with it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config

from vae_jax import config as config_lib
from vae_jax import losses
from vae_jax.errors import ConfigError
from vae_jax.models import flows, interface, registry
from vae_jax.training import validation

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def perturbed(params, key, scale=0.15):
    """``params`` with every leaf moved away from its initial value (the output layers start at 0:
    the identity flow, whose density any formula gets right)."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [leaf + scale * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)])


@pytest.mark.parametrize("reverse", [False, True])
def test_made_outputs_depend_only_on_the_coordinates_before_them(reverse):
    made = flows.MADE(5, (16, 16), reverse=reverse)
    z = jax.random.normal(jax.random.key(0), (5,))
    params = perturbed(made.init(jax.random.key(1), z), jax.random.key(2))
    for output in range(2):  # m and s
        jacobian = np.asarray(jax.jacfwd(lambda z: made.apply(params, z)[output])(z))  # [i, j] = d out_i / d z_j
        order = np.arange(5)[::-1] if reverse else np.arange(5)
        position = np.argsort(order)  # where each coordinate stands in the order
        allowed = position[None, :] < position[:, None]  # out_i may depend on z_j before it
        assert np.all(jacobian[~allowed] == 0)
        assert np.any(jacobian[allowed] != 0)  # and does (the masks are not all zero)


def flow_and_params(features=2, steps=3, seed=0):
    flow = flows.AutoregressiveFlowPrior(features, steps, (32,))
    params = flow.init(jax.random.key(seed), jnp.zeros((1, features)), method=flow.log_prob)
    return flow, perturbed(params, jax.random.key(seed + 1))


def test_the_log_density_is_the_change_of_variables_computed_by_brute_force():
    flow, params = flow_and_params()
    z = jax.random.normal(jax.random.key(3), (50, 2)) * 1.5

    def to_base(point):
        return flow.apply(params, point[None], method=flow.to_base)[0][0]

    # Brute force: the full Jacobian of z -> u by automatic differentiation, its log |det|.
    brute = jnp.stack(
        [losses.standard_normal_log_prob(to_base(p)) + jnp.linalg.slogdet(jax.jacfwd(to_base)(p))[1] for p in z]
    )
    exact = flow.apply(params, z, method=flow.log_prob)
    np.testing.assert_allclose(exact, brute, rtol=1e-5, atol=1e-5)
    # Without the log-determinant, or with its sign swapped, the density would be off.
    u, log_det = flow.apply(params, z, method=flow.to_base)
    assert np.max(np.abs(log_det)) > 0.1
    assert not np.allclose(exact, losses.standard_normal_log_prob(u) - log_det, atol=1e-2)


def test_the_density_integrates_to_one_on_a_2d_grid():
    flow, params = flow_and_params()
    axis = jnp.linspace(-9.0, 9.0, 721)
    grid = jnp.stack(jnp.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    density = jnp.exp(flow.apply(params, grid, method=flow.log_prob))
    total = float(jnp.sum(density) * (axis[1] - axis[0]) ** 2)
    assert total == pytest.approx(1.0, abs=5e-3)


def test_sampling_inverts_the_flow():
    flow, params = flow_and_params(features=4, steps=2)
    draws = flow.apply(params, jax.random.key(4), 64, method=flow.sample)
    u = jax.random.normal(jax.random.key(4), (64, 4))  # the base points `sample` drew
    np.testing.assert_allclose(flow.apply(params, draws, method=flow.to_base)[0], u, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(flow.apply(params, u, method=flow.from_base), draws, rtol=1e-6, atol=1e-6)


def test_the_flow_starts_as_the_standard_normal():
    flow = flows.AutoregressiveFlowPrior(3, 2, (16,))
    z = jax.random.normal(jax.random.key(0), (10, 3))
    params = flow.init(jax.random.key(1), z, method=flow.log_prob)
    np.testing.assert_allclose(
        flow.apply(params, z, method=flow.log_prob), losses.standard_normal_log_prob(z), rtol=1e-6
    )


@pytest.mark.parametrize("hierarchy", [(), (4, 3)], ids=["vae", "ladder"])
def test_a_vae_with_the_flow_prior_trains_and_samples(hierarchy):
    config = config_lib.resolve(load_config("vae_binarized_mnist"))
    config.model.prior, config.model.flow_steps, config.model.flow_hidden = "flow", 2, (16,)
    config.model.hierarchy_latents, config.model.hierarchy_hidden = hierarchy, (16,)
    validation.validate_config(config)
    fns = registry.build(config, (6, 6, 1))
    params = perturbed(fns.init(jax.random.key(0)), jax.random.key(1), scale=0.05)
    x = (jax.random.uniform(jax.random.key(2), (8, 6, 6, 1)) < 0.3).astype(jnp.float32)
    metrics = fns.per_example_metrics(params, x, jax.random.key(3), interface.hyper(config))
    assert np.all(np.isfinite(metrics["loss"])) and np.allclose(
        metrics["neg_elbo"], metrics["reconstruction"] + metrics["kl"]
    )
    grads = jax.grad(
        lambda p: fns.per_example_metrics(p, x, jax.random.key(3), interface.hyper(config))["loss"].mean()
    )(params)
    flow_grads = [
        g for path, g in jax.tree_util.tree_leaves_with_path(grads) if "flow_prior" in jax.tree_util.keystr(path)
    ]
    assert flow_grads and any(float(jnp.abs(g).max()) > 0 for g in flow_grads)  # the KL trains the flow
    assert fns.sample_prior(params, jax.random.key(4), 5).shape == (5, config.model.latents if not hierarchy else 4)
    assert "autoregressive flow" in fns.prior_description


def test_flow_options_are_checked():
    config = config_lib.resolve(load_config("vae"))
    config.model.prior, config.model.flow_steps = "flow", 0
    with pytest.raises(ConfigError, match="--config.model.flow_steps=0 is invalid"):
        validation.validate_config(config)
