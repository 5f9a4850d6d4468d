# Self-contained: this module depends only on `jax`, `jax.numpy`, `numpy`,
# `math` and `typing`, so it can be copied verbatim into another JAX project.
"""Losses and log-densities for PCA, autoencoders and variational autoencoders.

Conventions (in the style of ``optax.losses``):

* Inputs are ``jax.typing.ArrayLike``; outputs are ``jax.Array``.
* Options are keyword-only.
* There is **no hidden reduction over the batch**: every function returns one
  value per example, i.e. it reduces only over the *event* axes (the last axis
  for latent-space quantities, the last ``event_ndims`` axes for
  data-space quantities) and keeps all leading (batch / sample) axes. Average
  over the batch yourself, e.g. ``-elbo(...).mean()``.
* All log-densities, KL divergences and bounds are in nats.
* Shapes are checked at trace time (they are static under ``jax.jit``), and a
  mismatch raises ``ValueError`` naming the offending shapes.

Gaussians are parametrised by their mean and their *log-variance*
``logvar = log(sigma^2)``, as output by a VAE encoder.

References:
  Kingma & Welling, `Auto-Encoding Variational Bayes
  <https://arxiv.org/abs/1312.6114>`_, ICLR 2014.

  Rezende, Mohamed & Wierstra, `Stochastic Backpropagation and Approximate
  Inference in Deep Generative Models <https://arxiv.org/abs/1401.4082>`_,
  ICML 2014.

  Burda, Grosse & Salakhutdinov, `Importance Weighted Autoencoders
  <https://arxiv.org/abs/1509.00519>`_, ICLR 2016.

  Tomczak & Welling, `VAE with a VampPrior <https://arxiv.org/abs/1705.07120>`_,
  AISTATS 2018.

  Higgins et al., `beta-VAE: Learning Basic Visual Concepts with a Constrained
  Variational Framework <https://openreview.net/forum?id=Sy2fzU9gl>`_,
  ICLR 2017.

  Salimans, Karpathy, Chen & Kingma, `PixelCNN++: Improving the PixelCNN with
  Discretized Logistic Mixture Likelihood and Other Modifications
  <https://arxiv.org/abs/1701.05517>`_, ICLR 2017.
"""

import math
from typing import Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "reparameterize",
    "gaussian_kl_to_standard_normal",
    "gaussian_kl",
    "standard_normal_log_prob",
    "diagonal_gaussian_log_prob",
    "gaussian_mixture_log_prob",
    "gaussian_log_likelihood",
    "bernoulli_log_likelihood",
    "squared_error",
    "discretized_logistic_log_likelihood",
    "discretized_logistic_mixture_log_likelihood",
    "discretized_logistic_mixture_mean",
    "discretized_logistic_mixture_sample",
    "elbo",
    "iwae_bound",
]

# log(2 * pi), a Python float so it adopts the dtype of the array it meets.
_LOG_2PI = math.log(2.0 * math.pi)


# ------------------------------------------------------------------------------
# Private helpers. All checks use static shapes, so they run at trace time and
# work unchanged under `jax.jit` / `jax.vmap`.
# ------------------------------------------------------------------------------


def _check_shapes_equal(a: jax.Array, b: jax.Array, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"Shape mismatch: `{name_a}` has shape {a.shape} but `{name_b}` has shape {b.shape}; they must be equal."
        )


def _broadcast_shapes(shapes: Sequence[Tuple[int, ...]], names: Sequence[str]) -> Tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        desc = ", ".join(f"`{n}` {s}" for n, s in zip(names, shapes))
        raise ValueError(f"Shapes are not broadcast-compatible: {desc}.") from None


def _check_min_ndim(x: jax.Array, name: str) -> None:
    if x.ndim < 1:
        raise ValueError(f"`{name}` must have at least one (event) axis, i.e. shape [..., d]; got shape {x.shape}.")


def _event_axes(x: jax.Array, event_ndims: int, name: str) -> Tuple[int, ...]:
    """Returns the last `event_ndims` axes of `x`, validating `event_ndims`."""
    if (
        isinstance(event_ndims, bool)
        or not isinstance(event_ndims, (int, np.integer))
        or not 0 <= event_ndims <= x.ndim
    ):
        raise ValueError(
            f"`event_ndims` must be an int in [0, {name}.ndim={x.ndim}] "
            f"({name} has shape {x.shape}); got {event_ndims!r}."
        )
    return tuple(range(x.ndim - int(event_ndims), x.ndim))


def _as_float(x: jax.typing.ArrayLike) -> jax.Array:
    """Converts to a JAX array, promoting integer/bool inputs to float."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    return x


def _kernel(*static_argnames: str):
    """Compiles a private numerical kernel as a single XLA computation.

    Like the functions in `jax.nn`, this makes an eager call compile once per
    input signature instead of once per primitive. When traced inside an outer
    `jax.jit` (or `jax.make_jaxpr`) the kernel is inlined (`inline=True`), so it
    adds nothing to the caller's program. The public wrappers validate shapes in
    Python before calling it, so errors surface at trace time with readable
    messages.
    """

    def wrap(fn):
        return jax.jit(fn, static_argnames=static_argnames, inline=True)

    return wrap


# ------------------------------------------------------------------------------
# Reparameterisation and Gaussian KL divergences (latent space).
# ------------------------------------------------------------------------------


def reparameterize(
    rng: jax.Array,
    mean: jax.typing.ArrayLike,
    logvar: jax.typing.ArrayLike,
) -> jax.Array:
    r"""Draws ``z ~ N(mean, diag(exp(logvar)))`` with the reparameterisation trick.

    .. math::
      z = \mu + \exp(\tfrac12 \log\sigma^2) \odot \xi, \qquad \xi \sim N(0, I),

    so ``z`` is a differentiable function of ``mean`` and ``logvar`` and
    gradients of a Monte-Carlo objective flow back into the encoder.

    Args:
      rng: a PRNG key (``jax.random.key``, or a legacy raw ``uint32[2]`` key array).
      mean: the mean ``mu``, shape ``[..., d]`` (any shape is accepted).
      logvar: the log-variance ``log sigma^2``, same shape as ``mean``.

    Returns:
      a sample ``z`` with the shape and (floating) dtype of ``mean``. For several
      samples per example, broadcast ``mean`` and ``logvar`` first, e.g. to
      ``[k, ..., d]``.

    Raises:
      ValueError: if ``mean`` and ``logvar`` have different shapes.

    Example:
      >>> z = reparameterize(jax.random.key(0), jnp.zeros(3), jnp.zeros(3))
      >>> z.shape
      (3,)
      >>> # With a (numerically) zero variance, z collapses onto the mean.
      >>> z = reparameterize(jax.random.key(0), jnp.array([1.0, -2.0]),
      ...                    jnp.full(2, -200.0))
      >>> [round(float(v), 4) for v in z]
      [1.0, -2.0]

    References:
      Kingma & Welling, Auto-Encoding Variational Bayes, 2014, Sec. 2.4.
    """
    mean = _as_float(mean)
    logvar = _as_float(logvar)
    _check_shapes_equal(mean, logvar, "mean", "logvar")
    return _reparameterize(rng, mean, logvar)


@_kernel()
def _reparameterize(rng, mean, logvar):
    eps = jax.random.normal(rng, mean.shape, mean.dtype)
    # std = exp(logvar / 2): never forms the variance itself, so it cannot
    # overflow for logvar values where exp(logvar) would.
    return mean + jnp.exp(0.5 * logvar) * eps


def gaussian_kl_to_standard_normal(
    mean: jax.typing.ArrayLike,
    logvar: jax.typing.ArrayLike,
) -> jax.Array:
    r"""Closed-form ``KL(N(mean, diag(exp(logvar))) || N(0, I))`` per example.

    .. math::
      \mathrm{KL} = \tfrac12 \sum_{j=1}^{d}
        \left(\sigma_j^2 + \mu_j^2 - 1 - \log\sigma_j^2\right)
      = \tfrac12 \sum_{j=1}^{d}
        \left(\operatorname{expm1}(\log\sigma_j^2) - \log\sigma_j^2 + \mu_j^2
        \right).

    This is the regulariser of the VAE objective (Kingma & Welling, App. B).

    Args:
      mean: posterior mean, shape ``[..., d]``.
      logvar: posterior log-variance, same shape as ``mean``.

    Returns:
      the KL divergence in nats, summed over the last (latent) axis: shape
      ``[...]``.

    Raises:
      ValueError: if the shapes differ or the inputs are scalars (no latent
        axis).

    Example:
      >>> kl = gaussian_kl_to_standard_normal(jnp.array([1.0, 0.0]),
      ...                                     jnp.array([0.0, math.log(2.0)]))
      >>> print(round(float(kl), 4))  # 0.5 * (1 + (2 - 1 - log 2))
      0.6534

    References:
      Kingma & Welling, Auto-Encoding Variational Bayes, 2014, Appendix B.
    """
    mean = _as_float(mean)
    logvar = _as_float(logvar)
    _check_shapes_equal(mean, logvar, "mean", "logvar")
    _check_min_ndim(mean, "mean")
    return _kl_to_standard_normal(mean, logvar)


@_kernel()
def _kl_to_standard_normal(mean, logvar):
    # sigma^2 - 1 - log sigma^2 = expm1(l) - l. Near l = 0 the naive form
    # exp(l) - 1 - l cancels catastrophically (float32 loses every digit for
    # |l| < ~1e-4), while expm1(l) - l ~= l^2 / 2 keeps full relative precision.
    per_dim = jnp.expm1(logvar) - logvar + jnp.square(mean)
    return 0.5 * jnp.sum(per_dim, axis=-1)


def gaussian_kl(
    mean_q: jax.typing.ArrayLike,
    logvar_q: jax.typing.ArrayLike,
    mean_p: jax.typing.ArrayLike,
    logvar_p: jax.typing.ArrayLike,
) -> jax.Array:
    r"""Closed-form ``KL(q || p)`` between two diagonal Gaussians, per example.

    With ``q = N(mu_q, diag(sigma_q^2))``, ``p = N(mu_p, diag(sigma_p^2))`` and
    ``delta = log sigma_q - log sigma_p = (logvar_q - logvar_p) / 2``:

    .. math::
      \mathrm{KL}(q\|p) = \sum_{j=1}^{d} \left[
        \tfrac12 \left(\frac{\mu_{q,j} - \mu_{p,j}}{\sigma_{p,j}}\right)^2
        + \tfrac12 \operatorname{expm1}(2\delta_j) - \delta_j \right].

    This is the numerically careful form used by distrax's
    ``_kl_divergence_normal_normal``: it works with the *difference* of log
    scales (so large-but-equal variances do not lose precision), and ``expm1``
    keeps the ``sigma_q^2/sigma_p^2 - 1 - log(sigma_q^2/sigma_p^2)`` term
    accurate when the two variances are close. With ``p = N(0, I)`` it reduces
    to :func:`gaussian_kl_to_standard_normal`.

    Args:
      mean_q: mean of ``q``, shape ``[..., d]``.
      logvar_q: log-variance of ``q``, same shape as ``mean_q``.
      mean_p: mean of ``p``, shape broadcastable against ``mean_q`` (e.g. a
        learned prior shared by the batch, shape ``[d]``).
      logvar_p: log-variance of ``p``, same shape as ``mean_p``.

    Returns:
      the KL divergence in nats, summed over the last axis of the broadcast
      shape: shape ``broadcast(mean_q.shape, mean_p.shape)[:-1]``.

    Raises:
      ValueError: if ``mean`` and ``logvar`` of the same distribution differ in
        shape, if ``q`` and ``p`` shapes do not broadcast, or if the inputs are
        scalars.

    Example:
      >>> kl = gaussian_kl(jnp.array([1.0]), jnp.array([0.0]),
      ...                  jnp.array([0.0]), jnp.array([math.log(4.0)]))
      >>> print(round(float(kl), 4))  # 0.5 * (1/4 + 1/4 - 1 + log 4)
      0.4431
      >>> print(round(float(gaussian_kl(jnp.ones(3), jnp.ones(3),
      ...                               jnp.ones(3), jnp.ones(3))), 4))
      0.0

    References:
      distrax, ``distrax/_src/distributions/normal.py``
      (``_kl_divergence_normal_normal``).
    """
    mean_q, logvar_q = _as_float(mean_q), _as_float(logvar_q)
    mean_p, logvar_p = _as_float(mean_p), _as_float(logvar_p)
    _check_shapes_equal(mean_q, logvar_q, "mean_q", "logvar_q")
    _check_shapes_equal(mean_p, logvar_p, "mean_p", "logvar_p")
    _broadcast_shapes([mean_q.shape, mean_p.shape], ["mean_q", "mean_p"])
    _check_min_ndim(mean_q, "mean_q")
    _check_min_ndim(mean_p, "mean_p")
    return _kl_normal_normal(mean_q, logvar_q, mean_p, logvar_p)


@_kernel()
def _kl_normal_normal(mean_q, logvar_q, mean_p, logvar_p):
    # log(sigma_q / sigma_p), computed from the log-variances directly.
    diff_log_scale = 0.5 * (logvar_q - logvar_p)
    # (mu_q - mu_p) / sigma_p, with 1/sigma_p = exp(-logvar_p / 2).
    scaled_mean_diff = (mean_q - mean_p) * jnp.exp(-0.5 * logvar_p)
    per_dim = (
        0.5 * jnp.square(scaled_mean_diff)
        # r - 1 - log r with r = sigma_q^2 / sigma_p^2 = exp(2 delta): expm1
        # avoids cancellation when the variances are nearly equal.
        + 0.5 * jnp.expm1(2.0 * diff_log_scale)
        - diff_log_scale
    )
    return jnp.sum(per_dim, axis=-1)


def standard_normal_log_prob(z: jax.typing.ArrayLike) -> jax.Array:
    r"""Log-density of ``N(0, I)`` at ``z``, per example.

    .. math::
      \log N(z; 0, I) = -\tfrac12 \|z\|^2 - \tfrac{d}{2} \log(2\pi).

    Args:
      z: points, shape ``[..., d]``.

    Returns:
      log-densities in nats, summed over the last axis: shape ``[...]``.

    Raises:
      ValueError: if ``z`` is a scalar (no latent axis).

    Example:
      >>> print(round(float(standard_normal_log_prob(jnp.zeros(2))), 4))
      -1.8379
    """
    z = _as_float(z)
    _check_min_ndim(z, "z")
    return _standard_normal_log_prob(z)


@_kernel()
def _standard_normal_log_prob(z):
    d = z.shape[-1]
    return -0.5 * jnp.sum(jnp.square(z), axis=-1) - 0.5 * d * _LOG_2PI


def diagonal_gaussian_log_prob(
    z: jax.typing.ArrayLike,
    mean: jax.typing.ArrayLike,
    logvar: jax.typing.ArrayLike,
) -> jax.Array:
    r"""Log-density of ``N(mean, diag(exp(logvar)))`` at ``z``, per example.

    .. math::
      \log N(z; \mu, \operatorname{diag}\sigma^2) = -\tfrac12 \sum_{j=1}^{d}
        \left[\frac{(z_j - \mu_j)^2}{\sigma_j^2} + \log\sigma_j^2 + \log 2\pi
        \right].

    Typical use is ``log q(z_k | x)`` for the samples of :func:`iwae_bound`.

    Args:
      z: points, shape ``[..., d]``; may carry extra leading sample axes, e.g.
        ``[k, batch, d]`` against ``mean`` of shape ``[batch, d]`` (standard
        broadcasting).
      mean: mean, shape ``[..., d]``, broadcastable against ``z``.
      logvar: log-variance, same shape as ``mean``.

    Returns:
      log-densities in nats, summed over the last axis: shape
      ``broadcast(z.shape, mean.shape)[:-1]``.

    Raises:
      ValueError: if ``mean`` and ``logvar`` differ in shape, if ``z`` does not
        broadcast against them, or if the inputs are scalars.

    Example:
      >>> lp = diagonal_gaussian_log_prob(jnp.array([1.0]), jnp.array([1.0]),
      ...                                 jnp.array([math.log(4.0)]))
      >>> print(round(float(lp), 4))  # -0.5 * (log 4 + log 2pi)
      -1.6121
    """
    z, mean, logvar = _as_float(z), _as_float(mean), _as_float(logvar)
    _check_shapes_equal(mean, logvar, "mean", "logvar")
    _broadcast_shapes([z.shape, mean.shape], ["z", "mean"])
    _check_min_ndim(z, "z")
    _check_min_ndim(mean, "mean")
    return _diagonal_gaussian_log_prob(z, mean, logvar)


@_kernel()
def _diagonal_gaussian_log_prob(z, mean, logvar):
    # Multiply by exp(-logvar) rather than dividing by exp(logvar): one fewer
    # op and no overflow of the variance itself for large logvar.
    mahalanobis = jnp.square(z - mean) * jnp.exp(-logvar)
    return -0.5 * jnp.sum(mahalanobis + logvar + _LOG_2PI, axis=-1)


def gaussian_mixture_log_prob(
    z: jax.typing.ArrayLike,
    means: jax.typing.ArrayLike,
    logvars: jax.typing.ArrayLike,
) -> jax.Array:
    r"""Log-density at ``z`` of the equal-weight mixture of ``K`` diagonal Gaussians.

    .. math::
      \log p(z) = \log \frac{1}{K} \sum_{k=1}^{K}
        N(z; \mu_k, \operatorname{diag}\sigma_k^2)

    (a log-sum-exp over the components, stable for far-apart ones). This is the
    prior of a mixture-of-Gaussians VAE, and the VampPrior when ``means`` and
    ``logvars`` are the encoder's outputs at ``K`` learned pseudo-inputs.

    The squared distances are expanded into matrix products (no ``[..., K, d]``
    array, and matrix-product speed), so their rounding error is about the
    float precision times ``sum_j (z_j^2 + mu_kj^2) / sigma_kj^2``: 1e-3 nats for
    typical latents (|z| of a few units, variances >= 0.01, d = 40).

    Args:
      z: points, shape ``[..., d]`` (any leading batch / sample axes).
      means: component means, shape ``[K, d]``.
      logvars: component log-variances, shape ``[K, d]``.

    Returns:
      log-densities in nats, shape ``z.shape[:-1]``.

    Raises:
      ValueError: if ``means`` and ``logvars`` differ in shape or are not
        ``[K, d]`` with the ``d`` of ``z``.

    Example:
      >>> lp = gaussian_mixture_log_prob(jnp.zeros((1, 2)), jnp.zeros((3, 2)),
      ...                                jnp.zeros((3, 2)))
      >>> print(round(float(lp[0]), 4))  # one N(0, I) three times: -log 2pi
      -1.8379
    """
    z, means, logvars = _as_float(z), _as_float(means), _as_float(logvars)
    _check_shapes_equal(means, logvars, "means", "logvars")
    _check_min_ndim(z, "z")
    if means.ndim != 2 or means.shape[-1] != z.shape[-1]:
        raise ValueError(f"means and logvars must be [K, d] with d = z.shape[-1] = {z.shape[-1]}; got {means.shape}.")
    return _gaussian_mixture_log_prob(z, means, logvars)


@_kernel()
def _gaussian_mixture_log_prob(z, means, logvars):
    # sum_j (z_j - m_kj)^2 / v_kj expanded into matrix products, so that no
    # [..., K, d] array is formed (K = 500 pseudo-inputs, thousands of samples).
    inverse_variances = jnp.exp(-logvars)
    mahalanobis = (
        jnp.square(z) @ inverse_variances.T
        - 2.0 * z @ (means * inverse_variances).T
        + jnp.sum(jnp.square(means) * inverse_variances, axis=-1)
    )
    per_component = -0.5 * (mahalanobis + jnp.sum(logvars, axis=-1) + z.shape[-1] * _LOG_2PI)
    return jax.nn.logsumexp(per_component, axis=-1) - math.log(means.shape[0])


# ------------------------------------------------------------------------------
# Reconstruction terms (data space).
# ------------------------------------------------------------------------------


def _check_positive_if_concrete(variance) -> None:
    """Validates `variance > 0` for concrete Python / NumPy values only.

    JAX arrays (possibly tracers under `jit`) are not checked, to avoid a
    host-device sync and to stay traceable.
    """
    if isinstance(variance, bool):
        raise ValueError(f"`variance` must be a positive number, got {variance!r}.")
    if isinstance(variance, (int, float, np.number, np.ndarray)):
        if not np.all(np.asarray(variance) > 0):
            raise ValueError(f"`variance` must be > 0 everywhere, got {variance!r}.")


def gaussian_log_likelihood(
    x: jax.typing.ArrayLike,
    mean: jax.typing.ArrayLike,
    *,
    variance: jax.typing.ArrayLike = 1.0,
    normalized: bool = True,
    event_ndims: int = 1,
) -> jax.Array:
    r"""Gaussian log-likelihood ``log N(x; mean, c I)`` of data, per example.

    For a scalar variance ``c`` and ``D`` event elements,

    .. math::
      \log N(x; f(z), c I) = -\frac{\|x - f(z)\|^2}{2c}
        - \frac{D}{2} \log(2\pi c).

    With ``normalized=False`` only the first term, ``-||x - f(z)||^2 / (2c)``, is
    returned (the form usually written in lecture notes; it differs by the
    constant ``(D/2) log(2 pi c)``, which has no gradient w.r.t. the decoder
    mean but matters when comparing likelihoods or learning ``c``).

    ``variance`` may also be an array broadcastable to ``x`` (per-pixel or
    learned variance); the normaliser is then
    ``-(1/2) sum_i log(2 pi c_i)`` over the event elements.

    Args:
      x: data, shape ``[..., *event_shape]`` with ``event_ndims`` event axes,
        e.g. ``[batch, d]`` (``event_ndims=1``) or ``[batch, h, w, c]``
        (``event_ndims=3``).
      mean: decoder mean ``f(z)``, same shape as ``x``.
      variance: observation variance ``c > 0``; a scalar or an array
        broadcastable to ``x.shape`` (without enlarging it).
      normalized: include the ``-(1/2) log(2 pi c)`` normaliser per element.
      event_ndims: number of trailing axes summed over (``0`` returns
        element-wise log-densities).

    Returns:
      log-likelihoods in nats, shape ``x.shape[:x.ndim - event_ndims]``.

    Raises:
      ValueError: if ``x`` and ``mean`` differ in shape, ``variance`` does not
        broadcast to ``x.shape``, ``event_ndims`` is out of range, or a concrete
        (Python / NumPy) ``variance`` is not positive.

    Example:
      >>> x, m = jnp.array([1.0, 2.0]), jnp.array([0.0, 2.0])
      >>> print(round(float(gaussian_log_likelihood(x, m)), 4))
      -2.3379
      >>> print(round(float(gaussian_log_likelihood(x, m, normalized=False)), 4))
      -0.5
      >>> print(round(float(gaussian_log_likelihood(x, m, variance=0.5,
      ...                                           normalized=False)), 4))
      -1.0
    """
    _check_positive_if_concrete(variance)
    x, mean, variance = _as_float(x), _as_float(mean), _as_float(variance)
    _check_shapes_equal(x, mean, "x", "mean")
    if _broadcast_shapes([x.shape, variance.shape], ["x", "variance"]) != x.shape:
        raise ValueError(
            f"`variance` with shape {variance.shape} must broadcast to the shape of `x` {x.shape} without enlarging it."
        )
    axes = _event_axes(x, event_ndims, "x")
    return _gaussian_log_likelihood(x, mean, variance, axes, bool(normalized))


@_kernel("axes", "normalized")
def _gaussian_log_likelihood(x, mean, variance, axes, normalized):
    # Element-wise terms, broadcast to x.shape so that a scalar variance
    # contributes its normaliser once per event element (D times in total).
    log_prob = -0.5 * jnp.square(x - mean) / variance
    if normalized:
        log_prob = log_prob - 0.5 * (_LOG_2PI + jnp.log(variance))
    log_prob = jnp.broadcast_to(log_prob, x.shape)
    return jnp.sum(log_prob, axis=axes)


def bernoulli_log_likelihood(
    x: jax.typing.ArrayLike,
    logits: jax.typing.ArrayLike,
    *,
    event_ndims: int = 1,
) -> jax.Array:
    r"""Bernoulli log-likelihood of (binary or [0, 1]-valued) data, per example.

    With ``p = sigmoid(l)``:

    .. math::
      \log p(x \mid l) = \sum_i x_i \log\sigma(l_i) + (1 - x_i)\log\sigma(-l_i)
        = \sum_i x_i l_i - \operatorname{softplus}(l_i),

    i.e. minus the sigmoid binary cross-entropy. For non-binary ``x`` in
    ``[0, 1]`` (e.g. grey-level MNIST) this is the usual continuous relaxation,
    not a normalised density.

    Args:
      x: targets in ``[0, 1]``, shape ``[..., *event_shape]``.
      logits: decoder logits ``l``, same shape as ``x``.
      event_ndims: number of trailing axes summed over.

    Returns:
      log-likelihoods in nats, shape ``x.shape[:x.ndim - event_ndims]``.

    Raises:
      ValueError: if ``x`` and ``logits`` differ in shape or ``event_ndims`` is
        out of range.

    Example:
      >>> ll = bernoulli_log_likelihood(jnp.array([1.0, 0.0]), jnp.zeros(2))
      >>> print(round(float(ll), 4))  # 2 * log(1/2)
      -1.3863
      >>> # Stable for huge logits: a confident wrong pixel costs |l| nats.
      >>> ll = bernoulli_log_likelihood(jnp.array([1.0, 0.0]),
      ...                               jnp.array([-1000.0, -1000.0]))
      >>> print(round(float(ll), 4))
      -1000.0

    References:
      Kingma & Welling, Auto-Encoding Variational Bayes, 2014, Appendix C.1.
    """
    logits = _as_float(logits)
    x = jnp.asarray(x).astype(logits.dtype)
    _check_shapes_equal(x, logits, "x", "logits")
    axes = _event_axes(x, event_ndims, "x")
    return _bernoulli_log_likelihood(x, logits, axes)


@_kernel("axes")
def _bernoulli_log_likelihood(x, logits, axes):
    # x log sigmoid(l) + (1 - x) log sigmoid(-l) = x l - softplus(l): one softplus
    # (one exp and one log1p per pixel, instead of two of each), evaluated stably
    # by JAX for any |l|. Computing log(sigmoid(l)) directly underflows to
    # log(0) = -inf for l < ~-104 in float32 (and gives 0 * -inf = nan at x = 0).
    return jnp.sum(x * logits - jax.nn.softplus(logits), axis=axes)


def squared_error(
    x: jax.typing.ArrayLike,
    x_hat: jax.typing.ArrayLike,
    *,
    event_ndims: int = 1,
) -> jax.Array:
    r"""Per-example sum of squared errors ``||x - x_hat||^2``.

    .. math::
      \ell(x, \hat x) = \sum_i (x_i - \hat x_i)^2,

    the reconstruction loss of a (linear) autoencoder, whose minimiser over
    rank-``k`` linear maps is PCA. Equals
    ``-2 c * gaussian_log_likelihood(x, x_hat, variance=c, normalized=False)``.
    Mean squared error is ``squared_error(x, x_hat) / D``.

    Args:
      x: data, shape ``[..., *event_shape]``.
      x_hat: reconstruction, same shape as ``x``.
      event_ndims: number of trailing axes summed over.

    Returns:
      summed squared errors, shape ``x.shape[:x.ndim - event_ndims]``.

    Raises:
      ValueError: if ``x`` and ``x_hat`` differ in shape or ``event_ndims`` is
        out of range.

    Example:
      >>> print(round(float(squared_error(jnp.array([1.0, 2.0]),
      ...                                 jnp.array([0.0, 4.0]))), 4))
      5.0
    """
    x, x_hat = _as_float(x), _as_float(x_hat)
    _check_shapes_equal(x, x_hat, "x", "x_hat")
    axes = _event_axes(x, event_ndims, "x")
    return _squared_error(x, x_hat, axes)


@_kernel("axes")
def _squared_error(x, x_hat, axes):
    return jnp.sum(jnp.square(x - x_hat), axis=axes)


# ------------------------------------------------------------------------------
# Discretised logistic likelihoods of 8-bit (or n-level) data (PixelCNN++).
# ------------------------------------------------------------------------------


def _check_num_bins(num_bins) -> None:
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 2:
        raise ValueError(f"`num_bins` must be an int >= 2 (256 for 8-bit data); got {num_bins!r}.")


def _check_shape(a: jax.Array, shape: Tuple[int, ...], name: str, expected: str) -> None:
    if a.shape != tuple(shape):
        raise ValueError(f"`{name}` must have shape {expected} = {tuple(shape)}; got {a.shape}.")


def _clamped(log_scale: jax.Array, min_log_scale) -> jax.Array:
    # PixelCNN++'s floor on the log-scale: s >= e^-7 ~ 9e-4, a quarter of a bin of 8-bit
    # data, so that no pixel becomes a point mass (and 1/s cannot overflow).
    return log_scale if min_log_scale is None else jnp.maximum(log_scale, min_log_scale)


def _bin_index(x: jax.Array, num_bins: int) -> jax.Array:
    """The bin ``k`` in {0, ..., num_bins - 1} of data ``x = k / (num_bins - 1)`` (exact: rounded)."""
    top = num_bins - 1
    return jnp.clip(jnp.round(x * top), 0, top)


def _bin_centre(k: jax.Array, num_bins: int) -> jax.Array:
    """The value of bin ``k`` on the logistic's scale [-1, 1]: ``(2 k - (num_bins - 1)) / (num_bins - 1)``
    (an exact integer over the number of intervals)."""
    top = num_bins - 1
    return (2.0 * k - top) / top


def _log_bin_probability(k, mean, log_scale, num_bins):
    """Element-wise log P(bin k) of a discretised logistic."""
    top = num_bins - 1
    half = 1.0 / top  # half a bin width on [-1, 1]
    inv_scale = jnp.exp(-log_scale)
    # a and b: the bin's upper and lower edges (2k + 1 - top) / top and (2k - 1 - top) / top,
    # standardised. The numerators are exact integers, so each edge is within an ulp of its
    # value (0 exactly for the middle edge of 256 bins), and bin k's upper edge is bin k + 1's
    # lower edge to the last bit: the probabilities telescope to 1. (An edge computed two
    # ways, e.g. as centre +- half, would differ by an ulp, times 1/s up to e^7: 1e-5 of the total.)
    upper = ((2.0 * k + (1.0 - top)) / top - mean) * inv_scale
    lower = ((2.0 * k - (1.0 + top)) / top - mean) * inv_scale
    # log sigma(a) for the first bin (lower edge -inf), log(1 - sigma(b)) = log sigma(-b) for
    # the last (upper edge +inf): log_sigmoid never underflows (log sigma(a) ~ a for a << 0).
    log_cdf_upper = jax.nn.log_sigmoid(upper)
    log_survival_lower = jax.nn.log_sigmoid(-lower)
    # Interior bins: sigma(a) - sigma(b) = sigma(a) sigma(-b) (1 - e^-(a - b)), so
    #   log P = log sigma(a) + log sigma(-b) + log(1 - e^-w),  w = a - b = 2 half / s.
    # The difference of the two CDFs is never formed, so nothing cancels or underflows in
    # either tail (where PixelCNN++ falls back to the density at the bin's centre), and
    # w is formed from its logarithm, log w = log(2 half) - log s, not as a - b.
    log_width = math.log(2.0 * half) - log_scale
    # log(1 - e^-w) = log(-expm1(-w)), exact down to tiny w; below e^-60 it is log w to
    # float64 precision (1 - e^-w = w (1 - w/2 + ...)), which also keeps it finite (and its
    # gradient too: the clamped branch never sees w = 0) when e^(log w) underflows.
    safe_log_width = jnp.maximum(log_width, -60.0)
    log_one_minus_exp = jnp.where(log_width > -60.0, jnp.log(-jnp.expm1(-jnp.exp(safe_log_width))), log_width)
    log_interior = log_cdf_upper + log_survival_lower + log_one_minus_exp
    return jnp.where(k == 0, log_cdf_upper, jnp.where(k == top, log_survival_lower, log_interior))


def discretized_logistic_log_likelihood(
    x: jax.typing.ArrayLike,
    mean: jax.typing.ArrayLike,
    log_scale: jax.typing.ArrayLike,
    *,
    event_ndims: int = 3,
    num_bins: int = 256,
    min_log_scale: float | None = -7.0,
) -> jax.Array:
    r"""Discretised logistic log-likelihood of n-level (8-bit) data, per example.

    Data ``x = k / (num_bins - 1)`` in [0, 1] (images as the models see them) are mapped to
    their bin ``k = round(x (num_bins - 1))`` and the bin's value ``v_k = 2k / (num_bins - 1) - 1``
    on [-1, 1], where the bins have width ``2 / (num_bins - 1)``. With a logistic of mean
    ``mu`` and scale ``s = exp(log_scale)`` on that scale and ``h = 1 / (num_bins - 1)``:

    .. math::
      P(k) = \sigma\!\left(\frac{v_k + h - \mu}{s}\right)
           - \sigma\!\left(\frac{v_k - h - \mu}{s}\right),

    with the lower edge at ``-inf`` for ``k = 0`` (``P(0) = sigma((v_0 + h - mu) / s)``) and
    the upper edge at ``+inf`` for the last bin, so the probabilities of the ``num_bins``
    values sum to 1 (Salimans et al. 2017, Sec. 2.1).

    Numerics: the log of the CDF difference is computed as
    ``log sigma(a) + log sigma(-b) + log(1 - exp(-(a - b)))`` (an identity), with
    ``log_sigmoid`` and ``expm1``: no difference of probabilities is formed, so neither tail
    underflows and PixelCNN++'s fallback to the density at the bin centre is not needed.
    ``log_scale`` is floored at ``min_log_scale`` (PixelCNN++'s -7; ``None``: no floor, exact
    for ``log_scale`` > -80 in float32); below the floor its gradient is 0.

    Args:
      x: data in [0, 1] on the grid ``k / (num_bins - 1)`` (other values go to the nearest
        bin), shape ``[..., *event_shape]``, e.g. ``[batch, H, W, C]``.
      mean: ``mu`` on the [-1, 1] scale, same shape as ``x``.
      log_scale: ``log s``, same shape as ``x``.
      event_ndims: number of trailing axes summed over (``0``: element-wise log-probabilities).
      num_bins: number of levels (256 for 8-bit data).
      min_log_scale: floor of ``log_scale``, or None.

    Returns:
      log-likelihoods in nats, shape ``x.shape[:x.ndim - event_ndims]``. Divide the negative
      by ``D log 2`` (``D`` event elements) for bits per dimension.

    Raises:
      ValueError: if the shapes differ, ``event_ndims`` is out of range or ``num_bins`` < 2.

    Example:
      >>> x = jnp.array([0.0, 128 / 255, 1.0])
      >>> ll = discretized_logistic_log_likelihood(x, jnp.zeros(3), jnp.full(3, -2.0),
      ...                                          event_ndims=0)
      >>> [round(float(v), 4) for v in ll]  # the edge bins hold the tails
      [-7.3607, -4.2347, -7.3607]
      >>> values = jnp.arange(256) / 255  # every value of one pixel: probabilities sum to 1
      >>> ll = discretized_logistic_log_likelihood(values, jnp.full(256, 0.3), jnp.full(256, -3.0),
      ...                                          event_ndims=0)
      >>> print(round(float(jnp.exp(ll).sum()), 5))
      1.0

    References:
      Salimans, Karpathy, Chen & Kingma, `PixelCNN++
      <https://arxiv.org/abs/1701.05517>`_, ICLR 2017.
    """
    _check_num_bins(num_bins)
    x, mean, log_scale = _as_float(x), _as_float(mean), _as_float(log_scale)
    _check_shapes_equal(x, mean, "x", "mean")
    _check_shapes_equal(x, log_scale, "x", "log_scale")
    axes = _event_axes(x, event_ndims, "x")
    return _discretized_logistic_log_likelihood(x, mean, log_scale, axes, int(num_bins), min_log_scale)


@_kernel("axes", "num_bins", "min_log_scale")
def _discretized_logistic_log_likelihood(x, mean, log_scale, axes, num_bins, min_log_scale):
    k = _bin_index(x, num_bins)
    log_p = _log_bin_probability(k, mean, _clamped(log_scale, min_log_scale), num_bins)
    return jnp.sum(log_p, axis=axes)


def _num_coefficients(channels: int) -> int:
    return channels * (channels - 1) // 2


def _check_mixture(logit_weights, means, log_scales, coefficients, pixel_shape, name_x="x"):
    """Validates mixture shapes against the per-pixel shape ``[..., C]``; returns ``K``."""
    _check_min_ndim(means, "means")
    components = means.shape[-1]
    channels = pixel_shape[-1]
    _check_shape(means, (*pixel_shape, components), "means", f"{name_x}.shape + (K,)")
    _check_shape(log_scales, means.shape, "log_scales", "means.shape")
    _check_shape(logit_weights, (*pixel_shape[:-1], components), "logit_weights", f"{name_x}.shape[:-1] + (K,)")
    if coefficients is not None:
        _check_shape(
            coefficients,
            (*pixel_shape[:-1], _num_coefficients(channels), components),
            "coefficients",
            f"{name_x}.shape[:-1] + (C (C - 1) / 2, K)",
        )
    return components


def _coupled_mean(means, coefficients, values, c):
    """Channel ``c``'s component means ``[..., K]``: ``means[..., c, :]`` plus, with coefficients,
    ``sum_{j < c} coefficients[..., c (c - 1) / 2 + j, :] * values[j]`` (``values[j]``: ``[...]``
    or ``[..., K]`` on [-1, 1])."""
    mean = means[..., c, :]
    if coefficients is not None:
        for j in range(c):
            value = values[j] if values[j].ndim == mean.ndim else values[j][..., None]
            mean = mean + coefficients[..., c * (c - 1) // 2 + j, :] * value
    return mean


def discretized_logistic_mixture_log_likelihood(
    x: jax.typing.ArrayLike,
    logit_weights: jax.typing.ArrayLike,
    means: jax.typing.ArrayLike,
    log_scales: jax.typing.ArrayLike,
    *,
    coefficients: jax.typing.ArrayLike | None = None,
    event_ndims: int = 3,
    num_bins: int = 256,
    min_log_scale: float | None = -7.0,
) -> jax.Array:
    r"""Log-likelihood of n-level (8-bit) data under a mixture of discretised logistics, per example.

    Each pixel ``x_i`` (its ``C`` channels, the last axis of ``x``) has ``K`` components with
    weights ``pi = softmax(logit_weights)``; component ``k`` gives each channel ``c`` a
    discretised logistic (`discretized_logistic_log_likelihood`) of mean ``mu_{c,k}`` and
    log-scale ``log s_{c,k}``, and the channels of a pixel share the component:

    .. math::
      \log p(x_i) = \log \sum_{k=1}^{K} \pi_k \prod_{c=1}^{C} P(x_{i,c} \mid \mu_{c,k}, s_{c,k}).

    With ``coefficients`` (PixelCNN++'s dependence between the channels of a pixel) the mean
    of channel ``c`` is linear in the pixel's previous channels (their values on [-1, 1]):
    ``mu_{c,k} = means_{c,k} + sum_{j<c} alpha_{c,j,k} v_j``, the coefficients ordered
    ``(1,0), (2,0), (2,1), ...`` (index ``c (c - 1) / 2 + j``): for RGB,
    ``mu_g = m_g + alpha_0 r`` and ``mu_b = m_b + alpha_1 r + alpha_2 g``. The joint over the
    ``C`` channels is then a chain rule ``p(r) p(g|r) p(b|r,g)`` within each component, still
    normalised over the ``num_bins^C`` values of a pixel. Without them the channels are
    independent given the component. The mixture is a log-sum-exp over the components.

    Args:
      x: data in [0, 1] on the grid ``k / (num_bins - 1)``, shape ``[..., C]`` with
        ``event_ndims`` event axes ending with the channel axis, e.g. ``[batch, H, W, C]``.
      logit_weights: mixture logits, shape ``x.shape[:-1] + (K,)``.
      means: component means on [-1, 1], shape ``x.shape + (K,)``.
      log_scales: component log-scales, shape ``x.shape + (K,)``.
      coefficients: None (independent channels) or ``x.shape[:-1] + (C (C - 1) / 2, K)``
        (PixelCNN++ bounds them with ``tanh``; they are used as given here).
      event_ndims: number of trailing axes of ``x`` summed over, >= 1 (the channel axis is
        always part of the event).
      num_bins: number of levels (256 for 8-bit data).
      min_log_scale: floor of ``log_scales`` (PixelCNN++'s -7), or None.

    Returns:
      log-likelihoods in nats, shape ``x.shape[:x.ndim - event_ndims]``.

    Raises:
      ValueError: on shapes other than the above, ``event_ndims`` < 1 or out of range, or
        ``num_bins`` < 2.

    Example:
      >>> x = jnp.array([[0.0], [1.0]])  # two one-channel pixels: black, white
      >>> weights, log_scales = jnp.zeros((2, 2)), jnp.full((2, 1, 2), -10.0)
      >>> means = jnp.array([[[-1.0, 1.0]], [[-1.0, 1.0]]])  # components at black and white
      >>> ll = discretized_logistic_mixture_log_likelihood(x, weights, means, log_scales,
      ...                                                  event_ndims=1, min_log_scale=None)
      >>> [round(float(v), 4) for v in ll]  # each pixel: log(1/2), its component's bin surely
      [-0.6931, -0.6931]

    References:
      Salimans, Karpathy, Chen & Kingma, `PixelCNN++
      <https://arxiv.org/abs/1701.05517>`_, ICLR 2017, Sec. 2.1-2.2.
    """
    _check_num_bins(num_bins)
    x = _as_float(x)
    logit_weights, means, log_scales = _as_float(logit_weights), _as_float(means), _as_float(log_scales)
    coefficients = None if coefficients is None else _as_float(coefficients)
    _check_min_ndim(x, "x")
    _check_mixture(logit_weights, means, log_scales, coefficients, x.shape)
    axes = _event_axes(x, event_ndims, "x")
    if not axes:
        raise ValueError("`event_ndims` must be >= 1: the channels of a pixel (the last axis) share a component.")
    pixel_axes = tuple(axis for axis in axes if axis != x.ndim - 1)
    return _mixture_log_likelihood(
        x, logit_weights, means, log_scales, coefficients, pixel_axes, int(num_bins), min_log_scale
    )


@_kernel("pixel_axes", "num_bins", "min_log_scale")
def _mixture_log_likelihood(x, logit_weights, means, log_scales, coefficients, pixel_axes, num_bins, min_log_scale):
    k = _bin_index(x, num_bins)
    values = _bin_centre(k, num_bins)  # [..., C] on [-1, 1]
    log_scales = _clamped(log_scales, min_log_scale)
    log_joint = jax.nn.log_softmax(logit_weights, axis=-1)  # [..., K]
    for c in range(x.shape[-1]):
        mean = _coupled_mean(means, coefficients, [values[..., j] for j in range(c)], c)
        log_joint = log_joint + _log_bin_probability(k[..., c, None], mean, log_scales[..., c, :], num_bins)
    return jnp.sum(jax.nn.logsumexp(log_joint, axis=-1), axis=pixel_axes)


def discretized_logistic_mixture_mean(
    logit_weights: jax.typing.ArrayLike,
    means: jax.typing.ArrayLike,
    log_scales: jax.typing.ArrayLike,
    *,
    coefficients: jax.typing.ArrayLike | None = None,
    min_log_scale: float | None = -7.0,
) -> jax.Array:
    r"""The mean, in [0, 1], of the mixture of `discretized_logistic_mixture_log_likelihood`.

    Per component and channel this is the mean of the logistic clipped to [-1, 1]
    (closed form, with ``softplus``):

    .. math::
      \mathbb{E}[\operatorname{clip}(Y, -1, 1)] = -1 + s \left[
        \operatorname{softplus}\!\left(\frac{\mu + 1}{s}\right)
        - \operatorname{softplus}\!\left(\frac{\mu - 1}{s}\right)\right],

    which differs from the mean of the discretised value by at most half a bin (rounding to
    the nearest bin moves each value by at most that), then averaged over the components with
    the weights ``softmax(logit_weights)`` and mapped to [0, 1] by ``(m + 1) / 2``. With
    ``coefficients``, channel ``c``'s component mean uses the means of the previous channels
    in place of their values (exact where no clipping occurs, i.e. away from 0 and 1).
    A single discretised logistic is the mixture with ``K = 1``.

    Args:
      logit_weights: ``[..., K]``.
      means: ``[..., C, K]`` on [-1, 1].
      log_scales: ``[..., C, K]``.
      coefficients: None or ``[..., C (C - 1) / 2, K]``.
      min_log_scale: floor of ``log_scales``, or None.

    Returns:
      ``[..., C]`` means in [0, 1] (e.g. an image of decoder means for figures).

    Raises:
      ValueError: if the shapes do not match.

    Example:
      >>> m = discretized_logistic_mixture_mean(jnp.zeros(2), jnp.array([[-0.5, 0.5]]),
      ...                                       jnp.full((1, 2), -5.0))
      >>> print(round(float(m[0]), 4))  # half at 0.25, half at 0.75
      0.5
    """
    logit_weights, means, log_scales = _as_float(logit_weights), _as_float(means), _as_float(log_scales)
    coefficients = None if coefficients is None else _as_float(coefficients)
    _check_min_ndim(means, "means")
    if means.ndim < 2:
        raise ValueError(f"`means` must have shape [..., C, K]; got {means.shape}.")
    _check_mixture(logit_weights, means, log_scales, coefficients, means.shape[:-1], name_x="means[..., 0]")
    return _mixture_mean(logit_weights, means, log_scales, coefficients, min_log_scale)


@_kernel("min_log_scale")
def _mixture_mean(logit_weights, means, log_scales, coefficients, min_log_scale):
    scales = jnp.exp(_clamped(log_scales, min_log_scale))
    weights = jax.nn.softmax(logit_weights, axis=-1)  # [..., K]
    channel_means = []  # per channel, [..., K] on [-1, 1]
    for c in range(means.shape[-2]):
        mu, s = _coupled_mean(means, coefficients, channel_means, c), scales[..., c, :]
        # 1 + E[clip(Y)] is the integral of Y's survival function over [-1, 1]. For a wide
        # logistic the two softplus terms differ by about 2 / s; s times their rounding error
        # (~1e-7 s in float32) stays below 1e-4 for s up to e^7.
        clipped = -1.0 + s * (jax.nn.softplus((mu + 1.0) / s) - jax.nn.softplus((mu - 1.0) / s))
        channel_means.append(jnp.clip(clipped, -1.0, 1.0))
    mean = jnp.stack([jnp.sum(weights * m, axis=-1) for m in channel_means], axis=-1)
    return 0.5 * (mean + 1.0)


def discretized_logistic_mixture_sample(
    rng: jax.Array,
    logit_weights: jax.typing.ArrayLike,
    means: jax.typing.ArrayLike,
    log_scales: jax.typing.ArrayLike,
    *,
    coefficients: jax.typing.ArrayLike | None = None,
    num_bins: int = 256,
    min_log_scale: float | None = -7.0,
) -> jax.Array:
    r"""Draws data from the mixture of `discretized_logistic_mixture_log_likelihood`.

    Per pixel: a component ``k ~ softmax(logit_weights)``, then channel by channel
    ``y_c = mu_{c,k} + s_{c,k} L`` with ``L`` a standard logistic (``log u - log(1 - u)``),
    rounded to its bin (the edge bins take the tails). With ``coefficients`` the mean of a
    channel uses the *discretised* values of the previous ones, exactly as the likelihood
    conditions on them, so the draws follow that distribution exactly. (PixelCNN++'s sampler
    uses the continuous, clipped draws there instead.)

    Args:
      rng: a PRNG key.
      logit_weights: ``[..., K]``.
      means: ``[..., C, K]`` on [-1, 1].
      log_scales: ``[..., C, K]``.
      coefficients: None or ``[..., C (C - 1) / 2, K]``.
      num_bins: number of levels (256 for 8-bit data).
      min_log_scale: floor of ``log_scales``, or None.

    Returns:
      ``[..., C]`` values ``k / (num_bins - 1)`` in [0, 1].

    Raises:
      ValueError: if the shapes do not match or ``num_bins`` < 2.

    Example:
      >>> x = discretized_logistic_mixture_sample(jax.random.key(0), jnp.zeros((4, 1)),
      ...                                         jnp.full((4, 1, 1), -1.0), jnp.full((4, 1, 1), -7.0))
      >>> [float(v) for v in x[:, 0]]  # a sharp logistic at black
      [0.0, 0.0, 0.0, 0.0]
    """
    _check_num_bins(num_bins)
    logit_weights, means, log_scales = _as_float(logit_weights), _as_float(means), _as_float(log_scales)
    coefficients = None if coefficients is None else _as_float(coefficients)
    if means.ndim < 2:
        raise ValueError(f"`means` must have shape [..., C, K]; got {means.shape}.")
    _check_mixture(logit_weights, means, log_scales, coefficients, means.shape[:-1], name_x="means[..., 0]")
    return _mixture_sample(rng, logit_weights, means, log_scales, coefficients, int(num_bins), min_log_scale)


@_kernel("num_bins", "min_log_scale")
def _mixture_sample(rng, logit_weights, means, log_scales, coefficients, num_bins, min_log_scale):
    component_key, noise_key = jax.random.split(rng)
    component = jax.random.categorical(component_key, logit_weights, axis=-1)  # [...]
    one_hot = jax.nn.one_hot(component, logit_weights.shape[-1], dtype=means.dtype)[..., None, :]

    def select(a):  # [..., n, K] -> [..., n] at the drawn component
        return jnp.sum(a * one_hot, axis=-1)

    means, scales = select(means), jnp.exp(select(_clamped(log_scales, min_log_scale)))
    coefficients = None if coefficients is None else select(coefficients)
    noise = jax.random.logistic(noise_key, means.shape, means.dtype)
    top = num_bins - 1
    bins, values = [], []
    for c in range(means.shape[-1]):
        mean = means[..., c]
        if coefficients is not None:
            for j in range(c):
                mean = mean + coefficients[..., c * (c - 1) // 2 + j] * values[j]
        k = jnp.clip(jnp.round((mean + scales[..., c] * noise[..., c] + 1.0) * (0.5 * top)), 0, top)
        bins.append(k)
        values.append(_bin_centre(k, num_bins))
    return jnp.stack(bins, axis=-1) / top


# ------------------------------------------------------------------------------
# Bounds.
# ------------------------------------------------------------------------------


def elbo(
    log_likelihood: jax.typing.ArrayLike,
    kl: jax.typing.ArrayLike,
    *,
    beta: jax.typing.ArrayLike = 1.0,
) -> jax.Array:
    r"""Per-example (beta-)ELBO from its two terms.

    .. math::
      \mathrm{ELBO}(x) = \mathbb{E}_{q(z|x)}[\log p(x|z)]
        - \beta\, \mathrm{KL}(q(z|x) \| p(z)).

    ``beta = 1`` gives the evidence lower bound ``<= log p(x)``; other values
    give the beta-VAE objective. The training loss is ``-elbo(...).mean()``.

    Args:
      log_likelihood: a (Monte-Carlo estimate of the) reconstruction term
        ``log p(x|z)``, shape ``[...]``.
      kl: ``KL(q(z|x) || p(z))``, same shape as ``log_likelihood``.
      beta: weight of the KL term (scalar).

    Returns:
      ``log_likelihood - beta * kl``, shape ``[...]``.

    Raises:
      ValueError: if the shapes differ.

    Example:
      >>> print(round(float(elbo(jnp.array(-10.0), jnp.array(2.0), beta=4.0)), 4))
      -18.0

    References:
      Kingma & Welling, Auto-Encoding Variational Bayes, 2014, Eq. (3);
      Higgins et al., beta-VAE, 2017.
    """
    log_likelihood, kl = _as_float(log_likelihood), _as_float(kl)
    _check_shapes_equal(log_likelihood, kl, "log_likelihood", "kl")
    return _elbo(log_likelihood, kl, beta)


@_kernel()
def _elbo(log_likelihood, kl, beta):
    return log_likelihood - beta * kl


def iwae_bound(
    log_likelihood: jax.typing.ArrayLike,
    log_prior: jax.typing.ArrayLike,
    log_posterior: jax.typing.ArrayLike,
    *,
    axis: int = 0,
) -> jax.Array:
    r"""Importance-weighted (IWAE) lower bound on ``log p(x)``, per example.

    With ``k`` samples ``z_1..z_k ~ q(z|x)`` laid out along ``axis`` and
    log-weights ``log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)``:

    .. math::
      \mathcal{L}_k(x) = \log \frac{1}{k} \sum_{i=1}^{k} w_i
        = \operatorname{logsumexp}_i(\log w_i) - \log k.

    ``logsumexp`` subtracts the maximum before exponentiating, so log-weights
    of any magnitude (e.g. -1e4 nats) are handled without under/overflow.
    ``k = 1`` is the single-sample ELBO estimate; ``E[L_k]`` is non-decreasing
    in ``k`` and tends to ``log p(x)``; if ``p(x, z) / q(z|x)`` is constant (exact
    posterior) every ``L_k`` equals ``log p(x)``.

    Args:
      log_likelihood: ``log p(x|z_i)``, shape ``[..., k, ...]`` with the samples
        along ``axis``.
      log_prior: ``log p(z_i)``, same shape.
      log_posterior: ``log q(z_i|x)``, same shape.
      axis: the sample axis (static int, may be negative).

    Returns:
      the bound in nats, with ``axis`` removed.

    Raises:
      ValueError: if the shapes differ, the inputs are scalars, ``axis`` is out
        of range, or there are no samples (``k = 0``).

    Example:
      >>> # Two samples with log-weights 0 and log 3: log((1 + 3) / 2) = log 2.
      >>> b = iwae_bound(jnp.array([0.0, math.log(3.0)]), jnp.zeros(2),
      ...                jnp.zeros(2))
      >>> print(round(float(b), 4))
      0.6931

    References:
      Burda, Grosse & Salakhutdinov, Importance Weighted Autoencoders, 2016,
      Sec. 3 (bound and monotonicity in ``k``: Theorem 1).
    """
    log_likelihood = _as_float(log_likelihood)
    log_prior = _as_float(log_prior)
    log_posterior = _as_float(log_posterior)
    _check_shapes_equal(log_likelihood, log_prior, "log_likelihood", "log_prior")
    _check_shapes_equal(log_likelihood, log_posterior, "log_likelihood", "log_posterior")
    ndim = log_likelihood.ndim
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ValueError(
            f"`axis` must be an int in [-{ndim}, {ndim}) for inputs of shape {log_likelihood.shape}; got {axis!r}."
        )
    k = log_likelihood.shape[axis]
    if k == 0:
        raise ValueError(f"Need at least one sample along axis {axis}; got shape {log_likelihood.shape}.")
    return _iwae_bound(log_likelihood, log_prior, log_posterior, int(axis))


@_kernel("axis")
def _iwae_bound(log_likelihood, log_prior, log_posterior, axis):
    k = log_likelihood.shape[axis]
    log_weights = log_likelihood + log_prior - log_posterior
    # logsumexp - log k == log mean exp, computed after subtracting the max.
    return jax.nn.logsumexp(log_weights, axis=axis) - math.log(k)
