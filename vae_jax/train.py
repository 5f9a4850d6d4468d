"""Training and evaluation of PCA, autoencoders and VAEs: `train_and_evaluate(config, workdir)`.

Design (see README, "Training"):
- The training set lives on the device. One epoch is one compiled program: `lax.scan`
  over its batches (``config.fused_epoch``), or one jitted call per step otherwise.
- The step ``(state, batch, rng) -> (state, metrics)`` is pure; its key is
  ``fold_in(train_key, step)`` and the epoch's order is ``permutation(fold_in(data_key,
  epoch))``, so a resumed run draws exactly the randomness of an uninterrupted one. It first
  drops the metrics.jsonl lines after its checkpoint's step, so each epoch is logged once.
- Metrics stay on the device until the end of the epoch (one host transfer per epoch).
- Non-finite gradients never reach the parameters (`optax.apply_if_finite`); with
  ``config.nonfinite='stop'`` the run stops before the next checkpoint is written.

Data parallelism over every device (`vae_jax.parallel`; README, "Several devices and hosts"):
- One 1-D mesh, axis ``'data'``, over all devices of all processes. The parameters, the
  optimiser state, the keys and the (small) training set are replicated: each device holds
  a copy, so the epoch stays one `lax.scan` over a resident training set. Each global batch
  is the one a single device would use (``images[order[step]]``); the step constrains it to
  ``P('data')`` (`jax.lax.with_sharding_constraint`) right after the gather, so each device
  gathers and computes only its ``batch_size / devices`` rows. XLA's sharding propagation
  turns the batch means into all-reduces (of gradients and metrics: the only communication,
  no example crosses devices), and the jitted epoch returns the state replicated
  (``out_shardings``). PRNG keys are partitionable (threefry), so every example draws the
  same noise as on one device: results match one device's up to float reordering.
- ``batch_size`` must divide evenly by the number of devices (`validation.ConfigError`,
  before any work). Evaluation chunks are split the same way when their size divides (else
  each device evaluates the whole chunk).
- Several processes (`parallel.initialize`, called first by ``experiments/train.py``): each
  process loads the whole training split (MNIST-sized data fit on every device) and puts it
  on its own devices, computes the same epoch order from the seed, and its devices gather
  only their rows of each global batch. Only process 0 writes config.json, metrics.jsonl,
  TensorBoard events, figures and final_metrics.json; every process takes part in orbax's
  checkpoint saves (each replicated array is written once) and restores the same step.
- With one device the mesh has one device: the same programs and bit-identical results as
  before data parallelism.
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax.training import train_state
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from jax.sharding import Mesh

from vae_jax import checkpoints, data, figures, models, objectives, parallel, selection, validation
from vae_jax import pca as pca_lib

# Steps a run may skip in a row before optax stops protecting the parameters; 'skip' means
# skip always, so this is effectively unbounded.
MAX_SKIPPED_STEPS = 2**30


class NonFiniteError(FloatingPointError):
    """Training produced a non-finite loss or gradient and ``config.nonfinite='stop'``."""


def run_keys(seed: int) -> dict[str, jax.Array]:
    """The run's independent keys: ``init``, ``train`` (per step), ``data`` (per epoch), ``eval``."""
    return dict(zip(("init", "train", "data", "eval"), jax.random.split(jax.random.key(seed), 4)))


def learning_rate_schedule(optimizer_config, total_steps: int, peak):
    """The learning rate (a constant or a function of the step) peaking at ``peak``.

    ``peak`` may be traced (a sweep member's): the cosine is a unit schedule times ``peak``,
    since optax's cosine schedule branches on its peak value.
    """
    warmup = optimizer_config.warmup_steps
    if optimizer_config.schedule == "cosine":
        unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, max(total_steps, warmup + 1))
        return lambda count: peak * unit(count)
    if warmup:
        return optax.warmup_constant_schedule(0.0, peak, warmup)
    return peak


def make_optimizer(optimizer_config, total_steps: int) -> optax.GradientTransformation:
    """Adam with a constant or cosine learning rate (optional linear warm-up), skipping
    updates whose gradients are not finite."""
    learning_rate = learning_rate_schedule(optimizer_config, total_steps, optimizer_config.learning_rate)
    return optax.apply_if_finite(optax.adam(learning_rate), max_consecutive_errors=MAX_SKIPPED_STEPS)


def create_train_state(model, image_shape, tx, init_key: jax.Array) -> train_state.TrainState:
    """Initial parameters and optimiser state."""
    dummy = jnp.zeros((1, *image_shape), jnp.float32)
    args = (dummy, init_key) if isinstance(model, models.VAE) else (dummy,)
    params = model.init(init_key, *args)
    return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def make_train_step(fns: objectives.ModelFns, *, dynamic_binarization: bool, kl_warmup_steps: int = 0):
    """The pure step ``(state, batch, rng) -> (state, metrics)``; metrics are batch means of
    ``fns.per_example_metrics`` except ``fns.diagnostics`` (left out, so never computed: the
    VAE's squared error costs 12% of a reference training step; evaluation reports it).

    With ``kl_warmup_steps`` > 0 the KL weight rises linearly from 1/kl_warmup_steps at the
    first step to 1 (times beta) at step ``kl_warmup_steps`` (a function of the step, so
    resuming needs no extra state).
    """

    def train_step(state, batch, rng):
        if dynamic_binarization:
            binarize_key, rng = jax.random.split(rng)
            batch = jax.random.bernoulli(binarize_key, batch).astype(batch.dtype)
        kl_weight = jnp.minimum(1.0, (state.step + 1) / kl_warmup_steps) if kl_warmup_steps else 1.0

        def mean_loss(params):
            metrics = fns.per_example_metrics(params, batch, rng, kl_weight=kl_weight)
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


def make_train_epoch(train_step, *, fused: bool, mesh: Mesh | None = None):
    """``(state, images, order, train_key) -> (state, mean metrics)`` for one epoch.

    Fused: a single compiled `lax.scan` over the epoch's batches. Unfused: one jitted call
    per step, metrics summed on the device. The state's buffers are donated either way.
    With a ``mesh`` (the state and key replicated on it, the images replicated or split by
    rows with `parallel.shard_rows`), each batch is split over its
    ``'data'`` axis and the state and metrics come back replicated.
    """

    def step_at(state, images, indices, train_key):
        batch = images[indices]
        if mesh is not None:
            batch = jax.lax.with_sharding_constraint(batch, parallel.batch_sharded(mesh))
        return train_step(state, batch, jax.random.fold_in(train_key, state.step))

    jit = functools.partial(jax.jit, donate_argnums=0,
                            out_shardings=None if mesh is None else parallel.replicated(mesh))
    if fused:
        @jit
        def fused_epoch(state, images, order, train_key):
            state, metrics = jax.lax.scan(lambda s, idx: step_at(s, images, idx, train_key), state, order)
            return state, jax.tree.map(jnp.mean, metrics)

        return fused_epoch

    jitted_step = jit(step_at)

    def stepwise_epoch(state, images, order, train_key):
        totals = None
        for indices in order:
            state, metrics = jitted_step(state, images, indices, train_key)
            totals = metrics if totals is None else jax.tree.map(jnp.add, totals, metrics)
        return state, jax.tree.map(lambda total: total / len(order), totals)

    return stepwise_epoch


def make_evaluate(fns: objectives.ModelFns, batch_size: int, mesh: Mesh | None = None):
    """``(params, images, key) -> {metric: mean over images}`` in fixed-size jitted chunks.

    The last chunk is padded and masked, so every chunk reuses one compiled program. With a
    ``mesh`` (params and key replicated on it), a chunk whose size divides by the number of
    devices is split over them (each evaluates its rows; else each evaluates the chunk).
    """

    @functools.partial(jax.jit, out_shardings=None if mesh is None else parallel.replicated(mesh))
    def chunk_sums(params, chunk, mask, key):
        if mesh is not None and len(chunk) % mesh.size == 0:
            chunk, mask = (jax.lax.with_sharding_constraint(x, parallel.batch_sharded(mesh)) for x in (chunk, mask))
        metrics = fns.per_example_metrics(params, chunk, key)
        return {name: jnp.sum(jnp.where(mask, value, 0.0)) for name, value in metrics.items()}

    def evaluate(params, images, key) -> dict[str, float]:
        size = min(batch_size, len(images))
        totals = None
        for start in range(0, len(images), size):
            chunk = images[start:start + size]
            mask = np.arange(size) < len(chunk)
            chunk = np.concatenate([chunk, np.zeros((size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            sums = chunk_sums(params, chunk, mask, jax.random.fold_in(key, start))
            totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
        return {name: float(total) / len(images) for name, total in totals.items()}

    return evaluate


class MetricsLog:
    """Writes metrics to TensorBoard event files and to ``workdir/metrics.jsonl``, process 0
    only (the other processes of a multi-process run write nothing).

    Events are written with the `tensorboard` package's own writer, which needs no
    TensorFlow (clu's writer imports TensorFlow: a 1.5 GB dependency and 10 s per start).

    The TensorBoard writer (and its events file) is created on first use, so a run that
    stops before training (e.g. on a damaged checkpoint) leaves no new file behind.
    """

    def __init__(self, workdir: str):
        self.active = parallel.is_primary()
        self.workdir = workdir
        self._writer = None
        self.path = os.path.join(workdir, "metrics.jsonl")

    @property
    def writer(self):
        if self._writer is None:
            self._writer = EventFileWriter(self.workdir)
        return self._writer

    def write(self, step: int, split: str, metrics: dict[str, float], **extra) -> None:
        if not self.active:
            return
        values = [Summary.Value(tag=f"{split}/{name}", simple_value=float(value)) for name, value in metrics.items()]
        self.writer.add_event(Event(wall_time=time.time(), step=step, summary=Summary(value=values)))
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, "split": split, **extra, **metrics}) + "\n")

    def truncate(self, step: int) -> None:
        """Drops the metrics.jsonl records after ``step`` (and any partial line), rewriting the
        file atomically: a resumed run logs those epochs again, so each epoch appears once."""
        if not self.active or not os.path.exists(self.path):
            return
        with open(self.path) as f:
            lines = f.readlines()
        kept = []
        for line in lines:
            try:
                if line.endswith("\n") and json.loads(line)["step"] <= step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                pass
        if len(kept) < len(lines):
            with open(self.path + ".tmp", "w") as f:
                f.writelines(kept)
            os.replace(self.path + ".tmp", self.path)
            logging.warning("Dropped %d metrics.jsonl line(s) after step %d, the step this run resumes from.",
                            len(lines) - len(kept), step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()  # flushes


def _format_duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s"


def train_network(config, fns, model, splits, workdir: str, log: MetricsLog, mesh: Mesh | None = None):
    """Trains an AE or VAE for ``config.num_epochs`` epochs, resuming from the workdir, data
    parallel over ``mesh`` (default: every device). Returns the parameters, replicated: the
    last epoch's, or with ``config.model_selection='valid'`` the best validation epoch's
    (`vae_jax.selection`; training stops early after ``config.early_stopping_patience``
    epochs without improvement). Each epoch is evaluated on the test split, or on the
    validation split instead when selecting on it."""
    mesh = parallel.data_mesh() if mesh is None else mesh
    keys = run_keys(config.seed)
    train_images = parallel.shard_rows(splits["train"].images, mesh)  # padded to a multiple of the devices
    select = selection.selects_on_validation(config)
    # Each epoch is evaluated on one split: validation when selecting on it (the test split is
    # then evaluated once, on the selected state, by `train_and_evaluate`), else test.
    eval_split = "valid" if select else "test"
    eval_images = splits[eval_split].images
    num_train = len(splits["train"].images)  # the real rows: `epoch_order` never picks a padding row
    steps_per_epoch = num_train // config.batch_size
    total_steps = steps_per_epoch * config.num_epochs
    tx = make_optimizer(config.optimizer, total_steps)
    state = create_train_state(model, train_images.shape[1:], tx, keys["init"])
    state, keys = parallel.replicate((state, keys), mesh)  # the restore target is then replicated too
    logging.info("Model %s with %d parameters; %d steps of %d examples per epoch, %d per device on %d device(s) "
                 "of %d process(es).", type(model).__name__, sum(leaf.size for leaf in jax.tree.leaves(state.params)),
                 steps_per_epoch, config.batch_size, config.batch_size // mesh.size, mesh.size, jax.process_count())

    start, stop = parallel.local_rows(train_images)
    logging.info("Training images split by rows over the devices: rows %d-%d of %d (padded to %d) on this "
                 "process, %d per device.", start, min(stop, num_train), num_train, len(train_images),
                 len(train_images) // mesh.size)
    manager = checkpoints.open_manager(workdir)
    restored = checkpoints.restore_latest(manager, state)
    if restored is not None:
        state = restored
        logging.info("Resuming from the checkpoint at step %d in %s.", int(state.step), manager.directory)
    log.truncate(int(state.step))
    best = selection.BestEpoch.from_log(log.path, int(state.step), config.get("early_stopping_patience", 0))
    best_manager = checkpoints.open_manager(workdir, name=selection.CHECKPOINT_DIR) if select else None
    if select:  # a best step after the resumed one belongs to epochs that will be trained again
        for stale in [s for s in best_manager.all_steps() if s > int(state.step)]:
            best_manager.delete(stale)
    train_step = make_train_step(fns, dynamic_binarization=config.data.binarize == "dynamic",
                                 kl_warmup_steps=config.kl_warmup_steps)
    train_epoch = make_train_epoch(train_step, fused=config.fused_epoch, mesh=mesh)
    evaluate = make_evaluate(fns, config.eval_batch_size, mesh)

    start_epoch = int(state.step) // steps_per_epoch
    skipped_before = int(state.opt_state.total_notfinite)
    run_start = time.perf_counter()
    for epoch in range(start_epoch, config.num_epochs):
        if select and best.should_stop(epoch):
            logging.info("Early stopping after epoch %d: the validation criterion has not improved for %d "
                         "epochs (best %.4f at epoch %d).", epoch, epoch - best.epoch, best.value, best.epoch)
            break
        epoch_start = time.perf_counter()
        order = epoch_order(keys["data"], epoch, num_train, config.batch_size)
        state, train_metrics = train_epoch(state, train_images, order, keys["train"])
        train_metrics = {name: float(value) for name, value in jax.device_get(train_metrics).items()}
        seconds = time.perf_counter() - epoch_start
        step = int(state.step)
        skipped = int(state.opt_state.total_notfinite) - skipped_before
        extra = {"nonfinite_steps": skipped} if skipped else {}
        if skipped:
            message = (f"{skipped} step(s) up to step {step} had a non-finite loss or gradient; their "
                       "updates were skipped (the parameters stay finite).")
            if config.nonfinite == "stop":
                raise NonFiniteError(message + " Stopping before the next checkpoint (config.nonfinite='stop'); "
                                     "lower the learning rate or check the data for NaNs.")
            logging.warning(message)
            skipped_before += skipped
        log.write(step, "train", train_metrics, epoch=epoch + 1,
                  examples_per_second=steps_per_epoch * config.batch_size / seconds, **extra)
        eval_metrics = evaluate(state.params, eval_images, keys["eval"])
        log.write(step, eval_split, eval_metrics, epoch=epoch + 1)
        if select and best.update(epoch + 1, eval_metrics):
            checkpoints.save(best_manager, step, state)
        stopping = select and best.should_stop(epoch + 1)
        if (epoch + 1) % config.checkpoint_every_epochs == 0 or epoch + 1 == config.num_epochs or stopping:
            checkpoints.save(manager, step, state)
        done = epoch + 1 - start_epoch
        eta = (time.perf_counter() - run_start) / done * (config.num_epochs - epoch - 1)
        logging.info("epoch %d/%d  step %d/%d  train loss %.3f  %s loss %.3f  %s  %.0f examples/s  ETA %s",
                     epoch + 1, config.num_epochs, step, total_steps, train_metrics["loss"], eval_split,
                     eval_metrics["loss"], "  ".join(f"{k} {v:.3f}" for k, v in eval_metrics.items() if k != "loss"),
                     steps_per_epoch * config.batch_size / seconds, _format_duration(eta))
    manager.close()
    if not select:
        return state.params
    selected = checkpoints.restore_latest(best_manager, state)
    best_manager.close()
    if selected is None:
        logging.warning("No validation epoch had a finite criterion; using the last epoch's parameters.")
        return state.params
    logging.info("Selected the state of epoch %d (validation criterion %.4f).", best.epoch, best.value)
    return selected.params


def fit_pca(config, splits, workdir: str, mesh: Mesh | None = None) -> pca_lib.PCA:
    """Fits (or restores) PCA with ``config.model.latents`` components on the training split;
    returned replicated on ``mesh`` (default: every device). Each process fits the same PCA."""
    mesh = parallel.data_mesh() if mesh is None else mesh
    images = splits["train"].images
    manager = checkpoints.open_manager(workdir)
    dim = int(np.prod(images.shape[1:]))
    latents = config.model.latents
    template = pca_lib.PCA(jnp.zeros(dim), jnp.zeros((latents, dim)), jnp.zeros(latents), jnp.zeros(()))
    fitted = checkpoints.restore_latest(manager, parallel.replicate(template, mesh))
    if fitted is None:
        start = time.perf_counter()
        fitted = jax.block_until_ready(pca_lib.fit(images, latents))
        logging.info("PCA with %d components fitted in %.2f s; explained variance %.3f.", latents,
                     time.perf_counter() - start, float(fitted.explained_variance_ratio.sum()))
        fitted = parallel.replicate(fitted, mesh)  # saved once by orbax, however many processes
        checkpoints.save(manager, 1, fitted)
    else:
        logging.info("PCA restored from %s.", manager.directory)
    manager.close()
    return fitted


def save_figures(config, fns, params, splits, workdir: str, key: jax.Array) -> None:
    """Reconstructions and samples; for 2 latents also a latent scatter and a manifold grid."""
    test = splits["test"]
    n = config.num_figure_examples
    originals = test.images[:n]
    reconstructions = fns.decode_image(params, fns.encode(params, originals))
    figures.save_reconstructions(os.path.join(workdir, "reconstructions.png"), originals, np.asarray(reconstructions))

    codes = np.asarray(fns.encode(params, test.images[:5000]))
    # An autoregressive decoder's images are its greedy decodings (each pixel its likelier value).
    decoded = "greedy decodings of" if config.model.get("autoregressive_features", 0) > 0 else "decoded"
    if fns.sample_prior is not None:  # a VAE: its prior
        prior = {"standard_normal": "N(0, I)", "mixture": "(mixture of Gaussians)", "vamp": "(VampPrior)"}
        latents = fns.sample_prior(params, key, 64)
        title = f"{decoded} samples from the prior {prior[config.model.get('prior', 'standard_normal')]}"
    else:
        noise = jax.random.normal(key, (64, codes.shape[1]))
        latents, title = codes.mean(0) + codes.std(0) * noise, f"{decoded} samples of N(code mean, code std)"
    figures.save_samples(os.path.join(workdir, "samples.png"), np.asarray(fns.decode_image(params, latents)), title)

    if codes.shape[1] == 2:
        labels = None if test.labels is None else test.labels[:len(codes)]
        figures.save_latent_scatter(os.path.join(workdir, "latent_scatter.png"), codes, labels,
                                    f"test codes of the {config.model.kind.upper()}")
        grid_size = 15
        if fns.standard_normal_prior:  # equal prior mass between grid lines
            axes = [jax.scipy.stats.norm.ppf(jnp.linspace(0.05, 0.95, grid_size))] * 2
        else:  # the range the codes occupy
            axes = [jnp.linspace(*np.percentile(codes[:, d], [1, 99]), grid_size) for d in range(2)]
        grid = jnp.stack(jnp.meshgrid(axes[0], axes[1][::-1]), axis=-1).reshape(-1, 2)
        figures.save_manifold(os.path.join(workdir, "manifold.png"), np.asarray(fns.decode_image(params, grid)),
                              grid_size, "decodings of a grid over the latent plane")


def model_fns(config, image_shape) -> tuple[objectives.ModelFns, Any]:
    """The `ModelFns` and the Flax module (None for PCA) of ``config.model.kind``."""
    if config.model.kind == "pca":
        return objectives.pca_fns(image_shape), None
    model = models.build_model(config.model, config.likelihood, image_shape, initial_variance=config.c)
    make = objectives.vae_fns if config.model.kind == "vae" else objectives.autoencoder_fns
    return make(model, config), model


def train_and_evaluate(config, workdir: str) -> dict[str, float]:
    """Trains (or fits) the model of ``config``, evaluates it on the test split and writes
    metrics, figures, checkpoints and the resolved config to ``workdir``.

    Returns the final test metrics (per example: nats for likelihood terms, squared error
    per image for reconstructions).
    """
    validation.validate_config(config)
    validation.validate_device_split(config, jax.device_count())
    mesh = parallel.data_mesh()  # every device of every process (see the module docstring)
    set_aside = validation.check_workdir(workdir, config)  # changes nothing in the workdir yet
    splits = data.load_dataset(config.data.name, data_dir=config.data.data_dir or None,
                               download=config.data.download, seed=config.seed)
    validation.validate_against_data(config, splits["train"].images.shape, tuple(splits))
    parallel.barrier("vae_jax.workdir_checked")  # every process has looked before process 0 writes
    if parallel.is_primary():
        validation.commit_workdir(workdir, config, set_aside)
    parallel.barrier("vae_jax.workdir_committed")
    image_shape = splits["train"].images.shape[1:]
    fns, model = model_fns(config, image_shape)
    log = MetricsLog(workdir)
    if model is None:
        params = fit_pca(config, splits, workdir, mesh)
    else:
        params = train_network(config, fns, model, splits, workdir, log, mesh)
    keys = run_keys(config.seed)
    evaluate = make_evaluate(fns, config.eval_batch_size, mesh)
    test_metrics = evaluate(params, splits["test"].images, parallel.replicate(keys["eval"], mesh))
    if model is None and not os.path.exists(log.path):  # PCA has no epochs: log its one evaluation
        log.write(0, "test", test_metrics)
    if log.active:  # process 0 alone: on host copies of the parameters
        save_figures(config, fns, parallel.to_host(params), splits, workdir, keys["eval"])
        path = os.path.join(workdir, "final_metrics.json")
        with open(path + ".tmp", "w") as f:
            json.dump(test_metrics, f, indent=2, sort_keys=True)
        os.replace(path + ".tmp", path)
    log.close()
    logging.info("Final test metrics (per example): %s", json.dumps(test_metrics))
    return test_metrics
