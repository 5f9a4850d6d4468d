"""`skip_nonfinite` behaves exactly like `optax.apply_if_finite`, branch-free."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vae_jax.skip_nonfinite import skip_nonfinite


def gradient_stream(pattern):
    """Gradients of a two-leaf tree; 'n' puts a NaN in one leaf, 'i' an infinity, '.' is finite."""
    for i, kind in enumerate(pattern):
        w = jax.random.normal(jax.random.key(i), (4, 3))
        b = jax.random.normal(jax.random.key(100 + i), (3,))
        if kind == "n":
            w = w.at[1, 2].set(jnp.nan)
        elif kind == "i":
            b = b.at[0].set(-jnp.inf)
        yield {"w": w, "b": b}


@pytest.mark.parametrize("pattern, max_errors", [("..n..i..", 5), ("nnn.nnnn.", 2), ("n", 0), ("........", 1)])
def test_same_updates_and_state_as_optax(pattern, max_errors):
    params = {"w": jnp.ones((4, 3)), "b": jnp.zeros(3)}
    ours, reference = skip_nonfinite(optax.adam(0.1), max_errors), optax.apply_if_finite(optax.adam(0.1), max_errors)
    state_ours, state_reference = ours.init(params), reference.init(params)
    update_ours, update_reference = jax.jit(ours.update), jax.jit(reference.update)
    for grads in gradient_stream(pattern):
        updates_ours, state_ours = update_ours(grads, state_ours, params)
        updates_reference, state_reference = update_reference(grads, state_reference, params)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, equal_nan=True),
                     (updates_ours, state_ours), (updates_reference, state_reference))
        params = optax.apply_updates(params, updates_ours)
    assert int(state_ours.total_notfinite) == pattern.count("n") + pattern.count("i")


def test_skipped_step_leaves_parameters_and_moments_unchanged():
    params = {"w": jnp.ones((4, 3)), "b": jnp.zeros(3)}
    tx = skip_nonfinite(optax.adam(0.1), 10)
    state = tx.init(params)
    finite, nan = list(gradient_stream(".n"))
    _, state = tx.update(finite, state, params)
    updates, after = tx.update(nan, state, params)
    assert all(float(jnp.max(jnp.abs(u))) == 0.0 for u in jax.tree.leaves(updates))
    jax.tree.map(np.testing.assert_array_equal, after.inner_state, state.inner_state)
    assert bool(after.last_finite) is False and int(after.notfinite_count) == 1
