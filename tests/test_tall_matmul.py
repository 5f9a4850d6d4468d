"""`vae_jax.models.tall_matmul`: Dense layers over many rows with a chunked backward pass."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.models import tall_matmul

CHUNK = tall_matmul.ROWS_PER_CHUNK


@pytest.mark.parametrize("rows", [7, 2 * CHUNK, 3 * CHUNK + 405])
def test_chunked_forms_and_their_transposes(rows):
    """Fewer rows than two chunks, a whole number of chunks, chunks and a remainder (float64,
    where order does not matter): `chunked_product` is x @ w and its transpose in w is x^T g;
    `chunked_broadcast` repeats b on every row and its transpose is the row sum."""
    rng = np.random.default_rng(rows)
    x, w, b, g = (rng.standard_normal(shape) for shape in [(rows, 5), (5, 3), (3,), (rows, 3)])
    with jax.enable_x64():
        product, product_transpose = jax.vjp(lambda w: tall_matmul.chunked_product(jnp.asarray(x), w), jnp.asarray(w))
        repeated, repeat_transpose = jax.vjp(lambda b: tall_matmul.chunked_broadcast(b, rows), jnp.asarray(b))
        (weight_gradient,), (bias_gradient,) = product_transpose(jnp.asarray(g)), repeat_transpose(jnp.asarray(g))
    np.testing.assert_allclose(np.asarray(product), x @ w, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(repeated), np.broadcast_to(b, (rows, 3)))
    np.testing.assert_allclose(np.asarray(weight_gradient), x.T @ g, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(bias_gradient), g.sum(0), rtol=1e-12, atol=1e-12)


def _layers(features):
    """A `RowsDense` and a ``flax.linen.Dense`` of the same width."""
    return tall_matmul.RowsDense(features), nn.Dense(features)


def test_rows_dense_is_dense_with_another_backward_pass():
    """Same parameter tree and initial values as Dense, the same forward values to the bit, and
    gradients (input, kernel, bias) equal up to float32 summation order, with a loss that
    weighs every output differently and a remainder after the chunks."""
    rows_dense, dense = _layers(6)
    x = jax.random.normal(jax.random.key(0), (5, 31, 29, 4))  # 4,495 rows: 2 chunks + 399
    weights = jax.random.normal(jax.random.key(1), (5, 31, 29, 6))
    params = rows_dense.init(jax.random.key(2), x)
    reference_params = dense.init(jax.random.key(2), x)
    assert jax.tree.structure(params) == jax.tree.structure(reference_params)
    for ours, theirs in zip(jax.tree.leaves(params), jax.tree.leaves(reference_params)):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(rows_dense.apply(params, x), dense.apply(params, x))

    def loss(module):
        return lambda p, x: jnp.sum(jnp.tanh(module.apply(p, x)) * weights)

    ours = jax.grad(loss(rows_dense), argnums=(0, 1))(params, x)
    theirs = jax.grad(loss(dense), argnums=(0, 1))(params, x)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * float(jnp.max(jnp.abs(b))))
    # The weight gradient is a batched product over the chunks (Dense's is one contraction).
    batched = lambda module: [
        eqn.params["dimension_numbers"][1]
        for eqn in jax.make_jaxpr(jax.grad(loss(module)))(params, x).eqns
        if eqn.primitive.name == "dot_general" and eqn.params["dimension_numbers"][1] != ((), ())
    ]
    assert batched(rows_dense) == [((0,), (0,))] and batched(dense) == []


def test_rows_dense_gradients_under_vmap_and_jit():
    """Vmapped over stacked parameters (the trainer's members) and compiled: each member's
    gradient is Dense's for that member."""
    rows_dense, dense = _layers(3)
    x = jax.random.normal(jax.random.key(3), (2, 4200, 5))
    stacked = jax.vmap(lambda key: rows_dense.init(key, x[0]))(jax.random.split(jax.random.key(4), 2))

    def gradient(module):
        loss = lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
        return jax.jit(jax.vmap(jax.grad(loss)))(stacked, x)

    for a, b in zip(jax.tree.leaves(gradient(rows_dense)), jax.tree.leaves(gradient(dense))):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * float(jnp.max(jnp.abs(b))))


def test_rows_dense_forward_mode_derivatives():
    """``jax.jacfwd`` in the input and ``jax.jvp`` in the parameters agree with Dense's (the
    autoregressive decoder's tests take Jacobians in forward mode)."""
    rows_dense, dense = _layers(2)
    x = jax.random.normal(jax.random.key(5), (3, 4))
    params = rows_dense.init(jax.random.key(6), x)
    np.testing.assert_allclose(
        jax.jacfwd(lambda x: rows_dense.apply(params, x))(x), jax.jacfwd(lambda x: dense.apply(params, x))(x), rtol=1e-6
    )
    tangent = jax.tree.map(jnp.ones_like, params)
    ours = jax.jvp(lambda p: rows_dense.apply(p, x), (params,), (tangent,))[1]
    theirs = jax.jvp(lambda p: dense.apply(p, x), (params,), (tangent,))[1]
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
