"""Trains one model: ``python -m experiments.train --config=configs/vae.py --workdir=runs/vae``.

Override any config value on the command line, e.g. ``--config.model.latents=2``.
Running the same command again resumes the run from its last checkpoint (also after a
crash or kill); for a complete run it loads the data and checkpoints, logs the final metrics of
``final_metrics.json`` and trains, evaluates and draws nothing (PCA, which has no epochs,
evaluates and draws again). A bad config value, data file, workdir or checkpoint, or a non-finite loss
with ``--config.nonfinite=stop``, ends the run with exit status 2 and one ``error: ...``
message on stderr saying what is wrong and how to fix it. A workdir holding a run of
another config is refused; ``--config.overwrite=True`` then starts over after moving that
run's outputs (checkpoints, metrics, figures, config.json) to ``<workdir>/previous-<time>/``.

Training is data parallel over every device. For several processes (hosts), start the same
command in each with ``--coordinator_address=HOST:PORT --num_processes=N --process_id=I``
(``$JAX_COORDINATOR_ADDRESS`` may give the address; under SLURM / Open MPI no flags): see README,
"Several devices and hosts".
"""

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli
from vae_jax.training import run, validation

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file in configs/.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and figures (resumes if it holds a run).")
flags.mark_flags_as_required(["config", "workdir"])
cli.define_process_flags()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    with cli.exit_on_user_errors(FLAGS.workdir):
        cli.check_flags(workdir=cli.usable_directory(), **cli.process_flag_rules())
        # Then: jax.distributed must start before anything uses a device.
        cli.initialize_processes()
        config = cli.config_from_flag()
        validation.validate_config(config)  # before the config is logged: a bad value gives one line
        logging.info("Config:\n%s", config)
        run.train_and_evaluate(config, FLAGS.workdir)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
