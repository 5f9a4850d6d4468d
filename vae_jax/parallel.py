"""Data parallelism over every device, on one host or several, with JAX's own runtime.

- `initialize` starts `jax.distributed` (before any other JAX call) when a run spans
  several processes: given ``--coordinator_address`` (or ``$JAX_COORDINATOR_ADDRESS``),
  ``--num_processes`` and ``--process_id``, or under a SLURM job step / Open MPI job of more
  than one task (whose parameters JAX detects itself). A single process needs nothing.
- `data_mesh` is a 1-D `jax.sharding.Mesh` over every device of every process, axis
  ``'data'``. Parameters, optimiser state and keys are replicated (`replicated`); every
  batch is split along its first axis (`batch_sharded`).
- `replicate` puts host or single-device values (identical on every process: they are
  computed from the seed or loaded from the same files) on all devices, no communication.
- `shard_rows` puts the training images on the devices split by rows: each process copies
  only its devices' rows, and each device holds ``1 / devices`` of the data.
- Only the primary process (0) writes logs, figures and config.json (`is_primary`);
  `barrier` keeps the processes in step around those writes.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import jax
import numpy as np
from absl import logging
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from vae_jax.errors import ConfigError

DATA_AXIS = "data"


def cluster_environment() -> str | None:
    """The launcher that started several processes of this run, if JAX can detect it from
    the environment: a SLURM job step or an Open MPI job of more than one task."""
    env = os.environ
    slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
    if all(name in env for name in slurm) and int(env["SLURM_NTASKS"]) > 1:
        return "SLURM"
    if "OMPI_MCA_orte_hnp_uri" in env and int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "Open MPI"
    return None


def initialize(
    coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> bool:
    """Calls `jax.distributed.initialize` when the arguments (``coordinator_address`` also
    from ``$JAX_COORDINATOR_ADDRESS``) or a launcher (`cluster_environment`, which then
    supplies what is not given) describe a multi-process run; otherwise a single process
    needs nothing. Must run before anything else uses JAX. Returns whether it initialised."""
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    given = {"coordinator_address": coordinator_address, "num_processes": num_processes, "process_id": process_id}
    detected = cluster_environment()
    if all(value is None for value in given.values()) and detected is None:
        return False
    if detected is None and None in given.values():
        missing = ", ".join(f"--{name}" for name, value in given.items() if value is None)
        raise ConfigError(
            f"A multi-process run needs --coordinator_address, --num_processes and --process_id "
            f"(or a SLURM / Open MPI launcher): {missing} missing, e.g. --coordinator_address="
            "10.0.0.1:1234 --num_processes=2 --process_id=0 on process 0."
        )
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    logging.info(
        "jax.distributed initialised (%s): process %d of %d, %d of %d devices local.",
        detected or "flags",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True


def data_mesh(devices: Sequence | None = None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: all devices of the default backend, of all
    processes), axis ``'data'``. Its axis type is Auto, so sharding constraints and
    propagation place the computation."""
    devices = jax.devices() if devices is None else list(devices)
    return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole value (parameters, optimiser state, keys)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Split along the first (batch) axis: each device holds ``batch / devices`` rows."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """``tree`` (numpy, Python scalars, single-device arrays, typed PRNG keys) on every
    device of ``mesh``. Each process copies its own value to its own devices, so the value
    must be the same on every process (it is: computed from the seed or read from the same
    files). Values are copied exactly, nothing is recomputed."""
    sharding = replicated(mesh)
    # Across processes, device_put copies a host value to the local devices; it mishandles
    # committed single-device arrays (e.g. jit outputs) and rejects PRNG keys, so those go
    # through the host (keys as their raw data).
    through_host = jax.process_count() > 1

    def put(leaf):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(leaf)), impl=jax.random.key_impl(leaf))
        return jax.device_put(np.asarray(leaf) if through_host and isinstance(leaf, jax.Array) else leaf, sharding)

    return jax.tree.map(put, tree)


def shard_rows(images: np.ndarray, mesh: Mesh) -> jax.Array:
    """The host array ``images`` (the same on every process) as one global array split along
    its rows over the devices of ``mesh``: each device holds ``ceil(n / devices)`` consecutive
    rows, the last device's padded with zero rows past ``n`` (index only rows below ``n``).

    Each process copies only the rows of its own devices, so device memory per device is
    ``n / devices`` rather than ``n``. Indexing it with replicated indices inside ``jit``
    gathers each row on the device that holds it and sums the batch over the devices (one
    all-reduce of a batch per step), so every batch equals the single-device one."""
    devices = mesh.size
    per_device = -(-len(images) // devices)
    shape = (per_device * devices, *images.shape[1:])

    def rows(index: tuple[slice, ...]) -> np.ndarray:
        start, stop, _ = index[0].indices(shape[0])
        part = images[start : min(stop, len(images))]
        return np.concatenate([part, np.zeros((stop - start - len(part), *shape[1:]), images.dtype)])

    return jax.make_array_from_callback(shape, batch_sharded(mesh), rows)


def local_rows(array: jax.Array) -> tuple[int, int]:
    """``(start, stop)``: the rows of a `shard_rows` array held on this process's devices."""
    starts_stops = [shard.index[0].indices(array.shape[0])[:2] for shard in array.addressable_shards]
    return min(start for start, _ in starts_stops), max(stop for _, stop in starts_stops)


def to_host(tree: Any) -> Any:
    """Numpy copies of a replicated tree's leaves (for host-only work such as figures,
    which the primary process does alone)."""
    return jax.tree.map(lambda leaf: np.asarray(jax.device_get(leaf)), tree)


def is_primary() -> bool:
    """Whether this process writes the run's logs, figures and config.json (process 0)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process reaches the barrier ``name`` (nothing to wait for alone)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def broadcast_ok(ok: bool) -> bool:
    """Process 0's ``ok``, on every process (alone: ``ok`` itself)."""
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))


def max_over_processes(values: Sequence[float]) -> np.ndarray:
    """The element-wise maximum of ``values`` over the processes (alone: ``values``), so that
    decisions taken from measurements (e.g. a segment's length from its time) agree."""
    values = np.asarray(values, np.float64)
    if jax.process_count() == 1:
        return values
    from jax.experimental import multihost_utils

    return np.max(multihost_utils.process_allgather(values), axis=0)


def any_process(flag: bool) -> bool:
    """Whether ``flag`` is true on any process (alone: ``flag`` itself)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))
