"""Fixed-size chunks of a large array, so that one compiled program serves all of them.

Training evaluation, the sweep members' evaluation and the metrics all walk their data with
`padded_chunks`: every chunk has the same number of rows (the last is zero-padded), so a
jitted function of a chunk is traced once, and the caller masks or cuts the padding.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np


def padded_chunks(data: np.ndarray, chunk_size: int) -> Iterator[tuple[np.ndarray, int, int]]:
    """``(chunk, start, rows)`` for consecutive chunks of ``data`` (along its first axis):
    ``chunk`` has ``min(chunk_size, len(data))`` rows, of which the first ``rows`` are
    ``data[start:start + rows]`` and the rest zeros."""
    if len(data) == 0:
        raise ValueError("Need at least one example; got an empty array.")
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"Chunk sizes must be positive ints, got {chunk_size!r}.")
    size = min(int(chunk_size), len(data))
    for start in range(0, len(data), size):
        chunk = data[start : start + size]
        rows = len(chunk)
        if rows < size:
            chunk = np.concatenate([chunk, np.zeros((size - rows, *chunk.shape[1:]), chunk.dtype)])
        yield chunk, start, rows
