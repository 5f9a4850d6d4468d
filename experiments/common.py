"""What every lecture experiment shares: where results go and how they are written.

Each experiment ``NAME`` writes ``<workdir>/NAME.json`` (its numbers), ``<workdir>/NAME.md``
(a Markdown section with the numbers and links to its figures) and ``<workdir>/NAME_*.png``,
where ``<workdir>`` is ``--workdir`` (default ``runs/lecture``); ``python -m experiments.report``
joins the sections into one page. Models are trained with `vae_jax.training.run.train_and_evaluate` in
``<workdir>/workdirs/<run>``: a re-run reuses (or resumes) the finished runs there, and
`train_and_restore` hands back their parameters. `flag_rules` gives the checks of the shared
flags below for `experiments.cli.check_flags`.
"""

from __future__ import annotations

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import cli
from vae_jax.data import datasets
from vae_jax.errors import ConfigError, DataError

DEFAULT_WORKDIR = "runs/lecture"
# `--workdir` is also the flag of experiments.train, evaluate and sweep (one name, one idea: the
# directory a command works in), and absl allows one definition of a name per process, which may
# import a lecture script and one of those (the tests do). So there is one definition: this one
# gives way (allow_override) to theirs when they are imported later, and is not made when one came
# first; WORKDIR reads whichever is registered (by name), and `workdir_root` turns their default
# (None) into DEFAULT_WORKDIR.
if "workdir" not in flags.FLAGS:
    flags.DEFINE_string(
        "workdir",
        DEFAULT_WORKDIR,
        "Directory for the experiment's JSON, Markdown and PNG files (and, under workdirs/, the runs it trains).",
        allow_override=True,
    )
WORKDIR = flags.FlagHolder(flags.FLAGS, flags.FLAGS["workdir"])
# Shared by the experiments (one process may import several, e.g. the tests); None means
# the experiment's own default, given in its module docstring.
DATASET = flags.DEFINE_string(
    "dataset", None, "Dataset name (vae_jax.data.datasets.DATASETS); default: the experiment's."
)
DATA_DIR = flags.DEFINE_string("data_dir", "", "Data directory; '' means $VAE_JAX_DATA_DIR, then the usual places.")
EPOCHS = flags.DEFINE_integer("epochs", None, "Training epochs of every model; default: the experiment's.")
LATENTS = flags.DEFINE_integer("latents", None, "Latent dimensions; default: the experiment's.")


def _known_dataset(name: str) -> bool:
    try:
        datasets.check_name(name)
    except DataError:
        return False
    return True


# What the shared flags must be (`experiments.cli.check_flags`); each experiment checks those it uses.
FLAG_RULES = {
    "workdir": cli.usable_directory(),
    "dataset": cli.Rule(
        _known_dataset,
        f"a dataset name: one of {', '.join(datasets.DATASETS + datasets.SOURCES)}, or {datasets.TFDS_PREFIX}<name>",
    ),
    "data_dir": cli.Rule(
        lambda value: not value or os.path.exists(os.path.expanduser(os.path.expandvars(value))),
        "an existing directory (the arrays' file for --dataset=arrays), or nothing for $VAE_JAX_DATA_DIR "
        "and the usual places",
    ),
    "epochs": cli.Rule(lambda value: value >= 1, "an integer >= 1 (or no --epochs: the experiment's default)"),
    "latents": cli.Rule(lambda value: value >= 1, "an integer >= 1 (or no --latents: the experiment's default)"),
}


def flag_rules(*names: str) -> dict[str, cli.Rule]:
    """The `FLAG_RULES` of the shared flags ``names``, for ``cli.check_flags(**flag_rules(...))``."""
    return {name: FLAG_RULES[name] for name in names}


def flag_or(holder, default):
    """The flag's value, or ``default`` when it was not given (None)."""
    return default if holder.value is None else holder.value


def set_data(config, dataset: str) -> None:
    """Points ``config`` at ``dataset`` and the ``--data_dir`` flag."""
    config.data.name = dataset
    config.data.data_dir = DATA_DIR.value


def workdir_root() -> str:
    """The ``--workdir`` of the lecture experiments (DEFAULT_WORKDIR when not given)."""
    return WORKDIR.value or DEFAULT_WORKDIR


def output_path(name: str) -> str:
    """``<workdir>/<name>``, creating the directory."""
    try:
        os.makedirs(workdir_root(), exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"--workdir={workdir_root()!r} cannot be used as a directory ({error.strerror}): pass a directory."
        ) from None
    return os.path.join(workdir_root(), name)


def workdir(run: str) -> str:
    """``<workdir>/workdirs/<run>``: where an experiment trains (and later reuses) one model."""
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
    """Trains ``config`` in ``workdir`` (or reuses/resumes the run there), then restores it.

    Returns ``(fns, model, params, final_metrics)``: the `interface.ModelFns`, the Flax
    module (None for PCA), the trained parameters (the fitted `pca.PCA` for PCA; the state
    selected on the validation split with ``config.model_selection='valid'``) and the final
    test metrics of `run.train_and_evaluate`.
    """
    from vae_jax.training import run  # lazy: keeps `--help` fast

    final_metrics = run.train_and_evaluate(config, workdir)
    _, fns, model, params = run.restore(workdir)
    return fns, model, params, final_metrics


def posterior(fns, params, images, *, batch_size: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)``, each ``[n, latents]``, of a one-layer VAE's q(z|x) for ``images`` (its
    ``fns.importance_parts.encode``)."""

    @jax.jit
    def encode(params, x):
        mean, logvar = fns.importance_parts.encode(params, x)
        return mean, jnp.exp(0.5 * logvar)

    parts = [encode(params, images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
    return tuple(np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(2))


def posterior_samples(mean: np.ndarray, std: np.ndarray, key: jax.Array) -> np.ndarray:
    """One draw ``z = mean + std * xi`` per row: points of the aggregate posterior, i.e. the
    latents the decoder was trained on (for a VAE, the region its latent space *fills*)."""
    return (mean + std * np.asarray(jax.random.normal(key, mean.shape), mean.dtype)).astype(np.float32)
