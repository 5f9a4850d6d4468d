"""The importance-sampled log-likelihood of a trained model (Burda et al. 2016), in nats per
example, with its standard error, in chunks of images and of samples.

A callable is passed to the jitted programs as a `jax.tree_util.Partial`: ``Partial(f,
params)`` makes ``params`` a *traced* argument, so calling again with new parameters (e.g.
after each epoch) reuses the compiled program; fixed Python options belong inside ``f``.
`model_log_likelihood` estimates it for any model kind from what its
`vae_jax.models.interface.ModelFns` provides.

References:
  Burda, Grosse & Salakhutdinov, `Importance Weighted Autoencoders
  <https://arxiv.org/abs/1509.00519>`_, ICLR 2016.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax import lax
from jax.tree_util import Partial

from vae_jax import losses
from vae_jax.evaluation import chunked
from vae_jax.models import likelihoods


def _duration(seconds: float) -> str:
    """``seconds`` as ``'42 s'``, ``'6 min 05 s'`` or ``'1 h 02 min'``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class LogProgress:
    """A ``progress`` callback (`importance_sampled_log_likelihood`, `model_log_likelihood`) that
    logs the examples done, the rate (examples/s) and the estimated time left.

    One line for the first chunk (its time includes compiling the program), then at most one
    every ``every_seconds`` (so every chunk when chunks take longer), and one for the last. The
    rate counts the chunks after the first (compilation left out) once there are any. Created
    just before the computation starts (its clock starts then); ``log`` is called with one
    formatted line (default: absl's ``logging.info``); ``clock`` returns seconds.

    Example line: ``NLL k=1000 (test): 2,560 / 10,000 images (25.6%), 18.4 images/s, 2 min 19 s
    elapsed, about 6 min 45 s left``.
    """

    def __init__(
        self,
        label: str,
        *,
        unit: str = "images",
        every_seconds: float = 10.0,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.label, self.unit, self.every_seconds = label, unit, every_seconds
        self._log = log if log is not None else logging.info
        self._clock = clock
        self._start = clock()
        self._first: tuple[int, float] | None = None  # (done, time) after the first chunk
        self._last_logged: float | None = None

    def __call__(self, done: int, total: int) -> None:
        now = self._clock()
        if self._first is None:
            self._first = (done, now)
            rate = done / max(now - self._start, 1e-9)
        elif done > self._first[0] and now > self._first[1]:
            rate = (done - self._first[0]) / (now - self._first[1])
        else:
            rate = done / max(now - self._start, 1e-9)
        last = done >= total
        if not (last or self._last_logged is None or now - self._last_logged >= self.every_seconds):
            return
        self._last_logged = now
        left = "done" if last else f"about {_duration((total - done) / rate)} left" if rate > 0 else "time left unknown"
        compiling = " (includes compiling)" if self._first[0] == done and not last else ""
        self._log(
            f"{self.label}: {done:,} / {total:,} {self.unit} ({100 * done / total:.1f}%), {rate:.1f} {self.unit}/s"
            f"{compiling}, {_duration(now - self._start)} elapsed, {left}"
        )


def _standard_error(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


@functools.partial(jax.jit, static_argnames="sample_chunk")
def _importance_sampled_chunk(encode, log_likelihood, log_prior, x, offset, key, num_samples, *, sample_chunk):
    """Importance-sampled log p(x) of one data chunk ``x`` [b, ...] -> [b] nats.

    ``num_samples`` is traced (the loop over sample chunks has a dynamic trip count), so one
    compiled program serves every ``k`` with the same ``sample_chunk``.
    """
    mean, logvar = encode(x)
    example_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(offset + jnp.arange(x.shape[0]))
    # z_s of example i: reparameterize(fold_in(fold_in(key, i), s), mean_i, logvar_i).
    sample_z = jax.vmap(jax.vmap(losses.reparameterize), in_axes=(0, None, None))

    def add_sample_chunk(j, log_sum):
        sample_index = j * sample_chunk + jnp.arange(sample_chunk)
        sample_keys = jax.vmap(lambda s: jax.vmap(lambda k: jax.random.fold_in(k, s))(example_keys))(sample_index)
        z = sample_z(sample_keys, mean, logvar)  # [sample_chunk, b, d]
        log_px_z = jax.vmap(log_likelihood, in_axes=(None, 0))(x, z)  # [sample_chunk, b]
        # Samples past num_samples (in the last chunk only) get weight exp(-inf) = 0.
        log_px_z = jnp.where((sample_index < num_samples)[:, None], log_px_z, -jnp.inf)
        log_pz = losses.standard_normal_log_prob(z) if log_prior is None else log_prior(z)
        chunk_bound = losses.iwae_bound(log_px_z, log_pz, losses.diagonal_gaussian_log_prob(z, mean, logvar))
        chunk_log_sum = chunk_bound + math.log(sample_chunk)  # log sum_s w_s over this chunk
        return jnp.logaddexp(log_sum, chunk_log_sum.astype(log_sum.dtype))

    dtype = jnp.result_type(mean.dtype, float)
    num_chunks = (num_samples + sample_chunk - 1) // sample_chunk
    log_sum = lax.fori_loop(0, num_chunks, add_sample_chunk, jnp.full(x.shape[:1], -jnp.inf, dtype))
    return log_sum - jnp.log(num_samples.astype(dtype))


@functools.partial(jax.jit, static_argnames="sample_chunk")
def _weighted_chunk(log_weight, x, offset, key, num_samples, *, sample_chunk):
    """`_importance_sampled_chunk` of a model that computes its own weights: ``log_weight(x,
    keys [b]) -> [b]`` (one posterior sample per image, image i's drawn with ``keys[i]``).
    Sample ``s`` of image ``i`` is drawn with ``fold_in(fold_in(key, i), s)``, as there."""
    example_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(offset + jnp.arange(x.shape[0]))

    def add_sample_chunk(j, log_sum):
        sample_index = j * sample_chunk + jnp.arange(sample_chunk)
        sample_keys = jax.vmap(lambda s: jax.vmap(lambda k: jax.random.fold_in(k, s))(example_keys))(sample_index)
        log_w = jax.vmap(log_weight, in_axes=(None, 0))(x, sample_keys)  # [sample_chunk, b]
        # Samples past num_samples (in the last chunk only) get weight exp(-inf) = 0.
        log_w = jnp.where((sample_index < num_samples)[:, None], log_w, -jnp.inf)
        return jnp.logaddexp(log_sum, jax.nn.logsumexp(log_w, axis=0).astype(log_sum.dtype))

    dtype = jnp.result_type(x.dtype, float)
    num_chunks = (num_samples + sample_chunk - 1) // sample_chunk
    log_sum = lax.fori_loop(0, num_chunks, add_sample_chunk, jnp.full(x.shape[:1], -jnp.inf, dtype))
    return log_sum - jnp.log(num_samples.astype(dtype))


def _check_sample_counts(num_samples, sample_chunk) -> None:
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive int, got {num_samples!r}.")
    if not isinstance(sample_chunk, (int, np.integer)) or sample_chunk < 1:
        raise ValueError(f"`sample_chunk` must be a positive int, got {sample_chunk!r}.")


def _likelihood_summary(per_example, num_samples: int) -> dict[str, Any]:
    """The dict `importance_sampled_log_likelihood` returns, from the per-example ``L_k``."""
    per_example = np.asarray(per_example)
    mean = float(np.mean(per_example, dtype=np.float64))
    return {
        "log_likelihood": mean,
        "nll": -mean,
        "standard_error": _standard_error(per_example.astype(np.float64)),
        "num_samples": int(num_samples),
        "per_example": per_example,
    }


def _estimate(chunk_estimate: Callable, images: np.ndarray, data_chunk: int, progress, num_samples: int):
    """``chunk_estimate(chunk, offset) -> L_k [len(chunk)]`` over the images' chunks (`chunked.map_chunks`),
    with full float32 matrix products (GPUs would otherwise use TF32, 10-bit mantissas, which
    moves a reported log-likelihood by ~1e-4 relative: 0.01 nats on binarised MNIST); the dict
    of `_likelihood_summary`."""
    with jax.default_matmul_precision("float32"):
        per_example = chunked.map_chunks(chunk_estimate, images, data_chunk, progress)
    return _likelihood_summary(per_example, num_samples)


def importance_sampled_log_likelihood(
    encode: Callable,
    log_likelihood: Callable,
    images,
    key: jax.Array,
    *,
    num_samples: int,
    sample_chunk: int = 128,
    data_chunk: int = 128,
    log_prior: Callable | None = None,
    progress: chunked.Progress | None = None,
) -> dict[str, Any]:
    r"""Importance-sampled estimate of log p(x) under a latent-variable model, per example.

    With ``k = num_samples`` samples ``z_1..z_k ~ q(z|x) = N(mean(x), diag(exp(logvar(x))))``,
    the prior ``p(z)`` (``log_prior``; default N(0, I)) and weights
    ``w_s = p(x|z_s) p(z_s) / q(z_s|x)``:

    .. math::
      \log p(x) \approx \mathcal{L}_k(x) = \log \frac{1}{k} \sum_{s=1}^{k} w_s,

    i.e. `losses.iwae_bound` of the same samples (Burda et al. 2016, Eq. 8). It is a lower
    bound in expectation, ``E[L_k] <= log p(x)``, non-decreasing in ``k`` and consistent
    (``L_k -> log p(x)``); it is exact for any ``k`` when q is the true posterior. Burda et
    al. report it with ``k = 5000``.

    Matrix products run at full float32 precision (`jax.default_matmul_precision`), also on
    GPUs, whose default for float32 is TF32.

    Memory is bounded by chunking: the samples are drawn ``sample_chunk`` at a time inside a
    `lax.fori_loop` whose carry is the running ``log sum_s w_s`` (accumulated with
    ``jnp.logaddexp``; samples past ``k`` in the last chunk get weight 0), and the images are
    processed ``data_chunk`` at a time (the last chunk padded, so one compiled program serves
    every chunk). The decoder thus sees ``sample_chunk * data_chunk`` latents at once.
    ``num_samples`` is a traced argument: every ``k >= sample_chunk`` reuses one compiled
    program (``k < sample_chunk`` compiles with ``sample_chunk = k``).

    Randomness: sample ``s`` (0-based) of image ``i`` (its index in ``images``) is
    ``losses.reparameterize(fold_in(fold_in(key, i), s), mean_i, logvar_i)``. So
    ``per_example[i]`` depends only on ``key``, ``i``, ``images[i]``, ``num_samples`` and the
    model, *not* on ``sample_chunk``, ``data_chunk`` or the other images (up to float rounding
    of the accumulation), and the samples are nested: a run with more samples uses the
    samples of a run with fewer plus new ones (common random numbers across ``k``).

    Args:
      encode: ``x [b, ...] -> (mean, logvar)``, each ``[b, d]``: the encoder q(z|x). May be a
        ``jax.tree_util.Partial(f, params)`` so that ``params`` is traced, not baked in.
      log_likelihood: ``(x [b, ...], z [b, d]) -> [b]``, log p(x|z) in nats per example.
      images: ``[n, ...]`` data (numpy or jax array).
      key: a PRNG key.
      num_samples: ``k >= 1``, importance samples per image.
      sample_chunk: samples drawn per step of the loop (``min(sample_chunk, k)`` is used).
      data_chunk: images per compiled call.
      log_prior: ``z [..., d] -> [...]``, log p(z) in nats (a ``Partial`` like ``encode``);
        None for N(0, I).
      progress: ``progress(done, n)``, called once each data chunk is computed, ``done`` rising
        to ``n = len(images)`` (e.g. `LogProgress`); None (the default) reports nothing. The
        estimate is the same with or without it.

    Returns:
      a dict with ``'log_likelihood'`` (mean over images of ``L_k``, nats per example),
      ``'nll'`` (its negative), ``'standard_error'`` (sample std of ``L_k`` over images /
      sqrt(n); NaN for one image), ``'num_samples'`` (k) and ``'per_example'``
      (``np.ndarray [n]`` of ``L_k(x_i)`` in nats).
    """
    _check_sample_counts(num_samples, sample_chunk)
    images = chunked.as_numpy_images(images)
    encode, log_likelihood = chunked.as_partial(encode), chunked.as_partial(log_likelihood)
    log_prior = None if log_prior is None else chunked.as_partial(log_prior)
    k, chunk_k = np.int32(num_samples), int(min(sample_chunk, num_samples))
    return _estimate(
        lambda chunk, offset: _importance_sampled_chunk(
            encode, log_likelihood, log_prior, chunk, offset, key, k, sample_chunk=chunk_k
        ),
        images,
        data_chunk,
        progress,
        num_samples,
    )


def importance_sampled_log_weights(
    log_weight: Callable,
    images,
    key: jax.Array,
    *,
    num_samples: int,
    sample_chunk: int = 128,
    data_chunk: int = 128,
    progress: chunked.Progress | None = None,
) -> dict[str, Any]:
    """`importance_sampled_log_likelihood` of a model whose q(z|x) is not one Gaussian (a
    `ladder.LadderVAE`, drawn top down), from the model's own importance weights.

    ``log_weight(x [b, ...], keys [b]) -> [b]`` draws one posterior sample per image, image
    ``i``'s with ``keys[i]``, and returns ``log p(x, z) - log q(z|x)`` there in nats (e.g.
    ``Partial(ladder.LogImportanceWeight(model, likelihood, c), params)``, or
    ``Partial(fns.log_importance_weight, params)``). ``L_k``, the keys (sample ``s`` of image
    ``i`` drawn with ``fold_in(fold_in(key, i), s)``), the chunking, ``progress`` and the
    returned dict are those of `importance_sampled_log_likelihood`."""
    _check_sample_counts(num_samples, sample_chunk)
    images = chunked.as_numpy_images(images)
    log_weight = chunked.as_partial(log_weight)
    k, chunk_k = np.int32(num_samples), int(min(sample_chunk, num_samples))
    return _estimate(
        lambda chunk, offset: _weighted_chunk(log_weight, chunk, offset, key, k, sample_chunk=chunk_k),
        images,
        data_chunk,
        progress,
        num_samples,
    )


def model_log_likelihood(
    fns,
    params,
    images,
    key: jax.Array,
    *,
    num_samples: int,
    sample_chunk: int = 128,
    data_chunk: int = 128,
    progress: chunked.Progress | None = None,
) -> dict[str, Any]:
    """`importance_sampled_log_likelihood` of the model of ``fns`` (its
    `vae_jax.models.interface.ModelFns`) at ``params``, from what the model provides: a
    one-layer VAE's ``importance_parts`` (q(z|x) one Gaussian, sampled here: its encoder, log
    p(x|z) with the config's likelihood, and its prior), or a model's own
    ``log_importance_weight`` (a ladder VAE: log p(x, z_1..z_L) - log q(z_1..z_L | x) at top-down
    posterior samples, `importance_sampled_log_weights`). ``params`` is traced: calling again
    with new parameters of the same model reuses the compiled program.

    For grey-level images the Gaussian log p(x) is a density (it may be positive) and the
    Bernoulli one is the usual unnormalised relaxation. Returns the dict of
    `importance_sampled_log_likelihood` (nats per example; the randomness as documented there).
    For the discretised likelihoods of 8-bit data (a probability of discrete values) it adds
    ``'bits_per_dim'`` (the NLL over ``D ln 2``, ``D`` values per image,
    `likelihoods.bits_per_dim`) and its ``'bits_per_dim_standard_error'``. ``progress``: e.g.
    `LogProgress` (images done, rate, time left). A model with neither hook (an autoencoder,
    PCA) has no likelihood: `ValueError`.
    """
    chunking = dict(num_samples=num_samples, sample_chunk=sample_chunk, data_chunk=data_chunk, progress=progress)
    if fns.log_importance_weight is not None:
        result = importance_sampled_log_weights(Partial(fns.log_importance_weight, params), images, key, **chunking)
    elif fns.importance_parts is not None:
        parts = fns.importance_parts
        result = importance_sampled_log_likelihood(
            Partial(parts.encode, params),
            Partial(parts.log_likelihood, params),
            images,
            key,
            log_prior=None if parts.log_prior is None else Partial(parts.log_prior, params),
            **chunking,
        )
    else:
        raise ValueError(f"A {fns.label} has no likelihood p(x) to estimate.")
    if fns.likelihood in likelihoods.DISCRETIZED_LIKELIHOODS:
        dims = math.prod(np.shape(images)[1:])
        result["bits_per_dim"] = likelihoods.bits_per_dim(result["nll"], dims)
        result["bits_per_dim_standard_error"] = likelihoods.bits_per_dim(result["standard_error"], dims)
    return result
