"""The geometry of a latent space, for any encoder and decoder (model-agnostic): active units,
continuity and completeness.

Every metric takes plain callables (``encode``, ``decode``) and runs them under `jax.jit` in
fixed-size chunks (`chunked`), so memory stays bounded whatever the number of images, and one
compiled program serves every chunk. The only host-side computations are the scikit-learn
classifier of the completeness metric and the final reductions (means, quantiles) in float64
numpy. With `vae_jax.models.interface.ModelFns`::

    from jax.tree_util import Partial
    encode = Partial(fns.encode, params)            # x -> codes (posterior means)
    decode = Partial(fns.decode_image, params)      # z -> images in [0, 1]

* `active_units`: latent dimensions whose posterior mean varies with the input
  (Burda et al. 2016, Sec. 5.2).
* `continuity`: how much decoded outputs move per unit of latent movement along straight
  latent paths between encoded test points (close codes must decode to close outputs).
* `completeness`: whether points drawn from the latent distribution decode to something
  meaningful: confidence of a simple image classifier on decoded samples, and the fraction
  of samples landing in empty regions of the latent space (far from every training code).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vae_jax.evaluation import chunked


@jax.jit
def _encode_codes(encode, x, offset):
    del offset
    return chunked.first_if_tuple(encode(x))


def encode_images(encode: Callable, images, *, batch_size: int = 256) -> np.ndarray:
    """``[n, d]`` codes of ``images [n, ...]`` in jitted chunks of ``batch_size`` (one trace).

    ``encode(x) -> [b, d]``, or ``(mean, logvar)`` whose mean is used; e.g. the
    ``train_codes`` of `completeness`.
    """
    encode = chunked.as_partial(encode)
    return np.asarray(
        chunked.map_chunks(
            lambda chunk, offset: _encode_codes(encode, chunk, offset), chunked.as_numpy_images(images), batch_size
        )
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
    images = chunked.as_numpy_images(images)
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

    decode = chunked.as_partial(decode)
    dx, dz, span = chunked.map_chunks(
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
    distances = chunked.map_chunks(
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

    decode = chunked.as_partial(decode)
    results: dict[str, Any] = {"test_confidence": test_confidence, "empty_threshold": threshold}
    for index, (name, sample) in enumerate(samplers.items()):
        z = np.asarray(sample(jax.random.fold_in(sample_key, index), num_samples))
        decoded = chunked.map_chunks(lambda chunk, offset: _decode_chunk(decode, chunk, offset), z, batch_size)
        sample_confidence = float(np.mean(classifier_confidence(classifier, np.asarray(decoded))))
        empty = empty_region_fraction(z, reference, threshold=threshold)
        results[name] = {
            "sample_confidence": sample_confidence,
            "confidence_ratio": sample_confidence / test_confidence,
            "empty_fraction": empty["empty_fraction"],
        }
    return results
