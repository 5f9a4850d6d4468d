"""What every lecture experiment shares: where results go and how they are written.

Each experiment ``NAME`` writes ``<outdir>/NAME.json`` (its numbers), ``<outdir>/NAME.md``
(a Markdown section with the numbers and links to its figures) and ``<outdir>/NAME_*.png``;
``python -m experiments.report`` joins the sections into one page. Models are trained with
`vae_jax.train.train_and_evaluate` in ``<outdir>/workdirs/<run>``: a re-run reuses (or
resumes) the finished runs there, and `train_and_restore` hands back their parameters.
"""

from __future__ import annotations

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

OUTDIR = flags.DEFINE_string("outdir", "runs/lecture", "Directory for the experiment's JSON, Markdown and PNG files.")
# Shared by the experiments (one process may import several, e.g. the tests); None means
# the experiment's own default, given in its module docstring.
DATASET = flags.DEFINE_string("dataset", None, "Dataset name (vae_jax.data.DATASETS); default: the experiment's.")
DATA_DIR = flags.DEFINE_string("data_dir", "", "Data directory; '' means $VAE_JAX_DATA_DIR, then the usual places.")
EPOCHS = flags.DEFINE_integer("epochs", None, "Training epochs of every model; default: the experiment's.")
LATENTS = flags.DEFINE_integer("latents", None, "Latent dimensions; default: the experiment's.")


def flag_or(holder, default):
    """The flag's value, or ``default`` when it was not given (None)."""
    return default if holder.value is None else holder.value


def set_data(config, dataset: str) -> None:
    """Points ``config`` at ``dataset`` and the ``--data_dir`` flag."""
    config.data.name = dataset
    config.data.data_dir = DATA_DIR.value


def output_path(name: str) -> str:
    """``<outdir>/<name>``, creating the directory."""
    os.makedirs(OUTDIR.value, exist_ok=True)
    return os.path.join(OUTDIR.value, name)


def workdir(run: str) -> str:
    """``<outdir>/workdirs/<run>``: where an experiment trains (and later reuses) one model."""
    return output_path(os.path.join("workdirs", run))


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; floats are written with 4 significant digits."""
    cell = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _jsonable(value):
    """Numpy/JAX scalars and arrays as plain Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, jax.Array)):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


def write_results(name: str, numbers: dict, markdown: str) -> None:
    """Writes ``NAME.json`` and ``NAME.md`` and prints the Markdown."""
    with open(output_path(f"{name}.json"), "w") as f:
        json.dump(_jsonable(numbers), f, indent=2, default=float)
    with open(output_path(f"{name}.md"), "w") as f:
        f.write(markdown.rstrip() + "\n")
    print(markdown)


def all_finite(numbers) -> bool:
    """Whether every number in a nested dict/list of results is finite (for checks and tests)."""
    if isinstance(numbers, dict):
        return all(all_finite(v) for v in numbers.values())
    if isinstance(numbers, (list, tuple)):
        return all(all_finite(v) for v in numbers)
    if isinstance(numbers, (int, float)) and not isinstance(numbers, bool):
        return math.isfinite(numbers)
    return True


def train_and_restore(config, workdir: str):
    """Trains ``config`` in ``workdir`` (or reuses/resumes the run there) and restores it.

    Returns ``(fns, model, params, final_metrics)``: the `objectives.ModelFns`, the Flax
    module (None for PCA), the trained parameters (the fitted `pca.PCA` for PCA; the state
    selected on the validation split with ``config.model_selection='valid'``) and the final
    test metrics of `train.train_and_evaluate`.
    """
    from vae_jax import checkpoints, data, selection, train  # lazy: keeps `--help` fast
    from vae_jax import pca as pca_lib

    final_metrics = train.train_and_evaluate(config, workdir)
    image_shape = data.image_shape(config.data.name)
    fns, model = train.model_fns(config, image_shape)
    if model is None:
        dim, latents = math.prod(image_shape), config.model.latents
        template = pca_lib.PCA(jnp.zeros(dim), jnp.zeros((latents, dim)), jnp.zeros(latents), jnp.zeros(()))
    else:
        template = train.create_train_state(model, image_shape, train.make_optimizer(config.optimizer, 1),
                                            train.run_keys(config.seed)["init"])
    selected = selection.selects_on_validation(config)
    manager = checkpoints.open_manager(workdir, name=selection.CHECKPOINT_DIR if selected else "checkpoints")
    try:
        restored = checkpoints.restore_latest(manager, template)
    finally:
        manager.close()
    if restored is None:
        raise RuntimeError(f"{workdir} holds no checkpoint after training.")
    params = restored if model is None else restored.params
    return fns, model, params, final_metrics


def posterior(model, params, images, *, batch_size: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)``, each ``[n, latents]``, of a `models.VAE`'s q(z|x) for ``images``."""

    @jax.jit
    def encode(params, x):
        mean, logvar = model.apply(params, x, method=model.encode)
        return mean, jnp.exp(0.5 * logvar)

    parts = [encode(params, images[start:start + batch_size]) for start in range(0, len(images), batch_size)]
    return tuple(np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(2))


def posterior_samples(mean: np.ndarray, std: np.ndarray, key: jax.Array) -> np.ndarray:
    """One draw ``z = mean + std * xi`` per row: points of the aggregate posterior, i.e. the
    latents the decoder was trained on (for a VAE, the region its latent space *fills*)."""
    return (mean + std * np.asarray(jax.random.normal(key, mean.shape), mean.dtype)).astype(np.float32)
