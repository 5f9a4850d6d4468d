"""Evaluation metrics for VAEs and autoencoders: likelihood, active units, continuity, completeness.

Every metric takes plain callables (``encode``, ``decode``, ``log_likelihood``, ...) and runs
them under `jax.jit` in fixed-size chunks, so memory stays bounded whatever the number of
images or samples, and one compiled program serves every chunk (the last chunk is padded and
its padding discarded). The only host-side computations are the scikit-learn classifier of
the completeness metric and the final reductions (means, quantiles) in float64 numpy.

Passing functions and parameters. A callable is passed to the jitted programs as a
`jax.tree_util.Partial`: a plain function ``f`` is wrapped as ``Partial(f)`` (compiled once per
function object and shapes), and ``Partial(f, params)`` makes ``params`` a *traced* argument,
so calling a metric again with new parameters (e.g. after each epoch) reuses the compiled
program. Everything bound by a ``Partial`` (positional and keyword) must be arrays or pytrees
of arrays; fixed Python options (``method=...``, strings) belong inside the function. With
`objectives.ModelFns`::

    from jax.tree_util import Partial
    encode = Partial(fns.encode, params)            # x -> codes (posterior means)
    decode = Partial(fns.decode_image, params)      # z -> images in [0, 1]

Metrics (all per example, in nats where they are log-densities):

* `importance_sampled_log_likelihood` / `vae_log_likelihood`: the importance-sampled
  estimate of log p(x) with up to thousands of samples (Burda et al. 2016).
* `active_units`: latent dimensions whose posterior mean varies with the input
  (Burda et al. 2016, Sec. 5.2).
* `continuity`: how much decoded outputs move per unit of latent movement along straight
  latent paths between encoded test points (close codes must decode to close outputs).
* `completeness`: whether points drawn from the latent distribution decode to something
  meaningful: confidence of a simple image classifier on decoded samples, and the fraction
  of samples landing in empty regions of the latent space (far from every training code).

References:
  Burda, Grosse & Salakhutdinov, `Importance Weighted Autoencoders
  <https://arxiv.org/abs/1509.00519>`_, ICLR 2016.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax import lax
from jax.tree_util import Partial

from vae_jax import chunks, hierarchical, losses, models, objectives

__all__ = [
    "importance_sampled_log_likelihood",
    "importance_sampled_log_weights",
    "vae_log_likelihood",
    "Progress",
    "LogProgress",
    "encode_images",
    "active_units",
    "continuity",
    "fit_image_classifier",
    "classifier_confidence",
    "nearest_neighbour_distances",
    "empty_region_threshold",
    "empty_region_fraction",
    "standard_normal_sampler",
    "fitted_gaussian_sampler",
    "completeness",
]


# ----------------------------------------------------------------------------- helpers


def _as_partial(fn: Callable) -> Partial:
    """``fn`` as a pytree that `jax.jit` accepts as an ordinary (non-static) argument."""
    if not callable(fn):
        raise TypeError(f"Expected a callable, got {type(fn).__name__}.")
    return fn if isinstance(fn, Partial) else Partial(fn)


def _first_if_tuple(output):
    """The codes of an encoder: the mean when it returns ``(mean, logvar)``."""
    return output[0] if isinstance(output, (tuple, list)) else output


# ``progress(done, total)``: called as a long metric finishes each chunk of its ``total`` examples.
Progress = Callable[[int, int], None]


def _map_chunks(call: Callable, data: np.ndarray, chunk_size: int, progress: Progress | None = None):
    """``call(chunk, offset)`` on fixed-size chunks of ``data`` (`chunks.padded_chunks`),
    concatenated on the device and cut back to ``len(data)`` rows. ``offset`` (the index of
    the chunk's first row) is an int32 scalar, traced, so a jitted ``call`` is traced once.

    With ``progress``, ``progress(done, len(data))`` is called once each chunk's output is
    computed (``done``: the rows finished so far, rising to ``len(data)``). Chunk ``i`` is waited
    for only after chunk ``i + 1`` is queued, so the device never idles for the callback; the
    outputs are the same with or without it."""
    outputs = []
    finished = None  # (output of the latest queued chunk, rows done once it is computed)
    for chunk, start, rows in chunks.padded_chunks(data, chunk_size):
        outputs.append(call(chunk, np.int32(start)))
        if progress is not None:
            if finished is not None:
                jax.block_until_ready(finished[0])
                progress(finished[1], len(data))
            finished = (outputs[-1], start + rows)
    if finished is not None:
        jax.block_until_ready(finished[0])
        progress(finished[1], len(data))
    return jax.tree.map(lambda *parts: jnp.concatenate(parts)[: len(data)], *outputs)


def _duration(seconds: float) -> str:
    """``seconds`` as ``'42 s'``, ``'6 min 05 s'`` or ``'1 h 02 min'``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class LogProgress:
    """A ``progress`` callback (`importance_sampled_log_likelihood`, `vae_log_likelihood`) that
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


def _as_numpy_images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim < 2:
        raise ValueError(f"Expected a batch of examples [n, ...], got shape {images.shape}.")
    return images


def _standard_error(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


# ----------------------------------------------------------------------------- log-likelihood


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
    """``chunk_estimate(chunk, offset) -> L_k [len(chunk)]`` over the images' chunks (`_map_chunks`),
    with full float32 matrix products (GPUs would otherwise use TF32, 10-bit mantissas, which
    moves a reported log-likelihood by ~1e-4 relative: 0.01 nats on binarised MNIST); the dict
    of `_likelihood_summary`."""
    with jax.default_matmul_precision("float32"):
        per_example = _map_chunks(chunk_estimate, images, data_chunk, progress)
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
    progress: Progress | None = None,
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
    images = _as_numpy_images(images)
    encode, log_likelihood = _as_partial(encode), _as_partial(log_likelihood)
    log_prior = None if log_prior is None else _as_partial(log_prior)
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
    progress: Progress | None = None,
) -> dict[str, Any]:
    """`importance_sampled_log_likelihood` of a model whose q(z|x) is not one Gaussian (a
    `hierarchical.LadderVAE`, drawn top down), from the model's own importance weights.

    ``log_weight(x [b, ...], keys [b]) -> [b]`` draws one posterior sample per image, image
    ``i``'s with ``keys[i]``, and returns ``log p(x, z) - log q(z|x)`` there in nats (e.g.
    ``Partial(hierarchical.LogImportanceWeight(model, likelihood, c), params)``, or
    ``Partial(fns.log_importance_weight, params)``). ``L_k``, the keys (sample ``s`` of image
    ``i`` drawn with ``fold_in(fold_in(key, i), s)``), the chunking, ``progress`` and the
    returned dict are those of `importance_sampled_log_likelihood`."""
    _check_sample_counts(num_samples, sample_chunk)
    images = _as_numpy_images(images)
    log_weight = _as_partial(log_weight)
    k, chunk_k = np.int32(num_samples), int(min(sample_chunk, num_samples))
    return _estimate(
        lambda chunk, offset: _weighted_chunk(log_weight, chunk, offset, key, k, sample_chunk=chunk_k),
        images,
        data_chunk,
        progress,
        num_samples,
    )


class _LikelihoodConfig(NamedTuple):
    """The fields of a config that `objectives.log_likelihood` reads (hashable)."""

    likelihood: str
    c: float | None


@dataclasses.dataclass(frozen=True)
class _VAEEncode:
    model: Any

    def __call__(self, params, x):
        return self.model.apply(params, x, method=self.model.encode)


@dataclasses.dataclass(frozen=True)
class _VAELogPrior:
    model: Any

    def __call__(self, params, z):
        return self.model.apply(params, z, method=self.model.log_prior)


@dataclasses.dataclass(frozen=True)
class _VAELogLikelihood:
    model: Any
    config: _LikelihoodConfig

    def __call__(self, params, x, z):
        variance = objectives.decoder_variance(self.model, params, self.config.c)
        decoded = self.model.apply(params, z, x, method=self.model.decode)
        return objectives.log_likelihood(self.config.likelihood, x, decoded, variance)


def vae_log_likelihood(
    model,
    params,
    config,
    images,
    key: jax.Array,
    *,
    num_samples: int,
    sample_chunk: int = 128,
    data_chunk: int = 128,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """`importance_sampled_log_likelihood` of a `models.VAE` with the likelihood of ``config``.

    ``q(z|x)`` is ``model.apply(params, x, method=model.encode)`` and ``log p(x|z)`` is
    ``objectives.log_likelihood(config.likelihood, x, model.apply(params, z, method=model.decode), c)``
    (``config.likelihood`` 'gaussian' with variance ``config.c`` or the model's learned one, or
    'bernoulli'); the prior is the model's (`models.VAE.log_prior`). A
    `hierarchical.LadderVAE` gives its own weights over all layers, log p(x, z_1..z_L) -
    log q(z_1..z_L | x) at top-down posterior samples (`importance_sampled_log_weights`). ``params``
    is traced: calling again with new parameters of the same model reuses the compiled
    program. For grey-level images the Gaussian log p(x) is a density (it may be positive) and
    the Bernoulli one is the usual unnormalised relaxation. Returns the same dict (nats per
    example); the randomness is as documented there. For the discretised likelihoods of 8-bit
    data ('discretized_logistic', 'discretized_logistic_mixture'; a probability of discrete
    values) it adds ``'bits_per_dim'`` (the NLL over ``D ln 2``, ``D`` values per image,
    `objectives.bits_per_dim`) and its ``'bits_per_dim_standard_error'``. ``progress`` as
    there (e.g. `LogProgress`: images done, rate, time left).
    """
    likelihood = config.likelihood
    c = float(config.c) if likelihood == "gaussian" else None
    spec = _LikelihoodConfig(likelihood, c)
    standard_prior = model.prior == "standard_normal"
    if isinstance(model, hierarchical.LadderVAE):  # q(z_1..z_L | x) drawn top down: the model's weights
        result = importance_sampled_log_weights(
            Partial(hierarchical.LogImportanceWeight(model, likelihood, c), params),
            images,
            key,
            num_samples=num_samples,
            sample_chunk=sample_chunk,
            data_chunk=data_chunk,
            progress=progress,
        )
    else:
        result = importance_sampled_log_likelihood(
            Partial(_VAEEncode(model), params),
            Partial(_VAELogLikelihood(model, spec), params),
            images,
            key,
            num_samples=num_samples,
            sample_chunk=sample_chunk,
            data_chunk=data_chunk,
            log_prior=None if standard_prior else Partial(_VAELogPrior(model), params),
            progress=progress,
        )
    if likelihood in models.DISCRETIZED_LIKELIHOODS:
        dims = math.prod(np.shape(images)[1:])
        result["bits_per_dim"] = objectives.bits_per_dim(result["nll"], dims)
        result["bits_per_dim_standard_error"] = objectives.bits_per_dim(result["standard_error"], dims)
    return result


# ----------------------------------------------------------------------------- active units


@jax.jit
def _encode_codes(encode, x, offset):
    del offset
    return _first_if_tuple(encode(x))


def encode_images(encode: Callable, images, *, batch_size: int = 256) -> np.ndarray:
    """``[n, d]`` codes of ``images [n, ...]`` in jitted chunks of ``batch_size`` (one trace).

    ``encode(x) -> [b, d]``, or ``(mean, logvar)`` whose mean is used; e.g. the
    ``train_codes`` of `completeness`.
    """
    encode = _as_partial(encode)
    return np.asarray(
        _map_chunks(lambda chunk, offset: _encode_codes(encode, chunk, offset), _as_numpy_images(images), batch_size)
    )


def active_units(encode_mean: Callable, images, *, threshold: float = 0.01, batch_size: int = 256) -> dict[str, Any]:
    r"""Number of active latent dimensions (Burda et al. 2016, Sec. 5.2).

    Dimension ``d`` is *active* when its posterior mean varies with the input:

    .. math::
      A_d = \operatorname{Var}_{x}\big(\mathbb{E}_{q(z|x)}[z_d]\big) > \text{threshold},

    the variance being the population variance (``ddof=0``) over ``images``, computed in
    float64 from the codes. A dimension whose mean ignores the input has ``A_d = 0``; Burda et
    al. use ``threshold = 0.01`` (for latents meant to follow N(0, I)).

    Args:
      encode_mean: ``x [b, ...] -> [b, d]`` posterior means (an encoder returning
        ``(mean, logvar)`` is accepted too; its mean is used).
      images: ``[n, ...]`` data.
      threshold: the activity threshold (in squared latent units).
      batch_size: images per jitted call.

    Returns:
      ``{'active_units': int, 'variances': np.ndarray [d] (A_d), 'active': bool np.ndarray
      [d]}``.
    """
    codes = encode_images(encode_mean, images, batch_size=batch_size).astype(np.float64)
    variances = codes.var(axis=0)
    active = variances > threshold
    return {"active_units": int(active.sum()), "variances": variances, "active": active}


# ----------------------------------------------------------------------------- continuity


@functools.partial(jax.jit, static_argnames="num_steps")
def _path_segments(decode, endpoints, offset, *, num_steps):
    """Decoded straight paths: ``endpoints [p, 2, d]`` -> ||dx|| [p, T], ||dz|| [p, T], span [p]."""
    del offset
    start, end = endpoints[:, 0], endpoints[:, 1]
    t = jnp.linspace(0.0, 1.0, num_steps + 1, dtype=start.dtype)
    z = start[:, None, :] + t[None, :, None] * (end - start)[:, None, :]  # [p, T + 1, d]
    p, points, d = z.shape
    x = decode(z.reshape(p * points, d)).reshape(p, points, -1)
    dx = jnp.linalg.norm(jnp.diff(x, axis=1), axis=-1)
    dz = jnp.linalg.norm(jnp.diff(z, axis=1), axis=-1)
    span = jnp.linalg.norm(x[:, -1] - x[:, 0], axis=-1)
    return dx, dz, span


def continuity(
    encode: Callable,
    decode: Callable,
    images,
    key: jax.Array,
    *,
    num_pairs: int = 256,
    num_steps: int = 20,
    batch_size: int = 256,
    paths_per_batch: int = 16,
) -> dict[str, Any]:
    r"""How far decoded outputs move per unit of latent movement along straight latent paths.

    Continuity asks that close latent points decode to close outputs. ``num_pairs`` random
    pairs ``(i, j)``, ``i != j``, of ``images`` are encoded to ``z_a, z_b`` and the straight
    path ``z_t = z_a + t (z_b - z_a)`` is decoded at ``t = 0, 1/T, ..., 1`` (``T = num_steps``).
    For every segment ``(z_t, z_{t+1/T})``, with ``Δx = d(z_{t+1/T}) - d(z_t)`` (flattened)
    and ``Δz = z_{t+1/T} - z_t``:

    .. math::
      r = \frac{\|Δx\|_2}{\|Δz\|_2},

    a finite-difference lower bound on the decoder's local Lipschitz constant along the path
    (for a linear decoder ``d(z) = Az`` it lies between the extreme singular values of A).

    ``r`` depends on the scale of the codes (an AE whose codes are 10x larger has a 10x
    smaller ``r`` for the same decodings), so the *normalised* ratio measures latent steps in
    units of the codes' spread:

    .. math::
      r_{\text{norm}} = \frac{\|Δx\|_2}{\|Δz\|_2 / \sigma_z} = \sigma_z\, r, \qquad
      \sigma_z = \sqrt{\tfrac{1}{d} \sum_{j=1}^{d} \operatorname{Var}_x(z_j)},

    ``σ_z`` being the root-mean-square per-dimension std of the codes of all ``images``.
    ``r_norm`` is invariant to rescaling the latent space (codes ``αz`` with decoder
    ``d(·/α)``), so AEs and VAEs with different latent scales compare fairly; it is the output
    change (in data units, e.g. grey levels) per "one code-std" of latent movement.

    Sudden jumps: per path, ``max_t ||Δx_t|| / ||d(z_b) - d(z_a)||``, the largest single-step
    change relative to the change between the decoded endpoints. A decoder that changes at a
    constant rate along the path gives ``1 / num_steps``; a value near 1 means the whole change
    happens in one step (a discontinuity).

    Segments with ``Δz = 0`` (identical codes) and paths whose decoded endpoints coincide are
    left out of the respective averages.

    Args:
      encode: ``x [b, ...] -> [b, d]`` codes, or ``(mean, logvar)`` (the mean is used).
      decode: ``z [b, d] -> [b, ...]`` outputs in data space (e.g. ``ModelFns.decode_image``).
      images: ``[n, ...]`` data, ``n >= 2``, typically test images.
      key: PRNG key choosing the pairs.
      num_pairs: number of paths.
      num_steps: segments per path (``num_steps + 1`` decoded points).
      batch_size: images per jitted encoder call.
      paths_per_batch: paths per jitted decoder call (``paths_per_batch * (num_steps + 1)``
        latents are decoded at once).

    Returns:
      ``'mean_ratio'`` / ``'max_ratio'``: mean / max of ``r`` over all segments of all paths;
      ``'mean_ratio_normalised'`` / ``'max_ratio_normalised'``: the same for ``r_norm``;
      ``'max_jump'``: the mean over paths of the per-path largest-step fraction above, and
      ``'max_jump_worst'`` its maximum over paths; ``'code_std'``: ``σ_z``;
      ``'ratios'``: ``np.ndarray [num_pairs, num_steps]`` of ``r`` (NaN where ``Δz = 0``);
      ``'pairs'``: ``np.ndarray [num_pairs, 2]`` of the image indices.
    """
    images = _as_numpy_images(images)
    n = len(images)
    if n < 2:
        raise ValueError(f"Continuity needs at least 2 images to pair, got {n}.")
    if num_pairs < 1 or num_steps < 1:
        raise ValueError(f"`num_pairs` and `num_steps` must be >= 1, got {num_pairs} and {num_steps}.")
    codes = encode_images(encode, images, batch_size=batch_size)
    code_std = float(np.sqrt(np.mean(codes.astype(np.float64).var(axis=0))))

    first_key, shift_key = jax.random.split(key)
    first = np.asarray(jax.random.randint(first_key, (num_pairs,), 0, n))
    second = (first + np.asarray(jax.random.randint(shift_key, (num_pairs,), 1, n))) % n
    endpoints = np.stack([codes[first], codes[second]], axis=1)  # [p, 2, d]

    decode = _as_partial(decode)
    dx, dz, span = _map_chunks(
        lambda chunk, offset: _path_segments(decode, chunk, offset, num_steps=int(num_steps)),
        endpoints,
        paths_per_batch,
    )
    dx, dz, span = (np.asarray(a, np.float64) for a in (dx, dz, span))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(dz > 0, dx / dz, np.nan)
        jumps = np.where(span > 0, dx.max(axis=1) / span, np.nan)
    return {
        "mean_ratio": float(np.nanmean(ratios)),
        "max_ratio": float(np.nanmax(ratios)),
        "mean_ratio_normalised": float(np.nanmean(ratios)) * code_std,
        "max_ratio_normalised": float(np.nanmax(ratios)) * code_std,
        "max_jump": float(np.nanmean(jumps)) if np.isfinite(jumps).any() else math.nan,
        "max_jump_worst": float(np.nanmax(jumps)) if np.isfinite(jumps).any() else math.nan,
        "code_std": code_std,
        "ratios": ratios,
        "pairs": np.stack([first, second], axis=1),
    }


# ----------------------------------------------------------------------------- completeness


def _flatten(images) -> np.ndarray:
    images = np.asarray(images)
    return images.reshape(len(images), -1)


def fit_image_classifier(images, labels, *, max_train: int | None = 5000, seed: int = 0, max_iter: int = 1000):
    """A scikit-learn `LogisticRegression` on flattened images: the completeness judge.

    Args:
      images: ``[n, ...]`` real training images (same space as the decoder's outputs, e.g.
        grey levels in [0, 1]).
      labels: ``[n]`` integer class labels.
      max_train: fit on a random subset of at most this many images (seeded by ``seed``);
        ``None`` uses all of them.
      seed: seed of the subset.
      max_iter: L-BFGS iterations.

    Returns:
      the fitted classifier (``predict_proba`` of flattened images gives class probabilities).
    """
    from sklearn.linear_model import LogisticRegression  # lazy: sklearn import is slowish

    features, labels = _flatten(images).astype(np.float64), np.asarray(labels)
    if len(features) != len(labels):
        raise ValueError(f"{len(features)} images but {len(labels)} labels.")
    if max_train is not None and len(features) > max_train:
        subset = np.random.default_rng(seed).choice(len(features), max_train, replace=False)
        features, labels = features[subset], labels[subset]
    return LogisticRegression(max_iter=max_iter).fit(features, labels)


def classifier_confidence(classifier, images, *, batch_size: int = 1024) -> np.ndarray:
    """``[n]`` confidences ``max_y p(y|x)`` of a classifier on (flattened) images.

    ``classifier`` is an object with ``predict_proba`` (e.g. `fit_image_classifier`) or a
    callable ``images [b, ...] -> [b, classes]`` probabilities. Evaluated in batches.
    """
    predict = classifier.predict_proba if hasattr(classifier, "predict_proba") else classifier
    images = np.asarray(images)
    confidences = [
        np.asarray(predict(_flatten(images[start : start + batch_size]))).max(axis=1)
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(confidences)


@functools.partial(jax.jit, static_argnames="exclude_self")
def _nearest_chunk(queries, offset, point_blocks, num_points, *, exclude_self):
    """Distance from each of ``queries [q, d]`` to its nearest row of ``point_blocks [m, c, d]``."""
    query_index = offset + jnp.arange(queries.shape[0])
    query_norms = jnp.sum(jnp.square(queries), axis=-1)

    def scan_block(best, block_and_index):
        block, j = block_and_index
        point_index = j * block.shape[0] + jnp.arange(block.shape[0])
        cross = jnp.dot(queries, block.T, precision=lax.Precision.HIGHEST)
        squared = query_norms[:, None] - 2.0 * cross + jnp.sum(jnp.square(block), axis=-1)[None, :]
        invalid = (point_index >= num_points)[None, :]  # padding rows
        if exclude_self:
            invalid = invalid | (point_index[None, :] == query_index[:, None])
        squared = jnp.where(invalid, jnp.inf, squared)
        return jnp.minimum(best, squared.min(axis=1)), None

    initial = jnp.full(queries.shape[:1], jnp.inf, query_norms.dtype)
    best, _ = lax.scan(scan_block, initial, (point_blocks, jnp.arange(point_blocks.shape[0])))
    return jnp.sqrt(jnp.maximum(best, 0.0))


def nearest_neighbour_distances(
    queries, points, *, exclude_self: bool = False, query_chunk: int = 256, point_chunk: int = 2048
) -> np.ndarray:
    """Euclidean distance from each query to its nearest point, ``[q]``, in bounded memory.

    Jitted; the queries are processed ``query_chunk`` at a time and, inside, a `lax.scan` runs
    over blocks of ``point_chunk`` points keeping the running minimum of the squared distance
    ``|q|^2 - 2 q.p + |p|^2`` (clamped at 0). With ``exclude_self=True`` the queries must be
    the points themselves and point ``i`` is not its own neighbour (leave-one-out distances).

    Args:
      queries: ``[q, d]``.
      points: ``[m, d]``, ``m >= 1`` (``>= 2`` with ``exclude_self``).
      exclude_self: leave-one-out (``queries is points``).
      query_chunk: queries per jitted call.
      point_chunk: points per scan step (memory ``query_chunk * point_chunk`` floats).
    """
    queries, points = np.asarray(queries), np.asarray(points)
    if queries.ndim != 2 or points.ndim != 2 or queries.shape[1] != points.shape[1]:
        raise ValueError(f"Expected queries [q, d] and points [m, d], got {queries.shape} and {points.shape}.")
    if exclude_self and queries.shape != points.shape:
        raise ValueError("exclude_self=True needs the queries to be the points themselves.")
    m = len(points)
    if m < 1 + int(exclude_self):
        raise ValueError(f"Need at least {1 + int(exclude_self)} points, got {m}.")
    block = min(point_chunk, m)
    num_blocks = -(-m // block)
    padded = np.zeros((num_blocks * block, points.shape[1]), points.dtype)
    padded[:m] = points
    point_blocks = jnp.asarray(padded.reshape(num_blocks, block, points.shape[1]))
    distances = _map_chunks(
        lambda chunk, offset: _nearest_chunk(chunk, offset, point_blocks, np.int32(m), exclude_self=exclude_self),
        queries,
        query_chunk,
    )
    return np.asarray(distances)


def empty_region_threshold(codes, *, quantile: float = 0.99, **chunks) -> float:
    """The ``quantile`` of the leave-one-out nearest-neighbour distances among ``codes [m, d]``.

    A point farther than this from every code is farther from the codes than ``quantile``
    of the codes are from their own nearest neighbour: it lies in an *empty* region.
    ``chunks`` are passed to `nearest_neighbour_distances`.
    """
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"`quantile` must be in (0, 1], got {quantile!r}.")
    return float(np.quantile(nearest_neighbour_distances(codes, codes, exclude_self=True, **chunks), quantile))


def empty_region_fraction(
    samples, codes, *, quantile: float = 0.99, threshold: float | None = None, **chunks
) -> dict[str, Any]:
    r"""Fraction of latent ``samples`` that land in empty regions of the ``codes``.

    Sample ``z`` is in an empty region when

    .. math::
      \min_i \|z - c_i\|_2 > \tau, \qquad
      \tau = \operatorname{quantile}_{q}\Big(\big\{\min_{j \ne i} \|c_i - c_j\|_2\big\}_i\Big),

    with ``q = quantile`` (`empty_region_threshold`): farther from every code than ``q`` of
    the codes are from their nearest neighbour. The threshold is defined from the data, so
    samples drawn from the codes' own distribution give a fraction of about ``1 - q``
    (slightly more for a finite sample), and samples far from all codes give 1.

    Args:
      samples: ``[s, d]`` latent samples.
      codes: ``[m, d]`` encoded training points (the reference set).
      quantile: ``q`` (ignored when ``threshold`` is given).
      threshold: a precomputed ``τ``.
      chunks: ``query_chunk`` / ``point_chunk`` of `nearest_neighbour_distances`.

    Returns:
      ``{'empty_fraction': float, 'threshold': τ, 'distances': np.ndarray [s]}`` (nearest-code
      distances of the samples, latent units).
    """
    if threshold is None:
        threshold = empty_region_threshold(codes, quantile=quantile, **chunks)
    distances = nearest_neighbour_distances(samples, codes, **chunks)
    return {
        "empty_fraction": float(np.mean(distances > threshold)),
        "threshold": float(threshold),
        "distances": distances,
    }


def standard_normal_sampler(latents: int) -> Callable[[jax.Array, int], jax.Array]:
    """``(key, num) -> [num, latents]`` draws from N(0, I), the VAE prior."""
    return lambda key, num: jax.random.normal(key, (num, latents))


def fitted_gaussian_sampler(codes) -> Callable[[jax.Array, int], jax.Array]:
    """``(key, num) -> [num, d]`` draws from N(mean, diag(std^2)) fitted per dimension to ``codes``."""
    codes = np.asarray(codes, np.float64)
    mean, std = jnp.asarray(codes.mean(axis=0), jnp.float32), jnp.asarray(codes.std(axis=0), jnp.float32)
    return lambda key, num: mean + std * jax.random.normal(key, (num, codes.shape[1]))


@jax.jit
def _decode_chunk(decode, z, offset):
    del offset
    return decode(z)


def completeness(
    decode: Callable,
    classifier,
    train_codes,
    test_images,
    key: jax.Array,
    *,
    num_samples: int = 1000,
    latent_distributions: Sequence[str] | Mapping[str, Callable] = ("standard_normal", "fitted_gaussian"),
    quantile: float = 0.99,
    max_codes: int | None = 10_000,
    batch_size: int = 256,
) -> dict[str, Any]:
    r"""Do points drawn from the latent distribution decode to something meaningful?

    For each latent distribution ``p`` (``num_samples`` draws ``z ~ p``):

    (a) Classifier confidence: a simple image classifier (`fit_image_classifier`, trained on
        real images) is applied to the decoded samples ``decode(z)``; its mean confidence
        ``E_z[max_y p(y | decode(z))]`` is compared with its mean confidence on the real
        ``test_images``. ``confidence_ratio = sample_confidence / test_confidence``: near 1
        when samples look like real images of some class, lower for blurry/ambiguous ones.
    (b) Empty regions: the fraction of ``z`` whose nearest encoded training point is farther
        than the ``quantile`` of the codes' own leave-one-out nearest-neighbour distances
        (`empty_region_fraction`); about ``1 - quantile`` when ``p`` matches the codes'
        distribution, near 1 when ``p`` puts its mass where no data were encoded.

    Latent distributions (names, or a mapping name -> ``sample(key, num) -> [num, d]``):
    ``'standard_normal'`` is N(0, I), the prior of a VAE (and what a VAE is trained to fill);
    ``'fitted_gaussian'`` is N(mean, diag(std^2)) fitted per dimension to ``train_codes``, the
    natural sampler of a plain AE, whose codes follow no prescribed distribution. Report both
    for an AE; for a VAE ``('standard_normal',)`` suffices.

    Args:
      decode: ``z [b, d] -> [b, ...]`` images in the classifier's space (e.g.
        ``Partial(fns.decode_image, params)``).
      classifier: see `classifier_confidence`.
      train_codes: ``[m, d]`` codes of training images (posterior means for a VAE), e.g.
        ``encode_images(encode, train_images)``.
      test_images: ``[n, ...]`` real images (the confidence reference).
      key: PRNG key, split into ``(subset_key, sample_key)``: the code subset (see
        ``max_codes``) uses ``subset_key``; distribution ``i`` (in order) samples with
        ``fold_in(sample_key, i)``.
      num_samples: draws per distribution.
      quantile: the empty-region quantile.
      max_codes: use a random subset of this many codes as the empty-region reference set
        (the nearest-neighbour threshold costs ``O(m^2 d)``); ``None`` uses them all. The
        fitted Gaussian always uses all codes.
      batch_size: latents per jitted decoder call.

    Returns:
      ``{'test_confidence': float, 'empty_threshold': τ (latent units),
      <name>: {'sample_confidence', 'confidence_ratio', 'empty_fraction'}}`` for each
      distribution name.
    """
    train_codes = np.asarray(train_codes)
    if train_codes.ndim != 2:
        raise ValueError(f"`train_codes` must be [m, d], got shape {train_codes.shape}.")
    latents = train_codes.shape[1]
    if isinstance(latent_distributions, Mapping):
        samplers = dict(latent_distributions)
    else:
        known = {
            "standard_normal": lambda: standard_normal_sampler(latents),
            "fitted_gaussian": lambda: fitted_gaussian_sampler(train_codes),
        }
        unknown = [name for name in latent_distributions if name not in known]
        if unknown:
            raise ValueError(
                f"Unknown latent distributions {unknown}; expected names in {sorted(known)} "
                "or a mapping name -> sample(key, num)."
            )
        samplers = {name: known[name]() for name in latent_distributions}

    subset_key, sample_key = jax.random.split(key)
    reference = train_codes
    if max_codes is not None and len(train_codes) > max_codes:
        reference = train_codes[
            np.asarray(jax.random.choice(subset_key, len(train_codes), (max_codes,), replace=False))
        ]
    threshold = empty_region_threshold(reference, quantile=quantile)
    test_confidence = float(np.mean(classifier_confidence(classifier, test_images)))

    decode = _as_partial(decode)
    results: dict[str, Any] = {"test_confidence": test_confidence, "empty_threshold": threshold}
    for index, (name, sample) in enumerate(samplers.items()):
        z = np.asarray(sample(jax.random.fold_in(sample_key, index), num_samples))
        decoded = _map_chunks(lambda chunk, offset: _decode_chunk(decode, chunk, offset), z, batch_size)
        sample_confidence = float(np.mean(classifier_confidence(classifier, np.asarray(decoded))))
        empty = empty_region_fraction(z, reference, threshold=threshold)
        results[name] = {
            "sample_confidence": sample_confidence,
            "confidence_ratio": sample_confidence / test_confidence,
            "empty_fraction": empty["empty_fraction"],
        }
    return results
