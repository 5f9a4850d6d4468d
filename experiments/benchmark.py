"""Speed benchmark: ``python -m experiments.benchmark [--quick] [--parts=train,nll] [--output=FILE]``.

Prints each figure next to its target and writes them as JSON to ``--output`` (default
``runs/benchmark.json``; ``runs/`` is created when missing and is not tracked by git). The
measured figures of the full run are in docs/results.md (Speed). The reference VAE is the
784-400-20 MLP VAE with a Bernoulli decoder, on synthetic binary images (each pixel 1 with
probability 0.13). Parts (``--parts``, all by default):
- matmul peak (GFLOP/s) at the reference model's shapes, on JAX's default backend;
- training throughput of the reference MLP VAE (784-400-20-400-784, batch 128, Adam,
  Bernoulli likelihood) with fused epochs (one `lax.scan` program) and one jitted call per
  step, with achieved GFLOP/s and the fraction of the matmul peak;
- a profile of the step: ms per step of the trainer's step, with the squared-error metric,
  with Adam alone, with SGD, without metrics, and of its matmuls alone and at the peak;
- the best likelihood model (``--likelihood_model``, a config of configs/): its training rate on
  synthetic binary images, its matrix-product FLOPs per example counted from the step's jaxpr
  (`vae_jax.evaluation.flops`) and their share by model part, the fraction of the matmul peak they reach,
  and a profile of its step (trainer, SGD, loss alone, forward alone);
- compile time of the first step;
- importance-sampled NLL with k = 1000 on 10,000 images;
- PCA fit on 60,000 x 784 against scikit-learn's full-SVD PCA, with both reconstruction errors;
- sweep throughput: 8 members (beta x seed) trained by the sweep loop (`vae_jax.training.loop`), in
  turn and in one vmapped program, against 8 separate trainings of the same steps, for the
  reference VAE and a small one, and which of the two the sweep chooses for them;
- streaming (`vae_jax.data.streaming`) on Fashion-MNIST written as 70,000 PNG files (under
  ``runs/benchmark-data/``, written once): decoding them (once, Grain threads, Pillow), and
  the pipeline's examples/s reading an epoch's segments from the decoded uint8 ``.npy``
  memmap, against the training rate of ``configs/vae.py``'s model on the same images
  (target: the pipeline >= 1.5x training, so that it never limits it).
All timings are medians of repeats after a warm-up, measured in the same process; variants
that are compared are timed in interleaved rounds (the machines here are shared and noisy).
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from configs import vae as default_vae
from configs import vae_binarized_mnist
from experiments import cli
from vae_jax import parallel
from vae_jax.data import datasets, image_folder, streaming
from vae_jax.errors import ConfigError
from vae_jax.evaluation import flops, likelihood
from vae_jax.models import interface, pca, registry, tall_matmul
from vae_jax.training import loop, programs, sweep_spec

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Smaller sizes and fewer repeats (a smoke run, not for reporting).")
DEFAULT_OUTPUT = os.path.join("runs", "benchmark.json")
flags.DEFINE_string("output", DEFAULT_OUTPUT, "Where to write the figures as JSON (its directory must exist).")
PARTS = ("matmul", "train", "profile", "likelihood", "nll", "pca", "sweep", "streaming")
flags.DEFINE_list("parts", list(PARTS), f"Which parts to run, comma-separated, among {','.join(PARTS)}.")
flags.DEFINE_string(
    "likelihood_model",
    "bmnist_ladder_vae",
    "The model of the 'likelihood' part: a config module in configs/ (the best likelihood row's, by default).",
)

HIDDEN, LATENTS, PIXELS, BATCH = 400, 20, 784, 128


def flops_per_example() -> float:
    """Matmul FLOPs of one training example of the 784-400-(20+20)-400-784 MLP VAE.

    Forward 2*sum(m*n) over the dense layers; backward twice that (weight and input
    gradients), except that the input of the first layer needs no gradient.
    """
    layers = [(PIXELS, HIDDEN), (HIDDEN, 2 * LATENTS), (LATENTS, HIDDEN), (HIDDEN, PIXELS)]
    forward = sum(2 * m * n for m, n in layers)
    return 3 * forward - 2 * PIXELS * HIDDEN


def timed(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` (which must block) over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(runs: dict, repeats: int) -> dict:
    """``{name: median seconds}`` of blocking calls ``runs[name]()``, each called once to warm
    up, then ``repeats`` rounds that call every one in turn: load changes on a shared machine
    then hit every variant alike, and the ratios between them stay meaningful."""
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_peak(repeats: int) -> float:
    """GFLOP/s of f32 matmuls at the model's shapes (128x784 @ 784x400 and 128x400 @ 400x784)."""
    a = jax.random.normal(jax.random.key(0), (BATCH, PIXELS))
    w1 = jax.random.normal(jax.random.key(1), (PIXELS, HIDDEN)) / 30
    w2 = jax.random.normal(jax.random.key(2), (HIDDEN, PIXELS)) / 30
    iterations = 200

    @jax.jit
    def chain(a):
        return jax.lax.fori_loop(0, iterations, lambda _, x: jnp.tanh((x @ w1) @ w2), a)

    seconds = timed(lambda: chain(a).block_until_ready(), repeats)
    return 2 * 2 * BATCH * PIXELS * HIDDEN * iterations / seconds / 1e9


def reference_config():
    config = vae_binarized_mnist.get_config()
    config.model.encoder_hidden = config.model.decoder_hidden = (HIDDEN,)
    config.model.latents = LATENTS
    config.batch_size = BATCH
    return config


def reference_epoch(num_examples: int):
    """``(config, fns, model, keys, images, order)``: the reference VAE and one epoch of
    ``num_examples`` synthetic binary images in the trainer's batch order."""
    config = reference_config()
    fns = registry.build(config, (28, 28, 1))
    model = fns.module
    keys = programs.run_keys(0)
    images = (jax.random.uniform(keys["data"], (num_examples, 28, 28, 1)) < 0.13).astype(jnp.float32)
    return config, fns, model, keys, images, programs.epoch_order(keys["data"], 0, num_examples, BATCH)


def train_throughput(num_examples: int, repeats: int) -> dict:
    """Examples/s of fused and per-step epochs of the reference VAE, and compile time."""
    config, fns, model, keys, images, order = reference_epoch(num_examples)
    steps = len(order)
    state = programs.create_train_state(fns, config, steps, keys["init"], 0)
    step = programs.make_train_step(fns, dynamic_binarization=False, hyper=interface.hyper(config), kl_warmup_steps=0)

    def step_at(state, images, indices):  # images as an argument, as in the trainer (not a constant)
        return step(state, images[indices], jax.random.fold_in(keys["train"], state.step))

    start = time.perf_counter()
    jax.jit(step_at).lower(state, images, order[0]).compile()
    compile_seconds = time.perf_counter() - start

    results = {"compile_first_step_s": compile_seconds, "flops_per_example": flops_per_example()}
    runs = {}
    for name, fused in (("fused_epoch", True), ("step_per_call", False)):
        epoch = programs.make_train_epoch(step, fused=fused)
        holder = {"state": jax.tree.map(jnp.copy, state)}  # epochs donate (delete) their input state

        def run(epoch=epoch, holder=holder):
            holder["state"], m = epoch(holder["state"], images, order, keys["train"])
            jax.block_until_ready(m)

        runs[name] = run
    for name, seconds in interleaved_medians(runs, repeats).items():
        results[name] = steps * BATCH / seconds
    return results


def linear_chain_epoch(steps: int):
    """A blocking call that runs ``steps`` SGD steps of the reference VAE's matmuls alone: the
    same layer shapes (784-400-40, 20-400-784) and batch, no activations, no likelihood, no
    sampling. Its time per step is what the step's matrix products cost on this backend,
    transposed weight-gradient products included."""
    shapes = [(PIXELS, HIDDEN), (HIDDEN, 2 * LATENTS), (LATENTS, HIDDEN), (HIDDEN, PIXELS)]
    params = [jax.random.normal(jax.random.key(i), shape) / 30 for i, shape in enumerate(shapes)]
    batches = jax.random.uniform(jax.random.key(9), (steps, BATCH, PIXELS))

    def loss(params, x):
        w1, w2, w3, w4 = params
        code = (x @ w1) @ w2
        return jnp.sum((code[:, :LATENTS] @ w3) @ w4)

    @jax.jit
    def epoch(params, batches):
        sgd = lambda p, x: (jax.tree.map(lambda w, g: w - 1e-9 * g, p, jax.grad(loss)(p, x)), None)
        return jax.lax.scan(sgd, params, batches)[0]

    return lambda: jax.block_until_ready(epoch(params, batches))


def fused_epoch_runner(fns, config, tx, step, keys, images, order):
    """A blocking call that trains one fused epoch of ``step`` over ``images`` in ``order``,
    from a fresh state (optimiser ``tx``) that each call carries on."""
    state = programs.create_train_state(fns, config, len(order), keys["init"], 0, tx=tx)
    holder = {"state": state}
    epoch = programs.make_train_epoch(step, fused=True)

    def run():
        holder["state"], m = epoch(holder["state"], images, order, keys["train"])
        jax.block_until_ready(m)

    return run


def step_profile(num_examples: int, repeats: int, matmul_gflops: float | None) -> dict:
    """Where a training step's time goes: fused epochs of the reference VAE with the
    trainer's optimiser and with less of it, in the same process (milliseconds per step).

    - ``trainer``: Adam inside ``optax.apply_if_finite`` (what `programs.make_optimizer` builds);
    - ``with_diagnostics``: the same, also computing the metrics the step leaves out
      (``fns.diagnostics``: the VAE's squared error);
    - ``adam``: Adam alone, no guard; ``sgd``: plain SGD (forward, backward, one pass over
      the parameters); ``sgd_loss_only``: the same without the logged metrics (the step
      computes the loss alone);
    - ``matmuls_sgd``: the step's matrix products alone (`linear_chain_epoch`).
    ``matmul_at_peak``: the step's matmul FLOPs at the measured matmul peak, a lower bound.
    """
    import optax

    _, fns, model, keys, images, order = reference_epoch(num_examples)
    steps = len(order)
    full_metrics = fns.per_example_metrics
    loss_only = fns._replace(
        per_example_metrics=lambda *args, **kwargs: {"loss": full_metrics(*args, **kwargs)["loss"]}
    )
    config = reference_config()
    variants = {  # name: (optimiser, model functions)
        "trainer": (programs.make_optimizer(config.optimizer, steps), fns),
        "with_diagnostics": (programs.make_optimizer(config.optimizer, steps), fns._replace(diagnostics=())),
        "adam": (optax.adam(1e-3), fns),
        "sgd": (optax.sgd(1e-3), fns),
        "sgd_loss_only": (optax.sgd(1e-3), loss_only),
    }

    def runner(tx, variant_fns):
        step = programs.make_train_step(
            variant_fns, dynamic_binarization=False, hyper=interface.hyper(config), kl_warmup_steps=0
        )
        return fused_epoch_runner(fns, config, tx, step, keys, images, order)

    runs = {name: runner(*variant) for name, variant in variants.items()}
    results = {
        f"profile_{name}_ms_per_step": 1e3 * seconds / steps
        for name, seconds in interleaved_medians(runs, repeats).items()
    }
    results["profile_matmuls_sgd_ms_per_step"] = 1e3 * timed(linear_chain_epoch(steps), repeats) / steps
    if matmul_gflops:
        results["profile_matmul_at_peak_ms_per_step"] = 1e3 * BATCH * flops_per_example() / (matmul_gflops * 1e9)
    return results


def likelihood_model_speed(name: str, num_examples: int, repeats: int, matmul_gflops: float | None) -> dict:
    """Training rate and step profile of a likelihood model, ``configs/<name>.py``, on synthetic
    binary 28x28 images, with the trainer's step (its optimiser, its hyperparameters, mid KL
    warm-up), in fused epochs; variants timed in interleaved rounds (ms per step):

    - ``trainer``: the run's step; ``sgd``: plain SGD instead of the run's optimiser and its
      non-finite guard; ``sgd_loss_only``: the same computing the loss alone (no logged
      metrics); ``forward``: the loss alone, no gradient (what the backward pass adds is
      ``sgd_loss_only - forward``); ``trainer_unchunked``: the run's step with the per-pixel
      layers' weight and bias gradients each one contraction over all pixels, as
      ``flax.linen.Dense`` computes them (what `vae_jax.models.tall_matmul`'s chunks save).
    - matrix-product FLOPs per example (`vae_jax.evaluation.flops`, counted from the step's jaxpr, backward
      included) and their share by model part; the achieved GFLOP/s and the fraction of the
      matmul peak they reach; the same FLOPs at the peak, in ms per step (a lower bound).
    """
    import optax

    config = importlib.import_module(f"configs.{name}").get_config()
    num_examples = max(num_examples, 2 * config.batch_size)  # at least two steps
    keys = programs.run_keys(0)
    images = (jax.random.uniform(keys["data"], (num_examples, 28, 28, 1)) < 0.13).astype(jnp.float32)
    fns = registry.build(config, images.shape[1:])
    order = programs.epoch_order(keys["data"], 0, num_examples, config.batch_size)
    steps = len(order)
    hyper = interface.hyper(config)
    full_metrics = fns.per_example_metrics
    loss_only = fns._replace(
        per_example_metrics=lambda *args, **kwargs: {"loss": full_metrics(*args, **kwargs)["loss"]}
    )

    def step_of(variant_fns):  # KL warm-up in progress, as in a run's first epochs
        return programs.make_train_step(
            variant_fns, dynamic_binarization=False, hyper=hyper, kl_warmup_steps=10 * steps
        )

    def forward(state, batch, rng):
        loss = jnp.mean(full_metrics(state.params, batch, rng, hyper._replace(kl_weight=0.5))["loss"])
        return state, {"loss": loss}

    trainer_tx = programs.make_optimizer(config.optimizer, steps)
    variants = {
        "trainer": (trainer_tx, step_of(fns)),
        "sgd": (optax.sgd(1e-3), step_of(fns)),
        "sgd_loss_only": (optax.sgd(1e-3), step_of(loss_only)),
        "forward": (optax.sgd(1e-3), forward),
    }
    runs = {
        variant: fused_epoch_runner(fns, config, tx, step, keys, images, order)
        for variant, (tx, step) in variants.items()
    }
    # Its own step function (a new closure: nothing traced for the others is reused), compiled
    # now, with one contraction per gradient of a per-pixel layer.
    runs["trainer_unchunked"] = fused_epoch_runner(fns, config, trainer_tx, step_of(fns), keys, images, order)
    with tall_matmul.unchunked():
        runs["trainer_unchunked"]()
    seconds = interleaved_medians(runs, repeats)

    state = programs.create_train_state(fns, config, steps, keys["init"], 0, tx=trainer_tx)
    counted = flops.matmul_flops(variants["trainer"][1], state, images[: config.batch_size], keys["train"])
    per_example = counted["total"] / config.batch_size
    rate = steps * config.batch_size / seconds["trainer"]
    results = {
        "likelihood_model": f"configs/{name}.py",
        "likelihood_parameters": int(sum(np.size(leaf) for leaf in jax.tree.leaves(state.params))),
        "likelihood_examples_per_s": rate,
        "likelihood_mflops_per_example": per_example / 1e6,
        "likelihood_gflops": rate * per_example / 1e9,
        "likelihood_flops_share": {scope: n / counted["total"] for scope, n in counted["by_module"].items()},
        **{f"likelihood_{variant}_ms_per_step": 1e3 * t / steps for variant, t in seconds.items()},
    }
    if matmul_gflops:
        results["likelihood_fraction_of_matmul_peak"] = results["likelihood_gflops"] / matmul_gflops
        results["likelihood_matmul_at_peak_ms_per_step"] = 1e3 * counted["total"] / (matmul_gflops * 1e9)
    return results


def nll_throughput(num_images: int, num_samples: int) -> dict:
    """Seconds for the importance-sampled NLL with ``num_samples`` samples of ``num_images`` images."""
    config = reference_config()
    fns = registry.build(config, (28, 28, 1))
    keys = programs.run_keys(0)
    params = programs.create_train_state(fns, config, 1, keys["init"], 0).params
    images = (np.random.default_rng(0).uniform(size=(num_images, 28, 28, 1)) < 0.13).astype(np.float32)
    run = lambda: likelihood.model_log_likelihood(fns, params, images, keys["eval"], num_samples=num_samples)
    run_small = lambda: likelihood.model_log_likelihood(
        fns, params, images[:200], keys["eval"], num_samples=num_samples
    )
    run_small()  # compile
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    return {"nll_seconds": seconds, "nll_images": num_images, "nll_samples": num_samples, "nll": result["nll"]}


def pca_speed(num_examples: int, repeats: int) -> dict:
    """Our eigh PCA against scikit-learn's full-SVD PCA on the same data (20 components)."""
    from sklearn.decomposition import PCA as SklearnPCA

    rng = np.random.default_rng(0)
    basis = rng.normal(size=(50, PIXELS)).astype(np.float32)
    data = np.clip(rng.normal(size=(num_examples, 50)).astype(np.float32) @ basis / 10 + 0.3, 0, 1)
    ours_seconds = timed(lambda: jax.block_until_ready(pca.fit(data, 20)), repeats)
    fitted = pca.fit(data, 20)
    ours_error = float(jnp.mean(pca.reconstruction_error(fitted, data)))
    sk = SklearnPCA(20, svd_solver="full")
    sk_seconds = timed(lambda: sk.fit(data), repeats)
    sk_error = float(np.mean(np.sum((data - sk.inverse_transform(sk.transform(data))) ** 2, axis=1)))
    return {
        "pca_seconds": ours_seconds,
        "sklearn_pca_seconds": sk_seconds,
        "pca_error": ours_error,
        "sklearn_pca_error": sk_error,
    }


def sweep_speedup(
    prefix: str, num_examples: int, repeats: int, *, side: int, hidden: int, latents: int, batch: int, members: int = 8
) -> dict:
    """Member-examples/s of ``members`` VAEs (beta x seed) trained for one epoch of
    ``num_examples`` synthetic binary images each: as separate runs (each member its own
    fused-epoch program, as a run builds it) against the sweep loop's two ways of running
    members together (`programs.MembersSegment`: ``in_turn`` and ``vmap``), timed in interleaved
    rounds after a warm-up; ``auto`` is the way `loop.choose_execution` picks for them, and
    ``_speedup`` its ratio. ``_first_s``: the first epoch of all members, compilation included."""
    config = reference_config()
    config.model.encoder_hidden = config.model.decoder_hidden = (hidden,)
    config.model.latents, config.batch_size = latents, batch
    shape = (side, side, 1)
    images = (jax.random.uniform(jax.random.key(0), (num_examples, *shape)) < 0.13).astype(jnp.float32)
    steps = num_examples // batch
    overrides = sweep_spec.product(
        sweep_spec.values("beta", [0.5, 1.0, 2.0, 4.0]), sweep_spec.values("seed", list(range((members + 3) // 4)))
    )[:members]
    configs = [sweep_spec.apply_overrides(config, o) for o in overrides]
    keys = [programs.run_keys(member.seed) for member in configs]
    orders = [programs.epoch_order(k["data"], 0, num_examples, batch) for k in keys]

    separate = []
    for member, key, order in zip(configs, keys, orders):
        fns = registry.build(member, shape)
        step = programs.make_train_step(
            fns, dynamic_binarization=False, hyper=interface.hyper(member), kl_warmup_steps=0
        )
        state = programs.create_train_state(fns, member, steps, key["init"], 0)
        separate.append(
            {"state": state, "epoch": programs.make_train_epoch(step, fused=True), "key": key["train"], "order": order}
        )

    def run_separate():
        for run in separate:
            run["state"], metrics = run["epoch"](run["state"], images, run["order"], run["key"])
            jax.block_until_ready(metrics)

    fns = registry.build(config, shape)
    runs = {"separate": run_separate}
    for execution in ("in_turn", "vmap"):
        epoch = programs.MembersSegment(
            fns, config, [(interface.hyper(m), 0) for m in configs], [k["train"] for k in keys], execution, None
        )
        holder = {"states": programs.initial_states(configs, shape, steps, steps)}

        def run_members(epoch=epoch, holder=holder):  # a whole epoch as one segment
            sums = epoch.zeros(holder["states"], images)
            holder["states"], sums = epoch(holder["states"], sums, [True] * members, images, orders)
            jax.block_until_ready(sums)

        runs[execution] = run_members

    first = {}
    for name, run in runs.items():
        start = time.perf_counter()
        run()
        first[name] = time.perf_counter() - start
    medians = interleaved_medians(runs, repeats)
    num_parameters = sum(leaf.size for leaf in jax.tree.leaves(separate[0]["state"].params))
    auto = loop.choose_execution("auto", members, num_parameters)
    examples = members * steps * batch
    return {
        f"{prefix}_model": f"{side * side}-{hidden}-{latents}, batch {batch}, {members} members, {steps} steps each",
        f"{prefix}_auto": auto,
        f"{prefix}_separate_examples_per_s": examples / medians["separate"],
        f"{prefix}_in_turn_examples_per_s": examples / medians["in_turn"],
        f"{prefix}_vmap_examples_per_s": examples / medians["vmap"],
        f"{prefix}_in_turn_speedup": medians["separate"] / medians["in_turn"],
        f"{prefix}_vmap_speedup": medians["separate"] / medians["vmap"],
        f"{prefix}_speedup": medians["separate"] / medians[auto],
        f"{prefix}_first_epoch_separate_s": first["separate"],
        f"{prefix}_first_epoch_{auto}_s": first[auto],
        f"{prefix}_speedup_with_compile": first["separate"] / first[auto],
    }


def fashion_mnist_pngs(directory: str) -> tuple[list[str], np.ndarray]:
    """The 70,000 Fashion-MNIST images (train, then test) as PNG files in ``directory``
    (written the first time) and the same images as uint8 ``[N, 28, 28, 1]``."""
    from PIL import Image  # noqa: PLC0415

    splits = datasets.load_dataset("fashion_mnist")
    images = np.concatenate([splits["train"].images, splits["test"].images])
    images = np.round(images * 255).astype(np.uint8)
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, f"{i:05d}.png") for i in range(len(images))]
    if not os.path.exists(paths[-1]):
        for path, image in zip(paths, images):
            Image.fromarray(image[..., 0]).save(path)
    return paths, images


class PngFiles:
    """A per-example source: ``source[i]`` decodes the i-th PNG (uint8 ``[H, W, 1]``)."""

    def __init__(self, paths: list[str]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return image_folder.read_image(self.paths[i])


def streaming_speed(repeats: int, quick: bool) -> dict:
    """Examples/s of decoding the PNG files, of the streaming pipeline reading an epoch's
    segments from their uint8 memmap, and of training the default VAE on the same images."""
    root = os.path.join(os.path.dirname(DEFAULT_OUTPUT), "benchmark-data")
    paths, images = fashion_mnist_pngs(os.path.join(root, "fashion_mnist_png"))
    if quick:
        paths, images = paths[:7000], images[:7000]
    files = streaming.StreamedImages(PngFiles(paths), num_threads=4)
    start = time.perf_counter()
    from_png = np.round(files.rows(np.arange(len(paths))) * 255).astype(np.uint8)
    decode_seconds = time.perf_counter() - start
    if not np.array_equal(from_png, images):
        raise RuntimeError("The PNG files do not decode to the images written.")
    cache = os.path.join(root, "fashion_mnist_uint8.npy")
    np.save(cache, from_png)
    memmap = np.load(cache, mmap_mode="r", allow_pickle=False)

    config = default_vae.get_config()
    mesh = parallel.data_mesh()
    keys = programs.run_keys(0)
    order = programs.epoch_order(keys["data"], 0, len(images), config.batch_size)
    host_order = np.asarray(order)
    reader = streaming.SegmentReader(streaming.StreamedImages(memmap), mesh)
    length = min(len(host_order), streaming.max_segment_steps(1, config.batch_size, 28 * 28 * 4))

    def read_epoch():
        for position in range(0, len(host_order), length):
            segment, _ = reader.read([host_order[position : position + length]])
            jax.block_until_ready(segment)

    fns = registry.build(config, (28, 28, 1))

    step = programs.make_train_step(fns, dynamic_binarization=False, hyper=interface.hyper(config), kl_warmup_steps=0)
    epoch = programs.make_train_epoch(step, fused=True)
    resident = parallel.shard_rows(images.astype(np.float32) / 255, mesh)
    holder = {"state": programs.create_train_state(fns, config, len(order), keys["init"], 0)}

    def train_epoch():
        holder["state"], metrics_ = epoch(holder["state"], resident, order, keys["train"])
        jax.block_until_ready(metrics_)

    read_epoch(), train_epoch()  # warm-up (compilation)
    medians = interleaved_medians({"read": read_epoch, "train": train_epoch}, repeats)
    reader.close()
    examples = len(host_order) * config.batch_size
    return {
        "png_files": len(paths),
        "png_decode_examples_per_s": len(paths) / decode_seconds,
        "streaming_examples_per_s": examples / medians["read"],
        "streaming_training_examples_per_s": examples / medians["train"],
        "streaming_over_training": medians["train"] / medians["read"],
    }


def main(argv):
    del argv
    if FLAGS.output == DEFAULT_OUTPUT:
        os.makedirs(os.path.dirname(DEFAULT_OUTPUT), exist_ok=True)
    cli.check_flags(  # first: the figures are written after minutes of measuring
        parts=cli.each(cli.one_of(PARTS), f"parts among {','.join(PARTS)}, comma-separated", allow_empty=True),
        output=cli.file_in_existing_directory(),
    )
    if "likelihood" in FLAGS.parts and importlib.util.find_spec(f"configs.{FLAGS.likelihood_model}") is None:
        raise ConfigError(
            f"--likelihood_model={FLAGS.likelihood_model}: there is no configs/{FLAGS.likelihood_model}.py; "
            "name a config module of configs/, e.g. bmnist_ladder_vae."
        )
    quick = FLAGS.quick
    repeats = 1 if quick else 5
    figures: dict = {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()]}
    if "matmul" in FLAGS.parts:
        figures["matmul_gflops"] = matmul_peak(repeats)
    if "train" in FLAGS.parts:
        figures.update(train_throughput(6400 if quick else 60_000, repeats))
        achieved = figures["fused_epoch"] * figures["flops_per_example"] / 1e9
        figures["fused_epoch_gflops"] = achieved
        if "matmul_gflops" in figures:
            figures["fused_epoch_fraction_of_matmul_peak"] = achieved / figures["matmul_gflops"]
    if "profile" in FLAGS.parts:
        figures.update(step_profile(6400 if quick else 25_600, repeats, figures.get("matmul_gflops")))
    if "likelihood" in FLAGS.parts:
        figures.update(
            likelihood_model_speed(FLAGS.likelihood_model, 0 if quick else 6400, repeats, figures.get("matmul_gflops"))
        )
    if "nll" in FLAGS.parts:
        figures.update(nll_throughput(500 if quick else 10_000, 100 if quick else 1000))
    if "pca" in FLAGS.parts:
        figures.update(pca_speed(6000 if quick else 60_000, repeats))
    if "sweep" in FLAGS.parts:
        figures.update(
            sweep_speedup(
                "sweep", 1280 if quick else 12_800, repeats, side=28, hidden=HIDDEN, latents=LATENTS, batch=BATCH
            )
        )
        figures.update(
            sweep_speedup("sweep_small", 1280 if quick else 6400, repeats, side=8, hidden=32, latents=2, batch=32)
        )
    if "streaming" in FLAGS.parts:
        figures.update(streaming_speed(repeats, quick))

    targets = {
        "fused_epoch": ("examples/s", ">= 36000 (2-core CPU)"),
        "step_per_call": ("examples/s", "(for comparison)"),
        "fused_epoch_gflops": ("GFLOP/s", "(achieved)"),
        "matmul_gflops": ("GFLOP/s", "(peak at the model's shapes)"),
        "fused_epoch_fraction_of_matmul_peak": ("", ">= 0.75"),
        "profile_trainer_ms_per_step": ("ms/step", "(the trainer: Adam in optax.apply_if_finite)"),
        "profile_with_diagnostics_ms_per_step": ("ms/step", "(the same, also computing the squared error)"),
        "profile_adam_ms_per_step": ("ms/step", "(Adam, no guard)"),
        "profile_sgd_ms_per_step": ("ms/step", "(SGD, no guard)"),
        "profile_sgd_loss_only_ms_per_step": ("ms/step", "(SGD, no metrics besides the loss)"),
        "profile_matmuls_sgd_ms_per_step": ("ms/step", "(the step's matmuls alone, measured)"),
        "profile_matmul_at_peak_ms_per_step": ("ms/step", "(the step's matmuls at the matmul peak)"),
        "likelihood_examples_per_s": ("examples/s", "(the best likelihood model, --likelihood_model)"),
        "likelihood_mflops_per_example": ("MFLOP", "(its step's matrix products, backward included)"),
        "likelihood_gflops": ("GFLOP/s", "(achieved)"),
        "likelihood_fraction_of_matmul_peak": ("", "(the reference MLP: about 0.7)"),
        "likelihood_trainer_ms_per_step": ("ms/step", "(its trainer step)"),
        "likelihood_trainer_unchunked_ms_per_step": ("ms/step", "(the same, per-pixel gradients unchunked)"),
        "likelihood_sgd_ms_per_step": ("ms/step", "(SGD instead of its optimiser, no guard)"),
        "likelihood_sgd_loss_only_ms_per_step": ("ms/step", "(SGD, the loss alone)"),
        "likelihood_forward_ms_per_step": ("ms/step", "(the loss alone, no gradient)"),
        "likelihood_matmul_at_peak_ms_per_step": ("ms/step", "(its matrix products at the matmul peak)"),
        "compile_first_step_s": ("s", "< 2"),
        "nll_seconds": ("s", "< 90 for k=1000 on 10,000 images"),
        "pca_seconds": ("s", "<= sklearn_pca_seconds"),
        "sklearn_pca_seconds": ("s", "(reference)"),
        "pca_error": ("sq. error/image", "== sklearn_pca_error"),
        "sklearn_pca_error": ("sq. error/image", "(reference)"),
        "png_decode_examples_per_s": ("examples/s", "(once: the PNG files to a uint8 .npy, 4 Grain threads)"),
        "streaming_examples_per_s": ("examples/s", "(the pipeline: an epoch's segments from the .npy memmap)"),
        "streaming_training_examples_per_s": ("examples/s", "(training configs/vae.py's model, same images)"),
        "streaming_over_training": ("x", ">= 1.5 (the pipeline never limits training)"),
        **{
            f"{prefix}_{name}": spec
            for prefix, size in (("sweep", "784-400-20"), ("sweep_small", "64-32-2"))
            for name, spec in (
                ("speedup", ("x", f">= 1.0 (8 members, the auto choice vs 8 separate runs, {size})")),
                ("in_turn_speedup", ("x", "(8 in turn vs 8 separate)")),
                ("vmap_speedup", ("x", "(8 vmapped vs 8 separate)")),
                ("separate_examples_per_s", ("examples/s", "(all members)")),
                ("in_turn_examples_per_s", ("examples/s", "(all members)")),
                ("vmap_examples_per_s", ("examples/s", "(all members)")),
                ("speedup_with_compile", ("x", "(first epoch, compilation included)")),
            )
        },
    }
    print(f"backend: {figures['backend']}  devices: {len(figures['devices'])}" + ("  (QUICK run)" if quick else ""))
    print(f"{'figure':40s} {'measured':>14s}  {'unit':16s} target")
    for name, (unit, target) in targets.items():
        if name in figures:
            print(f"{name:40s} {figures[name]:14.3f}  {unit:16s} {target}")
    if "likelihood_model" in figures:
        print(
            f"{'likelihood_model':40s} {figures['likelihood_model']:>14s}  "
            f"({figures['likelihood_parameters']:,} parameters); its matmul FLOPs by part:"
        )
        for scope, share in figures["likelihood_flops_share"].items():
            print(f"  {scope:58s} {share:6.1%}")
    for prefix in ("sweep", "sweep_small"):
        if f"{prefix}_auto" in figures:
            print(f"{prefix + '_auto':40s} {figures[prefix + '_auto']:>14s}  (the way the sweep runs these members)")
    with open(FLAGS.output, "w") as f:
        json.dump(figures, f, indent=2)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    cli.run(main)
