"""The training programs: keys, epoch orders, optimiser and state, the step, the epoch, evaluation.

These are the pure, jitted pieces; `vae_jax.training.loop` runs them epoch by epoch for one run or
for the members of a sweep.

- The step ``(state, batch, rng) -> (state, metrics)`` is pure; its key is
  ``fold_in(train_key, step)`` and the epoch's order is ``permutation(fold_in(data_key,
  epoch))``, so a resumed run draws exactly the randomness of an uninterrupted one.
- Hyperparameters are data (`interface.Hyper`: beta, c, free bits, the KL weight; the KL
  warm-up length; the learning rate in the optimiser state through
  `optax.inject_hyperparams`). The state carries them (`TrainState`). A run's own program
  binds its values as constants (`make_train_step` with ``hyper``); the program of sweep
  members trained together reads each member's values from its state (traced).
- An epoch runs as segments (`make_train_segment`: any run of its steps, one compiled
  `lax.scan` over them with ``config.fused_epoch``, or one jitted call per step), each
  step's metrics added to the epoch's sums in step order; `vae_jax.training.segments` sets their
  lengths (often the whole epoch) and where they are cut changes no bit. `make_train_epoch`
  is one whole epoch; `make_members_segment` is a fused segment of K members at once
  (`jax.vmap` over stacked states, sums, data orders and keys).
- Data parallelism (`vae_jax.parallel`): with a ``mesh``, each batch is constrained to
  ``P('data')`` right after the gather (each device computes its ``batch / devices`` rows;
  XLA turns the batch means into all-reduces) and the state comes back replicated. The
  training images are split by rows over the devices (`parallel.shard_rows`); a gather
  fetches each row where it lives. Results match one device's up to float reordering.
- Non-finite gradients never reach the parameters (`optax.apply_if_finite`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import Mesh

from vae_jax import chunks, faults, parallel
from vae_jax.models import interface, registry

# Steps a run may skip in a row before optax stops protecting the parameters; 'skip' means
# skip always, so this is effectively unbounded.
MAX_SKIPPED_STEPS = 2**30


def run_keys(seed: int) -> dict[str, jax.Array]:
    """The run's independent keys: ``init``, ``train`` (per step), ``data`` (per epoch), ``eval``."""
    return dict(zip(("init", "train", "data", "eval"), jax.random.split(jax.random.key(seed), 4)))


def kl_warmup_steps(config, steps_per_epoch: int) -> int:
    """The KL warm-up length in steps (``kl_warmup_steps``, or ``kl_warmup_epochs`` epochs)."""
    return config.kl_warmup_steps or config.kl_warmup_epochs * steps_per_epoch


def learning_rate_schedule(optimizer_config, total_steps: int, peak):
    """The learning rate (a constant or a function of the step) peaking at ``peak``.

    ``peak`` is traced (the optimiser state's, `optax.inject_hyperparams`): the cosine is a
    unit schedule times ``peak``, since optax's cosine schedule branches on its peak value.
    """
    warmup = optimizer_config.warmup_steps
    if optimizer_config.schedule == "cosine":
        unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, max(total_steps, warmup + 1))
        return lambda count: peak * unit(count)
    if warmup:
        return optax.warmup_constant_schedule(0.0, peak, warmup)
    return peak


OPTIMIZERS = ("adam", "adamax")


def make_optimizer(optimizer_config, total_steps: int) -> optax.GradientTransformation:
    """Adam (or Adamax, ``optimizer.name``) with a constant or cosine learning rate (optional
    linear warm-up) and optional decoupled weight decay (``optimizer.weight_decay``: the update
    also subtracts ``learning_rate * weight_decay * params``, as `optax.adamw`), skipping updates
    whose gradients are not finite. The (peak) learning rate is a value of the optimiser state
    (`optax.inject_hyperparams`; `with_learning_rate` sets it), so members of one program may
    differ in it. Plain Adam is `optax.adam` itself (the state of every earlier checkpoint)."""
    name = optimizer_config.get("name", "adam")
    weight_decay = optimizer_config.get("weight_decay", 0.0)

    def optimizer(learning_rate):
        schedule = learning_rate_schedule(optimizer_config, total_steps, learning_rate)
        if name == "adam" and not weight_decay:
            return optax.adam(schedule)
        scaling = optax.scale_by_adam() if name == "adam" else optax.scale_by_adamax()
        decay = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
        return optax.chain(scaling, *decay, optax.scale_by_learning_rate(schedule))

    injected = optax.inject_hyperparams(optimizer)(learning_rate=optimizer_config.learning_rate)
    return optax.apply_if_finite(injected, max_consecutive_errors=MAX_SKIPPED_STEPS)


def with_learning_rate(opt_state, learning_rate: float):
    """``opt_state`` of `make_optimizer` with its (peak) learning rate set to ``learning_rate``."""
    injected = opt_state.inner_state
    hyperparams = {**injected.hyperparams, "learning_rate": jnp.asarray(learning_rate, jnp.float32)}
    return opt_state._replace(inner_state=injected._replace(hyperparams=hyperparams))


class TrainState(train_state.TrainState):
    """Step, parameters, optimiser state (with the learning rate), and the loss's
    hyperparameters: ``hyper`` (`interface.Hyper` of float32 scalars) and
    ``kl_warmup_steps`` (int32). With ``config.ema_decay`` > 0 also ``ema_params``, an
    exponential moving average of the parameters, and its ``ema_decay`` (float32); both None
    otherwise (so the state, and its checkpoints, are those of a run without it)."""

    hyper: interface.Hyper = None
    kl_warmup_steps: Any = None
    ema_params: Any = None
    ema_decay: Any = None

    def apply_gradients(self, *, grads, **kwargs) -> "TrainState":
        """The optimiser's step, then the average: ``ema <- d ema + (1 - d) params`` with
        ``d = min(ema_decay, (1 + step) / (10 + step))`` (``step`` before the update), so the
        average forgets its initial value quickly at the start (as TensorFlow's
        ``ExponentialMovingAverage`` with ``num_updates``)."""
        new = super().apply_gradients(grads=grads, **kwargs)
        if self.ema_params is None:
            return new
        step = self.step.astype(jnp.float32)
        decay = jnp.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        average = jax.tree.map(lambda ema, p: decay * ema + (1.0 - decay) * p, self.ema_params, new.params)
        return new.replace(ema_params=average)


def evaluated_params(state):
    """The parameters a state is evaluated, selected, tested and exported with: the moving
    average when the run keeps one (``config.ema_decay`` > 0), else the parameters."""
    return state.params if state.ema_params is None else state.ema_params


def create_train_state(
    fns: interface.ModelFns,
    config,
    total_steps: int,
    init_key: jax.Array,
    warmup_steps: int,
    tx: optax.GradientTransformation | None = None,
) -> TrainState:
    """The initial state of a run of ``config``: the model's initial parameters (``fns.init``),
    optimiser state (`make_optimizer` with the config's learning rate, or ``tx``) and its
    hyperparameters as arrays."""
    params = fns.init(init_key)
    hyper = interface.Hyper(*(jnp.asarray(v, jnp.float32) for v in interface.hyper(config)))
    tx = make_optimizer(config.optimizer, total_steps) if tx is None else tx
    ema_decay = config.get("ema_decay", 0.0)
    return TrainState.create(
        apply_fn=None,
        params=params,
        tx=tx,
        hyper=hyper,
        kl_warmup_steps=jnp.asarray(warmup_steps, jnp.int32),
        ema_params=jax.tree.map(jnp.copy, params) if ema_decay else None,
        ema_decay=jnp.asarray(ema_decay, jnp.float32) if ema_decay else None,
    )


def kl_warmup_weight(step, warmup_steps):
    """The KL weight at ``step``: rises linearly from 1/warmup_steps at the first step to 1 at
    step ``warmup_steps`` (1 throughout when it is 0). A function of the step, so resuming
    needs no extra state; ``warmup_steps`` is a Python int or a traced one."""
    if isinstance(warmup_steps, int):
        return jnp.minimum(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    rising = jnp.minimum(1.0, (step + 1) / jnp.maximum(warmup_steps, 1))
    return jnp.where(warmup_steps > 0, rising, 1.0)


def make_train_step(
    fns: interface.ModelFns,
    *,
    dynamic_binarization: bool,
    hyper: interface.Hyper | None = None,
    kl_warmup_steps: int | None = None,
):
    """The pure step ``(state, batch, rng) -> (state, metrics)``; metrics are batch means of
    ``fns.per_example_metrics`` except ``fns.diagnostics`` (left out, so never computed: the
    VAE's squared error would lengthen a reference training step, see the step profile in
    docs/results.md; evaluation reports it).

    ``hyper`` and ``kl_warmup_steps`` given (Python numbers): compiled in as constants (a
    run's own program). None: read from ``state.hyper`` and ``state.kl_warmup_steps``
    (traced: sweep members in one program, each its own values). With
    ``dynamic_binarization`` every batch is a fresh Bernoulli draw of its grey levels.
    """

    def train_step(state, batch, rng):
        if dynamic_binarization:
            binarize_key, rng = jax.random.split(rng)
            batch = jax.random.bernoulli(binarize_key, batch).astype(batch.dtype)
        base = state.hyper if hyper is None else hyper
        warmup = state.kl_warmup_steps if kl_warmup_steps is None else kl_warmup_steps
        step_hyper = base._replace(kl_weight=kl_warmup_weight(state.step, warmup))

        def mean_loss(params):
            metrics = fns.per_example_metrics(params, batch, rng, step_hyper, training=True)
            return jnp.mean(metrics["loss"]), metrics

        grads, metrics = jax.grad(mean_loss, has_aux=True)(state.params)
        metrics = {name: value for name, value in metrics.items() if name not in fns.diagnostics}
        return state.apply_gradients(grads=grads), jax.tree.map(jnp.mean, metrics)

    return train_step


@functools.partial(jax.jit, static_argnums=(2, 3))
def epoch_order(data_key: jax.Array, epoch: int, num_examples: int, batch_size: int) -> jax.Array:
    """``[steps, batch_size]`` example indices of one epoch (the remainder is dropped)."""
    steps = num_examples // batch_size
    permutation = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples)
    return permutation[: steps * batch_size].reshape(steps, batch_size)


def _step_at(train_step, mesh: Mesh | None):
    """``(state, images, indices, train_key) -> (state, metrics)``: the step on
    ``images[indices]`` (split over the mesh's devices) with the key of the state's step."""

    def step_at(state, images, indices, train_key):
        batch = images[indices]
        if mesh is not None:
            batch = jax.lax.with_sharding_constraint(batch, parallel.batch_sharded(mesh))
        return train_step(state, batch, jax.random.fold_in(train_key, state.step))

    return step_at


def _scan_segment(step_at):
    """Steps over the batches of ``order`` as `lax.scan`, adding each step's metrics to
    ``sums`` in step order (so the sums, like the state, do not depend on where an epoch is
    cut into segments)."""

    def scan_segment(state, sums, images, order, train_key):
        def body(carry, indices):
            state, sums = carry
            state, metrics = step_at(state, images, indices, train_key)
            return (state, jax.tree.map(jnp.add, sums, metrics)), None

        (state, sums), _ = jax.lax.scan(body, (state, sums), order)
        return state, sums

    return scan_segment


def metric_shapes(train_step, state, images, train_key) -> dict:
    """The shapes and dtypes of ``train_step``'s metrics (traced abstractly, nothing computed)."""
    batch = jax.ShapeDtypeStruct((1, *images.shape[1:]), images.dtype)
    return jax.eval_shape(train_step, state, batch, train_key)[1]


def zero_metric_sums(shapes: dict, mesh: Mesh | None = None) -> dict:
    """The metric sums a segment (`make_train_segment`) starts an epoch from: zeros of
    `metric_shapes`, replicated over ``mesh`` when given."""
    sums = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return sums if mesh is None else parallel.replicate(sums, mesh)


def _jit_segment(mesh: Mesh | None, donate=(0, 1)):
    return functools.partial(
        jax.jit, donate_argnums=donate, out_shardings=None if mesh is None else parallel.replicated(mesh)
    )


def make_train_segment(train_step, *, fused: bool, mesh: Mesh | None = None):
    """``(state, sums, images, order, train_key) -> (state, sums)``: the steps of ``order``
    (``[steps, batch]`` rows of one epoch's order, any number of them), each step's mean
    metrics added to ``sums`` (`zero_metric_sums` at an epoch's start).

    Fused: one compiled `lax.scan` over the steps (one program per segment length). Unfused:
    one jitted call per step. The state's and sums' buffers are donated either way. With a
    ``mesh`` (the state, sums and key replicated on it, the images replicated or split by rows
    with `parallel.shard_rows`), each batch is split over its ``'data'`` axis and the state and
    sums come back replicated. Cutting an epoch into segments changes no bit of the result.
    """
    step_at = _step_at(train_step, mesh)
    scan_segment = _scan_segment(step_at)
    if fused:
        return _jit_segment(mesh)(scan_segment)

    @_jit_segment(mesh)
    def step_and_add(state, sums, images, indices, train_key):
        return scan_segment(state, sums, images, indices[None], train_key)

    def stepwise_segment(state, sums, images, order, train_key):
        for indices in order:
            state, sums = step_and_add(state, sums, images, indices, train_key)
            faults.point("step_done")
        return state, sums

    return stepwise_segment


def make_train_epoch(train_step, *, fused: bool, mesh: Mesh | None = None):
    """``(state, images, order, train_key) -> (state, mean metrics)`` for a whole epoch: one
    `make_train_segment` over all of ``order``, the sums divided by its number of steps."""
    step_at = _step_at(train_step, mesh)
    if fused:
        scan_segment = _scan_segment(step_at)

        def fused_epoch(state, images, order, train_key):
            sums = zero_metric_sums(metric_shapes(train_step, state, images, train_key))  # constants
            state, sums = scan_segment(state, sums, images, order, train_key)
            return state, jax.tree.map(lambda total: total / len(order), sums)

        return _jit_segment(mesh, donate=0)(fused_epoch)
    segment = make_train_segment(train_step, fused=False, mesh=mesh)
    shapes = []  # traced once, at the first epoch

    def stepwise_epoch(state, images, order, train_key):
        shapes[:] = shapes or [metric_shapes(train_step, state, images, train_key)]
        sums = zero_metric_sums(shapes[0], mesh)
        state, sums = segment(state, sums, images, order, train_key)
        return state, jax.tree.map(lambda total: total / len(order), sums)

    return stepwise_epoch


def make_members_segment(train_step, *, mesh: Mesh | None = None):
    """``(states, sums, images, orders, train_keys, active) -> (states, sums)``: a fused
    segment of K members (leading axis K of the states, sums, orders ``[K, steps, batch]``,
    keys and the boolean ``active``) in one compiled program, `jax.vmap` of
    `make_train_segment`'s; ``images`` are shared. A member that is not active keeps its state
    and sums."""
    scan_segment = _scan_segment(_step_at(train_step, mesh))

    def member_segment(state, sums, images, order, train_key, active):
        new = scan_segment(state, sums, images, order, train_key)
        return jax.tree.map(lambda n, old: jnp.where(active, n, old), new, (state, sums))

    return _jit_segment(mesh)(jax.vmap(member_segment, in_axes=(0, 0, None, 0, 0, 0)))


def make_evaluate(fns: interface.ModelFns, batch_size: int, mesh: Mesh | None = None):
    """``(params, images, key, hyper) -> {metric: mean over images}`` in fixed-size jitted
    chunks (`chunks.padded_chunks`, the padding masked). ``hyper`` (an `interface.Hyper` of
    Python numbers) is compiled in. With a ``mesh`` (params and key replicated on it), a chunk
    whose size divides by the number of devices is split over them (each evaluates its
    rows; else each evaluates the chunk). Each chunk's key is ``fold_in(key, start)``.
    """

    @functools.partial(jax.jit, static_argnums=4, out_shardings=None if mesh is None else parallel.replicated(mesh))
    def chunk_sums(params, chunk, mask, key, hyper):
        if mesh is not None and len(chunk) % mesh.size == 0:
            chunk, mask = (jax.lax.with_sharding_constraint(x, parallel.batch_sharded(mesh)) for x in (chunk, mask))
        metrics = fns.per_example_metrics(params, chunk, key, hyper)
        return {name: jnp.sum(jnp.where(mask, value, 0.0)) for name, value in metrics.items()}

    def evaluate(params, images, key, hyper: interface.Hyper) -> dict[str, float]:
        totals = None
        for chunk, start, rows in chunks.padded_chunks(images, batch_size):
            mask = np.arange(len(chunk)) < rows
            sums = chunk_sums(params, chunk, mask, jax.random.fold_in(key, start), hyper)
            totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
        return {name: float(total) / len(images) for name, total in totals.items()}

    return evaluate


@jax.jit
def _stack(trees: list) -> Any:
    """The trees stacked along a new leading (member) axis, in one compiled call."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


@functools.partial(jax.jit, static_argnums=1)
def _unstack(tree: Any, count: int) -> list:
    """The ``count`` trees of a stacked tree, in one compiled call."""
    return [jax.tree.map(lambda leaf: leaf[i], tree) for i in range(count)]


def initial_states(configs: Sequence, image_shape, total_steps: int, steps_per_epoch: int) -> list:
    """Each member's initial `TrainState`, as its single run initialises it, all with one
    optimiser (each state holds its own learning rate), so they stack."""
    tx = make_optimizer(configs[0].optimizer, total_steps)
    states = []
    for config in configs:
        member_fns = registry.build(config, image_shape)  # c may set a learned variance's start
        warmup = kl_warmup_steps(config, steps_per_epoch)
        state = create_train_state(member_fns, config, total_steps, run_keys(config.seed)["init"], warmup, tx=tx)
        learning_rate = with_learning_rate(state.opt_state, config.optimizer.learning_rate)
        states.append(state.replace(opt_state=learning_rate))
    return states


class MembersSegment:
    """A segment (some steps of one epoch) of several members, ``(states, sums, going, images,
    orders) -> (states, sums)``, in turn (each member with its own program; members with equal
    hyperparameters share one) or in one vmapped program. ``states``, ``sums`` (metric sums
    of the epoch so far, `zeros` at its start) and ``orders`` (each ``[steps, batch]``) are
    per member; a member that is not ``going`` keeps its state and sums."""

    def __init__(
        self,
        fns,
        config,
        hypers: Sequence[tuple[interface.Hyper, int]],
        train_keys: Sequence,
        execution: str,
        mesh: Mesh | None,
    ):
        self.execution, self.hypers, self.train_keys, self.mesh = execution, list(hypers), list(train_keys), mesh
        dynamic = config.data.binarize == "dynamic"
        if execution == "vmap":
            self.traced_step = make_train_step(fns, dynamic_binarization=dynamic)
            self.program = make_members_segment(self.traced_step, mesh=mesh)
            self.stacked_keys = _stack(list(self.train_keys))
        else:
            self.steps, self.programs = {}, {}
            for hyper, warmup in self.hypers:
                if (hyper, warmup) not in self.programs:
                    step_fn = make_train_step(fns, dynamic_binarization=dynamic, hyper=hyper, kl_warmup_steps=warmup)
                    self.steps[(hyper, warmup)] = step_fn
                    self.programs[(hyper, warmup)] = make_train_segment(step_fn, fused=config.fused_epoch, mesh=mesh)

    def zeros(self, states: list, images) -> list:
        """Each member's metric sums at the start of an epoch."""
        if not hasattr(self, "shapes"):  # traced once
            step = self.traced_step if self.execution == "vmap" else self.steps[self.hypers[0]]
            self.shapes = metric_shapes(step, states[0], images, self.train_keys[0])
        return [zero_metric_sums(self.shapes, self.mesh) for _ in states]

    def __call__(self, states: list, sums: list, going: Sequence[bool], images, orders: Sequence) -> tuple[list, list]:
        if self.execution == "vmap":
            stacked, stacked_sums = self.program(
                _stack(list(states)),
                _stack(list(sums)),
                images,
                jnp.stack(orders),
                self.stacked_keys,
                np.asarray(going),
            )
            return _unstack(stacked, len(states)), _unstack(stacked_sums, len(states))
        states, sums = list(states), list(sums)
        for i, (key, g) in enumerate(zip(self.hypers, going)):
            if g:
                states[i], sums[i] = self.programs[key](states[i], sums[i], images, orders[i], self.train_keys[i])
        return states, sums


class RunPrograms(NamedTuple):
    """The compiled programs of a run (or of sweep members trained together), built by
    `build_run_programs`: the model's `interface.ModelFns`, ``evaluate`` (`make_evaluate`: every
    epoch's evaluation and the final one) and ``segment`` (`MembersSegment`: the training steps)."""

    fns: interface.ModelFns
    evaluate: Any
    segment: MembersSegment


def build_run_programs(
    config,
    image_shape,
    hypers: Sequence[tuple[interface.Hyper, int]],
    train_keys: Sequence,
    execution: str,
    mesh: Mesh | None,
) -> RunPrograms:
    """Every program a run of ``config`` (on images of ``image_shape``) needs, in one call: its
    members' hyperparameters and KL warm-ups ``hypers`` and training keys ``train_keys``, trained
    ``execution`` ('in_turn' or 'vmap') over ``mesh``."""
    fns = registry.build(config, image_shape)
    evaluate = make_evaluate(fns, config.eval_batch_size, mesh)
    return RunPrograms(fns, evaluate, MembersSegment(fns, config, hypers, train_keys, execution, mesh))
