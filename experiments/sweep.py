"""Runs a sweep: ``python -m experiments.sweep --config=configs/sweeps/beta.py --workdir=runs/sweep_beta``.

The config file defines ``get_config()`` (the base config; ``--config.<name>=<value>``
overrides it for every member) and ``get_sweep()`` (the members' overrides, see
`vae_jax.sweep`). Members that differ only in seed, beta, c, learning rate or KL warm-up
train together in one compiled program; others run one group after another. Writes
``<workdir>/sweep_results.{json,md}`` and each member's outputs in ``<workdir>/<member>/``.
Running the same command again resumes unfinished groups and skips finished ones. Errors
are reported as in ``experiments.train`` (one ``error: ...`` line, exit status 2).
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from vae_jax import checkpoints, data, sweep, train, validation

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a sweep config file in configs/sweeps/.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory of the sweep (one sub-directory per member; resumes if it holds one).")
flags.mark_flags_as_required(["config", "workdir"])

# As in experiments.train (not imported: it defines the same flags).
USER_ERRORS = (validation.ConfigError, data.DataError, checkpoints.CheckpointError, train.NonFiniteError)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        members = sweep.load_sweep_file(config_flags.get_config_filename(FLAGS["config"]))
        logging.info("Base config:\n%s", FLAGS.config)
        results = sweep.run_sweep(FLAGS.config, members, FLAGS.workdir)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    with open(f"{FLAGS.workdir}/{sweep.RESULTS_NAME}.md") as f:
        print(f.read())
    del results


if __name__ == "__main__":
    app.run(main)
