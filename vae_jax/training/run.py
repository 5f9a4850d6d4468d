"""A single run: `train_and_evaluate(config, workdir)`, and `restore` of a run's parameters.

A run is checked before any work (config, data shapes, workdir: `vae_jax.training.validation`,
`vae_jax.training.workdir`), then trained by `vae_jax.training.loop` as its only member (PCA is fitted
instead), data parallel over every device of every process (`vae_jax.parallel`): one
1-D mesh, axis ``'data'``; the training images are split by rows over the devices, each
batch over the devices, and parameters, optimiser state and keys are replicated. Only
process 0 writes config.json, metrics, figures and final_metrics.json; every process takes
part in the checkpoint saves. ``batch_size`` must divide by the number of devices.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
from absl import logging
from jax.sharding import Mesh

from vae_jax import config as config_lib
from vae_jax import parallel
from vae_jax.data import datasets
from vae_jax.errors import ConfigError
from vae_jax.models import registry
from vae_jax.training import checkpoints, loop, programs, selection, validation
from vae_jax.training import workdir as workdir_lib

# Seed of the fixed binarisation of the evaluation splits of a run with ``data.binarize='dynamic'``:
# the same for every run, so runs of any seed are evaluated on the same binary images.
EVALUATION_BINARIZATION_SEED = 0


def load_splits(config) -> dict:
    """The splits of ``config.data`` (any source, cropped, resized and converted as it says, with
    the test and validation images it holds out: `vae_jax.data.datasets`): grey levels (or colours), or
    with ``data.binarize='static'`` one seeded Bernoulli draw of every split. With ``'dynamic'``
    the training images stay grey levels (the training step draws each batch) and the evaluation
    splits are one fixed draw (`EVALUATION_BINARIZATION_SEED`, the standard protocol), so that
    validation, test and the importance-sampled likelihood are Bernoulli likelihoods of binary
    images. The data are read once."""

    def load(binarize: str, seed: int) -> dict:
        return datasets.load_dataset(
            config.data.name, seed=seed, binarize=binarize, **datasets.load_kwargs(config.data)
        )

    if config.data.binarize == "static":
        return load("static", config.seed)
    splits = load("none", config.seed)
    if config.data.binarize == "dynamic" and config.data.name != "binarized_mnist":
        evaluation = {name: split for name, split in splits.items() if name != "train"}
        fixed = datasets.binarize_static(evaluation, EVALUATION_BINARIZATION_SEED)
        splits = {name: split if name == "train" else fixed[name] for name, split in splits.items()}
    return splits


def fit_or_restore(fns, splits, workdir: str, mesh: Mesh):
    """Parameters fitted in closed form (``fns.fit``: PCA) on the training split, or restored from
    the run's checkpoint when it was fitted before; returned replicated on ``mesh``. Each process
    fits the same parameters."""
    manager = checkpoints.open_manager(workdir)
    template = fns.init(None)
    fitted = checkpoints.restore_latest(manager, parallel.replicate(template, mesh))
    if fitted is None:
        fitted = parallel.replicate(fns.fit(splits["train"].images), mesh)  # saved once by orbax
        checkpoints.save(manager, 1, fitted)
    else:
        logging.info("%s restored from %s.", fns.label, manager.directory)
    manager.close()
    return fitted


def train_and_evaluate(config, workdir: str, mesh: Mesh | None = None) -> dict[str, float]:
    """Trains (or fits) the model of ``config``, evaluates it on the test split and writes
    metrics, figures, checkpoints and the resolved config to ``workdir``; a re-run resumes.

    Returns the final test metrics (per example: nats for likelihood terms, squared error
    per image for reconstructions). Data parallel over ``mesh`` (default `parallel.data_mesh`:
    every device of the default backend).
    """
    config = config_lib.resolve(config)
    validation.validate_config(config)
    validation.validate_device_split(config, jax.device_count() if mesh is None else mesh.size)
    mesh = parallel.data_mesh() if mesh is None else mesh
    with workdir_lib.locked(workdir):
        return _train_and_evaluate(config, workdir, mesh)


def _train_and_evaluate(config, workdir: str, mesh: Mesh) -> dict[str, float]:
    set_aside = workdir_lib.check(workdir, config)  # changes nothing in the workdir yet
    splits = load_splits(config)
    validation.validate_against_data(config, splits["train"].images.shape, tuple(splits))
    parallel.barrier("vae_jax.workdir_checked")  # every process has looked before process 0 writes
    if parallel.is_primary():
        workdir_lib.commit(workdir, config, set_aside)
    parallel.barrier("vae_jax.workdir_committed")
    if not registry.is_fitted(config.model):
        (result,) = loop.train_members([loop.Member("run", config, workdir)], splits, mesh=mesh)
        test_metrics = result.metrics
    else:
        fns = registry.build(config, splits["train"].images.shape[1:])
        params = fit_or_restore(fns, splits, workdir, mesh)
        log = workdir_lib.MetricsLog(workdir)
        evaluate = programs.make_evaluate(fns, config.eval_batch_size, mesh)
        eval_key = programs.run_keys(config.seed)["eval"]
        test_metrics = loop.finish(config, fns, evaluate, params, splits, workdir, eval_key, mesh, log)
        if log.active and not os.path.exists(log.path):  # a fitted model has no epochs: log its one evaluation
            log.write(0, "test", test_metrics)
        log.close()
    logging.info("Final test metrics (per example): %s", test_metrics)
    return test_metrics


# An exported run (`experiments.export`): its parameters alone, in ``<directory>/params``.
PARAMS_DIR = workdir_lib.EXPORTED_PARAMS


class Restored(NamedTuple):
    """What `restore_run` found: the run's resolved config, its `interface.ModelFns` (the Flax
    module is ``fns.module``, None for PCA), the parameters it is evaluated with (the moving
    average with ``config.ema_decay`` > 0, `programs.evaluated_params`; the fitted `pca.PCA` for
    PCA), the directory they came from (``checkpoints``, ``best_checkpoints`` or ``params``),
    the training step of that state (None for a fitted model) and the raw parameters of a
    training checkpoint (the optimiser's, before averaging; None for an export, which holds the
    evaluated ones alone)."""

    config: Any
    fns: Any
    params: Any
    source: str
    step: int | None
    raw_params: Any = None

    @property
    def model(self):
        """The Flax module (``fns.module``; None for PCA)."""
        return self.fns.module


def is_export(workdir: str) -> bool:
    """Whether ``workdir`` holds an exported run (`experiments.export`: ``params/``, no
    training checkpoints)."""
    return os.path.isdir(os.path.join(workdir, PARAMS_DIR))


def params_template(config, fns=None):
    """The abstract parameters (`jax.ShapeDtypeStruct` leaves) of a fresh model of ``config``:
    nothing is initialised (`jax.eval_shape`)."""
    fns = registry.build(config, datasets.config_image_shape(config.data)) if fns is None else fns
    return jax.eval_shape(fns.init, programs.run_keys(config.seed)["init"])


def _state_template(config, fns):
    """The abstract training state of a run of ``config`` (the restore target of its checkpoints);
    the fitted parameters of a fitted model."""
    if fns.fit is not None:
        return params_template(config, fns)
    return jax.eval_shape(
        lambda key: programs.create_train_state(fns, config, 1, key, 0), programs.run_keys(config.seed)["init"]
    )


def restore_run(workdir: str) -> Restored:
    """The `Restored` run in ``workdir``, without training (`restore`)."""
    config = config_lib.read_run_config(workdir)
    fns = registry.build(config, datasets.config_image_shape(config.data))
    if is_export(workdir):
        name = PARAMS_DIR
        for other in ("checkpoints", selection.CHECKPOINT_DIR):
            if os.path.isdir(os.path.join(workdir, other)):
                raise ConfigError(
                    f"{workdir} holds both exported parameters ({PARAMS_DIR}/) and a training run's {other}/: "
                    "an export is read-only; export again into an empty directory, or move one of them away."
                )
        template = params_template(config, fns)
    else:
        name = selection.CHECKPOINT_DIR if selection.selects_on_validation(config) else "checkpoints"
        template = _state_template(config, fns)
    manager = checkpoints.open_manager(workdir, name=name)
    try:
        restored = checkpoints.restore_latest(manager, template, require_digest=name == PARAMS_DIR)
        step = manager.latest_step()
    finally:
        manager.close()
    if restored is None:
        if name == PARAMS_DIR:
            raise ConfigError(f"{workdir}/{name} holds no parameters: export the run again (experiments.export).")
        raise ConfigError(
            f"{workdir}/{name} holds no checkpoint: finish the run first with "
            f"python -m experiments.train --config=<its config> --workdir={workdir}"
        )
    if name == PARAMS_DIR:  # saved at the training step of the exported state (`experiments.export`)
        return Restored(config, fns, restored, name, None if fns.fit is not None else step)
    if fns.fit is not None:
        return Restored(config, fns, restored, name, None)
    return Restored(config, fns, programs.evaluated_params(restored), name, int(restored.step), restored.params)


def restore(workdir: str):
    """``(config, fns, model, params)`` of the run in ``workdir``, without training: its
    resolved ``config.json``, the `interface.ModelFns`, the Flax module (None for PCA) and
    the parameters of its latest checkpoint (the validation-selected one for
    ``model_selection='valid'``; the fitted `pca.PCA` for PCA). The restore target is
    abstract (`jax.eval_shape`): nothing is initialised or trained.

    ``workdir`` may also be an exported run (`experiments.export`, e.g. ``checkpoints/<name>``
    in the repository): its ``config.json`` and the parameters alone in ``params/``, whose
    recorded SHA-256 must be present and match (`checkpoints.restore_latest`)."""
    restored = restore_run(workdir)
    return restored.config, restored.fns, restored.model, restored.params
