"""Running a metric's jitted function over fixed-size chunks of examples, and passing it
functions and parameters (`jax.tree_util.Partial`). Shared by `likelihood` and
`latent_geometry`."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from vae_jax import chunks


def as_partial(fn: Callable) -> Partial:
    """``fn`` as a pytree that `jax.jit` accepts as an ordinary (non-static) argument."""
    if not callable(fn):
        raise TypeError(f"Expected a callable, got {type(fn).__name__}.")
    return fn if isinstance(fn, Partial) else Partial(fn)


def first_if_tuple(output):
    """The codes of an encoder: the mean when it returns ``(mean, logvar)``."""
    return output[0] if isinstance(output, (tuple, list)) else output


# ``progress(done, total)``: called as a long metric finishes each chunk of its ``total`` examples.
Progress = Callable[[int, int], None]


def map_chunks(call: Callable, data: np.ndarray, chunk_size: int, progress: Progress | None = None):
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


def as_numpy_images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim < 2:
        raise ValueError(f"Expected a batch of examples [n, ...], got shape {images.shape}.")
    return images
