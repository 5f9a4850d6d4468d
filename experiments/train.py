"""Trains one model: ``python -m experiments.train --config=configs/vae.py --workdir=runs/vae``.

Override any config value on the command line, e.g. ``--config.model.latents=2``.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from vae_jax import train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file in configs/.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and figures (resumes if it holds a run).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.info("Config:\n%s", FLAGS.config)
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
    app.run(main)
