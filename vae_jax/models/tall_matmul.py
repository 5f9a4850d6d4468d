"""A dense layer applied at every pixel (``x [..., k] @ w [k, f] + b`` over ~10^5 rows) whose
backward pass uses every core.

The gradients of ``w`` and ``b`` are ``x^T g`` and ``sum_rows g``: reductions over all the rows
into a small ``[k, f]`` matrix and an ``[f]`` vector. XLA's CPU backend appears to split such
work over the output's blocks only, so that with a 64 x 64 output one thread does all of it (an
inference from the times below, not read in its source). Measured on the 2-core
machine for 100,352 x 64 rows: the weight gradient took 78 ms against 40 ms for the forward
product of the same size, the bias gradient 14.7 ms against 6.8 ms chunked. Here the rows are
cut into chunks of `ROWS_PER_CHUNK`; each chunk's ``x_c^T g_c`` is one entry of a batched
product and each chunk's row sum one row of a reduction, which XLA spreads over the cores, and
the chunks' results are summed: the same sums in another order (float32 differences ~1e-6 of
the largest entry). XLA may fold the two-stage bias sum back into one reduction (it did in a compiled
RowsDense gradient of 100,352 rows: one YNNPACK reduction); the weight gradient stays a batched
product.

`RowsDense` is ``flax.linen.Dense`` with this backward pass: the same parameters (names,
shapes, initialisers, so the same initial values and checkpoints) and the same forward values.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax import lax
from jax.custom_derivatives import SymbolicZero

ROWS_PER_CHUNK = 2048


@contextlib.contextmanager
def unchunked():
    """Functions traced inside use the plain products and sums (one contraction each), as
    ``flax.linen.Dense``'s gradients do: for measuring what the chunks save
    (``experiments.benchmark``'s likelihood part)."""
    global ROWS_PER_CHUNK
    saved, ROWS_PER_CHUNK = ROWS_PER_CHUNK, 2**62
    try:
        yield
    finally:
        ROWS_PER_CHUNK = saved


def _split_rows(rows: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    """``rows [n, m]`` as ``([chunks, ROWS_PER_CHUNK, m], the n % ROWS_PER_CHUNK rows left, or None)``."""
    chunks = rows.shape[0] // ROWS_PER_CHUNK
    main = chunks * ROWS_PER_CHUNK
    rest = rows[main:] if main < rows.shape[0] else None
    return rows[:main].reshape(chunks, ROWS_PER_CHUNK, rows.shape[1]), rest


def _join_rows(chunks: jax.Array, rest: jax.Array | None) -> jax.Array:
    """The inverse of `_split_rows`: ``[n, m]``."""
    rows = chunks.reshape(-1, chunks.shape[-1])
    return rows if rest is None else jnp.concatenate([rows, rest], axis=0)


def chunked_product(x: jax.Array, w: jax.Array, precision=None) -> jax.Array:
    """``x [n, k] @ w [k, f]`` -> ``[n, f]`` as a batched product of row chunks with a copy of
    ``w`` per chunk, so that its transpose, the gradient of ``w``, is a batched product
    ``x_c^T g_c`` summed over the chunks. Fewer than two chunks: the plain product."""
    plain = (((1,), (0,)), ((), ()))
    if x.shape[0] < 2 * ROWS_PER_CHUNK:
        return lax.dot_general(x, w, plain, precision=precision)
    chunks, rest = _split_rows(x)
    per_chunk = jnp.broadcast_to(w, (chunks.shape[0], *w.shape))
    main = lax.dot_general(chunks, per_chunk, (((2,), (1,)), ((0,), (0,))), precision=precision)
    return _join_rows(main, None if rest is None else lax.dot_general(rest, w, plain, precision=precision))


def chunked_broadcast(b: jax.Array, rows: int) -> jax.Array:
    """``b [f]`` repeated on ``rows`` rows, ``[rows, f]``, first per chunk and then per row of a
    chunk, so that its transpose, the gradient of ``b``, sums each chunk's rows and then the
    chunks."""
    if rows < 2 * ROWS_PER_CHUNK:
        return jnp.broadcast_to(b, (rows, b.shape[0]))
    chunks = rows // ROWS_PER_CHUNK
    per_chunk = jnp.broadcast_to(b, (chunks, b.shape[0]))
    main = jnp.broadcast_to(per_chunk[:, None, :], (chunks, ROWS_PER_CHUNK, b.shape[0]))
    left = rows - chunks * ROWS_PER_CHUNK
    return _join_rows(main, jnp.broadcast_to(b, (left, b.shape[0])) if left else None)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def rows_affine(x: jax.Array, w: jax.Array, b: jax.Array, precision=None) -> jax.Array:
    """``x [..., k] @ w [k, f] + b [f]`` -> ``[..., f]``, computed as ``flax.linen.Dense`` does.

    Its derivative (`_rows_affine_jvp`) is the usual one, written with `chunked_product` and
    `chunked_broadcast` for the terms in the tangents of ``w`` and ``b``: reverse mode
    transposes them into chunked sums; forward mode (``jax.jvp``, ``jax.jacfwd``) works too."""
    y = lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())), precision=precision)
    return y + jnp.reshape(b, (1,) * (y.ndim - 1) + (-1,))


def _rows_affine_jvp(precision, primals, tangents):
    x, w, b = primals
    x_dot, w_dot, b_dot = tangents
    y = rows_affine(x, w, b, precision)
    rows = x.reshape(-1, x.shape[-1])
    terms = []
    if not isinstance(x_dot, SymbolicZero):
        terms.append(lax.dot_general(x_dot, w, (((x.ndim - 1,), (0,)), ((), ())), precision=precision))
    if not isinstance(w_dot, SymbolicZero):
        terms.append(chunked_product(rows, w_dot, precision).reshape(y.shape))
    if not isinstance(b_dot, SymbolicZero):
        terms.append(chunked_broadcast(b_dot, rows.shape[0]).reshape(y.shape))
    return y, sum(terms[1:], terms[0]) if terms else jnp.zeros_like(y)


rows_affine.defjvp(_rows_affine_jvp, symbolic_zeros=True)


class RowsDense(nn.Module):
    """``flax.linen.Dense`` (float32, with a bias) for inputs of many rows: parameters
    ``kernel [k, features]`` (LeCun normal) and ``bias [features]`` (zeros), as Dense's, and
    `rows_affine`'s backward pass."""

    features: int
    precision: lax.Precision | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return rows_affine(x, kernel, bias, self.precision)
