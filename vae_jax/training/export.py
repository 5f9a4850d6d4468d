"""Exported runs: a trained run's parameters alone, with its config and metrics, in a directory
that `vae_jax.training.run.restore` (and so ``experiments.evaluate``) reads without training.

`export_run` writes one (``python -m experiments.export`` is its command line; the layout is
in checkpoints/README.md), `verify_export` checks one: JSON and orbax only, never pickle.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
import shutil
from importlib import metadata

import jax
import numpy as np

from vae_jax import config as config_lib
from vae_jax.data import datasets
from vae_jax.errors import CheckpointError, ConfigError
from vae_jax.training import checkpoints, curve, run
from vae_jax.training import workdir as workdir_lib

EXPORT_JSON = "export.json"
# Orbax's marker of a finished checkpoint step and item (`orbax.checkpoint`'s
# ``atomicity.COMMIT_SUCCESS_FILE``): it writes the directory's absolute path into it.
COMMIT_SUCCESS_FILE = "commit_success.txt"
# An absolute path inside a command line: a "/" that starts a word (after a space, a quote, "=",
# or the start), not one inside a relative path or a URL ("gs://..."), up to a space or a quote.
_ABSOLUTE_PATH = re.compile(r"""(?<![^\s'"=])/[^\s'"]+""")


def directory_bytes(path: str) -> int:
    """The bytes of the files under ``path``."""
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def portable_path(path: str) -> str:
    """``path`` as an export records it, naming nothing of the machine it ran on: relative to
    the current directory when inside it (``runs/<name>`` from the repository), else its
    last component alone."""
    absolute = os.path.abspath(path)
    here = os.getcwd()
    if absolute == here or absolute.startswith(here.rstrip(os.sep) + os.sep):
        return os.path.relpath(absolute, here)
    return os.path.basename(absolute.rstrip(os.sep)) or "."


def portable_command(command: str | None) -> str | None:
    """``command`` with each absolute path in it replaced by its `portable_path` (relative
    paths, URLs and everything else as given)."""
    if command is None:
        return None
    return _ABSOLUTE_PATH.sub(lambda match: portable_path(match.group()), command)


def portable_commit_files(directory: str) -> list[str]:
    """Rewrites orbax's ``commit_success.txt`` files under ``directory/params`` to name their
    directory relative to ``directory`` (``params/<step>``, ``params/<step>/default``) rather
    than by the absolute path of the machine that saved it; returns the files rewritten.

    Orbax never reads the text. On a local filesystem a step counts as finished by its name
    (no ``.orbax-checkpoint-tmp`` suffix); where orbax works by commit files instead (``gs://``
    paths, ``AtomicityMode.COMMIT_FILE``) the file's presence marks the step finished, and a
    step without it is taken for an unfinished save and removed: so the file stays, and only
    its text changes. The parameters' files and their recorded SHA-256 are not touched."""
    rewritten = []
    for root, _, names in os.walk(os.path.join(directory, run.PARAMS_DIR)):
        if COMMIT_SUCCESS_FILE in names:
            path = os.path.join(root, COMMIT_SUCCESS_FILE)
            relative = os.path.relpath(root, directory).replace(os.sep, "/")
            with open(path, "w") as f:
                f.write(f"Checkpoint commit was successful to {relative}")
            rewritten.append(path)
    return sorted(rewritten)


def export_run(workdir: str, output: str, *, train_command: str | None = None, command: str | None = None) -> dict:
    """Exports the finished run in ``workdir`` to ``output``, a new or empty directory (written
    aside and renamed when complete): ``params/<step>/``, the parameters alone (no optimiser
    state) of the state `run.restore` gives (validation-selected or last) as an orbax
    checkpoint with their SHA-256, saved at its training step; the run's ``config.json`` (with
    ``data.data_dir`` emptied for the named datasets: the evaluation looks in $VAE_JAX_DATA_DIR
    and the usual places) and ``final_metrics.json``; and ``export.json`` (`EXPORT_JSON`): the
    source (the run's directory as `portable_path` gives it, which state, its step), the model
    kind and dataset name, the parameters' count, bytes and SHA-256, the run's ``nll_*.json``
    results, its validation curve (`curve.run_curve`), ``train_command`` and ``command``, the
    command that evaluates the export (each command as given but for its absolute paths,
    `portable_command`), and the versions of jax and orbax. Then reads it back
    (`verify_export`) and checks the parameters equal the run's.

    Nothing written names the machine: no absolute path (the run's data directory is not
    recorded; orbax's ``commit_success.txt`` files are rewritten, `portable_commit_files`),
    except the ``data.data_dir`` of a ``folder`` or ``arrays`` run's config, the data its
    evaluation reads.

    Returns the contents of ``export.json`` plus ``'bytes'``, the size of everything written.
    Raises `ConfigError` for a workdir without a finished run, an export as ``workdir``, or an
    ``output`` that is not new or empty."""
    config_lib.read_run_config(workdir)  # a workdir without a run: one error line, nothing created
    if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
        raise ConfigError(f"--output={output!r} exists and is not an empty directory: choose a new directory.")
    if run.is_export(workdir):
        raise ConfigError(f"--workdir={workdir!r} is an export already: copy the directory instead.")
    with workdir_lib.locked(workdir):  # no training writes the run meanwhile
        final_metrics = workdir_lib.read_final_metrics(workdir)
        if final_metrics is None:
            raise ConfigError(
                f"--workdir={workdir!r} holds no final_metrics.json: finish the run first with "
                f"python -m experiments.train --config=<its config> --workdir={workdir}"
            )
        restored = run.restore_run(workdir)
        with open(os.path.join(workdir, "config.json")) as f:
            config_values = json.load(f)
        run_data_dir = config_values.get("data", {}).get("data_dir", "")
        if run_data_dir and restored.config.data.name not in datasets.SOURCES:
            # A path of the training machine: the export's evaluation looks where the README says
            # ($VAE_JAX_DATA_DIR, then the usual places). Folders and array files keep theirs.
            config_values["data"]["data_dir"] = ""
        likelihoods = {}
        for path in sorted(glob.glob(os.path.join(workdir, "nll_*_k*.json"))):
            with open(path) as f:
                likelihoods[os.path.basename(path)] = json.load(f)
    params = jax.device_get(restored.params)
    leaves = jax.tree.leaves(params)
    digest = checkpoints.tree_digest(params)
    selected = restored.source == "best_checkpoints"
    record = {
        "source": {
            "workdir": portable_path(workdir),
            "checkpoint": restored.source,
            "state": "validation-selected (model_selection=valid)" if selected else "last",
            # > 0: the exported parameters are the run's moving average of its parameters.
            "ema_decay": float(restored.config.get("ema_decay", 0.0)),
            "step": restored.step,
        },
        "model": {"kind": restored.config.model.kind, "data": restored.config.data.name},
        "parameters": {
            "count": int(sum(math.prod(np.shape(leaf)) for leaf in leaves)),
            "bytes": int(sum(np.asarray(leaf).nbytes for leaf in leaves)),
            "sha256": digest,
        },
        "likelihoods": likelihoods,
        "validation_curve": [dataclasses.asdict(point) for point in curve.run_curve(workdir)],
        "train_command": portable_command(train_command),
        "export_command": portable_command(command),
        "evaluate_command": portable_command(f"python -m experiments.evaluate --workdir={output}"),
        "versions": {"jax": jax.__version__, "orbax_checkpoint": _version("orbax-checkpoint")},
    }
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    aside = os.path.join(parent, f".{os.path.basename(os.path.abspath(output))}.exporting-{os.getpid()}")
    shutil.rmtree(aside, ignore_errors=True)
    try:
        os.makedirs(aside)
        workdir_lib.write_json(os.path.join(aside, "config.json"), config_values)
        workdir_lib.write_json(os.path.join(aside, workdir_lib.FINAL_METRICS), final_metrics)
        workdir_lib.write_json(os.path.join(aside, EXPORT_JSON), record)
        manager = checkpoints.open_manager(aside, name=run.PARAMS_DIR)
        try:
            checkpoints.save(manager, 0 if restored.step is None else restored.step, params)
        finally:
            manager.close()
        portable_commit_files(aside)
        if os.path.isdir(output):
            os.rmdir(output)  # empty (checked above)
        os.replace(aside, output)
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    check = verify_export(output)
    if check["sha256"] != digest or not all(
        np.array_equal(a, b) for a, b in zip(jax.tree.leaves(check["params"]), leaves, strict=True)
    ):
        raise CheckpointError(f"{output}/{run.PARAMS_DIR} does not read back as the parameters of {workdir}.")
    return {**record, "bytes": directory_bytes(output)}


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:  # not recorded
        return None


def _shapes(tree) -> tuple:
    """The structure of ``tree`` and the shape and dtype of each leaf."""
    leaves, structure = jax.tree.flatten(tree)
    return structure, [(tuple(np.shape(leaf)), np.dtype(leaf.dtype)) for leaf in leaves]


def recorded_curve(directory: str) -> list[curve.CurvePoint]:
    """The validation curve an export recorded of its run ([] if none, or not an export)."""
    path = os.path.join(directory, EXPORT_JSON)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [curve.CurvePoint(**point) for point in json.load(f).get("validation_curve", [])]


def verify_export(directory: str) -> dict:
    """Checks an exported run (``checkpoints/<name>``): its config resolves, its parameters
    restore (orbax; JSON metadata; never pickle) with a recorded SHA-256 that matches, and their
    shapes and dtypes are those of a freshly built model of that config (`run.params_template`,
    nothing initialised). Returns ``{'config', 'params', 'sha256', 'parameters', 'bytes'}``;
    raises `ConfigError` or `CheckpointError` naming what is wrong."""
    if not run.is_export(directory):
        raise ConfigError(f"{directory} holds no exported parameters ({run.PARAMS_DIR}/): not an export.")
    restored = run.restore_run(directory)  # the config resolves; the digest is required and checked
    if _shapes(restored.params) != _shapes(run.params_template(restored.config)):
        raise CheckpointError(f"{directory}: the parameters' shapes differ from those of a model of its config.json.")
    manager = checkpoints.open_manager(directory, name=run.PARAMS_DIR)
    try:
        recorded = checkpoints.recorded_digest(manager, manager.latest_step())
    finally:
        manager.close()
    digest = checkpoints.tree_digest(restored.params)
    if recorded != digest:  # restore_run checked it already; stated here as the export's guarantee
        raise CheckpointError(f"{directory}: the parameters do not match their recorded SHA-256.")
    with open(os.path.join(directory, EXPORT_JSON)) as f:
        record = json.load(f)
    if record["parameters"]["sha256"] != digest:
        raise CheckpointError(f"{directory}: {EXPORT_JSON} names other parameters (another SHA-256).")
    return {
        "config": restored.config,
        "params": restored.params,
        "sha256": digest,
        "parameters": int(sum(math.prod(np.shape(leaf)) for leaf in jax.tree.leaves(restored.params))),
        "bytes": directory_bytes(directory),
    }
