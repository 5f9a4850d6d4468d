"""Training images streamed from the host (or disk) segment by segment, for data that does not
fit on the devices.

The resident path (`parallel.shard_rows`) puts the whole training split on the devices once
and each step gathers its batch there: fastest, while it fits. Streaming keeps the split on
the host, as a `StreamedImages` over any random-access source (a numpy array, an
``np.load(..., mmap_mode='r')`` memmap of a file larger than memory, or a per-example reader
such as a decoder of image files), and reads, for each segment of an epoch
(`vae_jax.training.segments`), just the rows that its steps use:

- the order is the resident path's (``programs.epoch_order``: a function of seed and epoch), and
  a segment's rows are laid out so that each device holds its share of every step's batch
  (`SegmentReader`); each process reads only the rows of its own devices;
- the segment program is the resident one, given the segment's rows as its images and the
  rows' positions as its order, so each step sees exactly the batch the resident path gathers:
  streaming and resident runs are equal bit for bit, and a killed streaming run resumes
  bit-identically;
- the next segment is read on a background thread while the devices train on the current one.

Per-example sources are read with Grain (`grain.MapDataset` with `grain.ReadOptions` threads),
the JAX ecosystem's data loader: deterministic, index-based random access (which is what an
order that is a function of (seed, epoch, step) needs), threads and prefetch, and no
TensorFlow dependency; array sources (memmaps) are gathered with one numpy fancy index.
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from vae_jax import parallel
from vae_jax.data import image_ops

# Auto: resident while a device's share of the training split (float32) is at most this
# fraction of its memory (the rest is for parameters, optimiser state and activations).
RESIDENT_MEMORY_FRACTION = 0.25
# A segment's images on the host and devices (float32) stay below this size.
SEGMENT_BYTES = 256 * 2**20


class StreamedImages:
    """``[N, H, W, C]`` float32 images in [0, 1] read on access from ``source``: an array
    (uint8 values 0..255 are divided by 255, floats are taken as they are) or any object with
    ``len()`` and ``source[i] -> [H, W, C]`` (read by Grain with ``num_threads`` threads).
    Indexing (an int, a slice or an array of ints) returns a numpy array."""

    def __init__(self, source: Any, *, name: str = "images", num_threads: int = 4):
        self.source, self.name, self.num_threads = source, name, num_threads
        self.vectorized = isinstance(source, np.ndarray)
        first = np.asarray(source[0])
        self.shape = (len(source), *first.shape)
        self.dtype = np.dtype(np.float32)
        self.ndim = len(self.shape)
        self.nbytes = int(np.prod(self.shape)) * 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            return self.rows(np.arange(*key.indices(len(self))))
        if np.ndim(key) == 0:
            return self.rows(np.asarray([key]))[0]
        return self.rows(np.asarray(key))

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """The images at ``indices`` (any shape of ints), ``[*indices.shape, H, W, C]``."""
        flat = np.asarray(indices, np.int64).reshape(-1)
        if self.vectorized:
            values = np.asarray(self.source[flat])
        elif len(flat) == 0:
            values = np.zeros((0, *self.shape[1:]), np.float32)
        else:
            import grain  # noqa: PLC0415  (only the per-example sources need it)

            dataset = grain.MapDataset.source(flat.tolist()).map(lambda i: np.asarray(self.source[i]))
            options = grain.ReadOptions(num_threads=self.num_threads, prefetch_buffer_size=4 * self.num_threads)
            values = np.stack(list(dataset.to_iter_dataset(options)))
        return image_ops.to_unit(values).reshape(*np.shape(indices), *self.shape[1:])


def device_memory_bytes(device) -> int:
    """Memory of ``device``: its allocator's limit where it reports one (GPU, TPU), else the
    host's physical memory (CPU devices share it)."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def choose_pipeline(requested: str, train_bytes: int, mesh: Mesh) -> tuple[str, str]:
    """``(pipeline, why)``: ``requested``, or for ``auto`` resident while each device's share
    of the ``train_bytes`` (float32) fits in `RESIDENT_MEMORY_FRACTION` of its memory."""
    if requested != "auto":
        return requested, f"config.data.pipeline={requested}"
    share = train_bytes / mesh.size
    local = next(d for d in mesh.devices.flat if d.process_index == jax.process_index())
    # The smallest device of any process decides, so that every process takes the same path.
    budget = -parallel.max_over_processes([-RESIDENT_MEMORY_FRACTION * device_memory_bytes(local)])[0]
    pipeline = "resident" if share <= budget else "streaming"
    return pipeline, (
        f"auto: {share / 2**20:.0f} MiB of training images per device "
        f"{'within' if pipeline == 'resident' else 'over'} {budget / 2**20:.0f} MiB "
        f"({RESIDENT_MEMORY_FRACTION:.0%} of its memory)"
    )


def max_segment_steps(members: int, batch_size: int, image_bytes: int) -> int:
    """The most steps a segment of ``members`` may have within `SEGMENT_BYTES`."""
    return max(1, SEGMENT_BYTES // (members * batch_size * image_bytes))


class SegmentReader:
    """Reads the images of a segment of K members' steps (each member's ``[L, B]`` global
    example indices, or None for a member that is not training) as one global array split
    by rows over ``mesh``, laid out device by device, member by member, step by step, so
    that device d's rows are its ``B / devices`` rows of every step of every member. Returns
    it with each member's ``[L, B]`` positions of its batches' rows in that array (replicated)."""

    def __init__(self, images: StreamedImages, mesh: Mesh):
        self.images, self.mesh = images, mesh
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vae_jax_stream")

    def read(self, orders: Sequence[np.ndarray | None]) -> tuple[jax.Array, list]:
        present = [np.asarray(o) for o in orders if o is not None]
        steps, batch = present[0].shape
        devices = self.mesh.size
        per_device = batch // devices
        # table[d, k, s, j]: the example in device d's j-th row of member k's step s.
        table = np.stack([o.reshape(steps, devices, per_device).transpose(1, 0, 2) for o in present], axis=1)
        rows_per_device = table[0].size
        shape = (devices * rows_per_device, *self.images.shape[1:])

        def device_rows(index: tuple[slice, ...]) -> np.ndarray:
            start, stop, _ = index[0].indices(shape[0])
            return self.images.rows(table.reshape(-1)[start:stop])

        array = jax.make_array_from_callback(shape, parallel.batch_sharded(self.mesh), device_rows)
        # positions[k, s, d * per_device + j] = d * rows_per_device + (k * steps + s) * per_device + j
        d = np.arange(devices)[:, None, None, None]
        k = np.arange(len(present))[None, :, None, None]
        s = np.arange(steps)[None, None, :, None]
        j = np.arange(per_device)[None, None, None, :]
        positions = (d * rows_per_device + (k * steps + s) * per_device + j).astype(np.int32)
        positions = positions.transpose(1, 2, 0, 3).reshape(len(present), steps, batch)
        placed = iter(parallel.replicate(list(positions), self.mesh))
        return array, [None if o is None else next(placed) for o in orders]

    def prefetch(self, orders: Sequence[np.ndarray | None]) -> concurrent.futures.Future:
        """`read` on a background thread (while the devices train on the current segment)."""
        return self.pool.submit(self.read, orders)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
