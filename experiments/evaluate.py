"""Test log-likelihood of a trained VAE run: ``python -m experiments.evaluate --workdir=runs/vae``.

Never trains: it reads the run's `config.json` and restores its latest checkpoint (the
validation-selected one for runs with ``model_selection=valid``; a run without a checkpoint is
refused), or the parameters of an exported run (``--workdir=checkpoints/<name>``, written by
``python -m experiments.export``; their recorded SHA-256 must match), then reports on the
chosen split the importance-sampled NLL (``--num_samples`` k, nats per example, with its
standard error), the negative ELBO and the active units (for the discretised likelihoods of
8-bit images also both in bits per dimension), and writes them, with the estimate's time in
seconds, to ``<workdir>/nll_<split>_k<k>.json``. While the estimate runs it logs the images
done, the rate (images/s) and the time left: after the first chunk of ``--data_chunk`` images
(which includes compiling), then about every 10 s. Use ``--split=valid`` for model selection
and the test split once per final model. Times for k = 1000 on the 10,000 binarised-MNIST test images: docs/results.md, likelihood
benchmark (an autoregressive decoder costs several times an MLP decoder per sample: use a
smaller ``--sample_chunk``, e.g. 16, to bound its memory).
"""

import json
import os
import time

import jax
from absl import app, flags

from experiments import cli
from vae_jax import config as config_lib
from vae_jax.errors import ConfigError
from vae_jax.evaluation import latent_geometry, likelihood
from vae_jax.models import interface
from vae_jax.training import programs, run
from vae_jax.training import workdir as workdir_lib

WORKDIR = flags.DEFINE_string(
    "workdir", None, "A finished (or resumable) run of experiments.train, or an export of one (required)."
)
NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1000, "Importance samples k per image.")
SPLITS = ("test", "valid", "train")  # the names of a dataset's splits (`vae_jax.data.datasets`)
SPLIT = flags.DEFINE_string("split", "test", "Split to evaluate: test, or valid where the dataset has one (or train).")
SAMPLE_CHUNK = flags.DEFINE_integer(
    "sample_chunk",
    128,
    "Importance samples per image drawn at once (memory: the "
    "decoder sees sample_chunk x data_chunk latents at a time).",
)
DATA_CHUNK = flags.DEFINE_integer("data_chunk", 128, "Images per compiled call.")


def evaluate_run(
    workdir: str,
    *,
    num_samples: int,
    split: str,
    sample_chunk: int = 128,
    data_chunk: int = 128,
    log_progress: bool = True,
) -> dict:
    """Evaluates the VAE run in ``workdir`` on ``split``; writes and returns the figures.

    ``sample_chunk`` and ``data_chunk`` set memory and speed only (`likelihood.model_log_likelihood`):
    the estimate is the same for any of them up to float rounding. ``log_progress``: log the
    estimate's progress (`likelihood.LogProgress`); the numbers are the same without."""
    config_lib.read_run_config(workdir)  # a workdir without a run: one error line, nothing created
    with workdir_lib.locked(workdir):  # it writes into the run's workdir
        return _evaluate_run(
            workdir,
            num_samples=num_samples,
            split=split,
            sample_chunk=sample_chunk,
            data_chunk=data_chunk,
            log_progress=log_progress,
        )


def _evaluate_run(
    workdir: str, *, num_samples: int, split: str, sample_chunk: int, data_chunk: int, log_progress: bool
) -> dict:
    config, fns, _, params = run.restore(workdir)  # never trains
    splits = run.load_splits(config)
    if split not in splits:
        raise ConfigError(
            f"--split={split}: {config.data.name} has the splits {', '.join(sorted(splits))}: pass one of them."
        )
    if fns.importance_parts is None and fns.log_importance_weight is None:
        raise ConfigError(
            f"--workdir={workdir!r} holds a {fns.label} run: experiments.evaluate estimates a "
            "VAE's likelihood; the run's test metrics are in its final_metrics.json."
        )
    images = splits[split].images
    eval_key = programs.run_keys(config.seed)["eval"]  # the trainer's: the same negative ELBO as its final_metrics
    key = jax.random.fold_in(eval_key, num_samples)
    start = time.perf_counter()
    progress = likelihood.LogProgress(f"NLL k={num_samples} ({split})") if log_progress else None
    nll = likelihood.model_log_likelihood(
        fns,
        params,
        images,
        key,
        num_samples=num_samples,
        sample_chunk=sample_chunk,
        data_chunk=data_chunk,
        progress=progress,
    )
    seconds = time.perf_counter() - start
    elbo = programs.make_evaluate(fns, config.eval_batch_size)(params, images, eval_key, interface.hyper(config))
    units = latent_geometry.active_units(lambda x: fns.encode(params, x), images)
    result = {
        "split": split,
        "num_samples": num_samples,
        "nll": nll["nll"],
        "standard_error": nll["standard_error"],
        "neg_elbo": elbo["neg_elbo"],
        "active_units": units["active_units"],
        "latents": list(fns.latent_sizes) if len(fns.latent_sizes) > 1 else fns.latent_sizes[0],
        "seconds": seconds,
    }
    if fns.encode_layers is not None:  # a ladder VAE: units is z_1's; each layer's active units
        result["active_units_per_layer"] = [
            latent_geometry.active_units(lambda x, layer=layer: fns.encode_layers(params, x)[layer], images)[
                "active_units"
            ]
            for layer in range(len(fns.latent_sizes))
        ]
    if "bits_per_dim" in nll:  # a discretised likelihood of 8-bit data: bits per dimension too
        result["bits_per_dim"] = nll["bits_per_dim"]
        result["bits_per_dim_standard_error"] = nll["bits_per_dim_standard_error"]
        result["neg_elbo_bits_per_dim"] = elbo["bits_per_dim"]
    with open(os.path.join(workdir, f"nll_{split}_k{num_samples}.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


def main(argv):
    del argv
    with cli.exit_on_user_errors(WORKDIR.value):
        cli.check_flags(  # the workdir's run is checked by evaluate_run, before anything is loaded
            num_samples=cli.at_least(1),
            split=cli.one_of(SPLITS),
            sample_chunk=cli.at_least(1),
            data_chunk=cli.at_least(1),
        )
        result = evaluate_run(
            WORKDIR.value,
            num_samples=NUM_SAMPLES.value,
            split=SPLIT.value,
            sample_chunk=SAMPLE_CHUNK.value,
            data_chunk=DATA_CHUNK.value,
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    flags.mark_flag_as_required("workdir")
    app.run(main, flags_parser=cli.parse_flags)
